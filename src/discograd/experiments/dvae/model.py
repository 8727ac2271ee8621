r"""The discrete VAE: MLP encoder → logits θ, a discrete latent z, MLP decoder → Bernoulli logits.

Latents (``θ`` has shape ``[B, groups, n]``):

- **categorical**: ``groups`` one-hot variables of ``n = categories`` values, ``q(z_g; θ_g) = softmax(θ_g)``;
- **k-subset**: ``groups`` 0/1 vectors of length ``n = subset_size`` with exactly ``k`` ones,
  ``q(z_g; θ_g) ∝ exp⟨z_g, θ_g⟩`` (temperature 1).

The prior is uniform over each group's states. The exact KL (:func:`categorical_kl`, :func:`ksubset_kl`)::

    KL(q‖uniform) = E_q[log q] + log |C|,   categorical: E_q[log q] = Σ_i p_i log p_i,  |C| = n;
                                            k-subset:    E_q[log q] = ⟨θ, μ(θ)⟩ − log Z(θ),  |C| = C(n, k),

``μ`` and ``log Z`` by the ``O(n·k)`` dynamic programme of :mod:`discograd.exact`. :func:`proxy_kl` is the
loss of the original I-MLE code for k-subsets: each group's logits read as **one categorical over n**,
``KL(softmax(θ_g)‖uniform(n))`` — a proxy, not the KL of the subset distribution.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ... import (
    AdaptiveTarget,
    Argmax,
    Gumbel,
    PerturbedTarget,
    SumOfGamma,
    TopK,
    gumbel_softmax,
    imle,
    relaxed_topk,
    score_function,
    simple_topk,
    straight_through,
)
from ...estimators import reinforce
from ...exact import topk_log_partition, topk_marginals, topk_sample

__all__ = [
    "CATEGORICAL_METHODS",
    "METHODS",
    "SUBSET_METHODS",
    "DiscreteVAE",
    "EstimatorSettings",
    "build_estimator",
    "categorical_kl",
    "ksubset_kl",
    "latent_kind",
    "proxy_kl",
    "sample_forward",
    "sample_posterior",
    "sample_prior",
]

#: methods on 20 categorical variables of 10 categories (the ``cat_`` prefix)
CATEGORICAL_METHODS = ("cat_gumbel_softmax", "cat_gumbel_softmax_hard", "cat_straight_through", "cat_imle",
                       "cat_score_function")
#: methods on 20 groups of 10-of-20 subsets (the ``subset_`` prefix)
SUBSET_METHODS = ("subset_imle", "subset_aimle", "subset_simple", "subset_straight_through", "subset_relaxed_topk")
# new methods go at the end: a method's random streams are seeded by its index here
METHODS = CATEGORICAL_METHODS + SUBSET_METHODS


def latent_kind(method: str) -> str:
    """``"categorical"`` or ``"subset"``."""
    if method in CATEGORICAL_METHODS:
        return "categorical"
    if method in SUBSET_METHODS:
        return "subset"
    raise ValueError(f"method must be one of {list(METHODS)}; got {method!r}")


# ---------------------------------------------------------------------------------------------------
# exact KL to the uniform prior, and the proxy
# ---------------------------------------------------------------------------------------------------


def categorical_kl(logits: Tensor) -> Tensor:
    r"""``KL(softmax(θ)‖uniform(n)) = Σ_i p_i log p_i + log n`` over the last dimension, summed over groups.

    ``logits`` is ``[*batch, groups, n]``; returns ``[*batch]``.

    Example:
        >>> import torch
        >>> float(categorical_kl(torch.zeros(2, 3, 10)).abs().max()) < 1e-6
        True
    """
    log_p = torch.log_softmax(logits, dim=-1)
    kl = (log_p.exp() * log_p).sum(-1) + math.log(logits.shape[-1])
    return kl.sum(-1)


def ksubset_kl(logits: Tensor, k: int) -> Tensor:
    r"""Exact ``KL(q‖uniform)`` for k-subsets, ``q(z) ∝ exp⟨z, θ⟩``, ``|z| = k``, summed over groups.

    ``E_q[log q] = ⟨θ, μ(θ)⟩ − log Z(θ)`` by the k-subset DP, plus ``log C(n, k)``. Differentiable.
    ``logits`` is ``[*batch, groups, n]``; returns ``[*batch]``.

    Example:
        >>> import torch
        >>> float(ksubset_kl(torch.zeros(1, 2, 6), 3).abs().max()) < 1e-5
        True
    """
    n = logits.shape[-1]
    log_z = topk_log_partition(logits, k)
    if torch.is_grad_enabled() and logits.requires_grad:
        # μ = ∇ log Z with a graph: the KL's backward is a Hessian-vector product of log Z (J_μ θ), about
        # three times cheaper than differentiating the marginals' tables
        (mu,) = torch.autograd.grad(log_z.sum(), logits, create_graph=True)
    else:
        mu = topk_marginals(logits, k)
    neg_entropy = (logits * mu).sum(-1) - log_z
    return (neg_entropy + math.log(math.comb(n, k))).sum(-1)


def proxy_kl(logits: Tensor) -> Tensor:
    r"""The original I-MLE code's KL term for k-subsets (a **proxy**): each group's logits as one categorical
    over ``n`` items, ``KL(softmax(θ_g)‖uniform(n))`` summed over groups; ``[*batch, groups, n]`` → ``[*batch]``.
    It is not the KL of the k-subset distribution (its zero is at uniform logits too, but it ignores k).
    """
    return categorical_kl(logits)


# ---------------------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------------------


class DiscreteVAE(nn.Module):
    """Encoder ``x [B, D] → θ [B, groups, n]`` and decoder ``z [*S, B, groups, n] → Bernoulli logits [*S, B, D]``.

    Two-layer MLPs with ReLU (``hidden`` units); the decoder reads the flattened latent.
    """

    def __init__(self, num_pixels: int, groups: int, n: int, hidden: int = 256) -> None:
        super().__init__()
        self.groups, self.n = groups, n
        self.encoder = nn.Sequential(nn.Linear(num_pixels, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, groups * n))
        self.decoder = nn.Sequential(nn.Linear(groups * n, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, num_pixels))

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x).view(*x.shape[:-1], self.groups, self.n)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z.flatten(-2))


def reconstruction_nll(x_logits: Tensor, x: Tensor) -> Tensor:
    """``−log p(x | z)`` of Bernoulli pixels, summed over pixels: ``[*S, B, D]`` → ``[*S, B]``."""
    return nn.functional.binary_cross_entropy_with_logits(x_logits, x.expand_as(x_logits), reduction="none").sum(-1)


# ---------------------------------------------------------------------------------------------------
# the estimators
# ---------------------------------------------------------------------------------------------------


@dataclass
class EstimatorSettings:
    """The estimator hyperparameters that a run's config resolves (see ``DVAEConfig``)."""

    method: str
    k: int
    num_samples: int
    step_size: float
    temperature: float
    relaxation_temperature: float
    aimle_target_nonzeros: float
    aimle_update_step: float
    aimle_initial_beta: float


class Estimator:
    """``loss(model, theta, x) -> [S, B]``: the training reconstruction loss per sample and example (the KL
    is added by the caller); ``layer`` is the estimator module whose ``state_dict`` (AIMLE's β) is checkpointed, or ``None``."""

    def __init__(self, loss: Callable[[DiscreteVAE, Tensor, Tensor], Tensor], layer: nn.Module | None) -> None:
        self.loss = loss
        self.layer = layer


def build_estimator(settings: EstimatorSettings, generator: torch.Generator) -> Estimator:
    """The training reconstruction loss of ``settings.method``; ``generator`` draws all its noise.

    Sampling estimators draw ``S = num_samples`` samples per example (the score function at least 2, for
    its leave-one-out baseline). The caller **sums** the losses over samples and examples (see
    ``train.py``), so that each sample's upstream gradient ``g`` is its own ``∇_z(−log p(x|z))`` and the
    I-MLE step size λ keeps its meaning for any batch size and ``S`` (Adam is invariant to the scale).
    """
    method, s, k = settings.method, settings.num_samples, settings.k
    samples = {"num_samples": s, "generator": generator}

    def through(layer: Callable[[Tensor], Tensor]) -> Callable[[DiscreteVAE, Tensor, Tensor], Tensor]:
        def loss(model: DiscreteVAE, theta: Tensor, x: Tensor) -> Tensor:
            z = layer(theta)
            return reconstruction_nll(model.decode(z if z.dim() == theta.dim() + 1 else z.unsqueeze(0)), x)
        return loss

    layer: nn.Module | None = None
    if method in ("cat_gumbel_softmax", "cat_gumbel_softmax_hard"):
        hard = method.endswith("_hard")

        def relaxed(theta: Tensor) -> Tensor:
            expanded = theta.unsqueeze(0).expand(s, *theta.shape)
            return gumbel_softmax(expanded, temperature=settings.relaxation_temperature, hard=hard, generator=generator)
        return Estimator(through(relaxed), None)
    if method == "subset_relaxed_topk":
        def relaxed_subset(theta: Tensor) -> Tensor:
            expanded = theta.unsqueeze(0).expand(s, *theta.shape)
            return relaxed_topk(expanded, k, temperature=settings.relaxation_temperature, generator=generator)
        return Estimator(through(relaxed_subset), None)
    if method == "subset_simple":
        return Estimator(through(lambda theta: simple_topk(theta, k, **samples)), None)
    if method == "cat_score_function":
        sf = score_function(Argmax(), num_samples=max(2, s), generator=generator)

        def reinforce_loss(model: DiscreteVAE, theta: Tensor, x: Tensor) -> Tensor:
            z = sf(theta)  # exact samples, [S, B, groups, n]
            losses = reconstruction_nll(model.decode(z), x)  # [S, B]; pathwise gradient for the decoder
            log_prob = sf.log_prob(z, theta).sum(-1)  # [S, B]
            return reinforce(losses, log_prob, baseline="leave_one_out")
        return Estimator(reinforce_loss, None)
    if method == "cat_straight_through":
        layer = straight_through(Argmax(), noise=Gumbel(), temperature=settings.temperature, **samples)
    elif method == "cat_imle":
        layer = imle(Argmax(), noise=Gumbel(), target=PerturbedTarget(settings.step_size),
                     temperature=settings.temperature, **samples)
    elif method == "subset_imle":
        layer = imle(TopK(k), noise=SumOfGamma(k), target=PerturbedTarget(settings.step_size),
                     temperature=settings.temperature, **samples)
    elif method == "subset_aimle":
        target = AdaptiveTarget(target_nonzeros=settings.aimle_target_nonzeros, update_step=settings.aimle_update_step,
                                initial_beta=settings.aimle_initial_beta)
        layer = imle(TopK(k), noise=SumOfGamma(k), target=target, temperature=settings.temperature, **samples)
    elif method == "subset_straight_through":
        layer = straight_through(TopK(k), noise=SumOfGamma(k), temperature=settings.temperature, **samples)
    else:
        raise ValueError(f"method must be one of {list(METHODS)}; got {method!r}")
    return Estimator(through(layer), layer)


# ---------------------------------------------------------------------------------------------------
# exact sampling (evaluation, samples from the prior)
# ---------------------------------------------------------------------------------------------------


def sample_posterior(logits: Tensor, kind: str, k: int, num_samples: int, generator: torch.Generator) -> Tensor:
    """Exact samples ``[S, *logits.shape]`` of q(z; θ): categorical (Gumbel-max) or k-subset (the DP sampler)."""
    logits = logits.detach()
    if kind == "categorical":
        gumbel = Gumbel().sample((num_samples, *logits.shape), generator=generator, device=logits.device,
                                 dtype=logits.dtype)
        return Argmax()(logits + gumbel)
    return topk_sample(logits, k, num_samples=num_samples, generator=generator)


def sample_forward(logits: Tensor, settings: EstimatorSettings, num_samples: int,
                   generator: torch.Generator) -> Tensor:
    """Hard samples ``[S, *logits.shape]`` of the distribution the method samples from in training.

    Perturb-and-MAP methods: ``MAP(θ + τ ε)`` with their noise (Gumbel; Sum-of-Gamma for k-subsets, which is
    *not* q(z; θ)); relaxations: their τ → 0 limit (Gumbel-max, top-k of Gumbel-perturbed logits); SIMPLE and
    the score function: exact samples of q.
    """
    method, k = settings.method, settings.k
    logits = logits.detach()
    shape = (num_samples, *logits.shape)
    if method in ("subset_simple", "cat_score_function"):
        return sample_posterior(logits, latent_kind(method), k, num_samples, generator)
    if method in ("subset_imle", "subset_aimle", "subset_straight_through"):
        eps = SumOfGamma(k).sample(shape, generator=generator, device=logits.device, dtype=logits.dtype)
        return TopK(k)(logits + settings.temperature * eps)
    eps = Gumbel().sample(shape, generator=generator, device=logits.device, dtype=logits.dtype)
    if method == "subset_relaxed_topk":
        return TopK(k)(logits + eps)
    scale = settings.temperature if method in ("cat_imle", "cat_straight_through") else 1.0
    return Argmax()(logits + scale * eps)


def sample_prior(num: int, groups: int, n: int, kind: str, k: int, generator: torch.Generator) -> Tensor:
    """``num`` draws ``[num, groups, n]`` from the uniform prior."""
    return sample_posterior(torch.zeros(num, groups, n), kind, k, 1, generator)[0]


def kl_terms(logits: Tensor, kind: str, k: int) -> dict[str, Tensor]:
    """``{"kl": exact KL [B], "proxy_kl": the categorical proxy [B]}`` (the proxy equals the KL for categoricals)."""
    if kind == "categorical":
        kl = categorical_kl(logits)
        return {"kl": kl, "proxy_kl": kl}
    return {"kl": ksubset_kl(logits, k), "proxy_kl": proxy_kl(logits)}


def training_kl(logits: Tensor, kind: str, k: int, which: str) -> Tensor:
    """The KL term of the training loss: ``"exact"`` or the categorical ``"proxy"``."""
    if which == "proxy":
        return proxy_kl(logits)
    return categorical_kl(logits) if kind == "categorical" else ksubset_kl(logits, k)


@torch.no_grad()
def evaluate(model: DiscreteVAE, images: Tensor, kind: str, k: int, num_samples: int, batch_size: int,
             generator: torch.Generator, settings: EstimatorSettings | None = None) -> dict[str, Any]:
    """Test metrics, averaged over images (nats per image).

    - ``nelbo``: the **exact** negative ELBO, ``E_q[−log p(x|z)] + KL(q‖uniform)``, the expectation by Monte
      Carlo with ``num_samples`` exact samples of q per image, the KL exact (DP for k-subsets).
    - ``reconstruction``, ``kl``: its two terms.
    - ``proxy_kl`` and ``proxy_loss = reconstruction + proxy_kl``: the original code's categorical proxy
      (for categorical latents the proxy is the exact KL).
    - with ``settings``: ``sampler_reconstruction``, the reconstruction term under the method's own training
      sampler (:func:`sample_forward`), a diagnostic: for Sum-of-Gamma perturb-and-MAP it is not q(z; θ).
    """
    model.eval()
    totals = {"reconstruction": 0.0, "kl": 0.0, "proxy_kl": 0.0}
    if settings is not None:
        totals["sampler_reconstruction"] = 0.0
    for lo in range(0, len(images), batch_size):
        x = images[lo:lo + batch_size]
        logits = model.encode(x)
        z = sample_posterior(logits, kind, k, num_samples, generator)
        totals["reconstruction"] += float(reconstruction_nll(model.decode(z), x).mean(0).sum())
        if settings is not None:
            z = sample_forward(logits, settings, num_samples, generator)
            totals["sampler_reconstruction"] += float(reconstruction_nll(model.decode(z), x).mean(0).sum())
        for name, value in kl_terms(logits, kind, k).items():
            totals[name] += float(value.sum())
    out = {name: value / len(images) for name, value in totals.items()}
    out["nelbo"] = out["reconstruction"] + out["kl"]
    out["proxy_loss"] = out["reconstruction"] + out["proxy_kl"]
    return out
