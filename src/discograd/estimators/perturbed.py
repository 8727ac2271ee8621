r"""Perturbed optimizers (Berthet, Blondel, Teboul, Cuturi, Vert, Bach, NeurIPS 2020, arXiv:2002.08676).

The perturbed maximiser ``y_σ(θ) = E[MAP(η)]`` with a random perturbation ``η`` of θ is a smooth function
of θ. Two perturbations (``perturbation=``):

- ``"additive"`` (the default): ``η = θ + σ ε``. With ``ε`` of density ``∝ exp(−ν(ε))`` the Jacobian is
  ``J y_σ(θ) = E[MAP(θ + σ ε) ∇ν(ε)ᵀ] / σ`` (Berthet et al., Prop. 3.1), estimated with the same samples
  as the forward pass. ``∇ν`` comes from the noise object's ``grad_neg_log_density``
  (:class:`~discograd.noise.Normal`: ``ε/s²``; :class:`~discograd.noise.Gumbel`: ``(1 − e^{−ε/s})/s``).
- ``"multiplicative"``: ``η = θ ⊙ exp(σ ε − σ²/2)``, which keeps the sign of every entry of θ (a solver
  that needs positive costs keeps getting them); ``−σ²/2`` makes the factor's mean 1 for standard Normal
  ``ε``. InferOpt.jl's ``PerturbedMultiplicative`` (``src/perturbed/multiplicative.jl``,
  ``src/layers/perturbed/perturbation.jl``: ``MultiplicativePerturbation``) and PyEPO's
  ``perturbedOptMul`` / ``DPOMul`` (``pyepo/func/perturbed.py``), after Dalle et al., "Learning with
  combinatorial optimization layers: a probabilistic approach", arXiv:2207.13513. Its Jacobian, derived
  below, is ``J y_σ(θ) = E[MAP(η) ∇ν(ε)ᵀ] diag(1 / (σ θ))``.

The multiplicative Jacobian. Per coordinate ``η_i = θ_i e^{σ ε_i − σ²/2}``, so given ``η_i`` (of θ_i's
sign), ``ε_i = (log|η_i| − log|θ_i| + σ²/2) / σ``. The density of ``η_i`` is
``p(η_i; θ_i) = exp(−ν(ε_i)) / (σ |η_i|)``: only ``ν(ε_i)`` depends on θ_i, through
``∂ε_i/∂θ_i = −1/(σ θ_i)`` (for θ_i < 0 too: ``∂ log|θ_i| / ∂θ_i = 1/θ_i`` whatever the sign). So the
score is ``∂ log p / ∂θ_i = ν'(ε_i) / (σ θ_i)``, and the score-function (REINFORCE) identity
``∂_θ E[f(η)] = E[f(η) ∂_θ log p(η; θ)]`` gives the formula above; for standard Normal noise,
``ε_i / (σ θ_i)``: InferOpt's ``inv.(ε .* θ) .* Σ_s w_s Z_s`` and PyEPO's ``noises · reward / (n σ ĉ)``.
The sign of θ_i is in the division, never in an ``|θ|``. At θ_i = 0 the perturbation is degenerate
(η_i ≡ 0) and the formula undefined: :class:`Perturbed` refuses a θ with a zero entry when it will be
differentiated (PyEPO clamps ``σ ĉ`` to ``±1e-8`` instead, a gradient of size ``1e8``).

The Fenchel-Young loss ``F_σ(θ) − <θ, y> + Ω(y)``, with ``F_σ(θ) = E[max_z <η, z>]``, has the gradient
``∇F_σ(θ) − y``: see :class:`discograd.losses.FenchelYoungLoss` (either perturbation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .._validation import check_positive, check_theta
from ..noise import NoiseDistribution, Normal
from ._base import PerturbAndMAP, layer_or_decorator
from ._batching import solve_samples

__all__ = ["PERTURBATIONS", "Perturbed", "check_perturbation", "multiplicative_factor", "perturbed"]

#: the perturbations of θ that :class:`Perturbed` and :class:`~discograd.losses.FenchelYoungLoss` offer
PERTURBATIONS = ("additive", "multiplicative")


def check_perturbation(perturbation: object) -> str:
    """``perturbation`` validated: ``"additive"`` (``θ + σε``) or ``"multiplicative"`` (``θ ⊙ exp(σε − σ²/2)``)."""
    if not isinstance(perturbation, str) or perturbation not in PERTURBATIONS:
        raise ValueError(f"perturbation must be one of {PERTURBATIONS}; got {perturbation!r}")
    return perturbation


def multiplicative_factor(eps: Tensor, noise_scale: float) -> Tensor:
    r"""The factor ``exp(σ ε − σ²/2)`` of the multiplicative perturbation ``η = θ ⊙ exp(σ ε − σ²/2)``.

    Its mean is 1 for standard Normal ``ε`` (``E[e^{σε}] = e^{σ²/2}``). Same shape, dtype and device as ``eps``.

    Example:
        >>> import torch
        >>> from discograd.estimators.perturbed import multiplicative_factor
        >>> multiplicative_factor(torch.tensor([0.0, 1.0]), 2.0)   # exp(−2), exp(0)
        tensor([0.1353, 1.0000])
    """
    return torch.exp(eps * noise_scale - 0.5 * noise_scale * noise_scale)


def check_nonzero_for_multiplicative(theta: Tensor, name: str = "theta") -> None:
    """Raise ``ValueError`` if ``theta`` has a zero entry (the multiplicative Jacobian divides by θ)."""
    num_zero = int((theta == 0).sum())
    if num_zero:
        raise ValueError(
            f"{name} must have no zero entry to be differentiated with perturbation='multiplicative' "
            f"(η = θ ⊙ exp(σε − σ²/2) keeps a zero at 0 and the Jacobian divides by θ); got {num_zero} zero "
            f"value(s) in a tensor of shape {tuple(theta.shape)}: make the scores non-zero (e.g. a softplus "
            "plus a small constant for costs) or use perturbation='additive'"
        )


def _event_sum(x: Tensor, event_dims: int) -> Tensor:
    """Sum over the last ``event_dims`` dimensions, kept as size-1 dimensions."""
    if event_dims == 0:
        return x
    return x.sum(dim=tuple(range(x.dim() - event_dims, x.dim())), keepdim=True)


class _PerturbedFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta: Tensor, eps: Tensor, layer: Perturbed, args: tuple, kwargs: dict) -> Tensor:
        multiplicative = layer.perturbation == "multiplicative"
        if multiplicative:
            perturbed_theta = theta.detach().unsqueeze(0) * multiplicative_factor(eps, layer.temperature)
            z = solve_samples(layer.solver, perturbed_theta, args, kwargs, num_samples=layer.num_samples,
                              event_dims=layer.event_dims)
        else:
            z = layer.perturb_and_solve(theta, eps, args, kwargs)  # [S, *θ.shape]
        if layer.control_variate is True:
            unperturbed = theta.detach().unsqueeze(0)
            baseline = solve_samples(layer.solver, unperturbed, args, kwargs, num_samples=None,
                                     event_dims=layer.event_dims)
            centred = z - baseline
        else:
            centred = z
        ctx.event_dims = layer.event_dims
        ctx.noise_scale = layer.temperature
        ctx.leave_one_out = layer.control_variate == "leave_one_out"
        ctx.multiplicative = multiplicative
        ctx.save_for_backward(centred, layer.noise.grad_neg_log_density(eps),
                              theta.detach() if multiplicative else theta.new_empty(0))
        return z.mean(0)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None, None, None]:
        centred, score, theta = ctx.saved_tensors
        # vector-Jacobian product: E_s[ <g, y_s − b> ∇ν(ε_s) ] / σ (additive) or / (σ θ) (multiplicative),
        # inner product per instance
        inner = _event_sum(grad_output.unsqueeze(0) * centred, ctx.event_dims)
        if ctx.leave_one_out:
            # baseline b_s = the mean of the other samples' <g, y_j>: (r_s − mean r) · S / (S − 1)
            num_samples = inner.shape[0]
            inner = (inner - inner.mean(0, keepdim=True)) * (num_samples / (num_samples - 1))
        if ctx.multiplicative:
            grad = (inner * score).mean(0) / (ctx.noise_scale * theta)
        else:
            grad = (inner * score).mean(0) / ctx.noise_scale
        return grad, None, None, None, None


class Perturbed(PerturbAndMAP):
    r"""The perturbed maximiser ``y_σ(θ) = E[MAP(η)]`` as a differentiable layer (Berthet et al., 2020).

    ``η = θ + σε`` (``perturbation="additive"``, the default) or ``η = θ ⊙ exp(σε − σ²/2)``
    (``"multiplicative"``, InferOpt's ``PerturbedMultiplicative``, PyEPO's ``perturbedOptMul``: it keeps
    the sign of every score; see the module docstring for its Jacobian).

    Forward: the mean of ``num_samples`` perturbed solutions, shape ``theta.shape`` (a point in the convex
    hull of the feasible set, not a vertex). Backward: the score-function Jacobian with the forward
    samples, ``E[MAP(η) ∇ν(ε)ᵀ] / σ`` (additive) or ``E[MAP(η) ∇ν(ε)ᵀ] diag(1/(σθ))`` (multiplicative).
    ``control_variate`` lowers its variance without changing its mean (``E[∇ν(ε)] = 0``):

    - ``False``: no baseline.
    - ``True``: subtract the unperturbed solution ``MAP(θ)`` inside the expectation (one more solver call
      per forward pass).
    - ``"leave_one_out"``: subtract from sample ``s``'s ``<g, MAP(η_s)>`` the mean of the other samples'
      (PyEPO's ``variance_reduction=True``, its default, ``_apply_variance_reduction``; InferOpt's
      ``variance_reduction=true``); needs ``num_samples >= 2``; no solver call.

    Args:
        solver: a batched MAP oracle (see :mod:`discograd.solvers`).
        noise: a noise with ``sample`` and ``grad_neg_log_density`` (``Normal()`` (default), ``Gumbel()``).
        noise_scale: σ > 0.
        num_samples: S (default 10); the output has no sample dimension either way.
        perturbation: ``"additive"`` or ``"multiplicative"``. With ``"multiplicative"``, a θ that requires
            a gradient must have no zero entry (``ValueError``).
        control_variate: ``False``, ``True`` or ``"leave_one_out"`` (above).
        generator: the ``torch.Generator`` for the noise.

    Shapes: ``theta`` ``[*batch, *event]`` in, ``y_σ(θ)`` of the same shape out.

    Example:
        >>> import torch, discograd
        >>> layer = discograd.perturbed(discograd.Argmax(), noise=discograd.Gumbel(), noise_scale=1.0,
        ...                             num_samples=20_000, generator=torch.Generator().manual_seed(0))
        >>> theta = torch.tensor([1.0, 0.0, -1.0])
        >>> torch.allclose(layer(theta), torch.softmax(theta, 0), atol=0.02)  # Gumbel-max
        True
        >>> costs = torch.tensor([1.0, 2.0, 4.0])        # positive costs stay positive under η = θ ⊙ e^(σε − σ²/2)
        >>> layer = discograd.perturbed(discograd.Argmax(), perturbation="multiplicative", noise_scale=0.5,
        ...                             num_samples=1000, generator=torch.Generator().manual_seed(0))
        >>> y = layer(-costs)                             # scores θ = −cost < 0: the cheapest item wins most
        >>> bool(y[0] > y[1] > y[2])
        True
    """

    def __init__(
        self,
        solver: Callable[..., Tensor],
        *,
        noise: NoiseDistribution | None = None,
        noise_scale: float = 1.0,
        num_samples: int = 10,
        perturbation: str = "additive",
        control_variate: bool | str = False,
        generator: torch.Generator | None = None,
        event_dims: int | None = None,
    ) -> None:
        noise = Normal() if noise is None else noise
        if not callable(getattr(noise, "grad_neg_log_density", None)):
            raise TypeError(
                "noise must define grad_neg_log_density(eps) (the score of its density) for perturbed "
                f"optimizers; got {type(noise).__name__} (use discograd.Normal() or discograd.Gumbel())"
            )
        super().__init__(solver, noise=noise, num_samples=num_samples,
                         temperature=check_positive(noise_scale, "noise_scale"), generator=generator,
                         event_dims=event_dims)
        if self.num_samples is None:
            raise ValueError("num_samples must be an integer >= 1 for perturbed optimizers; got None")
        self.perturbation = check_perturbation(perturbation)
        if not (isinstance(control_variate, bool) or control_variate == "leave_one_out"):
            raise TypeError(f"control_variate must be False, True or 'leave_one_out'; got {control_variate!r}")
        if control_variate == "leave_one_out" and self.num_samples < 2:
            raise ValueError("control_variate='leave_one_out' needs num_samples >= 2 (the baseline of a sample is "
                             f"the mean of the others); got num_samples={self.num_samples}")
        self.control_variate = control_variate

    @property
    def noise_scale(self) -> float:
        return self.temperature

    def forward(self, theta: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        check_theta(theta, "theta", min_dim=max(1, self.event_dims))
        if self.perturbation == "multiplicative" and theta.requires_grad and torch.is_grad_enabled():
            check_nonzero_for_multiplicative(theta)
        return _PerturbedFunction.apply(theta, self.sample_noise(theta), self, args, kwargs)

    def extra_repr(self) -> str:
        return f"{self._base_repr()}, perturbation={self.perturbation!r}, control_variate={self.control_variate!r}"


def perturbed(solver: Callable[..., Tensor] | None = None, /, **options: Any) -> Any:
    """Make a :class:`Perturbed` layer (``y_σ(θ) = E[MAP(η)]``, η = θ + σε or θ ⊙ exp(σε − σ²/2)); also a
    decorator."""
    return layer_or_decorator(Perturbed, solver, options)
