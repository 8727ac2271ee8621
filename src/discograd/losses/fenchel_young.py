r"""The perturbed Fenchel-Young loss (Berthet et al., NeurIPS 2020, arXiv:2002.08676, Section 4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .._validation import check_positive, check_theta
from ..estimators._base import PerturbAndMAP
from ..estimators._batching import solve_samples
from ..estimators.perturbed import check_perturbation, multiplicative_factor
from ..noise import NoiseDistribution, Normal
from ._common import apply_reduction, check_reduction, check_same_shape, event_sum

__all__ = ["FenchelYoungLoss", "fenchel_young_loss"]


class _FenchelYoungFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta: Tensor, z_true: Tensor, eps: Tensor, layer: FenchelYoungLoss, args: tuple,
                kwargs: dict) -> Tensor:
        if layer.perturbation == "multiplicative":
            factor = multiplicative_factor(eps, layer.temperature)
            perturbed = theta.detach().unsqueeze(0) * factor
            z = solve_samples(layer.solver, perturbed, args, kwargs, num_samples=layer.num_samples,
                              event_dims=layer.event_dims)
            gradient_of_f = (factor * z).mean(0)  # ∇F_σ(θ) = E[m ⊙ MAP(θ ⊙ m)] (envelope theorem)
        else:
            z = layer.perturb_and_solve(theta, eps, args, kwargs)  # [S, *θ.shape]
            perturbed = torch.add(theta.detach().unsqueeze(0), eps, alpha=layer.temperature)
            gradient_of_f = z.mean(0)
        value = (event_sum(perturbed * z, layer.event_dims).mean(0)
                 - event_sum(theta.detach() * z_true, layer.event_dims))
        ctx.save_for_backward(gradient_of_f - z_true)
        ctx.event_dims = layer.event_dims
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None, None, None, None]:
        (difference,) = ctx.saved_tensors
        g = grad_output.reshape(*grad_output.shape, *([1] * ctx.event_dims))
        return g * difference, None, None, None, None, None


class FenchelYoungLoss(PerturbAndMAP):
    r"""Perturbed Fenchel-Young loss ``F_σ(θ) − <θ, z_true>`` with ``F_σ(θ) = E[max_z <η, z>]``.

    The perturbation ``η`` of θ is ``θ + σε`` (``perturbation="additive"``, the default; Berthet et al.,
    2020) or ``θ ⊙ m`` with ``m = exp(σε − σ²/2)`` (``"multiplicative"``: InferOpt.jl's ``FenchelYoungLoss``
    of a ``PerturbedMultiplicative``, ``fenchel_young_F_and_first_part_of_grad`` in
    ``src/fenchel_young/perturbed.jl``; PyEPO's ``perturbedFenchelYoungMul`` / ``PFYMul`` in
    ``pyepo/func/perturbed.py``). By the envelope theorem the gradient in θ is ``∇F_σ(θ) − z_true`` with

    - additive: ``∇F_σ(θ) = y_σ(θ) = E[MAP(θ + σε)]``,
    - multiplicative: ``∇F_σ(θ) = E[m ⊙ MAP(θ ⊙ m)]`` (each solution weighted by its own factor; this is
      PyEPO's ``_calculate_expected_solution`` and InferOpt's ``y .* eZ``. The later InferOpt rewrite,
      ``src/losses/fenchel_young_loss.jl``, uses the plain mean ``E[MAP(θ ⊙ m)]``, which is not the
      gradient of its own ``F``),

    both estimated by the mean over ``num_samples`` samples (neither divides by θ, so θ may have zero
    entries, which the multiplicative perturbation leaves at 0). **The value is a surrogate:** the full loss
    adds the constant ``Ω(z_true)`` (the convex conjugate of ``F_σ`` at ``z_true``), which is intractable
    and does not depend on θ; so the value returned here can be negative, while its gradient is exact in
    expectation. The ``F_σ`` part is estimated by the same samples, ``mean_s <η_s, MAP(η_s)>``. (This is
    the value PyEPO 2.2.7's ``perturbedFenchelYoung`` returns, in its minimisation form.)

    ``loss(theta, z_true)`` computes one value per instance, shape ``theta.shape[:-event_dims]``, and
    reduces them by ``reduction``: ``"mean"`` (the default, as PyEPO and ``torch.nn``), ``"sum"`` or
    ``"none"`` (the per-instance values).

    Example:
        >>> import torch, discograd
        >>> loss = discograd.losses.FenchelYoungLoss(discograd.TopK(2), num_samples=100,
        ...                                          generator=torch.Generator().manual_seed(0))
        >>> theta = torch.zeros(4, requires_grad=True)
        >>> loss(theta, torch.tensor([1.0, 1.0, 0.0, 0.0])).backward()
        >>> bool((theta.grad[:2] < 0).all() and (theta.grad[2:] > 0).all())   # pushes toward z_true
        True
        >>> loss = discograd.losses.FenchelYoungLoss(discograd.TopK(1), perturbation="multiplicative",
        ...                                          noise_scale=0.5, num_samples=100, reduction="none")
        >>> loss(-torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]), torch.tensor([[1.0, 0, 0], [1.0, 0, 0]])).shape
        torch.Size([2])
    """

    def __init__(self, solver: Callable[..., Tensor], *, noise: NoiseDistribution | None = None,
                 noise_scale: float = 1.0, num_samples: int = 1, perturbation: str = "additive",
                 reduction: str = "mean", generator: torch.Generator | None = None,
                 event_dims: int | None = None) -> None:
        super().__init__(solver, noise=Normal() if noise is None else noise, num_samples=num_samples,
                         temperature=check_positive(noise_scale, "noise_scale"), generator=generator,
                         event_dims=event_dims)
        if self.num_samples is None:
            raise ValueError("num_samples must be an integer >= 1 for the Fenchel-Young loss; got None")
        self.perturbation = check_perturbation(perturbation)
        self.reduction = check_reduction(reduction)

    def forward(self, theta: Tensor, z_true: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        check_theta(theta, "theta", min_dim=max(1, self.event_dims))
        check_theta(z_true, "z_true")
        check_same_shape(theta, z_true, "theta", "z_true")
        values = _FenchelYoungFunction.apply(theta, z_true.to(theta.dtype), self.sample_noise(theta), self, args,
                                             kwargs)
        return apply_reduction(values, self.reduction)

    def extra_repr(self) -> str:
        return f"{self._base_repr()}, perturbation={self.perturbation!r}, reduction={self.reduction!r}"


def fenchel_young_loss(theta: Tensor, z_true: Tensor, *, solver: Callable[..., Tensor],
                       noise: NoiseDistribution | None = None, noise_scale: float = 1.0, num_samples: int = 1,
                       perturbation: str = "additive", reduction: str = "mean",
                       generator: torch.Generator | None = None) -> Tensor:
    """Functional form of :class:`FenchelYoungLoss` (reduced by ``reduction``, default ``"mean"``)."""
    return FenchelYoungLoss(solver, noise=noise, noise_scale=noise_scale, num_samples=num_samples,
                            perturbation=perturbation, reduction=reduction, generator=generator)(theta, z_true)
