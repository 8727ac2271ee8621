r"""0/1 knapsack with integer weights: the MAP oracle over subsets within a capacity."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .._validation import check_int
from ._compiled import as_float64_array, jit, resolve_num_threads, run_batched
from .base import Solver

__all__ = ["Knapsack"]

#: enumerate_feasible refuses to list more candidate subsets than this (n <= 20)
MAX_ENUMERATED_STATES = 2**20
#: default bound on the cells of one instance's dynamic-programming table, n * (capacity + 1)
MAX_TABLE_CELLS = 2**28


def _knapsack_kernel(values: np.ndarray, weights: np.ndarray, capacity: np.ndarray, take: np.ndarray,
                     start: int, stop: int) -> None:  # pragma: no cover - compiled by numba
    """Exact 0/1 knapsack for ``start <= b < stop`` by dynamic programming over capacities.

    ``values[b]`` ``[n]`` float64; ``weights[b or 0]`` ``[n]`` int64 >= 0 (one shared row or one per
    instance); ``capacity[b]`` the effective capacity, already clipped to the total weight of the
    positive-value items. Items are added from the last to the first: ``best[c]`` is the best value of
    items ``i..n-1`` within capacity ``c`` and ``keep[i, c]`` records whether taking item ``i`` attains it
    (ties: take). The subset is then read forwards from item 0, so among optimal subsets the
    lexicographically largest indicator ``(z_0, z_1, ...)`` is returned. Items with value <= 0 are
    skipped. Writes ``take[b]`` (0/1). O(n * capacity) time, n * (capacity + 1) bytes per thread.
    """
    n = values.shape[1]
    shared = weights.shape[0] == 1
    top = 0
    for b in range(start, stop):
        top = max(top, capacity[b])
    best = np.empty(top + 1)
    keep = np.empty((n, top + 1), np.bool_)
    for b in range(start, stop):
        v = values[b]
        w = weights[0] if shared else weights[b]
        room = capacity[b]
        best[: room + 1] = 0.0
        for i in range(n - 1, -1, -1):
            row = keep[i]
            row[: room + 1] = False
            wi = w[i]
            vi = v[i]
            if vi <= 0.0 or wi > room:
                continue
            for c in range(room, wi - 1, -1):
                candidate = best[c - wi] + vi
                if candidate >= best[c]:
                    best[c] = candidate
                    row[c] = True
        c = room
        for i in range(n):
            if keep[i, c]:
                take[b, i] = 1
                c -= w[i]
            else:
                take[b, i] = 0


class Knapsack(Solver):
    r"""0/1 knapsack: :math:`z = \arg\max_{z \in \{0,1\}^n} \langle \theta, z \rangle` subject to
    :math:`\langle w, z \rangle \le c`, with non-negative integer weights :math:`w` and an integer
    capacity :math:`c \ge 0`; the item values are ``theta``.

    A cost-minimisation problem takes ``theta = -cost`` (then only negative-cost items are ever chosen).
    Items with ``theta_i <= 0`` are never taken: they cannot increase the objective (a zero-valued item is
    left out). Items of weight 0 with a positive value are always taken.

    ``weights`` and ``capacity`` are given at construction, per call (``solver(theta, weights, capacity)``
    or by keyword), or both; per-call values win. ``weights`` is an integer tensor (or a sequence of
    ints) of shape ``[n]``, shared by every instance, or per instance ``[*batch, n]`` (any shape
    broadcastable to ``theta``'s shape); ``capacity`` is an int, shared, or an integer tensor broadcastable
    to the batch shape ``theta.shape[:-1]``. Inside :func:`discograd.imle`, wrap per-instance tensors with
    :func:`discograd.per_instance`.

    Shapes: ``theta`` is ``[*batch, n]`` (any number of batch dimensions, including none); ``z`` has
    ``theta``'s shape, dtype and device.

    Ties: among the optimal subsets that take no item with ``theta_i <= 0``, ``z`` is the lexicographically
    largest indicator ``(z_0, z_1, ...)``: **lower-index items win** (an item is taken whenever an optimal
    subset agreeing with the choices for the lower-index items contains it). Exact ties are those of the
    float64 dynamic programme (exact for integer-valued ``theta``).

    Algorithm: exact dynamic programme over capacities, O(n · c) time per instance, with a decision table
    of ``n · (c + 1)`` bytes per thread; ``c`` is first clipped to the total weight of the positive-value
    items. Compiled with numba and run over the batch in a thread pool (``num_threads``, default
    ``torch.get_num_threads()``). A CUDA ``theta`` is copied to the CPU in float64 and ``z`` comes back on
    CUDA. Tables above ``max_table_cells`` cells raise an error (scale the weights down, or use a MILP).

    Example:
        >>> import torch
        >>> from discograd.solvers import Knapsack
        >>> solver = Knapsack(weights=[3, 4, 2, 5], capacity=7)
        >>> solver(torch.tensor([4.0, 5.0, 3.0, -1.0]))   # 4 + 5 (weight 7) beats 5 + 3 (weight 6)
        tensor([1., 1., 0., 0.])
        >>> solver(torch.tensor([[2.0, 2.0, 2.0, 2.0], [1.0, 0.0, 2.0, 9.0]]), capacity=torch.tensor([5, 7]))
        tensor([[1., 0., 1., 0.],
                [0., 0., 1., 1.]])

    Args:
        weights: default item weights (integers >= 0).
        capacity: default capacity (an integer >= 0).
        num_threads: threads used over a batch (``None``: ``torch.get_num_threads()``); the result does
            not depend on it.
        max_table_cells: the largest allowed ``n * (c + 1)`` of one instance.
    """

    event_dims = 1

    def __init__(self, weights: Tensor | Sequence[int] | None = None, capacity: int | Tensor | None = None, *,
                 num_threads: int | None = None, max_table_cells: int = MAX_TABLE_CELLS) -> None:
        self.weights = None if weights is None else _check_weights(weights)
        self.capacity = None if capacity is None else _check_capacity(capacity)
        self.num_threads = resolve_num_threads(num_threads)
        self.max_table_cells = check_int(max_table_cells, "max_table_cells", minimum=1)

    def solve(self, theta: Tensor, weights: Tensor | Sequence[int] | None = None,
              capacity: int | Tensor | None = None) -> Tensor:
        weights = self.weights if weights is None else _check_weights(weights)
        capacity = self.capacity if capacity is None else _check_capacity(capacity)
        if weights is None or capacity is None:
            missing = "weights" if weights is None else "capacity"
            raise TypeError(f"{missing} must be given, either at construction (Knapsack(weights, capacity)) or per "
                            f"call (solver(theta, weights=..., capacity=...))")
        n = theta.shape[-1]
        batch_shape = tuple(theta.shape[:-1])
        weights_flat = _broadcast_weights(weights, theta)
        capacity_flat = _broadcast_capacity(capacity, batch_shape)
        num_instances = math.prod(batch_shape)
        values = as_float64_array(theta.reshape(num_instances, n))
        # clip each capacity to the total weight of the items worth taking
        useful = (weights_flat * (values > 0.0)).sum(axis=1) if num_instances else np.zeros(0, np.int64)
        room = np.minimum(capacity_flat, useful).astype(np.int64)
        take = np.zeros((num_instances, n), dtype=np.uint8)
        if n > 0 and num_instances > 0:
            largest = int(room.max())
            if n * (largest + 1) > self.max_table_cells:
                raise ValueError(
                    f"Knapsack's dynamic programme needs n * (capacity + 1) = {n} * {largest + 1} table cells for "
                    f"one instance (its capacity clipped to the total weight of its items with theta > 0), above "
                    f"max_table_cells = {self.max_table_cells}; divide the weights and the "
                    f"capacity by a common factor, raise max_table_cells, or use a MILP solver"
                )
            kernel = jit(_knapsack_kernel, "Knapsack's dynamic-programming kernel")
            run_batched(kernel, (values, weights_flat, room, take), num_instances,
                         float(n * (float(room.mean()) + 1)), self.num_threads, min_work_per_chunk=200_000)
        z = torch.from_numpy(take).to(device=theta.device, dtype=theta.dtype)
        return z.reshape(theta.shape)

    def enumerate_feasible(self, n: int, *, weights: Tensor | Sequence[int] | None = None,
                           capacity: int | Tensor | None = None, dtype: torch.dtype = torch.float32,
                           device: torch.device | str | None = None) -> Tensor:
        """All subsets of ``n`` items within the capacity, as a ``[num_states, n]`` 0/1 tensor.

        Needs one weight vector ``[n]`` and one capacity (default: those given at construction). Rows
        follow ``itertools.product((0, 1), repeat=n)`` (item 0 is the most significant digit), keeping
        those with ``<weights, z> <= capacity``. Raises ``ValueError`` for ``n > 20``.
        """
        n = check_int(n, "n", minimum=0)
        weights = self.weights if weights is None else _check_weights(weights)
        capacity = self.capacity if capacity is None else _check_capacity(capacity)
        if weights is None or capacity is None:
            missing = "weights" if weights is None else "capacity"
            raise TypeError(f"{missing} must be given, either at construction or to enumerate_feasible(n, "
                            f"weights=..., capacity=...)")
        if weights.dim() != 1 or weights.shape[0] != n:
            raise ValueError(f"weights must have shape ({n},) to enumerate subsets of n = {n} items; got shape "
                             f"{tuple(weights.shape)}")
        if isinstance(capacity, Tensor):
            if capacity.dim() != 0:
                raise ValueError(f"capacity must be a single integer to enumerate subsets; got a tensor of shape "
                                 f"{tuple(capacity.shape)}")
            capacity = int(capacity)
        if 2**n > MAX_ENUMERATED_STATES:
            raise ValueError(f"enumerate_feasible lists at most 2**20 subsets; n = {n} items have 2**{n}")
        subsets = np.array(list(itertools.product((0, 1), repeat=n)), dtype=np.int64).reshape(2**n, n)
        feasible = subsets[subsets @ weights.cpu().numpy() <= capacity]
        return torch.from_numpy(feasible).to(device=device, dtype=dtype)

    def __repr__(self) -> str:
        parts = []
        if self.weights is not None:
            parts.append(f"weights={self.weights.tolist()!r}" if self.weights.numel() <= 8
                         else f"weights=<tensor of shape {tuple(self.weights.shape)}>")
        if self.capacity is not None:
            parts.append(f"capacity={self.capacity!r}" if isinstance(self.capacity, int)
                         else f"capacity=<tensor of shape {tuple(self.capacity.shape)}>")
        if self.num_threads is not None:
            parts.append(f"num_threads={self.num_threads}")
        return f"Knapsack({', '.join(parts)})"


def _check_weights(weights: object) -> Tensor:
    """An int64 CPU tensor of non-negative integer weights with at least one dimension."""
    if not isinstance(weights, Tensor):
        array = np.asarray(weights)
        if array.dtype == object or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
            raise TypeError(f"weights must be integers (a sequence of ints or an integer tensor); got {array.dtype} "
                            f"values {weights!r:.60}")
        weights = torch.as_tensor(array.astype(np.int64))
    if weights.dtype == torch.bool or weights.is_floating_point() or weights.is_complex():
        raise TypeError(f"weights must be a tensor with an integer dtype (the knapsack needs integer weights; "
                        f"e.g. weights.round().long()); got dtype {weights.dtype}")
    if weights.dim() < 1:
        raise ValueError(f"weights must have at least one dimension ([n] or [*batch, n]); got shape "
                         f"{tuple(weights.shape)}")
    weights = weights.detach().to(device="cpu", dtype=torch.int64)
    if weights.numel() > 0 and int(weights.min()) < 0:
        raise ValueError(f"weights must be >= 0; got a minimum of {int(weights.min())} in a tensor of shape "
                         f"{tuple(weights.shape)}")
    return weights


def _check_capacity(capacity: object) -> int | Tensor:
    """An int >= 0, or an int64 CPU tensor of them."""
    if not isinstance(capacity, Tensor):
        return check_int(capacity, "capacity", minimum=0)
    if capacity.dtype == torch.bool or capacity.is_floating_point() or capacity.is_complex():
        raise TypeError(f"capacity must be an integer or a tensor with an integer dtype; got a tensor of dtype "
                        f"{capacity.dtype}")
    capacity = capacity.detach().to(device="cpu", dtype=torch.int64)
    if capacity.numel() > 0 and int(capacity.min()) < 0:
        raise ValueError(f"capacity must be >= 0; got a minimum of {int(capacity.min())} in a tensor of shape "
                         f"{tuple(capacity.shape)}")
    return capacity


def _broadcast_weights(weights: Tensor, theta: Tensor) -> np.ndarray:
    """``[1, n]`` (shared) or ``[num_instances, n]`` contiguous int64 weights."""
    n = theta.shape[-1]
    if weights.shape[-1] != n:
        raise ValueError(f"weights must have n = {n} entries in its last dimension (theta's last dimension); got "
                         f"shape {tuple(weights.shape)}")
    try:  # numpy's: torch.broadcast_shapes imports sympy on its first call (~0.5 s)
        shape = np.broadcast_shapes(tuple(weights.shape), tuple(theta.shape))
    except ValueError:
        shape = None
    if shape != tuple(theta.shape):
        raise ValueError(f"weights must be [n] or broadcastable to theta's shape {tuple(theta.shape)}; got shape "
                         f"{tuple(weights.shape)}")
    if weights.dim() == 1 or weights.numel() == n:
        return np.ascontiguousarray(weights.reshape(1, n).numpy())
    return np.ascontiguousarray(weights.expand(theta.shape).reshape(-1, n).numpy())


def _broadcast_capacity(capacity: int | Tensor, batch_shape: tuple[int, ...]) -> np.ndarray:
    """``[num_instances]`` contiguous int64 capacities."""
    num_instances = int(np.prod(batch_shape, dtype=np.int64))
    if isinstance(capacity, int):
        return np.full(num_instances, capacity, dtype=np.int64)
    try:  # numpy's: torch.broadcast_shapes imports sympy on its first call (~0.5 s)
        shape = np.broadcast_shapes(tuple(capacity.shape), batch_shape)
    except ValueError:
        shape = None
    if shape != batch_shape:
        raise ValueError(f"capacity must be an int or a tensor broadcastable to the batch shape theta.shape[:-1] = "
                         f"{batch_shape}; got a tensor of shape {tuple(capacity.shape)}")
    return np.ascontiguousarray(capacity.expand(batch_shape).reshape(num_instances).numpy())
