r"""Perturbed optimizers (Berthet, Blondel, Teboul, Cuturi, Vert, Bach, NeurIPS 2020, arXiv:2002.08676).

The perturbed maximiser ``y_σ(θ) = E[MAP(θ + σ ε)]`` is a smooth function of θ; with ``ε`` of density
``∝ exp(−ν(ε))`` its Jacobian is ``J y_σ(θ) = E[MAP(θ + σ ε) ∇ν(ε)ᵀ] / σ`` (Berthet et al., Prop. 3.1),
estimated with the same samples as the forward pass. ``∇ν`` comes from the noise object's
``grad_neg_log_density`` (:class:`~discograd.noise.Normal`: ``ε/s²``; :class:`~discograd.noise.Gumbel`:
``(1 − e^{−ε/s})/s``).

The Fenchel-Young loss ``F_σ(θ) − <θ, y> + Ω(y)``, with ``F_σ(θ) = E[max_z <θ + σε, z>]``, has the
gradient ``y_σ(θ) − y``: see :func:`discograd.losses.fenchel_young_loss`.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .._validation import check_positive, check_theta
from ..noise import Normal, NoiseDistribution
from ._base import PerturbAndMAP, layer_or_decorator
from ._batching import solve_samples

__all__ = ["Perturbed", "perturbed"]


def _event_sum(x: Tensor, event_dims: int) -> Tensor:
    """Sum over the last ``event_dims`` dimensions, kept as size-1 dimensions."""
    if event_dims == 0:
        return x
    return x.sum(dim=tuple(range(x.dim() - event_dims, x.dim())), keepdim=True)


class _PerturbedFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta: Tensor, eps: Tensor, layer: "Perturbed", args: tuple, kwargs: dict) -> Tensor:
        z = layer.perturb_and_solve(theta, eps, args, kwargs)  # [S, *θ.shape]
        if layer.control_variate:
            unperturbed = theta.detach().unsqueeze(0)
            baseline = solve_samples(layer.solver, unperturbed, args, kwargs, num_samples=None,
                                     event_dims=layer.event_dims)
            centred = z - baseline
        else:
            centred = z
        ctx.event_dims = layer.event_dims
        ctx.noise_scale = layer.temperature
        ctx.save_for_backward(centred, layer.noise.grad_neg_log_density(eps))
        return z.mean(0)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None, None, None]:
        centred, score = ctx.saved_tensors
        # vector-Jacobian product: E_s[ <g, y_s − y_0> ∇ν(ε_s) ] / σ, inner product per instance
        inner = _event_sum(grad_output.unsqueeze(0) * centred, ctx.event_dims)
        grad = (inner * score).mean(0) / ctx.noise_scale
        return grad, None, None, None, None


class Perturbed(PerturbAndMAP):
    r"""The perturbed maximiser ``y_σ(θ) = E[MAP(θ + σ ε)]`` as a differentiable layer (Berthet et al., 2020).

    Forward: the mean of ``num_samples`` perturbed solutions, shape ``theta.shape`` (a point in the convex
    hull of the feasible set, not a vertex). Backward: the score-function Jacobian
    ``E[MAP(θ + σε) ∇ν(ε)ᵀ] / σ`` with the forward samples; ``control_variate=True`` subtracts the
    unperturbed solution ``MAP(θ)`` inside the expectation (same mean, as ``E[∇ν(ε)] = 0``; lower
    variance; one more solver call per forward pass).

    Args:
        solver: a batched MAP oracle (see :mod:`discograd.solvers`).
        noise: a noise with ``sample`` and ``grad_neg_log_density`` (``Normal()`` (default), ``Gumbel()``).
        noise_scale: σ > 0.
        num_samples: S (default 10); the output has no sample dimension either way.
        control_variate: subtract ``MAP(θ)`` in the Jacobian estimate.
        generator: the ``torch.Generator`` for the noise.

    Example:
        >>> import torch, discograd
        >>> layer = discograd.perturbed(discograd.Argmax(), noise=discograd.Gumbel(), noise_scale=1.0,
        ...                             num_samples=20_000, generator=torch.Generator().manual_seed(0))
        >>> theta = torch.tensor([1.0, 0.0, -1.0])
        >>> torch.allclose(layer(theta), torch.softmax(theta, 0), atol=0.02)  # Gumbel-max
        True
    """

    def __init__(
        self,
        solver: Callable[..., Tensor],
        *,
        noise: NoiseDistribution | None = None,
        noise_scale: float = 1.0,
        num_samples: int = 10,
        control_variate: bool = False,
        generator: torch.Generator | None = None,
        event_dims: int | None = None,
    ) -> None:
        noise = Normal() if noise is None else noise
        if not callable(getattr(noise, "grad_neg_log_density", None)):
            raise TypeError(
                "noise must define grad_neg_log_density(eps) (the score of its density) for perturbed "
                f"optimizers; got {type(noise).__name__} (use discograd.Normal() or discograd.Gumbel())"
            )
        super().__init__(solver, noise=noise, num_samples=num_samples, temperature=check_positive(noise_scale, "noise_scale"),
                         generator=generator, event_dims=event_dims)
        if self.num_samples is None:
            raise ValueError("num_samples must be an integer >= 1 for perturbed optimizers; got None")
        if not isinstance(control_variate, bool):
            raise TypeError(f"control_variate must be a bool; got {type(control_variate).__name__}")
        self.control_variate = control_variate

    @property
    def noise_scale(self) -> float:
        return self.temperature

    def forward(self, theta: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        check_theta(theta, "theta", min_dim=max(1, self.event_dims))
        return _PerturbedFunction.apply(theta, self.sample_noise(theta), self, args, kwargs)

    def extra_repr(self) -> str:
        return f"{self._base_repr()}, control_variate={self.control_variate}"


def perturbed(solver: Callable[..., Tensor] | None = None, /, **options: Any) -> Any:
    """Make a :class:`Perturbed` layer (``y_σ(θ) = E[MAP(θ + σε)]``); also a decorator."""
    return layer_or_decorator(Perturbed, solver, options)
