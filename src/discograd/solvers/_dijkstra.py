"""Numba kernels shared by the shortest-path solvers (:mod:`.grid_shortest_path`, :mod:`.shortest_path`).

This module imports numba at the top: the solvers import it lazily, through
``discograd._optional.require``, the first time they solve.

Every kernel solves the instances ``start <= b < stop`` of a batch laid out as a C-contiguous
``[B, m]`` float64 array of *scores* ``theta`` (``cost = -theta``) and writes a ``[B, m]`` uint8 indicator.
Instances are independent and their results depend only on their own row, so the result is the same
for every split of the batch into ranges, hence for every number of threads.

Dijkstra settles nodes in the order of ``(distance, node index)``, so among tied distances the node with
the lower index is settled first; a node's predecessor changes only on a strictly smaller distance, never
on a tie; neighbours (grid moves, out-edges) are scanned in a fixed order; the search stops as soon as the
target is settled. General graphs use an indexed binary heap with decrease-key; grids need no
decrease-key and use a faster radix heap that pops in the same order (see the grid section). Costs below
``min_cost`` are raised to ``min_cost`` inside the kernel and counted per instance.

:func:`solve_batch` runs a range kernel over a batch on a pool of threads (the kernels release the GIL).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros, trailing_zeros

from ._compiled import run_batched

__all__ = ["grid_range", "graph_range", "dag_range", "solve_batch"]

_INF = np.inf


# -- indexed binary heap of (key, node) pairs, smallest (key, node) first (general graphs) ---------------
# keys[:size], nodes[:size] hold the heap; position[v] is the slot of node v (-1 when v is not in the
# heap), for decrease-key.


@njit(cache=True, nogil=True, inline="always")
def _before(key_a, node_a, key_b, node_b):
    return key_a < key_b or (key_a == key_b and node_a < node_b)


@njit(cache=True, nogil=True, inline="always")
def _sift_up(keys, nodes, position, i, key, node):
    """Place (key, node) at slot i or above; the entry that was at i (if any) is overwritten."""
    while i > 0:
        parent = (i - 1) >> 1
        if _before(key, node, keys[parent], nodes[parent]):
            keys[i] = keys[parent]
            nodes[i] = nodes[parent]
            position[nodes[i]] = i
            i = parent
        else:
            break
    keys[i] = key
    nodes[i] = node
    position[node] = i


@njit(cache=True, nogil=True, inline="always")
def _push_or_decrease(keys, nodes, position, size, key, node):
    """Insert ``node`` with ``key``, or lower its key if it is in the heap; return the new size."""
    i = position[node]
    if i < 0:
        _sift_up(keys, nodes, position, size, key, node)
        return size + 1
    _sift_up(keys, nodes, position, i, key, node)
    return size


@njit(cache=True, nogil=True, inline="always")
def _pop(keys, nodes, position, size):
    """Remove the top entry (read it from ``keys[0], nodes[0]`` first); return the new size."""
    position[nodes[0]] = -1
    size -= 1
    if size == 0:
        return 0
    key = keys[size]
    node = nodes[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        right = child + 1
        if right < size and _before(keys[right], nodes[right], keys[child], nodes[child]):
            child = right
        if _before(keys[child], nodes[child], key, node):
            keys[i] = keys[child]
            nodes[i] = nodes[child]
            position[nodes[i]] = i
            i = child
        else:
            break
    keys[i] = key
    nodes[i] = node
    position[node] = i
    return size


# -- vertex-weighted grid ------------------------------------------------------------------------------------
# The grid is padded with a ring of cells that count as reached, so moves need no bounds checks. Padded
# indices (i + 1) * (W + 2) + (j + 1) are ordered like the row-major indices i * W + j.
#
# With costs on the vertices, the first tentative distance a cell gets is final: it comes from the first
# settled neighbour u, and neighbours settled later have dist >= dist[u] (settling order) hence offer
# dist + cost[v] >= dist[u] + cost[v] (floating-point addition is monotone), never a strict improvement.
# So each cell enters the queue once, with no decrease-key, and "predecessor = the first settled
# neighbour" is exactly Dijkstra's rule "change the predecessor only on a strict improvement".
#
# The queue is a radix heap: non-negative float64 values are ordered like their bit patterns read as
# unsigned integers, and Dijkstra's keys never fall below the last key taken out (``last``). A cell with
# key bits ``k`` waits in bucket ``64 - leading_zeros(k ^ last)`` (a linked list), or, when ``k == last``,
# in a binary heap of cell indices (``ties``). Taking the minimum: pop the lowest index from ``ties``; if
# it is empty, find the lowest non-empty bucket (``mask`` has one bit per non-empty bucket), make its
# smallest key the new ``last`` and spread the bucket over lower buckets and ``ties``. Cells come out in
# exactly the order of a binary heap on ``(distance, cell index)``, faster: a push is O(1) and a cell
# moves down at most 63 buckets, in practice a few.


@njit(cache=True, nogil=True, inline="always")
def _ties_push(ties, size, node):
    """Insert ``node`` into the binary min-heap of cell indices ``ties[:size]``; return the new size."""
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if node < ties[parent]:
            ties[i] = ties[parent]
            i = parent
        else:
            break
    ties[i] = node
    return size + 1


@njit(cache=True, nogil=True, inline="always")
def _ties_pop(ties, size):
    """Remove the lowest index from ``ties[:size]``; return it and the new size."""
    top = ties[0]
    size -= 1
    if size > 0:
        node = ties[size]
        i = 0
        while True:
            child = 2 * i + 1
            if child >= size:
                break
            if child + 1 < size and ties[child + 1] < ties[child]:
                child += 1
            if ties[child] < node:
                ties[i] = ties[child]
                i = child
            else:
                break
        ties[i] = node
    return top, size


@njit(cache=True, nogil=True, inline="always")
def _radix_insert(node, key_bits, last, bucket_head, bucket_next, mask, ties, num_ties):
    """Put ``node`` (key bits ``key_bits >= last``) into its bucket; return the new ``(mask, num_ties)``."""
    diff = key_bits ^ last
    if diff == 0:
        return mask | np.uint64(1), _ties_push(ties, num_ties, node)
    bucket = 64 - leading_zeros(diff)
    bucket_next[node] = bucket_head[bucket]
    bucket_head[bucket] = node
    return mask | (np.uint64(1) << np.uint64(bucket)), num_ties


@njit(cache=True, nogil=True, inline="always")
def _grid_one(theta, height, width, steps, source, target, min_cost, cost, dist, pred, reached,
              bucket_head, bucket_next, ties, out):
    """Minimum vertex-cost path on one grid (padded indices); returns the number of clamped costs."""
    stride = width + 2
    clamped = 0
    for i in range(height):
        for j in range(width):
            c = -theta[i * width + j]
            if c < min_cost:
                c = min_cost
                clamped += 1
            v = (i + 1) * stride + j + 1
            cost[v] = c + 0.0  # -0.0 becomes +0.0: keys must have a clear sign bit
            pred[v] = -1
            reached[v] = False
    key_bits = dist.view(np.uint64)
    num_steps = steps.shape[0]
    reached[source] = True
    dist[source] = cost[source]
    last = key_bits[source]
    mask, num_ties = _radix_insert(source, last, last, bucket_head, bucket_next, np.uint64(0), ties, 0)
    while mask != 0:
        if num_ties == 0:
            # the lowest non-empty bucket holds the smallest keys: spread it around its minimum
            bucket = trailing_zeros(mask)
            v = bucket_head[bucket]
            smallest = v
            while v >= 0:
                if dist[v] < dist[smallest]:
                    smallest = v
                v = bucket_next[v]
            last = key_bits[smallest]
            v = bucket_head[bucket]
            bucket_head[bucket] = -1
            mask &= ~(np.uint64(1) << np.uint64(bucket))
            while v >= 0:
                following = bucket_next[v]
                mask, num_ties = _radix_insert(v, key_bits[v], last, bucket_head, bucket_next, mask, ties, num_ties)
                v = following
        u, num_ties = _ties_pop(ties, num_ties)
        if num_ties == 0:
            mask &= ~np.uint64(1)
        if u == target:
            break
        d = dist[u]
        for k in range(num_steps):
            v = u + steps[k]
            if reached[v]:
                continue
            reached[v] = True
            pred[v] = u
            dist[v] = d + cost[v]
            mask, num_ties = _radix_insert(v, key_bits[v], last, bucket_head, bucket_next, mask, ties, num_ties)
    for k in range(bucket_head.shape[0]):  # empty the queue for the next instance
        bucket_head[k] = -1
    for k in range(out.shape[0]):
        out[k] = 0
    v = target
    while v >= 0:
        i = v // stride - 1
        out[i * width + v - (i + 1) * stride - 1] = 1
        v = pred[v]
    return clamped


@njit(cache=True, nogil=True)
def grid_range(theta, height, width, move_rows, move_cols, source, target, min_cost, out, clamped, start, stop):
    """Solve grid instances ``start <= b < stop`` of ``theta`` ``[B, height * width]`` into ``out``.

    ``source`` and ``target`` are row-major cell indices; ``(move_rows[k], move_cols[k])`` are the moves,
    in the order they are scanned.
    """
    stride = width + 2
    size = (height + 2) * stride
    steps = move_rows * stride + move_cols
    cost = np.zeros(size, np.float64)
    dist = np.zeros(size, np.float64)
    pred = np.full(size, -1, np.int64)
    reached = np.ones(size, np.bool_)  # the padding ring stays reached
    bucket_head = np.full(64, -1, np.int64)
    bucket_next = np.full(size, -1, np.int64)
    ties = np.empty(height * width, np.int64)
    padded_source = (source // width + 1) * stride + source % width + 1
    padded_target = (target // width + 1) * stride + target % width + 1
    for b in range(start, stop):
        clamped[b] = _grid_one(theta[b], height, width, steps, padded_source, padded_target, min_cost,
                               cost, dist, pred, reached, bucket_head, bucket_next, ties, out[b])


# -- general directed graph, edge costs ----------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _graph_one(theta, indptr, heads, edge_ids, source, target, min_cost,
               cost, dist, pred_edge, tails, settled, position, heap_keys, heap_nodes, out):
    """Dijkstra on one instance; returns the number of clamped edge costs, or -1 if the target is unreachable."""
    num_nodes = indptr.shape[0] - 1
    num_edges = theta.shape[0]
    clamped = 0
    for e in range(num_edges):
        c = -theta[e]
        if c < min_cost:
            c = min_cost
            clamped += 1
        cost[e] = c
        out[e] = 0
    for v in range(num_nodes):
        dist[v] = _INF
        pred_edge[v] = -1
        settled[v] = False
    dist[source] = 0.0
    size = _push_or_decrease(heap_keys, heap_nodes, position, 0, 0.0, source)
    while size > 0:
        d = heap_keys[0]
        u = heap_nodes[0]
        size = _pop(heap_keys, heap_nodes, position, size)
        settled[u] = True
        if u == target:
            break
        for slot in range(indptr[u], indptr[u + 1]):
            v = heads[slot]
            if settled[v]:
                continue
            e = edge_ids[slot]
            candidate = d + cost[e]
            if candidate < dist[v]:
                dist[v] = candidate
                pred_edge[v] = e
                size = _push_or_decrease(heap_keys, heap_nodes, position, size, candidate, v)
    for k in range(size):  # empty the heap for the next instance
        position[heap_nodes[k]] = -1
    if not settled[target]:
        return -1
    v = target
    while v != source:
        e = pred_edge[v]
        out[e] = 1
        v = tails[e]
    return clamped


@njit(cache=True, nogil=True)
def graph_range(theta, indptr, heads, edge_ids, tails, source, target, min_cost, out, clamped, start, stop):
    """Dijkstra on instances ``start <= b < stop`` of edge scores ``theta`` ``[B, E]`` (CSR adjacency)."""
    num_nodes = indptr.shape[0] - 1
    num_edges = theta.shape[1]
    cost = np.empty(num_edges, np.float64)
    dist = np.empty(num_nodes, np.float64)
    pred_edge = np.empty(num_nodes, np.int64)
    settled = np.empty(num_nodes, np.bool_)
    position = np.full(num_nodes, -1, np.int64)
    heap_keys = np.empty(num_nodes, np.float64)
    heap_nodes = np.empty(num_nodes, np.int64)
    for b in range(start, stop):
        clamped[b] = _graph_one(theta[b], indptr, heads, edge_ids, source, target, min_cost,
                                cost, dist, pred_edge, tails, settled, position, heap_keys, heap_nodes, out[b])


@njit(cache=True, nogil=True)
def dag_range(theta, order, indptr, heads, edge_ids, tails, source, target, out, clamped, start, stop):
    """One relaxation pass in topological ``order`` (from the source on) per instance; exact for any costs."""
    num_nodes = indptr.shape[0] - 1
    dist = np.empty(num_nodes, np.float64)
    pred_edge = np.empty(num_nodes, np.int64)
    for b in range(start, stop):
        row = theta[b]
        out_row = out[b]
        for e in range(row.shape[0]):
            out_row[e] = 0
        for v in range(num_nodes):
            dist[v] = _INF
            pred_edge[v] = -1
        dist[source] = 0.0
        for u in order:
            if u == target:
                break
            d = dist[u]
            if d == _INF:
                continue
            for slot in range(indptr[u], indptr[u + 1]):
                e = edge_ids[slot]
                candidate = d - row[e]
                v = heads[slot]
                if candidate < dist[v]:
                    dist[v] = candidate
                    pred_edge[v] = e
        if dist[target] == _INF:
            clamped[b] = -1
            continue
        clamped[b] = 0
        v = target
        while v != source:
            e = pred_edge[v]
            out_row[e] = 1
            v = tails[e]


# -- running a range kernel over a batch on threads ----------------------------------------------------------


def solve_batch(kernel, batch_size: int, args: tuple, work_per_instance: int, threads: int | None = None) -> None:
    """Call ``kernel(*args, start, stop)`` over ``[0, batch_size)`` on the shared solver thread pool.

    Ranges hold at least 50,000 neighbour scans, and there are up to 4 per thread: instances differ in
    cost (the search stops at the target), so more ranges balance the load.
    """
    run_batched(kernel, args, batch_size, work_per_instance, threads, min_work_per_chunk=50_000, chunks_per_thread=4)
