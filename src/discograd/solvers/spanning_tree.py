r"""Maximum spanning tree of a complete graph: the MAP oracle over spanning-tree adjacency matrices."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor

from .._validation import check_int
from ._compiled import as_float64_array, jit, resolve_num_threads, run_batched
from .base import Solver

__all__ = ["SpanningTree"]

#: enumerate_feasible refuses to list more states than this (8**6 = 262144 trees of 8 nodes are allowed)
MAX_ENUMERATED_STATES = 10**6


def _spanning_tree_kernel(theta: np.ndarray, parent: np.ndarray, start: int,
                          stop: int) -> None:  # pragma: no cover - compiled by numba
    """Maximum spanning tree of ``theta[b]`` (``[n, n]``) for ``start <= b < stop``, by Prim's algorithm from node 0.

    Edge ``{i, j}`` scores ``w = theta[i, j] + theta[j, i]``; edges are compared by the strict total order
    "larger ``w`` first, then the lexicographically smaller ``(min(i, j), max(i, j))``", under which the
    maximum spanning tree is unique. Writes ``parent[b, v]``, the neighbour of ``v`` on its path to node 0
    (``parent[b, 0] = -1``). O(n^2) per instance.
    """
    n = theta.shape[1]
    in_tree = np.empty(n, np.bool_)
    key = np.empty(n)  # score of the best edge from v to the tree
    link = np.empty(n, np.int64)  # the tree end of that edge
    for b in range(start, stop):
        t = theta[b]
        if n == 0:
            continue
        in_tree[:] = False
        in_tree[0] = True
        parent[b, 0] = -1
        for v in range(1, n):
            key[v] = t[0, v] + t[v, 0]
            link[v] = 0
        for _ in range(n - 1):
            best = -1
            for v in range(1, n):
                if in_tree[v]:
                    continue
                if best < 0:
                    best = v
                    continue
                # is edge {link[v], v} before edge {link[best], best} in the total order?
                if key[v] > key[best]:
                    best = v
                elif key[v] == key[best]:
                    a1 = min(link[v], v)
                    b1 = max(link[v], v)
                    a2 = min(link[best], best)
                    b2 = max(link[best], best)
                    if a1 < a2 or (a1 == a2 and b1 < b2):
                        best = v
            in_tree[best] = True
            parent[b, best] = link[best]
            for v in range(1, n):
                if in_tree[v]:
                    continue
                w = t[best, v] + t[v, best]
                if w > key[v]:
                    key[v] = w
                    link[v] = best
                elif w == key[v]:
                    a1 = min(best, v)
                    b1 = max(best, v)
                    a2 = min(link[v], v)
                    b2 = max(link[v], v)
                    if a1 < a2 or (a1 == a2 and b1 < b2):
                        link[v] = best


class SpanningTree(Solver):
    r"""Maximum spanning tree of the complete graph on ``n`` nodes:
    :math:`z = \arg\max_{z \in C} \langle \theta, z \rangle` over the set :math:`C` of symmetric 0/1
    adjacency matrices of spanning trees (``n - 1`` edges, zero diagonal).

    Edge scores: since ``z`` is symmetric, :math:`\langle \theta, z \rangle = \sum_{i<j} (\theta_{ij} +
    \theta_{ji})\, z_{ij}`, so the score of edge ``{i, j}`` is ``theta[i, j] + theta[j, i]`` and ``z`` is
    exactly the maximiser of ``<θ, z>`` for **any** ``theta``, symmetric or not (perturbation noise, which
    is drawn independently per entry, need not be symmetrised). For a symmetric ``theta`` this is the
    maximum spanning tree for edge weights ``theta[i, j]``. The diagonal is ignored. A minimum spanning
    tree of a cost matrix takes ``theta = -cost``.

    Shapes: ``theta`` is ``[*batch, n, n]`` (any number of batch dimensions, including none); ``z`` has
    ``theta``'s shape, dtype and device. Every tree has ``n - 1`` edges (``2(n - 1)`` ones in ``z``), so
    adding a constant to ``theta`` does not change ``z`` and ``SumOfGamma(k=2 * (n - 1))`` is the matching
    noise.

    Ties: edges are ranked by score, and among equal scores the edge ``(i, j)``, ``i < j``, that comes
    first in row-major order wins; under this strict order the maximum spanning tree is unique, and it is
    ``z`` (equivalently: Kruskal's algorithm scanning edges by decreasing score, equal scores in
    row-major order of the upper triangle). Scores are computed in float64 on the CPU, so the result is
    the same on every device and in any batch layout.

    Algorithm: Prim's algorithm with the order above, O(n²) per instance (optimal for a complete
    graph), compiled with numba and run over the batch in a thread pool (``num_threads``, default
    ``torch.get_num_threads()``). A CUDA ``theta`` is copied to the CPU and ``z`` comes back on CUDA.

    Example:
        >>> import torch
        >>> from discograd.solvers import SpanningTree
        >>> theta = torch.tensor([[0.0, 3.0, 1.0, 0.0],
        ...                       [3.0, 0.0, 2.0, 0.0],
        ...                       [1.0, 2.0, 0.0, 5.0],
        ...                       [0.0, 0.0, 5.0, 0.0]])
        >>> SpanningTree()(theta)            # edges {0, 1}, {1, 2}, {2, 3}
        tensor([[0., 1., 0., 0.],
                [1., 0., 1., 0.],
                [0., 1., 0., 1.],
                [0., 0., 1., 0.]])
        >>> SpanningTree()(torch.zeros(3, 3))  # all tied: edges {0, 1} and {0, 2} come first
        tensor([[0., 1., 1.],
                [1., 0., 0.],
                [1., 0., 0.]])

    Args:
        num_threads: threads used over a batch (``None``: ``torch.get_num_threads()``); the result does
            not depend on it.
    """

    event_dims = 2

    def __init__(self, *, num_threads: int | None = None) -> None:
        self.num_threads = resolve_num_threads(num_threads)

    def solve(self, theta: Tensor) -> Tensor:
        n = theta.shape[-1]
        if theta.shape[-2] != n:
            raise ValueError(f"theta must be square in its last two dimensions ([*batch, n, n] edge scores); got "
                             f"shape {tuple(theta.shape)}")
        num_instances = math.prod(theta.shape[:-2])
        flat = theta.reshape(num_instances, n, n)
        parent = np.zeros((num_instances, n), dtype=np.int64)
        if n > 1 and num_instances > 0:
            kernel = jit(_spanning_tree_kernel, "SpanningTree's Prim kernel")
            run_batched(kernel, (as_float64_array(flat), parent), num_instances, float(2 * n * n),
                         self.num_threads, min_work_per_chunk=200_000)
        z = torch.zeros((num_instances, n, n), dtype=theta.dtype, device=theta.device)
        if n > 1:
            # child v (>= 1) -> parent[v]: one edge each, then symmetrise
            index = torch.from_numpy(parent[:, 1:]).to(theta.device).unsqueeze(2)
            z[:, 1:, :].scatter_(2, index, 1.0)
            z = z + z.transpose(1, 2)
        return z.reshape(theta.shape)

    def enumerate_feasible(self, n: int, m: int | None = None, *, dtype: torch.dtype = torch.float32,
                           device: torch.device | str | None = None) -> Tensor:
        """All ``n^(n-2)`` labelled spanning trees of ``n`` nodes (Cayley's formula) as a ``[num_states, n, n]``
        symmetric 0/1 tensor.

        Takes the event shape: ``enumerate_feasible(n)`` or ``enumerate_feasible(n, n)``. Trees are decoded
        from their Prüfer sequences, listed in the order of ``itertools.product(range(n), repeat=n - 2)``.
        ``n = 1`` gives the single empty tree, ``n = 2`` the single edge. Raises ``ValueError`` above
        ``10**6`` states (``n <= 8``).
        """
        n = check_int(n, "n", minimum=1)
        if m is not None and check_int(m, "m") != n:
            raise ValueError(f"the event shape of SpanningTree is square (n, n); got ({n}, {m})")
        num_states = n ** (n - 2) if n >= 2 else 1
        if num_states > MAX_ENUMERATED_STATES:
            raise ValueError(f"enumerate_feasible lists at most 10**6 states; the n^(n-2) = {num_states} "
                             f"spanning trees of n = {n} nodes are too many")
        states = np.zeros((num_states, n, n), dtype=np.float64)
        if n >= 2:
            for s, sequence in enumerate(itertools.product(range(n), repeat=n - 2)):
                for i, j in _pruefer_edges(sequence, n):
                    states[s, i, j] = states[s, j, i] = 1.0
        return torch.from_numpy(states).to(device=device, dtype=dtype)

    def __repr__(self) -> str:
        return "SpanningTree()" if self.num_threads is None else f"SpanningTree(num_threads={self.num_threads})"


def _pruefer_edges(sequence: tuple[int, ...], n: int) -> list[tuple[int, int]]:
    """The ``n - 1`` edges of the labelled tree with Prüfer sequence ``sequence`` (length ``n - 2``)."""
    degree = [1] * n
    for node in sequence:
        degree[node] += 1
    edges = []
    for node in sequence:
        leaf = next(v for v in range(n) if degree[v] == 1)
        edges.append((leaf, node))
        degree[leaf] -= 1
        degree[node] -= 1
    last = [v for v in range(n) if degree[v] == 1]
    edges.append((last[0], last[1]))
    return edges
