"""The solver contract shared by every MAP oracle in discograd.

A *solver* is any callable ``solver(theta, *args, **kwargs) -> z`` that returns
``argmax_{z in C} <theta, z>`` for every instance of a batch:

- ``theta`` has shape ``[*batch, *event]``; the last ``event_dims`` dimensions describe one instance
  and any number of leading dimensions are batch dimensions;
- ``z`` has ``theta``'s shape, dtype and device and carries no autograd history;
- ties are broken deterministically (each solver documents how);
- a problem stated as cost minimisation takes ``theta = -cost``.

Plain functions that follow this contract work everywhere in discograd. Subclasses of :class:`Solver`
also validate their input and can list their feasible set for tiny sizes (``enumerate_feasible``),
which the exact references in :mod:`discograd.exact` and the checks in :mod:`discograd.testing` use.
"""

from __future__ import annotations

import abc
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from .._validation import check_theta

__all__ = ["Solver", "SolverFn", "event_dims_of"]


@runtime_checkable
class SolverFn(Protocol):
    """Structural type of a solver: ``z = solver(theta, *args, **kwargs)`` maximising ``<theta, z>``."""

    def __call__(self, theta: Tensor, *args: Any, **kwargs: Any) -> Tensor: ...


class Solver(abc.ABC):
    """Base class of the built-in MAP oracles.

    Subclasses implement :meth:`solve` (called with a validated, finite ``theta`` under
    ``torch.no_grad()``) and set :attr:`event_dims`.
    """

    #: number of trailing dimensions of ``theta`` that form one problem instance
    event_dims: int = 1

    def __call__(self, theta: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        check_theta(theta, "theta", min_dim=self.event_dims)
        with torch.no_grad():
            z = self.solve(theta, *args, **kwargs)
        return z

    @abc.abstractmethod
    def solve(self, theta: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """Return the maximiser of ``<theta, z>`` per instance (``theta`` already validated)."""

    def enumerate_feasible(self, *event_shape: int, dtype: torch.dtype = torch.float32,
                           device: torch.device | str | None = None) -> Tensor:
        """All feasible ``z`` for one instance of the given event shape, as a ``[num_states, *event_shape]``
        tensor. Only for tiny sizes; solvers whose feasible set cannot be listed raise ``NotImplementedError``."""
        raise NotImplementedError(f"{type(self).__name__} cannot enumerate its feasible set")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def event_dims_of(solver: object, default: int = 1) -> int:
    """The number of event dimensions a solver declares (``solver.event_dims``), else ``default``."""
    value = getattr(solver, "event_dims", default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"solver.event_dims must be a non-negative int; got {value!r}")
    return value
