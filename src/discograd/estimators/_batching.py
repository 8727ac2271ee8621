"""Calling a solver on many perturbed copies of theta at once, shared by the perturbation estimators."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from .._validation import check_finite

__all__ = ["PerInstance", "per_instance", "solve_samples"]


@dataclass(frozen=True)
class PerInstance:
    """A solver argument whose leading dimension indexes the instances of ``theta``'s batch.

    Extra solver arguments are passed unchanged, except those wrapped by :func:`per_instance`, which are
    repeated over the sample dimension to match the merged ``[S * B, ...]`` batch the solver sees.
    """

    value: Tensor


def per_instance(value: Tensor) -> PerInstance:
    """Mark a tensor solver argument as per instance (leading dimension = ``theta.shape[0]``).

    Example:
        >>> import torch, discograd
        >>> layer = discograd.imle(discograd.solvers.TopK(), num_samples=4)
        >>> z = layer(torch.randn(3, 6), k=discograd.per_instance(torch.tensor([1, 2, 3])))
        >>> z.sum(-1)[0].tolist()
        [1.0, 2.0, 3.0]
    """
    if not isinstance(value, Tensor):
        raise TypeError(f"per_instance expects a torch.Tensor; got {type(value).__name__}")
    return PerInstance(value)


def _expand_arg(arg: Any, num_samples: int | None, batch_size: int | None) -> Any:
    if not isinstance(arg, PerInstance):
        return arg
    value = arg.value
    if num_samples is None:
        return value
    if batch_size is None or value.dim() == 0 or value.shape[0] != batch_size:
        raise ValueError(
            f"a per_instance argument must have leading dimension equal to theta's batch size "
            f"{batch_size}; got shape {tuple(value.shape)}"
        )
    return value.unsqueeze(0).expand(num_samples, *value.shape).reshape(num_samples * batch_size, *value.shape[1:])


def solve_samples(
    solver: Callable[..., Tensor],
    perturbed: Tensor,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    num_samples: int | None,
    event_dims: int,
) -> Tensor:
    """Solve ``perturbed`` (``[S, *theta.shape]``) with one solver call and check the result.

    With ``num_samples=None`` (``S = 1``) the solver sees ``theta``'s own shape. Otherwise the sample
    dimension is merged into the leading batch dimension (``[S * B, ...]``, sample-major) when ``theta``
    has batch dimensions, or becomes the batch dimension when it has none; the output is reshaped back.
    """
    theta_shape = perturbed.shape[1:]
    has_batch = len(theta_shape) > event_dims
    batch_size = theta_shape[0] if has_batch else None
    if num_samples is None:
        x = perturbed[0]
    elif has_batch:
        x = perturbed.reshape(perturbed.shape[0] * theta_shape[0], *theta_shape[1:])
    else:
        x = perturbed
    args = tuple(_expand_arg(a, num_samples, batch_size) for a in args)
    kwargs = {key: _expand_arg(v, num_samples, batch_size) for key, v in kwargs.items()}
    with torch.no_grad():
        z = solver(x, *args, **kwargs)
    if not isinstance(z, Tensor):
        raise TypeError(f"the solver must return a torch.Tensor; got {type(z).__name__}")
    if z.shape != x.shape:
        raise ValueError(
            f"the solver returned z of shape {tuple(z.shape)} for theta of shape {tuple(x.shape)}; "
            "a solver must return z with theta's shape"
        )
    if z.device != x.device:
        raise ValueError(f"the solver returned z on {z.device} for theta on {x.device}; it must keep the device")
    if z.dtype != x.dtype:
        z = z.to(x.dtype)
    check_finite(z, f"z returned by the solver {_solver_name(solver)}",
                 hint=" (for finite theta): a solver must return finite z; check the solver")
    return z.reshape(perturbed.shape)


def _solver_name(solver: Callable[..., Tensor]) -> str:
    name = getattr(solver, "__qualname__", None)
    return name if isinstance(name, str) else repr(solver)
