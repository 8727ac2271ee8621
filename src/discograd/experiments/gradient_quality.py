r"""Gradient-quality benchmark: every estimator's gradient against exact references on k-subset problems.

``discograd bench gradients [--quick] [--out DIR]``. For a k-subset problem (``TopK(10, 5)``, whose
``C(10, 5) = 252`` states are enumerated, and ``TopK(20, 10)``, handled by the ``O(n·k)`` dynamic
programme), scores ``θ ~ N(0, I)`` and a random downstream loss ``L(z)``:

- ``sqdist``: ``‖z − b‖²`` with ``b = |N(0, I)|`` (the paper's synthetic loss);
- ``linear``: ``⟨c, z⟩`` with ``c ~ N(0, I)``;
- ``quadratic``: ``zᵀAz + ⟨c, z⟩`` with ``A = (M + Mᵀ)/2``, ``M_ij ~ N(0, 1/n)``, ``c ~ N(0, I)``;

each estimator's gradient with respect to θ is compared with **two** exact references (every metric
says which one it uses):

- ``expected``: ``∇_θ E_{z ~ p(z; θ)}[L(z)]`` with ``p(z; θ) ∝ exp⟨z, θ⟩`` over the k-subsets. By
  enumeration for ``TopK(10, 5)``. For ``TopK(20, 10)`` only where it is a function of the marginals
  ``μ(θ)``: ``E⟨c, z⟩ = ⟨c, μ⟩`` and, since ``z_i² = z_i`` for 0/1 vectors,
  ``E‖z − b‖² = Σ_i μ_i (1 − 2 b_i) + ‖b‖²``, both linear in ``μ``, so their gradients are
  ``J_μ c`` and ``J_μ (1 − 2b)`` (autograd through :func:`~discograd.exact.topk_marginals`). The
  quadratic loss needs pairwise marginals there: ``n/a``.
- ``marginal``: ``∇_θ L(μ(θ)) = J_μ ∇L(μ)``, the quantity I-MLE tends to as ``λ → 0`` (for the
  perturb-and-MAP distribution of its noise) and SIMPLE estimates without bias for losses whose
  gradient is linear in ``z``. For the linear loss both references coincide.

Metrics, over ``R`` independent replicates of the estimator's mean-of-``S``-samples estimate ``ĝ_r``
(replicates are ``R`` identical instances in one batch, which every estimator treats independently),
with ``ḡ`` their mean and ``g`` the reference (see :func:`gradient_metrics`):

- ``cosine``: ``cos(ḡ, g)`` (0 when ``ḡ = 0``);
- ``bias``: ``‖ḡ − g‖ / ‖g‖``, with its Monte-Carlo ``bias_floor`` ``sqrt(tr Cov(ĝ) / R) / ‖g‖``, the
  value an unbiased estimator would show: a bias close to its floor is consistent with zero;
- ``variance``: the mean per-coordinate variance of ``ĝ_r`` divided by ``‖g‖²`` (the variance of the
  estimate one SGD step sees with ``S`` samples; it falls as ``1/S`` for independent samples);
- ``cosine_single``: the mean of ``cos(ĝ_r, g)`` over replicates (what one step sees);
- ``norm_ratio``: ``‖ḡ‖ / ‖g‖``; ``zero_fraction``: the fraction of replicates with ``ĝ_r = 0``.

**The λ scale.** The I-MLE target ``θ' = θ − λ g`` uses the upstream gradient ``g = ∂ℒ/∂z`` of the
*total* objective ``ℒ``. If ``ℒ`` averages the loss over ``S`` samples (or over the batch), every ``g``
shrinks by ``1/S`` (``1/B``) and the effective step is ``λ/S``: a λ tuned with one sample silently
means something else with ten. The benchmark therefore sums the loss over instances and samples (each
``g`` is the per-sample ``∇L(z_s)``, so λ is in units of ``∇L``) and divides the resulting θ gradient
by ``S`` to get the mean estimate. The perturbed optimizer already averages its samples inside the
layer (its output is one point), and AIMLE's ``λ = β‖θ‖/‖g‖`` is invariant to the scale of ``g``.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import (
    AdaptiveTarget,
    Gumbel,
    Normal,
    PerturbedTarget,
    SumOfGamma,
    TopK,
    blackbox,
    imle,
    k_concrete,
    perturbed,
    relaxed_topk,
    score_function,
    simple_topk,
    straight_through,
)
from ..exact import enumeration_expectation, enumeration_marginals, ksubset_states, topk_marginals
from ._io import atomic_write_text, environment_info, pyplot, read_json, save_figure, write_json

__all__ = [
    "PROBLEMS",
    "LOSSES",
    "ESTIMATORS",
    "TARGETS",
    "EstimatorSpec",
    "DownstreamLoss",
    "GradientQualityConfig",
    "make_loss",
    "make_theta",
    "exact_gradients",
    "estimate_gradients",
    "gradient_metrics",
    "run_gradient_quality",
    "format_tables",
]

#: problem name -> (n, k)
PROBLEMS: dict[str, tuple[int, int]] = {"topk10": (10, 5), "topk20": (20, 10)}
#: the downstream losses: ``‖z − b‖²``, a linear ``⟨c, z⟩`` and a quadratic ``zᵀAz + ⟨c, z⟩``
LOSSES = ("sqdist", "linear", "quadratic")
#: reference name -> how it is written in tables
TARGETS = {"expected": "∇E_p[L(z)]", "marginal": "∇L(μ(θ))"}
_MAX_ENUMERATED = 1000  # enumerate the feasible set up to this many states (C(10, 5) = 252)


# ------------------------------------------------------------------------------------------------
# downstream losses and exact references
# ------------------------------------------------------------------------------------------------


@dataclass
class DownstreamLoss:
    """``L(z) = zᵀAz + ⟨c, z⟩ + ‖z − b‖²``-style losses over the last dimension (unused terms are ``None``).

    ``__call__`` accepts 0/1 vectors and relaxed points alike (``[*, n] -> [*]``).
    ``expected_from_marginals(μ)`` is ``E_p[L(z)]`` as a function of the marginals when that is exact
    (no quadratic term), else ``None``.
    """

    name: str
    b: Tensor | None = None
    c: Tensor | None = None
    a: Tensor | None = None

    def __call__(self, z: Tensor) -> Tensor:
        value = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        if self.b is not None:
            value = value + ((z - self.b) ** 2).sum(-1)
        if self.c is not None:
            value = value + (z * self.c).sum(-1)
        if self.a is not None:
            value = value + ((z @ self.a) * z).sum(-1)
        return value

    def expected_from_marginals(self, mu: Tensor) -> Tensor | None:
        if self.a is not None:
            return None  # needs E[z_i z_j], not only μ
        value = torch.zeros(mu.shape[:-1], dtype=mu.dtype, device=mu.device)
        if self.b is not None:  # z_i^2 = z_i on 0/1 vectors
            value = value + (mu * (1 - 2 * self.b)).sum(-1) + (self.b**2).sum(-1)
        if self.c is not None:
            value = value + (mu * self.c).sum(-1)
        return value


def _seed(*parts: Any) -> int:
    return zlib.crc32("/".join(str(p) for p in parts).encode())


def make_theta(problem: str, seed: int = 0) -> Tensor:
    """The scores ``θ ~ N(0, I)`` of ``problem`` (float64, shape ``[n]``)."""
    n, _ = PROBLEMS[problem]
    g = torch.Generator().manual_seed(_seed(seed, problem, "theta"))
    return torch.randn(n, generator=g, dtype=torch.float64)


def make_loss(problem: str, loss: str, seed: int = 0) -> DownstreamLoss:
    """The random downstream loss ``loss`` (one of :data:`LOSSES`) for ``problem``."""
    n, _ = PROBLEMS[problem]
    g = torch.Generator().manual_seed(_seed(seed, problem, loss))
    if loss == "sqdist":
        return DownstreamLoss(loss, b=torch.randn(n, generator=g, dtype=torch.float64).abs())
    if loss == "linear":
        return DownstreamLoss(loss, c=torch.randn(n, generator=g, dtype=torch.float64))
    if loss == "quadratic":
        m = torch.randn(n, n, generator=g, dtype=torch.float64) / math.sqrt(n)
        return DownstreamLoss(loss, a=(m + m.T) / 2, c=torch.randn(n, generator=g, dtype=torch.float64))
    raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}")


def exact_gradients(theta: Tensor, k: int, loss: DownstreamLoss) -> dict[str, Tensor | None]:
    """The two references for scores ``theta`` (``[n]``): ``{"expected": ∇E_p[L], "marginal": ∇L(μ)}``.

    ``expected`` is by enumeration when ``C(n, k) <= 1000``, else from the marginals when ``E_p[L]`` is a
    function of ``μ`` (linear and squared-distance losses), else ``None``.
    """
    n = theta.shape[-1]
    leaf = theta.detach().clone().requires_grad_()
    if math.comb(n, k) <= _MAX_ENUMERATED:
        states = ksubset_states(n, k, dtype=theta.dtype)
        expected_value = enumeration_expectation(states, leaf, loss(states))
        mu = enumeration_marginals(states, leaf)
    else:
        mu = topk_marginals(leaf, k)
        expected_value = loss.expected_from_marginals(mu)
    refs: dict[str, Tensor | None] = {"expected": None}
    if expected_value is not None:
        refs["expected"] = torch.autograd.grad(expected_value, leaf, retain_graph=True)[0]
    refs["marginal"] = torch.autograd.grad(loss(mu), leaf)[0]
    return refs


# ------------------------------------------------------------------------------------------------
# metrics
# ------------------------------------------------------------------------------------------------


def _cosine(x: Tensor, y: Tensor) -> Tensor:
    """Cosine over the last dimension; 0 where either vector is zero."""
    denom = x.norm(dim=-1) * y.norm(dim=-1)
    return torch.where(denom > 0, (x * y).sum(-1) / denom.clamp_min(torch.finfo(x.dtype).tiny), torch.zeros_like(denom))


def gradient_metrics(estimates: Tensor, exact: Tensor) -> dict[str, float]:
    """Quality of ``R`` independent gradient estimates ``[R, n]`` against the exact gradient ``[n]``.

    Returns ``cosine`` (of the mean estimate), ``bias`` (``‖mean − exact‖ / ‖exact‖``), ``bias_floor``
    (``sqrt(tr Cov / R) / ‖exact‖``, the expected bias of an unbiased estimator from Monte-Carlo error
    alone), ``variance`` (mean per-coordinate variance, unbiased, over ``‖exact‖²``; 0 when ``R = 1``),
    ``cosine_single`` (mean cosine of single estimates), ``norm_ratio`` (``‖mean‖ / ‖exact‖``) and
    ``zero_fraction`` (estimates that are exactly zero).

    Example:
        >>> import torch
        >>> g = torch.tensor([1.0, -1.0, 0.0])
        >>> m = gradient_metrics(g.expand(4, 3), g)
        >>> round(m["cosine"], 12), m["bias"], m["variance"]
        (1.0, 0.0, 0.0)
    """
    if estimates.dim() != 2 or exact.dim() != 1 or estimates.shape[1] != exact.shape[0]:
        raise ValueError(
            f"estimates must be [R, n] and exact [n]; got {tuple(estimates.shape)} and {tuple(exact.shape)}"
        )
    ref_norm = float(exact.norm())
    if not ref_norm > 0:
        raise ValueError("the exact gradient is zero: relative metrics are undefined")
    estimates = estimates.to(torch.float64)
    exact = exact.to(torch.float64)
    r = estimates.shape[0]
    mean = estimates.mean(0)
    var = estimates.var(0, correction=1) if r > 1 else torch.zeros_like(mean)
    return {
        "cosine": float(_cosine(mean, exact)),
        "bias": float((mean - exact).norm()) / ref_norm,
        "bias_floor": math.sqrt(float(var.sum()) / r) / ref_norm,
        "variance": float(var.mean()) / ref_norm**2,
        "cosine_single": float(_cosine(estimates, exact.expand_as(estimates)).mean()),
        "norm_ratio": float(mean.norm()) / ref_norm,
        "zero_fraction": float((estimates == 0).all(-1).to(torch.float64).mean()),
    }


# ------------------------------------------------------------------------------------------------
# estimators
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EstimatorSpec:
    """How the benchmark runs one estimator.

    ``hyper``: the name of its swept hyperparameter (``None``: none); ``natural_target``: what its mean
    estimates (in words); ``deterministic``: no noise (one sample size, two replicates suffice);
    ``min_samples``: the smallest ``S`` it accepts.
    """

    label: str
    hyper: str | None
    natural_target: str
    deterministic: bool = False
    min_samples: int = 1


#: estimator name -> its label, hyperparameter and the gradient its mean estimates (:class:`EstimatorSpec`)
ESTIMATORS: dict[str, EstimatorSpec] = {
    "imle_sog": EstimatorSpec("I-MLE (SoG)", "λ", "∇L(μ) as λ→0, μ of SoG perturb-and-MAP (≠ p for k > 1)"),
    "imle_gumbel": EstimatorSpec("I-MLE (Gumbel)", "λ", "∇L(μ) as λ→0, μ of Gumbel perturb-and-MAP (≠ p)"),
    "imle_two_sided": EstimatorSpec("I-MLE two-sided (SoG)", "λ", "∇L(μ) as λ→0 (central difference)"),
    "aimle": EstimatorSpec("AIMLE (SoG, adaptive λ)", "target nonzeros", "∇L(μ), λ = β‖θ‖/‖g‖ adapted"),
    "blackbox": EstimatorSpec("blackbox", "λ", "interpolation of L(MAP(θ)) (no noise)", deterministic=True),
    "straight_through": EstimatorSpec("straight-through (SoG)", None, "none (identity Jacobian)"),
    "perturbed": EstimatorSpec("perturbed optimizer (Normal)", "σ", "∇L(y_σ(θ)), y_σ = E[MAP(θ + σε)]"),
    "simple": EstimatorSpec("SIMPLE", None, "E_z[J_μ ∇L(z)] = ∇L(μ) when ∇L is linear in z"),
    "score_function": EstimatorSpec("score function (leave-one-out)", None, "∇E_p[L(z)] (unbiased)", min_samples=2),
    "relaxed_topk": EstimatorSpec("relaxed top-k (SoftSub)", "τ", "∇ of the relaxed objective E_G[L(soft)]"),
    "k_concrete": EstimatorSpec("k-Concrete (L2X)", "τ", "∇ of the relaxed objective E_G[L(soft)]"),
}


def estimate_gradients(
    estimator: str,
    theta: Tensor,
    k: int,
    loss: DownstreamLoss,
    *,
    num_samples: int,
    hyper: float | None,
    num_instances: int,
    generator: torch.Generator,
    aimle_target: AdaptiveTarget | None = None,
) -> Tensor:
    """``num_instances`` independent mean-of-``num_samples`` estimates ``[R, n]`` of ``∂L/∂θ`` at ``theta`` (``[n]``).

    The instances are copies of ``theta`` in one batch. The loss is **summed** over instances and
    samples (so each sample's upstream gradient is its own ``∇L(z_s)``, the unit of I-MLE's λ), and the
    θ gradient is divided by ``S`` (see the module docstring).
    """
    s = num_samples
    x = theta.detach().unsqueeze(0).expand(num_instances, -1).clone().requires_grad_()
    solver = TopK(k)
    divide = s
    if estimator in ("imle_sog", "imle_gumbel", "imle_two_sided"):
        noise = Gumbel() if estimator == "imle_gumbel" else SumOfGamma(k)
        target = PerturbedTarget(hyper, two_sided=estimator == "imle_two_sided")
        objective = loss(imle(solver, noise=noise, target=target, num_samples=s, generator=generator)(x)).sum()
    elif estimator == "aimle":
        if aimle_target is None:
            raise ValueError("aimle needs an AdaptiveTarget (aimle_target)")
        objective = loss(imle(solver, noise=SumOfGamma(k), target=aimle_target, num_samples=s, generator=generator)(x)).sum()
    elif estimator == "blackbox":
        objective = loss(blackbox(solver, step_size=hyper)(x)).sum()
        divide = 1
    elif estimator == "straight_through":
        objective = loss(straight_through(solver, noise=SumOfGamma(k), num_samples=s, generator=generator)(x)).sum()
    elif estimator == "perturbed":
        # the layer returns the mean of its S solutions and averages inside its backward pass
        layer = perturbed(solver, noise=Normal(), noise_scale=hyper, num_samples=s, generator=generator)
        objective = loss(layer(x)).sum()
        divide = 1
    elif estimator == "simple":
        objective = loss(simple_topk(x, k, num_samples=s, generator=generator)).sum()
    elif estimator == "score_function":
        sf = score_function(solver, num_samples=s, baseline="leave_one_out", generator=generator)
        z = sf(x)
        objective = sf.surrogate(x, z, loss(z)).sum()
    elif estimator in ("relaxed_topk", "k_concrete"):
        relax = relaxed_topk if estimator == "relaxed_topk" else k_concrete
        objective = loss(relax(x.unsqueeze(0).expand(s, -1, -1), k, temperature=hyper, generator=generator)).sum()
    else:
        raise ValueError(f"estimator must be one of {list(ESTIMATORS)}; got {estimator!r}")
    (grad,) = torch.autograd.grad(objective, x)
    return grad / divide


# ------------------------------------------------------------------------------------------------
# the benchmark
# ------------------------------------------------------------------------------------------------


@dataclass
class GradientQualityConfig:
    """What ``discograd bench gradients`` runs. ``quick()`` is the smoke-test preset."""

    problems: list[str] = field(default_factory=lambda: list(PROBLEMS))
    losses: list[str] = field(default_factory=lambda: list(LOSSES))
    estimators: list[str] = field(default_factory=lambda: list(ESTIMATORS))
    num_samples: list[int] = field(default_factory=lambda: [1, 10, 100])
    #: λ (I-MLE, blackbox), σ (perturbed) and τ (relaxations) values
    hypers: list[float] = field(default_factory=lambda: [0.1, 0.3, 1.0, 3.0, 10.0])
    #: AIMLE's target number of non-zero gradient entries per sample
    aimle_targets: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0])
    aimle_update_step: float = 0.05
    aimle_initial_beta: float = 0.5
    aimle_warmup_passes: int = 150
    aimle_warmup_instances: int = 256
    #: replicates R per cell: min(max_instances, max(min_instances, instance_budget // S))
    max_instances: int = 4000
    min_instances: int = 400
    instance_budget: int = 40000
    seed: int = 0

    @classmethod
    def quick(cls) -> "GradientQualityConfig":
        return cls(problems=["topk10"], num_samples=[1, 10], hypers=[1.0], aimle_targets=[2.0], aimle_warmup_passes=20,
                   aimle_warmup_instances=64, max_instances=200, min_instances=50, instance_budget=2000)

    def validate(self) -> None:
        for name, allowed in (("problems", PROBLEMS), ("losses", LOSSES), ("estimators", ESTIMATORS)):
            values = getattr(self, name)
            if not values:
                raise ValueError(f"{name} must not be empty")
            unknown = sorted(set(values) - set(allowed))
            if unknown:
                raise ValueError(f"{name} must be among {list(allowed)}; got unknown {unknown}")
        if not self.num_samples or any(not isinstance(s, int) or s < 1 for s in self.num_samples):
            raise ValueError(f"num_samples must be integers >= 1; got {self.num_samples}")
        for name in ("hypers", "aimle_targets"):
            values = getattr(self, name)
            if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
                raise ValueError(f"{name} must be finite numbers > 0; got {values}")
        for name in ("aimle_warmup_passes", "aimle_warmup_instances", "max_instances", "min_instances", "instance_budget"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.min_instances > self.max_instances:
            raise ValueError(f"min_instances must be <= max_instances; got {self.min_instances} > {self.max_instances}")
        if self.min_instances < 2:
            raise ValueError(f"min_instances must be >= 2 (variances need two replicates); got {self.min_instances}")
        if not self.aimle_update_step >= 0 or not self.aimle_initial_beta >= 0:
            raise ValueError("aimle_update_step and aimle_initial_beta must be >= 0")

    def instances(self, num_samples: int) -> int:
        return min(self.max_instances, max(self.min_instances, self.instance_budget // num_samples))


def _cells(config: GradientQualityConfig) -> list[dict[str, Any]]:
    cells = []
    for problem in config.problems:
        for loss in config.losses:
            for estimator in config.estimators:
                spec = ESTIMATORS[estimator]
                if spec.hyper is None:
                    hypers: list[float | None] = [None]
                elif estimator == "aimle":
                    hypers = list(config.aimle_targets)
                else:
                    hypers = list(config.hypers)
                samples = [min(config.num_samples)] if spec.deterministic else list(config.num_samples)
                for hyper in hypers:
                    for s in samples:
                        key = f"{problem}/{loss}/{estimator}/{spec.hyper}={hyper}/S={s}"
                        cells.append({"key": key, "problem": problem, "loss": loss, "estimator": estimator,
                                      "hyper": hyper, "num_samples": s})
    return cells


def _run_cell(cell: dict[str, Any], config: GradientQualityConfig, theta: Tensor, loss: DownstreamLoss,
              refs: dict[str, Tensor | None]) -> dict[str, Any]:
    spec = ESTIMATORS[cell["estimator"]]
    s = cell["num_samples"]
    out: dict[str, Any] = dict(cell)
    if s < spec.min_samples:
        out["skipped"] = f"needs num_samples >= {spec.min_samples}"
        return out
    _, k = PROBLEMS[cell["problem"]]
    generator = torch.Generator().manual_seed(_seed(config.seed, cell["key"]))
    num_instances = 2 if spec.deterministic else config.instances(s)
    start = time.perf_counter()
    target = None
    if cell["estimator"] == "aimle":
        # a fresh, reset AdaptiveTarget per cell; β is warmed up on this problem with one sample per
        # instance (its equilibrium does not depend on S: the count is averaged per sample)
        target = AdaptiveTarget(target_nonzeros=cell["hyper"], update_step=config.aimle_update_step,
                                initial_beta=config.aimle_initial_beta)
        target.reset()
        for _ in range(config.aimle_warmup_passes):
            estimate_gradients("aimle", theta, k, loss, num_samples=1, hyper=None,
                               num_instances=config.aimle_warmup_instances, generator=generator, aimle_target=target)
        out["aimle_beta"] = target.beta
    estimates = estimate_gradients(cell["estimator"], theta, k, loss, num_samples=s, hyper=cell["hyper"],
                                   num_instances=num_instances, generator=generator, aimle_target=target)
    out["seconds"] = time.perf_counter() - start
    out["num_instances"] = num_instances
    out["metrics"] = {name: (None if ref is None else gradient_metrics(estimates, ref)) for name, ref in refs.items()}
    return out


def run_gradient_quality(config: GradientQualityConfig, out_dir: str | Path | None = None, *, progress: bool = True,
                         plot: bool = True) -> dict[str, Any]:
    """Run every cell of ``config``; write ``config.json``, ``cells.json`` (after each cell, atomically),
    ``results.json``, ``results.md`` and ``quality_<problem>.png`` to ``out_dir``. Cells already in
    ``out_dir`` for the same config are not run again (resume)."""
    config.validate()
    out = Path(out_dir) if out_dir is not None else None
    done: dict[str, dict[str, Any]] = {}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if (out / "config.json").exists() and (out / "cells.json").exists():
            if read_json(out / "config.json") == asdict(config):
                done = {c["key"]: c for c in read_json(out / "cells.json").get("cells", [])}
        write_json(out / "config.json", asdict(config))
    cells = _cells(config)
    wanted = {c["key"] for c in cells}
    done = {key: c for key, c in done.items() if key in wanted}
    instances = {(p, l): (make_theta(p, config.seed), make_loss(p, l, config.seed)) for p in config.problems
                 for l in config.losses}
    references = {pl: exact_gradients(theta, PROBLEMS[pl[0]][1], loss) for pl, (theta, loss) in instances.items()}
    todo = [c for c in cells if c["key"] not in done]
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="bench gradients", unit="cell")
    last_write = time.perf_counter()

    def save() -> None:
        if out is not None:
            write_json(out / "cells.json", {"cells": [done[c["key"]] for c in cells if c["key"] in done]})

    try:
        for cell in todo:
            if bar is not None:
                bar.set_postfix_str(cell["key"])
            theta, loss = instances[(cell["problem"], cell["loss"])]
            done[cell["key"]] = _run_cell(cell, config, theta, loss, references[(cell["problem"], cell["loss"])])
            if bar is not None:
                bar.update(1)
            if time.perf_counter() - last_write > 1.0:
                save()
                last_write = time.perf_counter()
    finally:
        save()
        if bar is not None:
            bar.close()
    results = {
        "config": asdict(config),
        "targets": TARGETS,
        "problems": {p: {"n": PROBLEMS[p][0], "k": PROBLEMS[p][1], "theta": instances[(p, config.losses[0])][0].tolist()}
                     for p in config.problems},
        "references": {f"{p}/{l}": {t: (None if g is None else g.tolist()) for t, g in refs.items()}
                       for (p, l), refs in references.items()},
        "estimators": {name: asdict(ESTIMATORS[name]) for name in config.estimators},
        "cells": [done[c["key"]] for c in cells],
        "environment": environment_info(),
    }
    if out is not None:
        write_json(out / "results.json", results)
        atomic_write_text(out / "results.md", format_tables(results) + "\n")
        if plot:
            for problem in config.problems:
                plot_quality(results, problem, out / f"quality_{problem}.png")
    return results


# ------------------------------------------------------------------------------------------------
# reporting
# ------------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _fmt_var(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2g}" if value != 0 else "0"


def _lookup(results: dict[str, Any]) -> dict[tuple, dict[str, Any]]:
    return {(c["problem"], c["loss"], c["estimator"], c["hyper"], c["num_samples"]): c for c in results["cells"]}


def _default_hyper(estimator: str, config: dict[str, Any]) -> float | None:
    spec = ESTIMATORS[estimator]
    if spec.hyper is None:
        return None
    values = config["aimle_targets"] if estimator == "aimle" else config["hypers"]
    preferred = 2.0 if estimator == "aimle" else 1.0
    return preferred if preferred in values else values[len(values) // 2]


def _metric(cell: dict[str, Any] | None, target: str, name: str) -> float | None:
    if cell is None or "metrics" not in cell or cell["metrics"].get(target) is None:
        return None
    return cell["metrics"][target][name]


def format_tables(results: dict[str, Any]) -> str:
    """Markdown: per problem and loss, a headline table (each estimator at its default hyperparameter,
    both references) and a sweep table over λ / σ / τ; then every cell."""
    cfg = results["config"]
    cells = _lookup(results)
    samples = sorted(cfg["num_samples"])
    s_var = 10 if 10 in samples else samples[-1]
    s_bias = samples[-1]
    lines = [
        "Gradient quality on k-subset problems against exact references. Targets: "
        + "; ".join(f"`{k}` = {v}" for k, v in TARGETS.items())
        + ". cos = cosine of the mean estimate; bias = ‖E ĝ − g‖/‖g‖ (± its Monte-Carlo floor: "
        "an unbiased estimator shows about the floor); var = mean per-coordinate variance of the "
        "mean-of-S estimate / ‖g‖². Loss summed over samples and instances, θ gradient divided by S.",
        "",
    ]
    for problem in cfg["problems"]:
        n, k = PROBLEMS[problem]
        for loss in cfg["losses"]:
            lines.append(f"### TopK({n}, {k}), loss `{loss}`")
            lines.append("")
            refs = results["references"].get(f"{problem}/{loss}", {})
            same = refs.get("expected") is not None and torch.allclose(
                torch.tensor(refs["expected"]), torch.tensor(refs["marginal"]), rtol=1e-9, atol=1e-12)
            for target, label in TARGETS.items():
                if same and target == "marginal":
                    continue
                if same:
                    label = f"{label} = {TARGETS['marginal']}, identical for this loss"
                header = ["estimator", "hyper"] + [f"cos S={s}" for s in samples] + [f"bias S={s_bias}", f"var S={s_var}"]
                rows = []
                for est in cfg["estimators"]:
                    spec = ESTIMATORS[est]
                    hyper = _default_hyper(est, cfg)
                    hyper_text = "" if spec.hyper is None else f"{spec.hyper}={hyper:g}"
                    s_list = [samples[0]] if spec.deterministic else samples
                    cos = [_fmt(_metric(cells.get((problem, loss, est, hyper, s)), target, "cosine")) if s in s_list
                           else "=" for s in samples]
                    bias_s = samples[0] if spec.deterministic else s_bias
                    var_s = samples[0] if spec.deterministic else s_var
                    bc = cells.get((problem, loss, est, hyper, bias_s))
                    bias = _metric(bc, target, "bias")
                    bias_text = "n/a" if bias is None else f"{bias:.3f} ± {_metric(bc, target, 'bias_floor'):.3f}"
                    var = _fmt_var(_metric(cells.get((problem, loss, est, hyper, var_s)), target, "variance"))
                    rows.append([spec.label, hyper_text, *cos, bias_text, var])
                if all(r[2] == "n/a" for r in rows):
                    lines.append(f"Target `{target}` ({label}): n/a for this loss and problem size.")
                    lines.append("")
                    continue
                lines.append(f"Target `{target}` ({label}):")
                lines.append("")
                lines.append("| " + " | ".join(header) + " |")
                lines.append("|" + "---|" * len(header))
                lines.extend("| " + " | ".join(r) + " |" for r in rows)
                lines.append("")
            swept = [e for e in cfg["estimators"] if ESTIMATORS[e].hyper is not None]
            if swept:
                hyper_values = cfg["hypers"]
                lines.append(f"Sweep (S={s_bias}; blackbox S={samples[0]}): cosine / bias against `marginal` "
                             f"({TARGETS['marginal']}), and cosine against `expected`:")
                lines.append("")
                header = ["estimator"] + [f"{v:g}" for v in hyper_values]
                lines.append("| " + " | ".join(header) + " |")
                lines.append("|" + "---|" * len(header))
                for est in swept:
                    spec = ESTIMATORS[est]
                    values = cfg["aimle_targets"] if est == "aimle" else hyper_values
                    if est == "aimle":
                        continue  # its own axis, reported in the full table
                    s = samples[0] if spec.deterministic else s_bias
                    entries = []
                    for v in values:
                        c = cells.get((problem, loss, est, v, s))
                        entries.append(f"{_fmt(_metric(c, 'marginal', 'cosine'), 2)} / {_fmt(_metric(c, 'marginal', 'bias'), 2)}"
                                       f" / {_fmt(_metric(c, 'expected', 'cosine'), 2)}")
                    lines.append(f"| {spec.label} ({spec.hyper}) | " + " | ".join(entries) + " |")
                lines.append("")
    lines.append("### Every cell")
    lines.append("")
    header = ["problem", "loss", "estimator", "hyper", "S", "R"]
    for t in TARGETS:
        header += [f"cos ({t})", f"bias ({t})", f"floor ({t})", f"var ({t})", f"cos1 ({t})"]
    header += ["zero frac", "s"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for c in results["cells"]:
        spec = ESTIMATORS[c["estimator"]]
        hyper = "" if c["hyper"] is None else f"{spec.hyper}={c['hyper']:g}"
        if "skipped" in c:
            lines.append(f"| {c['problem']} | {c['loss']} | {c['estimator']} | {hyper} | {c['num_samples']} | | "
                         + " | ".join(["skipped: " + c["skipped"]] + [""] * (len(header) - 7)) + " |")
            continue
        row = [c["problem"], c["loss"], c["estimator"], hyper, str(c["num_samples"]), str(c["num_instances"])]
        for t in TARGETS:
            row += [_fmt(_metric(c, t, "cosine")), _fmt(_metric(c, t, "bias")), _fmt(_metric(c, t, "bias_floor")),
                    _fmt_var(_metric(c, t, "variance")), _fmt(_metric(c, t, "cosine_single"))]
        zero = c["metrics"]["marginal"]["zero_fraction"]
        row += [f"{zero:.2f}", f"{c['seconds']:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot_quality(results: dict[str, Any], problem: str, path: str | Path) -> Path:
    """One figure per problem: rows = losses; columns = cosine and bias against ``marginal`` vs the
    hyperparameter (largest S), and variance vs S (default hyperparameter). Needs matplotlib."""
    plt = pyplot()
    cfg = results["config"]
    cells = _lookup(results)
    samples = sorted(cfg["num_samples"])
    losses = cfg["losses"]
    fig, axes = plt.subplots(len(losses), 3, figsize=(15, 3.6 * len(losses)), dpi=100, squeeze=False)
    palette = plt.get_cmap("tab20").colors
    markers = "osD^v<>phX*"
    floor = 1e-3  # the bias axis is logarithmic; exact zeros (SIMPLE on a linear loss) are drawn at the floor
    for row, loss in enumerate(losses):
        for i, est in enumerate(cfg["estimators"]):
            spec = ESTIMATORS[est]
            colour = palette[(2 * i) % 20 + (2 * i) // 20]
            marker = markers[i % len(markers)]
            s_top = samples[0] if spec.deterministic else samples[-1]
            if spec.hyper is not None and est != "aimle":
                xs = cfg["hypers"]
                cs = [cells.get((problem, loss, est, v, s_top)) for v in xs]
                for col, name in ((0, "cosine"), (1, "bias")):
                    ys = [_metric(c, "marginal", name) for c in cs]
                    pts = [(x, max(y, floor) if col == 1 else y) for x, y in zip(xs, ys) if y is not None]
                    if pts:
                        axes[row, col].plot(*zip(*pts), marker=marker, color=colour, label=spec.label)
            else:
                hyper = _default_hyper(est, cfg)
                c = cells.get((problem, loss, est, hyper, s_top))
                for col, name in ((0, "cosine"), (1, "bias")):
                    y = _metric(c, "marginal", name)
                    if y is not None:
                        axes[row, col].axhline(max(y, floor) if col == 1 else y, color=colour, linestyle="--",
                                               label=spec.label)
            if not spec.deterministic:
                hyper = _default_hyper(est, cfg)
                pts = [(s, _metric(cells.get((problem, loss, est, hyper, s)), "marginal", "variance")) for s in samples]
                pts = [(s, v) for s, v in pts if v is not None and v > 0]
                if pts:
                    axes[row, 2].plot(*zip(*pts), marker=marker, color=colour, label=spec.label)
        n, k = PROBLEMS[problem]
        axes[row, 0].set_ylabel(f"loss {loss}")
        axes[row, 0].set_title(f"cosine vs λ/σ/τ (S={samples[-1]}; dashed: no hyperparameter)", fontsize=9)
        axes[row, 1].set_title(f"bias ‖E ĝ − g‖/‖g‖ vs λ/σ/τ (floored at {floor:g})", fontsize=9)
        axes[row, 2].set_title("variance / ‖g‖² vs S (default hyperparameter)", fontsize=9)
        for col in range(3):
            axes[row, col].set_xscale("log")
        axes[row, 1].set_yscale("log")
        axes[row, 2].set_yscale("log")
    handles, labels = axes[0, 2].get_legend_handles_labels()
    for ax in axes[0, :2]:  # estimators without a variance curve (blackbox) appear only here
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    n, k = PROBLEMS[problem]
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=8)
    fig.suptitle(f"TopK({n}, {k}): gradient quality against the exact ∇L(μ(θ))")
    height = fig.get_figheight()  # fixed margins in inches (tight_layout is slow with log axes)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=1.0 / height, top=1 - 0.8 / height, wspace=0.22,
                        hspace=0.45 if len(losses) > 1 else 0.2)
    return save_figure(fig, path)
