r"""The perturbed Fenchel-Young loss (Berthet et al., NeurIPS 2020, arXiv:2002.08676, Section 4)."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .._validation import check_positive, check_theta
from ..estimators._base import PerturbAndMAP
from ..noise import NoiseDistribution, Normal
from ._common import check_same_shape, event_sum

__all__ = ["FenchelYoungLoss", "fenchel_young_loss"]


class _FenchelYoungFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta: Tensor, z_true: Tensor, eps: Tensor, layer: "FenchelYoungLoss", args: tuple,
                kwargs: dict) -> Tensor:
        z = layer.perturb_and_solve(theta, eps, args, kwargs)  # [S, *θ.shape]
        perturbed = torch.add(theta.detach().unsqueeze(0), eps, alpha=layer.temperature)
        value = event_sum(perturbed * z, layer.event_dims).mean(0) - event_sum(theta.detach() * z_true, layer.event_dims)
        ctx.save_for_backward(z.mean(0) - z_true)
        ctx.event_dims = layer.event_dims
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None, None, None, None]:
        (difference,) = ctx.saved_tensors
        g = grad_output.reshape(*grad_output.shape, *([1] * ctx.event_dims))
        return g * difference, None, None, None, None, None


class FenchelYoungLoss(PerturbAndMAP):
    r"""Perturbed Fenchel-Young loss ``F_σ(θ) − <θ, z_true>`` with ``F_σ(θ) = E[max_z <θ + σε, z>]``.

    The gradient in θ is ``y_σ(θ) − z_true`` with ``y_σ(θ) = E[MAP(θ + σε)]`` estimated by the mean of
    ``num_samples`` perturbed solutions. **The value is a surrogate:** the full loss adds the constant
    ``Ω(z_true)`` (the convex conjugate of ``F_σ`` at ``z_true``), which is intractable and does not depend
    on θ; so the value returned here can be negative, while its gradient is exact in expectation. The
    ``F_σ`` part is estimated by the same samples, ``mean_s <θ + σε_s, MAP(θ + σε_s)>``.

    ``loss(theta, z_true)`` returns one value per instance, shape ``theta.shape[:-event_dims]``.

    Example:
        >>> import torch, discograd
        >>> loss = discograd.losses.FenchelYoungLoss(discograd.TopK(2), num_samples=100,
        ...                                          generator=torch.Generator().manual_seed(0))
        >>> theta = torch.zeros(4, requires_grad=True)
        >>> loss(theta, torch.tensor([1.0, 1.0, 0.0, 0.0])).backward()
        >>> bool((theta.grad[:2] < 0).all() and (theta.grad[2:] > 0).all())   # pushes toward z_true
        True
    """

    def __init__(self, solver: Callable[..., Tensor], *, noise: NoiseDistribution | None = None,
                 noise_scale: float = 1.0, num_samples: int = 1, generator: torch.Generator | None = None,
                 event_dims: int | None = None) -> None:
        super().__init__(solver, noise=Normal() if noise is None else noise, num_samples=num_samples,
                         temperature=check_positive(noise_scale, "noise_scale"), generator=generator,
                         event_dims=event_dims)
        if self.num_samples is None:
            raise ValueError("num_samples must be an integer >= 1 for the Fenchel-Young loss; got None")

    def forward(self, theta: Tensor, z_true: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        check_theta(theta, "theta", min_dim=max(1, self.event_dims))
        check_theta(z_true, "z_true")
        check_same_shape(theta, z_true, "theta", "z_true")
        return _FenchelYoungFunction.apply(theta, z_true.to(theta.dtype), self.sample_noise(theta), self, args, kwargs)

    def extra_repr(self) -> str:
        return self._base_repr()


def fenchel_young_loss(theta: Tensor, z_true: Tensor, *, solver: Callable[..., Tensor],
                       noise: NoiseDistribution | None = None, noise_scale: float = 1.0, num_samples: int = 1,
                       generator: torch.Generator | None = None) -> Tensor:
    """Functional form of :class:`FenchelYoungLoss` (one value per instance)."""
    return FenchelYoungLoss(solver, noise=noise, noise_scale=noise_scale, num_samples=num_samples,
                            generator=generator)(theta, z_true)
