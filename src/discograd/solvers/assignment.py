r"""Linear assignment (maximum-weight bipartite matching): the MAP oracle over assignment matrices.

Also home of the small runtime shared by the compiled (numba) solvers of this package: the lazy
compilation of a kernel, the float64 CPU view of ``theta`` and the thread pool that splits a batch
into chunks (each kernel releases the GIL, so chunks run truly in parallel).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor

from .._validation import check_int
from ._compiled import as_float64_array, jit, resolve_num_threads, run_batched
from .base import Solver

__all__ = ["LinearAssignment"]

#: enumerate_feasible refuses to list more states than this
MAX_ENUMERATED_STATES = 10**6


# ---------------------------------------------------------------------------------------------------------
# the shortest-augmenting-path kernel


def _assignment_kernel(score: np.ndarray, col_of_row: np.ndarray, start: int,
                       stop: int) -> None:  # pragma: no cover - compiled by numba
    """Maximum-score assignment of every row of ``score[b]`` (``[n, m]``, ``n <= m``) for ``start <= b < stop``.

    Shortest augmenting paths with dual potentials (the Hungarian method in Jonker-Volgenant form) on the
    cost ``-score``. Start: row reduction (``u[i] = min_j cost[i, j]``, ``v = 0``) and every row, in
    order, takes its cheapest column if that column is still free (the first cheapest one). Then each
    free row in turn: a Dijkstra search over the reduced costs ``cost[i, j] - u[i] - v[j] >= 0`` finds the
    cheapest alternating path to a free column, the potentials are updated so that reduced costs stay
    non-negative (and zero on matched pairs), and the path is flipped. Writes ``col_of_row[b, i]``, the
    column matched to row ``i``. O(n^2 m) per instance.
    """
    n = score.shape[1]
    m = score.shape[2]
    u = np.empty(n)
    v = np.empty(m)
    dist = np.empty(m)
    pred = np.empty(m, np.int64)
    row_of_col = np.empty(m, np.int64)
    todo = np.empty(m, np.int64)  # columns not yet scanned by the current search (the first num_todo)
    done = np.empty(m, np.int64)  # columns scanned by the current search (the first num_done)
    for b in range(start, stop):
        s = score[b]
        match = col_of_row[b]
        v[:] = 0.0
        row_of_col[:] = -1
        match[:] = -1
        for i in range(n):
            best = -np.inf
            best_col = 0
            for j in range(m):
                if s[i, j] > best:
                    best = s[i, j]
                    best_col = j
            u[i] = -best
            if row_of_col[best_col] < 0:
                row_of_col[best_col] = i
                match[i] = best_col
        for root in range(n):
            if match[root] >= 0:
                continue
            for j in range(m):
                dist[j] = np.inf
                todo[j] = j
            num_todo = m
            num_done = 0
            i = root
            reach = 0.0  # length of the shortest path to the last scanned column
            sink = -1
            while sink < 0:
                base = reach - u[i]
                best = np.inf
                best_at = -1
                for t in range(num_todo):
                    j = todo[t]
                    d = base - s[i, j] - v[j]
                    if d < dist[j]:
                        dist[j] = d
                        pred[j] = i
                    d = dist[j]
                    # lowest distance; among equal distances a free column first, then the first in scan order
                    if d < best or (d == best and row_of_col[j] < 0 and row_of_col[todo[best_at]] >= 0):
                        best = d
                        best_at = t
                reach = best
                j = todo[best_at]
                num_todo -= 1
                todo[best_at] = todo[num_todo]
                done[num_done] = j
                num_done += 1
                if row_of_col[j] < 0:
                    sink = j
                else:
                    i = row_of_col[j]
            # dual update: keeps every reduced cost >= 0 and those of matched pairs (and the path) at 0;
            # the rows reached are the root and the rows matched to the scanned columns other than the sink
            u[root] += reach
            for t in range(num_done):
                j = done[t]
                if j != sink:
                    u[row_of_col[j]] += reach - dist[j]
                v[j] -= reach - dist[j]
            # flip the alternating path ending at the sink
            j = sink
            while True:
                r = pred[j]
                row_of_col[j] = r
                previous = match[r]
                match[r] = j
                j = previous
                if r == root:
                    break


class LinearAssignment(Solver):
    r"""Maximum-score assignment: :math:`z = \arg\max_{z \in C} \langle \theta, z \rangle` over the 0/1
    matrices :math:`C` with at most one ``1`` in every row and every column and exactly ``min(n, m)`` ones.

    If ``n <= m`` every row is matched to a distinct column; if ``n > m`` every column is matched to a
    distinct row. This is the maximum-weight perfect bipartite matching of the complete bipartite graph
    (rows × columns) with edge weights ``theta[i, j]``. A cost-minimisation problem (e.g. a cost or
    distance matrix) takes ``theta = -cost``.

    Shapes: ``theta`` is ``[*batch, n, m]`` (any number of batch dimensions, including none); ``z`` has
    ``theta``'s shape, dtype and device. Every feasible ``z`` has ``min(n, m)`` ones, so adding a constant
    to all entries of ``theta`` does not change ``z`` (nor does adding a constant to one row when
    ``n <= m``, or to one column when ``n >= m``), and ``SumOfGamma(k=min(n, m))`` is the Sum-of-Gamma
    noise that perturbs every assignment's score by exactly Gumbel noise.

    Algorithm: shortest augmenting paths with dual potentials (the Hungarian method in the form of
    Jonker & Volgenant, "A shortest augmenting path algorithm for dense and sparse linear assignment
    problems", Computing 38, 1987), after a greedy start in which every row, in order, takes its best
    column if that column is still free. O(n² m) per instance for ``n <= m`` (the transpose otherwise),
    compiled with numba and run over the batch in a thread pool (``num_threads``, default
    ``torch.get_num_threads()``). It is exact: the objective equals that of
    ``scipy.optimize.linear_sum_assignment(maximize=True)``, and on batches of small problems it is
    faster than a loop over scipy (no per-instance Python call). ``theta`` is copied to the CPU in
    float64 for the kernel; a CUDA ``theta`` gets its ``z`` back on CUDA.

    Ties: deterministic. The same ``theta`` gives the same ``z`` on every call, device and batch layout,
    and in every dtype that represents the same values. Which of several optimal assignments is returned
    is fixed by the algorithm's order of operations (rows of the smaller side in increasing index; the
    lowest column index among a row's equal best scores in the greedy start; a fixed scan order of the
    columns in each augmenting-path search, free columns first among equal distances) and is not
    otherwise specified: unlike :class:`TopK`, there is no simple closed-form rule.

    Example:
        >>> import torch
        >>> from discograd.solvers import LinearAssignment
        >>> theta = torch.tensor([[1.0, 5.0, 0.0],
        ...                       [4.0, 6.0, 0.0]])
        >>> LinearAssignment()(theta)          # 5 + 4 beats 1 + 6
        tensor([[0., 1., 0.],
                [1., 0., 0.]])
        >>> LinearAssignment()(-torch.tensor([[1.0, 2.0], [2.0, 4.0]]))   # minimise a cost
        tensor([[0., 1.],
                [1., 0.]])

    Args:
        num_threads: threads used over a batch (``None``: ``torch.get_num_threads()``); the result does
            not depend on it.
    """

    event_dims = 2

    def __init__(self, *, num_threads: int | None = None) -> None:
        self.num_threads = resolve_num_threads(num_threads)

    def solve(self, theta: Tensor) -> Tensor:
        n, m = theta.shape[-2], theta.shape[-1]
        num_instances = math.prod(theta.shape[:-2])
        flat = theta.reshape(num_instances, n, m)
        transposed = n > m
        if transposed:
            flat = flat.transpose(1, 2)
            n, m = m, n
        col_of_row = np.empty((num_instances, n), dtype=np.int64)
        if n > 0 and num_instances > 0:
            kernel = jit(_assignment_kernel, "LinearAssignment's shortest-augmenting-path kernel")
            run_batched(kernel, (as_float64_array(flat), col_of_row), num_instances, float(n * n * m),
                         self.num_threads, min_work_per_chunk=200_000)
        index = torch.from_numpy(col_of_row).to(theta.device)
        z = torch.zeros((num_instances, n, m), dtype=theta.dtype, device=theta.device)
        z.scatter_(2, index.unsqueeze(2), 1.0)
        if transposed:
            z = z.transpose(1, 2)
        return z.reshape(theta.shape).contiguous()

    def enumerate_feasible(self, n: int, m: int | None = None, *, dtype: torch.dtype = torch.float32,
                           device: torch.device | str | None = None) -> Tensor:
        """All assignment matrices of shape ``[n, m]`` (``m`` defaults to ``n``), as a ``[num_states, n, m]``
        0/1 tensor: ``m! / (m - n)!`` states if ``n <= m``, else ``n! / (n - m)!``.

        For ``n <= m``, state ``s`` matches row ``i`` to column ``p[i]`` where ``p`` runs over
        ``itertools.permutations(range(m), n)`` in order (for ``n > m``, the same with rows and columns
        exchanged). Raises ``ValueError`` above ``10**6`` states.
        """
        n = check_int(n, "n", minimum=0)
        m = n if m is None else check_int(m, "m", minimum=0)
        small, large = min(n, m), max(n, m)
        num_states = math.perm(large, small)
        if num_states > MAX_ENUMERATED_STATES:
            raise ValueError(
                f"enumerate_feasible lists at most 10**6 states; an assignment of n={n} rows to m={m} columns has "
                f"{num_states}"
            )
        chosen = np.fromiter(
            itertools.chain.from_iterable(itertools.permutations(range(large), small)),
            dtype=np.int64, count=num_states * small,
        ).reshape(num_states, small)
        states = torch.zeros(num_states, small, large, dtype=dtype, device=device)
        states.scatter_(2, torch.from_numpy(chosen).to(states.device).unsqueeze(2), 1.0)
        return states if n <= m else states.transpose(1, 2).contiguous()

    def __repr__(self) -> str:
        return "LinearAssignment()" if self.num_threads is None else f"LinearAssignment(num_threads={self.num_threads})"
