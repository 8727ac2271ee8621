"""What the pool losses (NCE, CMAP, learning to rank) share: argument checks and the pool refresh."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .._validation import check_finite, check_generator, check_theta
from ..pool import SolutionPool, _refresh_pool, check_solve_ratio
from ..solvers.base import event_dims_of
from ._common import check_reduction, check_same_shape

__all__ = ["PoolLoss", "pool_matrix"]


def pool_matrix(solutions: SolutionPool | Tensor, theta: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """The pool as a ``[N, d]`` matrix in ``theta``'s dtype and device (detached), and the event shape.

    ``solutions`` is a :class:`~discograd.pool.SolutionPool` or a ``[N, *event]`` tensor; ``theta`` must be
    ``[*batch, *event]``. Raises ``ValueError`` for an empty pool, a shape mismatch or non-finite entries.
    """
    if isinstance(solutions, SolutionPool):
        event_shape, w = solutions.event_shape, solutions.solutions
    elif isinstance(solutions, Tensor):
        if solutions.dim() < 2:
            raise ValueError(f"solutions must be a [N, *event_shape] tensor (N pooled solutions); got shape "
                             f"{tuple(solutions.shape)}")
        if solutions.is_complex() or solutions.dtype == torch.bool:
            raise TypeError(f"solutions must have a real numeric dtype; got {solutions.dtype}")
        check_finite(solutions, "solutions")
        event_shape, w = tuple(solutions.shape[1:]), solutions
    else:
        raise TypeError(f"solutions must be a SolutionPool or a torch.Tensor; got {type(solutions).__name__}")
    k = len(event_shape)
    if theta.dim() < k or tuple(theta.shape[theta.dim() - k:]) != tuple(event_shape):
        raise ValueError(f"theta must have shape [*batch, *event_shape] with the pool's event_shape "
                         f"{tuple(event_shape)}; got {tuple(theta.shape)}")
    if w.shape[0] == 0:
        raise ValueError("the solution pool is empty: a pool loss needs at least one solution (start the pool "
                         "from the training set's optimal solutions, SolutionPool(event_shape, solutions=...))")
    return w.detach().reshape(w.shape[0], -1).to(device=theta.device, dtype=theta.dtype), tuple(event_shape)


def check_pair(theta: Tensor, other: Tensor, name: str) -> Tensor:
    """``theta`` and ``other`` (``z_true`` or ``theta_true``) validated: finite, same shape; ``other`` detached in
    ``theta``'s dtype."""
    check_theta(theta, "theta")
    check_theta(other, name, min_dim=0)
    check_same_shape(theta, other, "theta", name)
    return other.detach().to(device=theta.device, dtype=theta.dtype)


class PoolLoss(torch.nn.Module):
    """Base of the pool-loss modules: a solver to refresh the pool, the pool, ``solve_ratio``, ``reduction``.

    ``forward(theta, target, *args, **kwargs)``: in training mode, with probability ``solve_ratio`` (one draw
    per call, PyEPO's ``optModule._refresh_solution_pool``) the batch ``MAP(theta)`` is solved with
    ``solver(theta, *args, **kwargs)`` and its solutions join the pool; then the loss is computed over the
    whole pool. In evaluation mode (``module.eval()``) the pool is never refreshed, so a validation pass leaves
    it unchanged (PyEPO's modules have no such switch: they refresh whenever called).
    """

    def __init__(self, solver: Callable[..., Tensor] | None, pool: SolutionPool, *, solve_ratio: float = 1.0,
                 reduction: str = "mean", generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(pool, SolutionPool):
            raise TypeError(f"pool must be a discograd.pool.SolutionPool; got {type(pool).__name__}")
        self.solve_ratio = check_solve_ratio(solve_ratio)
        if solver is None:
            if self.solve_ratio > 0:
                raise ValueError(f"solver=None (a fixed pool) needs solve_ratio=0; got solve_ratio={solve_ratio!r}")
        else:
            if not callable(solver):
                raise TypeError(f"solver must be callable as solver(theta, *args, **kwargs) or None; got "
                                f"{type(solver).__name__}")
            if event_dims_of(solver) != len(pool.event_shape):
                raise ValueError(f"pool.event_shape {pool.event_shape} must have solver.event_dims = "
                                 f"{event_dims_of(solver)} dimensions")
        self.solver = solver
        self.pool = pool
        self.reduction = check_reduction(reduction)
        self.generator = check_generator(generator)
        #: how many forward calls refreshed the pool with the real solver
        self.num_refreshes = 0

    def refresh(self, theta: Tensor, args: tuple, kwargs: dict[str, Any]) -> bool:
        """Solve the batch and add it to the pool with probability ``solve_ratio`` (training mode only)."""
        check_theta(theta, "theta")
        self.pool.check_event_shape(theta, "theta")
        if not self.training or self.solver is None:
            return False
        solved = _refresh_pool(self.pool, self.solver, theta, self.solve_ratio, self.generator, args, kwargs)
        self.num_refreshes += int(solved)
        return solved

    def extra_repr(self) -> str:
        solver = "" if self.solver is None or isinstance(self.solver, torch.nn.Module) else f"solver={self.solver!r}, "
        return f"{solver}solve_ratio={self.solve_ratio}, reduction={self.reduction!r}"
