r"""SPO+ (Elmachtoub & Grigas, "Smart 'Predict, then Optimize'", Management Science 2022, arXiv:1710.08005)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .._validation import check_theta
from ..estimators._batching import solve_samples
from ..solvers.base import event_dims_of
from ._common import apply_reduction, check_reduction, check_same_shape, event_sum

__all__ = ["spo_plus_loss"]


class _SPOPlusFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta_pred: Tensor, theta_true: Tensor, z_true: Tensor, solver: Callable[..., Tensor],
                event_dims: int, args: tuple, kwargs: dict) -> Tensor:
        shifted = (2 * theta_pred - theta_true).unsqueeze(0)
        z_shift = solve_samples(solver, shifted, args, kwargs, num_samples=None, event_dims=event_dims)[0]
        value = (event_sum((2 * theta_pred - theta_true) * z_shift, event_dims)
                 - event_sum((2 * theta_pred - theta_true) * z_true, event_dims))
        ctx.save_for_backward(2 * (z_shift - z_true))
        ctx.event_dims = event_dims
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None, None, None, None, None]:
        (subgradient,) = ctx.saved_tensors
        g = grad_output.reshape(*grad_output.shape, *([1] * ctx.event_dims))
        return g * subgradient, None, None, None, None, None, None


def spo_plus_loss(theta_pred: Tensor, theta_true: Tensor, z_true: Tensor, *, solver: Callable[..., Tensor],
                  solver_args: tuple = (), solver_kwargs: dict[str, Any] | None = None,
                  reduction: str = "mean") -> Tensor:
    r"""SPO+ loss in discograd's maximisation convention (scores θ = −cost).

    With ``z* = z_true = MAP(θ_true)``:
    ``ℓ(θ̂) = max_z <2θ̂ − θ, z> − <2θ̂ − θ, z*>  ≥ 0``, a convex upper bound of the regret
    ``<θ, z*> − <θ, MAP(θ̂)>``; subgradient ``2 [MAP(2θ̂ − θ) − z*]``. (In the paper's cost form,
    ``ℓ(ĉ) = max_z (c − 2ĉ)ᵀz + 2ĉᵀz* − cᵀz*`` with ``c = −θ``: the same number.)

    Computes one value per instance (shape ``theta_pred.shape[:-event_dims]``) and reduces them by
    ``reduction``: ``"mean"`` (the default, PyEPO's ``SPOPlus(reduction="mean")``), ``"sum"`` or ``"none"``.
    Only ``theta_pred`` gets a gradient. One solver call.

    Example:
        >>> import torch, discograd
        >>> theta_true = torch.tensor([3.0, 1.0, 2.0])
        >>> z_true = discograd.TopK(1)(theta_true)
        >>> float(spo_plus_loss(torch.tensor([0.0, 1.0, 0.0]), theta_true, z_true, solver=discograd.TopK(1)))
        4.0
    """
    check_theta(theta_pred, "theta_pred")
    check_theta(theta_true, "theta_true")
    check_theta(z_true, "z_true")
    check_same_shape(theta_pred, theta_true, "theta_pred", "theta_true")
    check_same_shape(theta_pred, z_true, "theta_pred", "z_true")
    check_reduction(reduction)
    event_dims = event_dims_of(solver)
    values = _SPOPlusFunction.apply(theta_pred, theta_true.detach().to(theta_pred.dtype),
                                    z_true.detach().to(theta_pred.dtype), solver, event_dims, solver_args,
                                    solver_kwargs or {})
    return apply_reduction(values, reduction)
