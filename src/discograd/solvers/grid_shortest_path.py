r"""Minimum vertex-cost paths on a grid: the solver of the Warcraft shortest-path benchmark."""

from __future__ import annotations

import heapq
import math
import numbers
import warnings
from types import ModuleType

import numpy as np
import torch
from torch import Tensor

from .._optional import require
from .._validation import check_int, check_non_negative
from .base import Solver

__all__ = ["GridShortestPath"]

#: enumerate_feasible lists simple paths only on grids with at most this many cells
MAX_ENUMERATED_CELLS = 12
#: ... and refuses to list more paths than this
MAX_ENUMERATED_STATES = 10**6

#: (row, column) offsets of the moves, scanned in this order by the solver and the reference
_MOVES = {
    4: ((-1, 0), (0, -1), (0, 1), (1, 0)),
    8: ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)),
}

_NEGATIVE_COST_POLICIES = ("clamp", "raise")


class GridShortestPath(Solver):
    r"""Indicator of the cells on a minimum-cost path between two cells of a grid, costs on the vertices.

    The cost of cell ``(i, j)`` is ``c_ij = -θ_ij``: like every solver in discograd this one maximises
    ``<θ, z>``, so a cost-minimisation problem takes ``theta = -cost``. A path is a sequence of
    distinct cells from ``source`` to ``target`` in which consecutive cells are neighbours (4: up, left,
    right, down; 8: also the diagonals); its cost is the sum of the costs of all its cells, source and
    target included. ``z`` is the 0/1 indicator of the cells of a minimum-cost path :math:`P^*`:

    .. math::

        z = \mathbb{1}_{P^*}, \qquad P^* \in \arg\min_{P:\ \text{source} \to \text{target}}
        \sum_{(i, j) \in P} c_{ij} = \arg\max_{P} \langle \theta, \mathbb{1}_P \rangle .

    Shapes: ``theta`` is ``[*batch, H, W]`` (any number of batch dimensions, including none; finite);
    ``z`` has ``theta``'s shape, dtype and device. ``path_cost(z, -theta)`` gives the cost of a path.

    Negative costs. Dijkstra's algorithm is exact only for costs ``>= 0``, and with negative costs the
    cheapest *simple* path is NP-hard in general; perturbed scores ``θ + ε`` often have entries of either
    sign. ``negative_costs`` picks the policy for costs below ``min_cost`` (default ``0``):

    - ``"clamp"`` (default): such costs are raised to ``min_cost`` before solving, so ``z`` is an exact
      minimum-cost path for the clamped costs ``max(-θ, min_cost)``; ``solver.last_num_clamped`` holds
      the number of entries clamped in the last call (over the whole batch). When every cell of an
      instance was clamped (typically costs passed where scores ``θ = −cost`` belong), a ``UserWarning``
      says so, once per solver object. A ``min_cost > 0`` also makes paths with fewer cells preferred
      among near-free cells.
    - ``"raise"``: a ``ValueError`` names the count and the rule ``-θ >= min_cost``.

    When learning costs, keep them positive by construction (e.g. ``theta = -softplus(model(x))``): if a
    model drives every cost below ``min_cost``, every clamped cost is the same, ``z`` stops depending on
    ``theta`` and gradient estimators such as I-MLE return zero.

    Algorithm and ties. Dijkstra from ``source`` that settles cells in the order of
    ``(distance, cell index)`` (cells in row-major order, ``index = i * W + j``), stopped once ``target``
    is settled; the priority queue is a radix heap on the bits of the float64 distances (which pops in
    exactly that order). Distances are float64 sums along the path. Neighbours are scanned in the fixed
    order of the offsets ``(-1,-1), (-1,0), (-1,1), (0,-1), (0,1), (1,-1), (1,0), (1,1)`` (the four
    without a diagonal for ``neighbourhood=4``); a cell's predecessor changes only when a strictly shorter distance reaches it,
    never on a tie. With costs on the vertices this means: the predecessor of a cell is the first settled
    cell next to it. Hence among equal-cost paths the result is a fixed function of the costs of that
    one instance: the same for every batch layout, thread count and device. (The pure-Python reference
    ``_reference_grid_dijkstra`` follows the same rules and returns the same paths.)

    Speed. A compiled numba kernel (``cache=True``: compiled once per machine, then loaded from the cache)
    that releases the GIL; the batch is split over ``num_threads`` threads (default
    ``torch.get_num_threads()``). ``theta`` is converted once to a contiguous float64 CPU array and ``z``
    comes back on ``theta``'s device (a CUDA tensor is copied to the CPU and back).

    Args:
        neighbourhood: 4 or 8 (the Warcraft benchmark uses 8).
        source: ``(row, column)`` of the first cell; negative indices count from the end, as in Python.
        target: ``(row, column)`` of the last cell, default the bottom-right corner ``(-1, -1)``.
        negative_costs: ``"clamp"`` or ``"raise"``, see above.
        min_cost: the smallest cost allowed, ``>= 0``.
        num_threads: threads over the batch; ``None`` uses ``torch.get_num_threads()``.

    Example:
        >>> import torch
        >>> from discograd.solvers import GridShortestPath
        >>> cost = torch.tensor([[1.0, 9.0, 1.0],
        ...                      [1.0, 9.0, 1.0],
        ...                      [1.0, 1.0, 1.0]])
        >>> solver = GridShortestPath(neighbourhood=4)
        >>> z = solver(-cost)                          # theta = -cost
        >>> z
        tensor([[1., 0., 0.],
                [1., 0., 0.],
                [1., 1., 1.]])
        >>> GridShortestPath.path_cost(z, cost)
        tensor(5.)
        >>> GridShortestPath()(-cost)                  # 8 neighbours: the diagonal step is cheaper
        tensor([[1., 0., 0.],
                [1., 0., 0.],
                [0., 1., 1.]])
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     _ = solver(cost)                       # costs instead of scores: clamped to 0 ...
        >>> solver.last_num_clamped                    # ... counted ...
        9
        >>> print(caught[0].message)                   # ... and warned about, once per solver object
        GridShortestPath: every cell of 1 of 1 instance(s) had a cost -theta below min_cost = 0.0 and was clamped, so z does not depend on theta there. Solvers maximise <theta, z>: pass theta = -cost, not the costs (this warning is shown once per solver object).

    Reference: the Warcraft benchmark of M. Vlastelica, A. Paulus, V. Musil, G. Martius, M. Rolínek,
    "Differentiation of Blackbox Combinatorial Solvers", ICLR 2020, arXiv:1912.02175, used with I-MLE in
    Niepert et al., NeurIPS 2021, arXiv:2106.01798.
    """

    event_dims = 2
    #: the scores Dijkstra is exact for: ``θ = −cost <= 0`` (:func:`discograd.testing.check_solver` draws these)
    theta_domain = "non_positive"

    def __init__(self, neighbourhood: int = 8, source: tuple[int, int] = (0, 0), target: tuple[int, int] = (-1, -1),
                 negative_costs: str = "clamp", min_cost: float = 0.0, num_threads: int | None = None) -> None:
        neighbourhood = check_int(neighbourhood, "neighbourhood")
        if neighbourhood not in _MOVES:
            raise ValueError(f"neighbourhood must be 4 or 8; got {neighbourhood}")
        self.neighbourhood = neighbourhood
        self.source = _check_cell(source, "source")
        self.target = _check_cell(target, "target")
        self.negative_costs = check_negative_costs(negative_costs)
        self.min_cost = check_non_negative(min_cost, "min_cost")
        self.num_threads = None if num_threads is None else check_int(num_threads, "num_threads", minimum=1)
        moves = np.array(_MOVES[neighbourhood], dtype=np.int64)
        self._move_rows = np.ascontiguousarray(moves[:, 0])
        self._move_cols = np.ascontiguousarray(moves[:, 1])
        #: number of entries of theta whose cost was raised to ``min_cost`` in the last call
        self.last_num_clamped = 0
        self._warned_all_clamped = False

    def solve(self, theta: Tensor) -> Tensor:
        height, width = theta.shape[-2], theta.shape[-1]
        source = _resolve_cell(self.source, height, width, "source")
        target = _resolve_cell(self.target, height, width, "target")
        rows, batch_size = to_float64_rows(theta, height * width)
        if self.negative_costs == "raise":
            check_costs_at_least(rows, self.min_cost, "GridShortestPath")
        out = np.empty(rows.shape, dtype=np.uint8)
        clamped = np.zeros(batch_size, dtype=np.int64)
        if batch_size > 0:
            kernels = load_kernels("GridShortestPath")
            kernels.solve_batch(
                kernels.grid_range, batch_size,
                (rows, height, width, self._move_rows, self._move_cols, source[0] * width + source[1],
                 target[0] * width + target[1], self.min_cost, out, clamped),
                work_per_instance=height * width * self.neighbourhood, threads=self.num_threads,
            )
        self.last_num_clamped = int(clamped.sum())
        if self.last_num_clamped and not self._warned_all_clamped:
            everything = int((clamped == height * width).sum())
            if everything:
                self._warned_all_clamped = True
                warnings.warn(
                    f"GridShortestPath: every cell of {everything} of {batch_size} instance(s) had a cost -theta below "
                    f"min_cost = {self.min_cost} and was clamped, so z does not depend on theta there. Solvers maximise "
                    "<theta, z>: pass theta = -cost, not the costs (this warning is shown once per solver object).",
                    UserWarning, stacklevel=3)
        return from_mask(out, theta)

    def reference(self, theta: Tensor) -> Tensor:
        """The documented algorithm and tie rule in pure Python (``_reference_grid_dijkstra``) per instance, on
        the clamped costs ``max(−θ, min_cost)`` (for :func:`discograd.testing.check_tie_rule`)."""
        costs = np.maximum(-theta.detach().cpu().double().numpy(), self.min_cost).reshape(-1, *theta.shape[-2:])
        paths = [_reference_grid_dijkstra(c, self.neighbourhood, self.source, self.target) for c in costs]
        return torch.from_numpy(np.stack(paths).reshape(theta.shape)).to(dtype=theta.dtype, device=theta.device)

    @staticmethod
    def path_cost(z: Tensor, costs: Tensor) -> Tensor:
        """The cost of the path ``z``: ``(z * costs).sum((-2, -1))``, shape ``[*batch]``."""
        return (z * costs).sum(dim=(-2, -1))

    def enumerate_feasible(self, height: int, width: int, *, dtype: torch.dtype = torch.float32,
                           device: torch.device | str | None = None) -> Tensor:
        """The indicators of all simple paths from ``source`` to ``target`` on a ``height x width`` grid,
        as ``[num_states, H, W]``.

        Two paths through the same set of cells (e.g. the two snakes through all cells of a 3 x 3 grid)
        give the same ``z``, listed once. Rows are in the order of first appearance in a depth-first
        search from ``source`` that tries the moves in the solver's order. Only for tiny grids: raises
        ``ValueError`` above 12 cells. With costs ``>= 0`` the best of these states costs exactly what the
        solver's path costs (a cheapest walk never needs to revisit a cell).
        """
        height = check_int(height, "height", minimum=1)
        width = check_int(width, "width", minimum=1)
        if height * width > MAX_ENUMERATED_CELLS:
            raise ValueError(
                f"enumerate_feasible lists the paths of grids with at most {MAX_ENUMERATED_CELLS} cells; "
                f"got height * width = {height} * {width} = {height * width}"
            )
        source = _resolve_cell(self.source, height, width, "source")
        target = _resolve_cell(self.target, height, width, "target")
        paths = _simple_grid_paths(height, width, _MOVES[self.neighbourhood], source, target)
        cell_sets = list(dict.fromkeys(tuple(sorted(path)) for path in paths))  # unique, in order
        states = torch.zeros(len(cell_sets), height * width, dtype=dtype, device=device)
        for row, cells in enumerate(cell_sets):
            states[row, list(cells)] = 1
        return states.reshape(len(cell_sets), height, width)

    def __repr__(self) -> str:
        return (f"GridShortestPath(neighbourhood={self.neighbourhood}, source={self.source}, target={self.target}, "
                f"negative_costs={self.negative_costs!r}, min_cost={self.min_cost})")


# -- helpers shared with ShortestPath ---------------------------------------------------------------------


def load_kernels(solver_name: str) -> ModuleType:
    """The numba kernels (:mod:`._dijkstra`), imported on first use."""
    require("numba", extra="solvers", purpose=f"{solver_name}'s Dijkstra kernel")
    from . import _dijkstra

    return _dijkstra


def check_negative_costs(value: object) -> str:
    if value not in _NEGATIVE_COST_POLICIES:
        raise ValueError(f"negative_costs must be 'clamp' or 'raise'; got {value!r}")
    return str(value)


_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def to_float64_rows(theta: Tensor, event_numel: int) -> tuple[np.ndarray, int]:
    """``theta`` as a C-contiguous float64 CPU array ``[B, event_numel]`` (no copy when it already is one).

    CPU float32/float64 tensors are converted by NumPy in the calling thread: torch's intra-op threads
    would add a synchronisation (costly on a busy machine) for a copy that takes microseconds.
    """
    batch_size = math.prod(theta.shape) // event_numel if event_numel else math.prod(theta.shape[:-1])
    theta = theta.detach()
    if theta.device.type == "cpu" and theta.dtype in _NUMPY_DTYPES:
        array = theta.resolve_neg().numpy().reshape(batch_size, event_numel)
    else:
        array = theta.to(device="cpu", dtype=torch.float64).reshape(batch_size, event_numel).numpy()
    return np.ascontiguousarray(array, dtype=np.float64), batch_size


def from_mask(mask: np.ndarray, theta: Tensor) -> Tensor:
    """The uint8 indicator ``mask`` as a tensor of ``theta``'s shape, dtype and device."""
    if theta.device.type == "cpu" and theta.dtype in _NUMPY_DTYPES:
        return torch.from_numpy(mask.astype(_NUMPY_DTYPES[theta.dtype])).reshape(theta.shape)
    z = torch.from_numpy(mask).reshape(theta.shape)
    return z.to(device=theta.device).to(dtype=theta.dtype)


def check_costs_at_least(rows: np.ndarray, min_cost: float, solver_name: str) -> None:
    """``negative_costs='raise'``: every cost ``-theta`` must be ``>= min_cost``."""
    count = int(np.count_nonzero(rows > -min_cost))  # -theta < min_cost, exactly
    if count:
        raise ValueError(
            f"theta has {count} of {rows.size} entries whose cost -theta is below min_cost={min_cost}; "
            f"{solver_name}(negative_costs='raise') requires -theta >= min_cost (Dijkstra is exact only for "
            f"non-negative costs); pass negative_costs='clamp' to raise such costs to min_cost instead"
        )


# -- private helpers ---------------------------------------------------------------------------------------


def _check_cell(cell: object, name: str) -> tuple[int, int]:
    if (not isinstance(cell, (tuple, list)) or len(cell) != 2
            or not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in cell)):
        raise TypeError(f"{name} must be a (row, column) pair of integers; got {cell!r}")
    return int(cell[0]), int(cell[1])


def _resolve_cell(cell: tuple[int, int], height: int, width: int, name: str) -> tuple[int, int]:
    row, col = cell
    if not (-height <= row < height and -width <= col < width):
        raise ValueError(
            f"{name} must be a cell of the {height} x {width} grid (theta's last two dimensions; negative "
            f"indices count from the end); got {cell}"
        )
    return row % height, col % width


def _simple_grid_paths(height: int, width: int, moves: tuple[tuple[int, int], ...],
                       source: tuple[int, int], target: tuple[int, int]) -> list[tuple[int, ...]]:
    """Every simple path from ``source`` to ``target`` as a tuple of row-major cell indices (DFS order)."""
    start = source[0] * width + source[1]
    goal = target[0] * width + target[1]
    neighbours = []
    for cell in range(height * width):
        row, col = divmod(cell, width)
        neighbours.append([(row + dr) * width + col + dc for dr, dc in moves
                           if 0 <= row + dr < height and 0 <= col + dc < width])
    paths: list[tuple[int, ...]] = []
    path = [start]
    on_path = {start}

    def extend(cell: int) -> None:
        if cell == goal:
            if len(paths) >= MAX_ENUMERATED_STATES:
                raise ValueError(f"enumerate_feasible lists at most {MAX_ENUMERATED_STATES} paths")
            paths.append(tuple(path))
            return
        for nxt in neighbours[cell]:
            if nxt not in on_path:
                path.append(nxt)
                on_path.add(nxt)
                extend(nxt)
                on_path.remove(nxt)
                path.pop()

    extend(start)
    return paths


def _reference_grid_dijkstra(costs: np.ndarray, neighbourhood: int = 8, source: tuple[int, int] = (0, 0),
                             target: tuple[int, int] = (-1, -1)) -> np.ndarray:
    """Pure-Python ``heapq`` Dijkstra on one ``[H, W]`` NumPy grid of vertex costs (all ``>= 0``).

    Written the way research code writes it (cells as ``(row, column)`` tuples, costs and distances
    read from NumPy arrays), kept simple and obviously correct, for tests and benchmarks. It follows
    the rules of :class:`GridShortestPath`: heap entries ``(distance, (row, column))`` (tuples compare
    like row-major indices), a predecessor changed only on a strict improvement, moves scanned in the
    same order, stop once the target is settled. So on the same costs it returns the same path.
    Returns the ``[H, W]`` float64 indicator.
    """
    costs = np.asarray(costs, dtype=np.float64)
    height, width = costs.shape
    source = (source[0] % height, source[1] % width)
    target = (target[0] % height, target[1] % width)
    dist = np.full((height, width), np.inf)
    dist[source] = costs[source]
    pred = {}
    settled = set()
    heap = [(dist[source], source)]
    while heap:
        d, cell = heapq.heappop(heap)
        if cell in settled:
            continue
        settled.add(cell)
        if cell == target:
            break
        for dr, dc in _MOVES[neighbourhood]:
            r, c = cell[0] + dr, cell[1] + dc
            if 0 <= r < height and 0 <= c < width and (r, c) not in settled:
                candidate = d + costs[r, c]
                if candidate < dist[r, c]:
                    dist[r, c] = candidate
                    pred[r, c] = cell
                    heapq.heappush(heap, (candidate, (r, c)))
    z = np.zeros((height, width))
    cell = target
    z[cell] = 1.0
    while cell != source:
        cell = pred[cell]
        z[cell] = 1.0
    return z
