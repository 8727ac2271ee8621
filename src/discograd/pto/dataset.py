r"""A predict-then-optimize data set: features, costs, optimal solutions and objectives (PyEPO's ``optDataset``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .._validation import check_finite, check_int

__all__ = ["SENSES", "OptDataset", "check_sense", "scores_from_costs"]

#: the two objective senses: ``"min"`` (the costs are costs: shortest path, TSP) and ``"max"`` (values: knapsack)
SENSES = ("min", "max")


def check_sense(sense: object) -> str:
    """``sense`` validated: ``"min"`` or ``"max"``."""
    if sense not in SENSES:
        raise ValueError(f"sense must be 'min' (c holds costs, the solver is called on -c) or 'max' (c holds values, "
                         f"the solver is called on c); got {sense!r}")
    return sense  # type: ignore[return-value]


def scores_from_costs(costs: Tensor, sense: str) -> Tensor:
    """The scores ``θ`` our maximising solvers take for PyEPO's cost vector ``c``: ``-c`` for ``"min"``, ``c`` for
    ``"max"``."""
    return -costs if check_sense(sense) == "min" else costs


def _as_tensor(value: Any, name: str) -> Tensor:
    """``value`` (tensor, numpy array or nested sequence of real numbers) as a detached CPU tensor."""
    if isinstance(value, Tensor):
        tensor = value.detach().to("cpu")
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a tensor or an array of real numbers; got {type(value).__name__}: "
                            f"{exc}") from None
        if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer)
                                            or np.issubdtype(array.dtype, np.floating)):
            raise TypeError(f"{name} must hold real numbers; got an array of dtype {array.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{name} must hold real numbers; got dtype {tensor.dtype}")
    if tensor.dim() == 0:
        raise ValueError(f"{name} must have a leading instance dimension; got a scalar")
    return tensor


def _solve_labels(solver: Callable[..., Tensor], costs: Tensor, sense: str, name: str = "costs") -> Tensor:
    """``z = solver(θ)`` for all rows of ``costs`` at once, with ``θ = ∓costs`` in float64; checked."""
    theta = scores_from_costs(costs.to(torch.float64), sense)
    z = solver(theta)
    if not isinstance(z, Tensor):
        raise TypeError(f"the solver must return a tensor; got {type(z).__name__}")
    if z.shape != theta.shape:
        raise ValueError(f"the solver must return a tensor of its input's shape {tuple(theta.shape)} (one solution "
                         f"per row of {name}); got shape {tuple(z.shape)}")
    z = z.to(torch.float64)
    check_finite(z, "the solver's output")
    return z


class OptDataset(Dataset):
    r"""Features, costs, optimal solutions and optimal objectives of a predict-then-optimize problem.

    The counterpart of PyEPO's ``pyepo.data.dataset.optDataset`` (``pyepo/data/dataset.py``): item ``i`` is
    ``(x_i, c_i, w_i, z_i)`` in PyEPO's order, with

    .. math::

        w_i = \arg\min_{w \in S} c_i^\top w \ (\texttt{sense="min"}) \quad\text{or}\quad
        \arg\max_{w \in S} c_i^\top w \ (\texttt{sense="max"}), \qquad z_i = c_i^\top w_i ,

    all float32 tensors: ``x_i`` of the features' trailing shape, ``c_i`` and ``w_i`` ``[d]``, ``z_i``
    ``[1]`` (PyEPO's objective has that shape too), so a ``DataLoader`` gives ``x [B, ...]``, ``c [B, d]``,
    ``w [B, d]``, ``z [B, 1]``.

    The labels come from **one batched call** of ``solver`` (PyEPO solves instance by instance). The solver
    is one of ours (or any function following the contract of :mod:`discograd.solvers`): it maximises
    ``<θ, w>``, so it is called on ``θ = -c`` when ``sense="min"`` (``c`` are costs: shortest path, TSP) and
    on ``θ = c`` when ``sense="max"`` (``c`` are values: knapsack). It gets ``θ`` as one float64 tensor
    ``[N, d]`` (the costs converted exactly) and must return ``w`` of the same shape; ``z`` is computed in
    float64 from the given costs, then stored as float32. There is no default ``sense``: a cost read as a
    value would silently give the worst solutions instead of the best.

    Args:
        solver: a batched solver, e.g. ``ShortestPath(h * w, grid_graph(h, w), 0, h * w - 1)`` or
            ``MILP(A_ub=weights, b_ub=capacity)``.
        feats: features ``[N, ...]`` (numpy array or tensor; PyEPO's ``x``), finite.
        costs: cost (or value) vectors ``[N, d]`` (PyEPO's ``c``), finite.
        sense: ``"min"`` or ``"max"``, keyword-only.

    Attributes:
        feats, costs, sols, objs: the four float32 tensors ``[N, ...]``, ``[N, d]``, ``[N, d]``, ``[N, 1]``
            (PyEPO's attribute names).
        solver, sense: as given.

    Raises:
        ValueError: shapes that do not match, a NaN or infinity, a ``sense`` other than the two, a solver
            output of the wrong shape.
        TypeError: inputs that are not real-valued arrays; a solver that does not return a tensor.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader
        >>> from discograd.pto import OptDataset, grid_graph, shortest_path_data
        >>> from discograd.solvers import ShortestPath
        >>> x, c = shortest_path_data(100, 5, (5, 5), deg=4, noise_width=0.5)
        >>> solver = ShortestPath(25, grid_graph(5, 5), 0, 24)
        >>> data = OptDataset(solver, x, c, sense="min")
        >>> len(data), [tuple(t.shape) for t in data[0]]
        (100, [(5,), (40,), (40,), (1,)])
        >>> x_b, c_b, w_b, z_b = next(iter(DataLoader(data, batch_size=32)))
        >>> w_b.sum(dim=1).unique().tolist()  # every path has 4 + 4 arcs
        [8.0]
        >>> torch.allclose((c_b * w_b).sum(dim=1, keepdim=True), z_b)
        True
    """

    def __init__(self, solver: Callable[..., Tensor], feats: Any, costs: Any, *, sense: str) -> None:
        if not callable(solver):
            raise TypeError(f"solver must be callable (a batched solver such as ShortestPath); got "
                            f"{type(solver).__name__}")
        self.sense = check_sense(sense)
        feats_tensor = _as_tensor(feats, "feats")
        costs_tensor = _as_tensor(costs, "costs")
        if costs_tensor.dim() != 2:
            raise ValueError(f"costs must have shape [N, d] (one cost vector per instance); got shape "
                             f"{tuple(costs_tensor.shape)}")
        if feats_tensor.shape[0] != costs_tensor.shape[0]:
            raise ValueError(f"feats and costs must have the same number of instances N; got feats of shape "
                             f"{tuple(feats_tensor.shape)} and costs of shape {tuple(costs_tensor.shape)}")
        if costs_tensor.shape[1] < 1:
            raise ValueError(f"costs must have at least one column (d >= 1); got shape {tuple(costs_tensor.shape)}")
        check_finite(feats_tensor, "feats")
        costs64 = costs_tensor.to(torch.float64)
        check_finite(costs64, "costs")
        self.solver = solver
        sols = _solve_labels(solver, costs64, self.sense)
        objs = (costs64 * sols).sum(dim=1, keepdim=True)
        #: features ``[N, ...]`` float32
        self.feats = feats_tensor.to(torch.float32)
        #: costs ``[N, d]`` float32
        self.costs = costs_tensor.to(torch.float32)
        #: optimal solutions ``[N, d]`` float32
        self.sols = sols.to(torch.float32)
        #: optimal objectives ``c_i^T w_i`` ``[N, 1]`` float32
        self.objs = objs.to(torch.float32)

    def __len__(self) -> int:
        return int(self.costs.shape[0])

    def __getitem__(self, index: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.feats[index], self.costs[index], self.sols[index], self.objs[index]

    def batches(self, batch_size: int, *, shuffle: bool = False,
                generator: torch.Generator | None = None) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
        """Batches ``(x, c, w, z)`` by slicing the stored tensors: what ``DataLoader(self, batch_size, shuffle)``
        yields, without its per-item indexing and collation (several times faster for small instances).

        With ``shuffle``, one ``torch.randperm(len(self), generator=generator)`` per call orders the epoch; the
        last batch may be smaller.

        Example:
            >>> import torch
            >>> from discograd.pto import OptDataset, grid_graph, shortest_path_data
            >>> from discograd.solvers import ShortestPath
            >>> x, c = shortest_path_data(10, 5, (3, 3))
            >>> data = OptDataset(ShortestPath(9, grid_graph(3, 3), 0, 8), x, c, sense="min")
            >>> [tuple(b[0].shape) for b in data.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0))]
            [(4, 5), (4, 5), (2, 5)]
        """
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else None
        for start in range(0, n, batch_size):
            if order is None:
                index: Any = slice(start, start + batch_size)
            else:
                index = order[start:start + batch_size]
            yield self.feats[index], self.costs[index], self.sols[index], self.objs[index]

    def __repr__(self) -> str:
        return (f"OptDataset(num_data={len(self)}, feats_shape={tuple(self.feats.shape[1:])}, "
                f"num_cost={self.costs.shape[1]}, sense={self.sense!r}, solver={self.solver!r})")
