r"""Multi-dimensional 0/1 knapsack with real-valued weights: PyEPO's knapsack, by exact branch and bound."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .._optional import require
from .._validation import check_int, check_non_negative
from ._compiled import resolve_num_threads, run_batched
from .base import Solver
from .grid_shortest_path import from_mask, to_float64_rows

__all__ = ["MultiKnapsack"]

#: enumerate_feasible refuses to list more candidate subsets than this (n <= 20)
MAX_ENUMERATED_STATES = 2**20
#: default bound on the branch-and-bound nodes of one instance
MAX_NODES = 10**8
#: default relative slack of the capacity rows (see MultiKnapsack's "Feasibility")
TOLERANCE = 1e-9


class MultiKnapsack(Solver):
    r"""Multi-dimensional 0/1 knapsack with real-valued weights (PyEPO's knapsack problem):

    .. math::

        z = \arg\max_{z \in \{0, 1\}^n} \langle \theta, z \rangle \quad\text{subject to}\quad
        W z \le c, \qquad W \in \mathbb{R}_{\ge 0}^{d \times n},\ c \in \mathbb{R}_{\ge 0}^{d},

    the item values being ``theta``: ``d`` resources (rows of ``W``), item ``i`` uses ``W[r, i]`` of
    resource ``r``, whose capacity is ``c[r]``. This is ``pyepo.model.grb.knapsackModel(weights, capacity)``
    (PyEPO, ``pyepo/model/grb/knapsack.py``: maximise ``c @ x`` s.t. ``weights @ x <= capacity``, ``x``
    binary, ``weights`` of shape ``(dim, n_items)``), solved without a MILP solver. A cost-minimisation
    problem takes ``theta = -cost`` (then only negative-cost items are ever chosen). For one resource
    with integer weights, :class:`~discograd.solvers.Knapsack`'s dynamic programme is the faster choice.

    Items with ``theta_i <= 0`` are never taken (a zero-valued item is left out); positive items of zero
    weight are always taken.

    ``weights`` and ``capacity`` are given at construction, per call (``solver(theta, weights, capacity)``
    or by keyword), or both; per-call values win. ``weights`` (floats or integers >= 0) is ``[d, n]``,
    shared by every instance, ``[n]`` for ``d = 1``, or per instance ``[*batch, d, n]`` (three or more
    dimensions, broadcastable to ``[*theta.shape[:-1], d, n]``); ``capacity`` (>= 0) is a number (the same
    for every resource), ``[d]`` shared, or per instance ``[*batch, d]`` (two or more dimensions,
    broadcastable to ``[*theta.shape[:-1], d]``). Inside :func:`discograd.imle`, wrap per-instance tensors
    with :func:`discograd.per_instance`.

    Shapes: ``theta`` is ``[*batch, n]`` (any number of batch dimensions, including none); ``z`` has
    ``theta``'s shape, dtype and device (a CUDA ``theta`` is solved on the CPU and ``z`` comes back on CUDA).

    Feasibility: a row holds when its load, summed in float64, is at most
    ``c_r + tolerance * max(1, c_r)`` (default ``tolerance = 1e-9``). The slack absorbs rounding: decimal
    weights such as PyEPO's (multiples of 0.01) whose exact sum equals the capacity sum to
    ``20.000000000000004`` in float64; MILP solvers accept such points through their feasibility
    tolerance (``1e-6``, absolute, in HiGHS and Gurobi). :meth:`enumerate_feasible` uses the same rule.

    Ties: among the optimal subsets that take no item with ``theta_i <= 0``, ``z`` is the lexicographically
    largest indicator ``(z_0, z_1, ...)``: **lower-index items win**, as in
    :class:`~discograd.solvers.Knapsack`. Exact ties are those of float64 sums (exact for integer-valued
    ``theta``, such as PyEPO's item values).

    Algorithm: exact depth-first branch and bound (``discograd.solvers._branch_and_bound``), compiled with
    numba and run over the batch in a thread pool (``num_threads``, default ``torch.get_num_threads()``;
    the result does not depend on it). A node is pruned when an upper bound on its subtree cannot strictly
    beat the incumbent: the smallest of Dantzig's fractional (LP) bounds (Dantzig 1957; Martello & Toth,
    *Knapsack Problems*, 1990, sec. 2.2) of each capacity row and of their surrogate
    :math:`\sum_r (W z)_r / c_r \le \sum_r \text{residual}_r / c_r`, over the undecided items that still
    fit the residual capacities; rounded down when all values are integers. A first search, items in
    decreasing surrogate ratio and starting from the greedy solution, finds the optimal value; a second,
    items in index order ("take" first), stops at the first subset reaching it: the tie rule's. The worst
    case is exponential in ``n`` (values strongly correlated with the weights are the hard case); an
    instance that needs more than ``max_nodes`` search nodes raises ``ValueError`` (use
    :class:`~discograd.solvers.MILP` for large hard instances). ``solver.last_num_nodes`` holds the largest
    node count of an instance of the last call. On PyEPO's 2-D knapsack (16 items, capacity 20) a solve
    takes about 5 µs.

    Example:
        >>> import torch
        >>> from discograd.solvers import MultiKnapsack
        >>> weights = torch.tensor([[3.5, 4.0, 2.25, 5.0],    # resource 0
        ...                         [1.0, 6.0, 3.0, 2.5]])    # resource 1
        >>> solver = MultiKnapsack(weights, capacity=[8.0, 6.0])
        >>> solver(torch.tensor([4.0, 5.0, 3.0, 4.5]))   # items 2, 3 use (7.25, 5.5); 0, 3 use 8.5 of resource 0
        tensor([0., 0., 1., 1.])
        >>> solver(torch.tensor([[1.0, 1.0, 1.0, 1.0], [-1.0, 2.0, 0.0, 1.0]]))
        tensor([[1., 0., 1., 0.],
                [0., 1., 0., 0.]])

    Args:
        weights: default weights, ``[d, n]`` (or ``[n]``), floats >= 0.
        capacity: default capacities, a number or ``[d]``, >= 0.
        tolerance: relative slack of every capacity row (see "Feasibility"), >= 0.
        max_nodes: the largest number of branch-and-bound nodes allowed for one instance.
        num_threads: threads used over a batch (``None``: ``torch.get_num_threads()``).
    """

    event_dims = 1

    def __init__(self, weights: Tensor | Sequence | np.ndarray | None = None,
                 capacity: float | Tensor | Sequence | np.ndarray | None = None, *, tolerance: float = TOLERANCE,
                 max_nodes: int = MAX_NODES, num_threads: int | None = None) -> None:
        self.weights = None if weights is None else _check_weights(weights)
        self.capacity = None if capacity is None else _check_capacity(capacity)
        self.tolerance = check_non_negative(tolerance, "tolerance")
        self.max_nodes = check_int(max_nodes, "max_nodes", minimum=1)
        self.num_threads = resolve_num_threads(num_threads)
        #: the largest number of branch-and-bound nodes an instance of the last call needed
        self.last_num_nodes = 0
        self._cache: tuple | None = None  # the last (weights, capacity, key, weights array, limits)

    def solve(self, theta: Tensor, weights: Tensor | Sequence | np.ndarray | None = None,
              capacity: float | Tensor | Sequence | np.ndarray | None = None) -> Tensor:
        weights = self.weights if weights is None else _check_weights(weights)
        capacity = self.capacity if capacity is None else _check_capacity(capacity)
        if weights is None or capacity is None:
            missing = "weights" if weights is None else "capacity"
            raise TypeError(f"{missing} must be given, either at construction (MultiKnapsack(weights, capacity)) or "
                            f"per call (solver(theta, weights=..., capacity=...))")
        n = theta.shape[-1]
        batch_shape = tuple(theta.shape[:-1])
        weights_array, limits = self._prepare(weights, capacity, n, batch_shape)
        values, num_instances = to_float64_rows(theta, n)
        take = np.zeros((num_instances, n), dtype=np.uint8)
        nodes = np.zeros(num_instances, dtype=np.int64)
        if n > 0 and num_instances > 0:
            require("numba", extra="solvers", purpose="MultiKnapsack's branch-and-bound kernel")
            from ._branch_and_bound import multi_knapsack_range as kernel

            dim = weights_array.shape[1]
            run_batched(kernel, (values, weights_array, limits, self.max_nodes, take, nodes), num_instances,
                        float(n * n * (dim + 1)), self.num_threads, min_work_per_chunk=200_000)
            if bool((nodes < 0).any()):
                bad = int(np.flatnonzero(nodes < 0)[0])
                index = tuple(int(i) for i in np.unravel_index(bad, batch_shape)) if batch_shape else ()
                if nodes[bad] == -2:
                    raise RuntimeError(f"MultiKnapsack's branch and bound lost the optimum of instance {bad} of the "
                                       f"batch (index {index}); please report this with the instance's data")
                raise ValueError(
                    f"MultiKnapsack's branch and bound needed more than max_nodes = {self.max_nodes} nodes for "
                    f"instance {bad} of the batch (index {index} in the batch shape {batch_shape}, n = {n} items); "
                    f"raise max_nodes or use discograd.solvers.MILP"
                )
        self.last_num_nodes = int(nodes.max()) if num_instances else 0
        return from_mask(take, theta)

    def _prepare(self, weights: Tensor, capacity: Tensor, n: int,
                 batch_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Weights ``[1 or B, d, n]`` and row limits (capacity plus slack) ``[1 or B, d]``, float64."""
        cache = self._cache
        if cache is not None and cache[0] is weights and cache[1] is capacity and cache[2] == (n, batch_shape, self.tolerance):
            return cache[3], cache[4]
        weights_array = _broadcast_weights(weights, n, batch_shape)
        dim = weights_array.shape[1]
        capacity_array = _broadcast_capacity(capacity, dim, batch_shape)
        limits = capacity_array + self.tolerance * np.maximum(1.0, capacity_array)
        self._cache = (weights, capacity, (n, batch_shape, self.tolerance), weights_array, limits)
        return weights_array, limits

    def enumerate_feasible(self, n: int, *, weights: Tensor | Sequence | np.ndarray | None = None,
                           capacity: float | Tensor | Sequence | np.ndarray | None = None,
                           dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
        """All subsets of ``n`` items within the capacities, as a ``[num_states, n]`` 0/1 tensor.

        Needs shared weights ``[d, n]`` (or ``[n]``) and capacities (a number or ``[d]``), by default those
        given at construction; feasibility is the solver's (capacities plus ``tolerance``'s slack). Rows
        follow ``itertools.product((0, 1), repeat=n)`` (item 0 is the most significant digit). Raises
        ``ValueError`` for ``n > 20``.
        """
        n = check_int(n, "n", minimum=0)
        weights = self.weights if weights is None else _check_weights(weights)
        capacity = self.capacity if capacity is None else _check_capacity(capacity)
        if weights is None or capacity is None:
            missing = "weights" if weights is None else "capacity"
            raise TypeError(f"{missing} must be given, either at construction or to enumerate_feasible(n, "
                            f"weights=..., capacity=...)")
        if weights.dim() > 2:
            raise ValueError(f"weights must be shared, [d, n] or [n], to enumerate subsets; got shape "
                             f"{tuple(weights.shape)}")
        if capacity.dim() > 1:
            raise ValueError(f"capacity must be shared, a number or [d], to enumerate subsets; got shape "
                             f"{tuple(capacity.shape)}")
        if 2**n > MAX_ENUMERATED_STATES:
            raise ValueError(f"enumerate_feasible lists at most 2**20 subsets; n = {n} items have 2**{n}")
        weights_array, limits = self._prepare(weights, capacity, n, ())
        subsets = np.array(list(itertools.product((0, 1), repeat=n)), dtype=np.int64).reshape(2**n, n)
        loads = subsets.astype(np.float64) @ weights_array[0].T  # [2**n, d]
        feasible = subsets[(loads <= limits[0]).all(axis=1)]
        return torch.from_numpy(feasible).to(device=device, dtype=dtype)

    def __repr__(self) -> str:
        parts = []
        if self.weights is not None:
            parts.append(f"weights=<tensor of shape {tuple(self.weights.shape)}>")
        if self.capacity is not None:
            parts.append(f"capacity={self.capacity.tolist()!r}" if self.capacity.numel() <= 8
                         else f"capacity=<tensor of shape {tuple(self.capacity.shape)}>")
        if self.tolerance != TOLERANCE:
            parts.append(f"tolerance={self.tolerance!r}")
        if self.max_nodes != MAX_NODES:
            parts.append(f"max_nodes={self.max_nodes}")
        if self.num_threads is not None:
            parts.append(f"num_threads={self.num_threads}")
        return f"MultiKnapsack({', '.join(parts)})"


# ---------------------------------------------------------------------------------------------------------
# argument checks


def _as_float64_tensor(value: object, name: str) -> Tensor:
    """A float64 CPU tensor of finite real numbers (bool and complex refused)."""
    if not isinstance(value, Tensor):
        array = np.asarray(value)
        if array.dtype == object or array.dtype == bool or not (np.issubdtype(array.dtype, np.number)
                                                                or array.size == 0):
            raise TypeError(f"{name} must be real numbers (a tensor, an array or a sequence of numbers); got "
                            f"{array.dtype} values {value!r:.60}")
        if np.iscomplexobj(array):
            raise TypeError(f"{name} must be real numbers; got complex dtype {array.dtype}")
        value = torch.as_tensor(array.astype(np.float64))
    elif value.dtype == torch.bool or value.is_complex():
        raise TypeError(f"{name} must be a tensor of real numbers; got dtype {value.dtype}")
    value = value.detach().to(device="cpu", dtype=torch.float64)
    finite = torch.isfinite(value)
    if not bool(finite.all()):
        num_nan = int(torch.isnan(value).sum())
        raise ValueError(f"{name} must be finite; got {num_nan} NaN and {int((~finite).sum()) - num_nan} infinite "
                         f"values in a tensor of shape {tuple(value.shape)}")
    if value.numel() > 0 and float(value.min()) < 0.0:
        raise ValueError(f"{name} must be >= 0; got a minimum of {float(value.min())} in a tensor of shape "
                         f"{tuple(value.shape)}")
    return value


def _check_weights(weights: object) -> Tensor:
    weights = _as_float64_tensor(weights, "weights")
    if weights.dim() < 1:
        raise ValueError(f"weights must have at least one dimension ([n], [d, n] or [*batch, d, n]); got shape "
                         f"{tuple(weights.shape)}")
    if weights.dim() >= 2 and weights.shape[-2] == 0:
        raise ValueError(f"weights must have at least one resource row (d >= 1); got shape {tuple(weights.shape)}")
    return weights


def _check_capacity(capacity: object) -> Tensor:
    return _as_float64_tensor(capacity, "capacity")


def _broadcast_weights(weights: Tensor, n: int, batch_shape: tuple[int, ...]) -> np.ndarray:
    """``[1, d, n]`` (shared) or ``[num_instances, d, n]`` contiguous float64 weights."""
    if weights.shape[-1] != n:
        raise ValueError(f"weights must have n = {n} entries in its last dimension (theta's last dimension); got "
                         f"shape {tuple(weights.shape)}")
    dim = 1 if weights.dim() == 1 else weights.shape[-2]
    if weights.dim() <= 2:
        return np.ascontiguousarray(weights.reshape(1, dim, n).numpy())
    target = batch_shape + (dim, n)
    try:  # numpy's: torch.broadcast_shapes imports sympy on its first call (~0.5 s)
        shape = np.broadcast_shapes(tuple(weights.shape), target)
    except ValueError:
        shape = None
    if shape != target:
        raise ValueError(f"weights given per instance ([*batch, d, n], three or more dimensions) must be "
                         f"broadcastable to [*theta.shape[:-1], d, n] = {list(target)}; got shape "
                         f"{tuple(weights.shape)}")
    return np.ascontiguousarray(weights.expand(target).reshape(math.prod(batch_shape), dim, n).numpy())


def _broadcast_capacity(capacity: Tensor, dim: int, batch_shape: tuple[int, ...]) -> np.ndarray:
    """``[1, d]`` (shared) or ``[num_instances, d]`` contiguous float64 capacities."""
    if capacity.dim() == 0:
        return np.full((1, dim), float(capacity))
    if capacity.shape[-1] != dim:
        raise ValueError(f"capacity must have d = {dim} entries in its last dimension (one per row of weights); got "
                         f"shape {tuple(capacity.shape)}")
    if capacity.dim() == 1:
        return np.ascontiguousarray(capacity.reshape(1, dim).numpy())
    target = batch_shape + (dim,)
    try:
        shape = np.broadcast_shapes(tuple(capacity.shape), target)
    except ValueError:
        shape = None
    if shape != target:
        raise ValueError(f"capacity given per instance ([*batch, d], two or more dimensions) must be broadcastable "
                         f"to [*theta.shape[:-1], d] = {list(target)}; got shape {tuple(capacity.shape)}")
    return np.ascontiguousarray(capacity.expand(target).reshape(math.prod(batch_shape), dim).numpy())
