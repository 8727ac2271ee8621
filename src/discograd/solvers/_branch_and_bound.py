"""Numba kernel of :class:`~discograd.solvers.MultiKnapsack`: exact depth-first branch and bound for the
multi-dimensional 0/1 knapsack.

This module imports numba at the top: the solver imports it lazily, through ``discograd._optional.require``,
the first time it solves.

The kernel solves the instances ``start <= b < stop`` of a batch of item values ``[B, n]`` (float64) and
writes a ``[B, n]`` uint8 indicator. Instances are independent and their results depend only on their own
data, so the result is the same for every split of the batch, hence for every number of threads.

Per instance: items with ``value <= 0`` or that do not fit alone are never taken, positive items of zero
weight always; the other ("candidate") items are searched in two phases, both depth-first with "take"
before "skip" and the same bound:

1. **value**: items in decreasing ratio ``value / surrogate weight`` (the order that finds good solutions
   first), from the greedy solution in that order, finds the optimal value ``V``;
2. **tie rule**: items in increasing index, incumbent just below ``V``: leaves come in lexicographically
   decreasing order of the indicator, so the first leaf reaching ``V`` (where the search stops) is the
   lexicographically largest optimal indicator.

In both phases the incumbent changes only on a strict improvement and a node is pruned when its bound
cannot strictly beat it. Bound of a node: the smallest of Dantzig's fractional (LP) bounds, items by
decreasing value / weight ratio with the last one taken fractionally, of each capacity row alone and of
their surrogate ``sum_r (W z)_r / limit_r <= sum_r residual_r / limit_r``, over the undecided items that
still fit every residual capacity; rounded down when every value is an integer.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["multi_knapsack_range"]


@njit(cache=True, nogil=True)
def _search(m, dim, v, w, surrogate, lam, limit, order, perm, pos_of, best, stop_at, integral, max_nodes,
            loads, totals, state, current, best_take, residual):
    """Depth-first branch and bound over the candidates ``perm[0], perm[1], ...`` (positions ``0..m-1``).

    ``best``: the starting incumbent value (only leaves strictly above it are recorded); ``stop_at``: stop
    at the first recorded leaf whose value is ``>= stop_at``. Writes the recorded leaf to ``best_take``
    (per candidate). Returns ``(best, found, nodes)``, ``nodes = -1`` past ``max_nodes``.
    """
    for d in range(dim):
        loads[0, d] = 0.0
    totals[0] = 0.0
    found = False
    count = 0
    k = 0
    state[0] = 0
    while k >= 0:
        if state[k] == 0:  # entering the node at depth k (positions < k decided)
            count += 1
            if count > max_nodes:
                return best, found, -1
            total = totals[k]
            if k == m:
                if total > best:
                    best = total
                    found = True
                    for p in range(m):
                        best_take[perm[p]] = current[p]
                    if total >= stop_at:
                        return best, found, count
                k -= 1
                continue
            for d in range(dim):
                residual[d] = limit[d] - loads[k, d]
            bound = np.inf
            for r in range(dim + 1):
                if r == 0:
                    room = 0.0
                    for d in range(dim):
                        room += lam[d] * residual[d]
                else:
                    room = residual[r - 1]
                extra = 0.0
                for t in range(m):
                    j = order[r, t]
                    if pos_of[j] < k:
                        continue
                    fits = True
                    for d in range(dim):
                        if w[d, j] > residual[d]:
                            fits = False
                            break
                    if not fits:
                        continue
                    a = surrogate[j] if r == 0 else w[r - 1, j]
                    if a <= room or a == 0.0:
                        room -= a
                        extra += v[j]
                    else:
                        extra += v[j] * room / a
                        break
                if extra < bound:
                    bound = extra
                    if total + bound <= best:
                        break
            bound += total
            if integral:
                bound = math.floor(bound + 1e-9 * max(1.0, abs(bound)))
            if bound <= best:
                k -= 1
                continue
            state[k] = 1
            j = perm[k]
            fits = True
            for d in range(dim):
                if loads[k, d] + w[d, j] > limit[d]:
                    fits = False
                    break
            if fits:
                current[k] = 1
                for d in range(dim):
                    loads[k + 1, d] = loads[k, d] + w[d, j]
                totals[k + 1] = total + v[j]
                k += 1
                state[k] = 0
                continue
        if state[k] == 1:  # "take" done (or impossible): "skip"
            current[k] = 0
            for d in range(dim):
                loads[k + 1, d] = loads[k, d]
            totals[k + 1] = totals[k]
            state[k] = 2
            k += 1
            state[k] = 0
            continue
        k -= 1  # both branches done
    return best, found, count


@njit(cache=True, nogil=True)
def multi_knapsack_range(values, weights, limits, max_nodes, take, nodes, start, stop):
    """Exact multi-dimensional 0/1 knapsack for ``start <= b < stop`` (see the module docstring).

    ``values[b]`` ``[n]`` float64; ``weights[b or 0]`` ``[dim, n]`` float64 >= 0 (one shared matrix or one per
    instance); ``limits[b or 0]`` ``[dim]``, the capacities plus their slack. Writes ``take[b]`` (0/1) and
    ``nodes[b]``, the number of search nodes of both phases (``-1`` past ``max_nodes``, ``-2`` if the second
    phase found no optimal leaf, which rounding alone cannot cause; ``take[b]`` is then meaningless).
    """
    n = values.shape[1]
    dim = weights.shape[1]
    shared_weights = weights.shape[0] == 1
    shared_limits = limits.shape[0] == 1
    cand = np.empty(n, np.int64)  # candidate -> item index
    order = np.empty((dim + 1, n), np.int64)  # per bound (surrogate, rows): candidates by decreasing ratio
    identity = np.arange(n)
    pos_of = np.empty(n, np.int64)
    ratio = np.empty(n)
    surrogate = np.empty(n)
    v = np.empty(n)
    w = np.empty((dim, n))
    lam = np.empty(dim)
    load = np.empty(dim)
    loads = np.empty((n + 1, dim))
    totals = np.empty(n + 1)
    residual = np.empty(dim)
    state = np.empty(n + 1, np.int8)
    current = np.empty(n, np.uint8)
    best_take = np.zeros(n, np.uint8)
    for b in range(start, stop):
        weight = weights[0] if shared_weights else weights[b]
        limit = limits[0] if shared_limits else limits[b]
        value = values[b]
        for i in range(n):
            take[b, i] = 0
        m = 0
        integral = True
        for i in range(n):
            vi = value[i]
            if vi <= 0.0:
                continue
            fits = True
            zero = True
            for d in range(dim):
                if weight[d, i] > limit[d]:
                    fits = False
                if weight[d, i] != 0.0:
                    zero = False
            if not fits:
                continue
            if zero:
                take[b, i] = 1
                continue
            cand[m] = i
            v[m] = vi
            for d in range(dim):
                w[d, m] = weight[d, i]
            if vi != math.floor(vi):
                integral = False
            m += 1
        if m == 0:
            nodes[b] = 0
            continue
        for d in range(dim):
            lam[d] = 1.0 / limit[d] if limit[d] > 0.0 else 0.0
        for j in range(m):
            s = 0.0
            for d in range(dim):
                s += lam[d] * w[d, j]
            surrogate[j] = s
            ratio[j] = -v[j] / s if s > 0.0 else -np.inf
        order[0, :m] = np.argsort(ratio[:m], kind="mergesort")
        for d in range(dim):
            for j in range(m):
                ratio[j] = -v[j] / w[d, j] if w[d, j] > 0.0 else -np.inf
            order[d + 1, :m] = np.argsort(ratio[:m], kind="mergesort")
        # greedy value in surrogate-ratio order (the phase-1 search meets the same sums on that leaf)
        for d in range(dim):
            load[d] = 0.0
        greedy = 0.0
        for t in range(m):
            j = order[0, t]
            fits = True
            for d in range(dim):
                if load[d] + w[d, j] > limit[d]:
                    fits = False
                    break
            if fits:
                for d in range(dim):
                    load[d] += w[d, j]
                greedy += v[j]
        # phase 1: the optimal value, candidates in ratio order
        perm = order[0]
        for t in range(m):
            pos_of[perm[t]] = t
        start_value = greedy - 0.5 if integral else greedy - 1e-9 * max(1.0, abs(greedy))
        best, found, count = _search(m, dim, v, w, surrogate, lam, limit, order, perm, pos_of, start_value, np.inf,
                                     integral, max_nodes, loads, totals, state, current, best_take, residual)
        if count < 0:
            nodes[b] = -1
            continue
        # phase 2: the lexicographically largest optimal indicator, candidates in index order
        for t in range(m):
            pos_of[t] = t
        if found:
            start_value = best - 0.5 if integral else best - 1e-9 * max(1.0, abs(best))
            stop_at = best
        else:  # cannot happen (the greedy leaf is recorded); search from scratch
            start_value = -0.5 if integral else -1e-9
            stop_at = np.inf
        best, found, count2 = _search(m, dim, v, w, surrogate, lam, limit, order, identity, pos_of, start_value,
                                      stop_at, integral, max_nodes - count, loads, totals, state, current,
                                      best_take, residual)
        if count2 < 0:
            nodes[b] = -1
            continue
        if not found:  # cannot happen: the optimal leaf is never pruned
            nodes[b] = -2
            continue
        nodes[b] = count + count2
        for j in range(m):
            if best_take[j] == 1:
                take[b, cand[j]] = 1
