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

The original code's noise mix-up is available as :class:`RateSumOfGamma` (``sog_noise="tf_imle_rate"``): the
tf-imle DVAE notebook passes the Gamma *scale* ``κ/i`` of Sum-of-Gamma as a *rate*, so each term is
``Gamma(1/κ, scale i/κ)``; the default is the Sum-of-Gamma of the paper (:class:`discograd.noise.SumOfGamma`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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
    "INITS",
    "METHODS",
    "RELAXATION_METHODS",
    "SOG_NOISES",
    "SUBSET_METHODS",
    "DiscreteVAE",
    "RateSumOfGamma",
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

#: methods on ``groups`` categorical variables of ``categories`` values (the ``cat_`` prefix)
CATEGORICAL_METHODS = ("cat_gumbel_softmax", "cat_gumbel_softmax_hard", "cat_straight_through", "cat_imle",
                       "cat_score_function")
#: methods on ``groups`` k-of-n subsets (the ``subset_`` prefix)
SUBSET_METHODS = ("subset_imle", "subset_aimle", "subset_simple", "subset_straight_through", "subset_relaxed_topk")
# new methods go at the end: a method's random streams are seeded by its index here
#: every method, categorical then subset
METHODS = CATEGORICAL_METHODS + SUBSET_METHODS
#: the methods whose relaxation temperature follows the annealing schedule
RELAXATION_METHODS = ("cat_gumbel_softmax", "cat_gumbel_softmax_hard", "subset_relaxed_topk")
#: weight initialisations: Keras' Dense default (Glorot-uniform weights, zero biases; the tf-imle notebook)
#: or PyTorch's nn.Linear default
INITS = ("glorot", "torch")
#: Sum-of-Gamma variants: the paper's (Gamma scale κ/i) or the tf-imle notebook's (κ/i passed as a rate)
SOG_NOISES = ("scale", "tf_imle_rate")


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

    MLPs with ReLU: the encoder ``D → hidden[0] → hidden[1] → … → groups·n``, the decoder the mirror image
    ``groups·n → … → hidden[1] → hidden[0] → D`` (the original code: ``784-512-256-400`` and ``400-256-512-784``
    with ``hidden = (512, 256)``). An integer ``hidden`` means two layers of that width. The decoder reads the
    flattened latent. ``init``: ``"glorot"`` (Glorot-uniform weights, zero biases: Keras' ``Dense`` default,
    what the tf-imle notebook uses) or ``"torch"`` (PyTorch's ``nn.Linear`` default).

    Example:
        >>> model = DiscreteVAE(64, groups=20, n=20, hidden=(128, 64))
        >>> [m.out_features for m in model.encoder if isinstance(m, nn.Linear)]
        [128, 64, 400]
        >>> [m.out_features for m in model.decoder if isinstance(m, nn.Linear)]
        [64, 128, 64]
    """

    def __init__(self, num_pixels: int, groups: int, n: int, hidden: int | Sequence[int] = (256, 256),
                 init: str = "torch") -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}; got {init!r}")
        widths = [hidden, hidden] if isinstance(hidden, int) else [int(h) for h in hidden]
        self.groups, self.n = groups, n
        self.hidden = tuple(widths)
        self.encoder = _mlp([num_pixels, *widths, groups * n])
        self.decoder = _mlp([groups * n, *reversed(widths), num_pixels])
        if init == "glorot":
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.xavier_uniform_(module.weight)
                    nn.init.zeros_(module.bias)

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x).view(*x.shape[:-1], self.groups, self.n)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z.flatten(-2))


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def reconstruction_nll(x_logits: Tensor, x: Tensor) -> Tensor:
    """``−log p(x | z)`` of Bernoulli pixels, summed over pixels: ``[*S, B, D]`` → ``[*S, B]``."""
    return nn.functional.binary_cross_entropy_with_logits(x_logits, x.expand_as(x_logits), reduction="none").sum(-1)


# ---------------------------------------------------------------------------------------------------
# the estimators
# ---------------------------------------------------------------------------------------------------


class RateSumOfGamma:
    r"""The Sum-of-Gamma noise of the tf-imle DVAE notebook, which passes the scale as a rate.

    The notebook draws ``tf.random.gamma(shape, 1/κ, κ/i)``; TensorFlow's third argument is the *rate*, so
    each term is ``Gamma(shape 1/κ, scale i/κ)`` instead of the paper's ``Gamma(shape 1/κ, scale κ/i)``:

    ``ε = (τ/κ) (Σ_{i=1..s} Gamma(1/κ, scale i/κ) − log s)``, mean ``(τ/κ)(s(s+1)/(2κ²) − log s)``, variance
    ``(τ/κ)² Σ_i i²/κ³``. For κ = s = τ = 10: mean −1.75 and standard deviation 0.62, against 0.63 and 3.94
    for the paper's noise (:class:`discograd.noise.SumOfGamma`): about 6.3 times less spread, so τ = 10 acts
    like τ ≈ 1.6 of the paper's noise, and the sum over κ coordinates is no longer Gumbel. Only for
    reproducing the notebook (``sog_noise="tf_imle_rate"``); the library's noise is the paper's.

    Example:
        >>> import torch
        >>> eps = RateSumOfGamma(10, temperature=10.0).sample((200_000,), generator=torch.Generator().manual_seed(0))
        >>> round(float(eps.mean()), 1), round(float(eps.std()), 1)
        (-1.8, 0.6)
    """

    def __init__(self, k: int, temperature: float = 1.0, num_terms: int = 10) -> None:
        self.k, self.temperature, self.num_terms = int(k), float(temperature), int(num_terms)

    def sample(self, shape: Sequence[int] | torch.Size, *, generator: torch.Generator | None = None,
               device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Tensor:
        dtype = torch.get_default_dtype() if dtype is None else dtype
        work = dtype if dtype in (torch.float32, torch.float64) else torch.float32
        shape = tuple(int(d) for d in shape)
        concentration = torch.full((self.num_terms, *shape), 1.0 / self.k, dtype=work, device=device)
        terms = torch._standard_gamma(concentration, generator=generator)  # Gamma(1/κ, scale 1)
        scales = torch.arange(1, self.num_terms + 1, dtype=work, device=device) / self.k  # scale i/κ
        total = (terms * scales.view(-1, *([1] * len(shape)))).sum(0)
        return ((total - math.log(self.num_terms)) * (self.temperature / self.k)).to(dtype)

    def __repr__(self) -> str:
        return f"RateSumOfGamma(k={self.k}, temperature={self.temperature}, num_terms={self.num_terms})"


def subset_noise(kind: str, k: int) -> SumOfGamma | RateSumOfGamma:
    """The perturb-and-MAP noise of the k-subset methods: ``"scale"`` (the paper's Sum-of-Gamma) or
    ``"tf_imle_rate"`` (:class:`RateSumOfGamma`), both with κ = ``k`` and 10 terms."""
    if kind == "scale":
        return SumOfGamma(k)
    if kind == "tf_imle_rate":
        return RateSumOfGamma(k)
    raise ValueError(f"sog_noise must be one of {list(SOG_NOISES)}; got {kind!r}")


@dataclass
class EstimatorSettings:
    """The estimator hyperparameters that a run's config resolves (see ``DVAEConfig``).

    ``temperature`` is the τ of the Sum-of-Gamma noise of the k-subset perturb-and-MAP methods,
    ``cat_temperature`` the τ of the Gumbel noise of ``cat_imle`` and ``cat_straight_through``, and
    ``relaxation_temperature`` the τ of Gumbel-softmax and relaxed top-k (training sets it every epoch
    from the annealing schedule; the losses read it at every call).
    """

    method: str
    k: int
    num_samples: int
    step_size: float
    temperature: float
    relaxation_temperature: float
    aimle_target_nonzeros: float
    aimle_update_step: float
    aimle_initial_beta: float
    cat_temperature: float = 1.0
    sog_noise: str = "scale"


class Estimator:
    """``loss(model, theta, x) -> [S, B]``: the training reconstruction loss per sample and example (the KL
    is added by the caller); ``layer`` is the estimator module whose ``state_dict`` (AIMLE's β) is checkpointed, or ``None``."""

    def __init__(self, loss: Callable[[DiscreteVAE, Tensor, Tensor], Tensor], layer: nn.Module | None) -> None:
        self.loss = loss
        self.layer = layer


def build_estimator(settings: EstimatorSettings, generator: torch.Generator) -> Estimator:
    """The training reconstruction loss of ``settings.method``; ``generator`` draws all its noise.

    Sampling estimators draw ``S = num_samples`` samples per example (the score function at least 2, for
    its leave-one-out baseline). The caller reduces the ``[S, B]`` losses (``train.py``: the mean over
    samples and examples by default, as the original code, so each sample's upstream gradient ``g`` is
    ``∇_z(−log p(x|z)) / (S·B)`` and λ = 10 acts as 0.1 per instance for a batch of 100; or their sum, so
    that λ keeps its meaning for any batch size). The relaxations read ``settings.relaxation_temperature``
    at every call, so an annealing schedule can change it between steps.
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
        layer = straight_through(Argmax(), noise=Gumbel(), temperature=settings.cat_temperature, **samples)
    elif method == "cat_imle":
        layer = imle(Argmax(), noise=Gumbel(), target=PerturbedTarget(settings.step_size),
                     temperature=settings.cat_temperature, **samples)
    elif method == "subset_imle":
        layer = imle(TopK(k), noise=subset_noise(settings.sog_noise, k), target=PerturbedTarget(settings.step_size),
                     temperature=settings.temperature, **samples)
    elif method == "subset_aimle":
        target = AdaptiveTarget(target_nonzeros=settings.aimle_target_nonzeros, update_step=settings.aimle_update_step,
                                initial_beta=settings.aimle_initial_beta)
        layer = imle(TopK(k), noise=subset_noise(settings.sog_noise, k), target=target,
                     temperature=settings.temperature, **samples)
    elif method == "subset_straight_through":
        layer = straight_through(TopK(k), noise=subset_noise(settings.sog_noise, k), temperature=settings.temperature,
                                 **samples)
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

    Perturb-and-MAP methods: ``MAP(θ + τ ε)`` with their noise and τ (Gumbel for ``cat_*``; Sum-of-Gamma for
    k-subsets, which is *not* q(z; θ)); relaxations: their τ → 0 limit (Gumbel-max, which is an exact sample of
    q for categoricals, as the torch-adaptive-imle evaluation's hard Gumbel-softmax; top-k of Gumbel-perturbed
    logits); SIMPLE and the score function: exact samples of q.
    """
    method, k = settings.method, settings.k
    logits = logits.detach()
    shape = (num_samples, *logits.shape)
    if method in ("subset_simple", "cat_score_function"):
        return sample_posterior(logits, latent_kind(method), k, num_samples, generator)
    if method in ("subset_imle", "subset_aimle", "subset_straight_through"):
        eps = subset_noise(settings.sog_noise, k).sample(shape, generator=generator, device=logits.device,
                                                         dtype=logits.dtype)
        return TopK(k)(logits + settings.temperature * eps)
    eps = Gumbel().sample(shape, generator=generator, device=logits.device, dtype=logits.dtype)
    if method == "subset_relaxed_topk":
        return TopK(k)(logits + eps)
    scale = settings.cat_temperature if method in ("cat_imle", "cat_straight_through") else 1.0
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
    - ``proxy_kl``: the original code's categorical proxy KL (for categorical latents the exact KL), and
      ``proxy_loss = reconstruction + proxy_kl``.
    - with ``settings``: ``sampler_reconstruction``, the reconstruction term under the method's own training
      sampler (:func:`sample_forward`; for Sum-of-Gamma perturb-and-MAP it is not q(z; θ)), and
      ``original_loss = sampler_reconstruction + proxy_kl``: **the test loss the original code reports**
      (tf-imle DVAE notebook, torch-adaptive-imle ``cli/vae-cli.py``).
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
    if settings is not None:
        out["original_loss"] = out["sampler_reconstruction"] + out["proxy_kl"]
    return out
