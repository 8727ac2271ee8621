r"""The synthetic k-subset study of the I-MLE paper (Niepert et al., 2021, Section 5.1).

Minimise ``L(θ) = E_{z ~ p(z; θ)} ‖z − b‖²`` over the 5-subsets of 10 elements (``C(10, 5) = 252``
states), ``b = |N(0, I)|``, by SGD on θ with gradients from each estimator. Every repetition draws its own
``b`` and initial θ; all repetitions run together as one batch (they are independent instances).

Two optimality gaps are reported, both relative to ``min_{z ∈ C} ‖z − b‖²`` and averaged over
repetitions:

- the **exact gap** ``L(θ_t) − min``, with ``L`` the expectation under the exponential family
  ``p(z; θ) ∝ exp<z, θ>`` computed exactly by enumeration;
- the **sampled gap**: the expected loss under the distribution the method actually samples from in its
  forward pass (Sum-of-Gamma or Gumbel perturb-and-MAP, estimated with ``num_eval_samples`` draws; for
  ``exact``, p itself). Perturb-and-MAP with ``SoG(k, 1)`` noise is much colder than p for k > 1 (on
  TopK(10, 5) it is closest to p at temperature ≈ 0.25), so the two gaps rank the methods differently.

Methods:

- ``imle_sog``: I-MLE, Sum-of-Gamma noise ``SoG(k, 1)``, PID target with step size λ.
- ``imle_gumbel``: the same with Gumbel(0, 1) noise.
- ``straight_through``: the same SoG perturb-and-MAP forward, identity backward.
- ``exact``: the exact gradient of ``L(θ)`` (autograd through the enumeration): the reference.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from .. import Gumbel, PerturbedTarget, SumOfGamma, TopK, imle, straight_through
from ..exact import enumeration_expectation, ksubset_states
from ._io import atomic_write_text, environment_info, read_json, write_json

__all__ = ["SyntheticConfig", "METHODS", "run_synthetic", "format_table"]

METHODS = ("imle_sog", "imle_gumbel", "straight_through", "exact")


@dataclass
class SyntheticConfig:
    n: int = 10
    k: int = 5
    num_repetitions: int = 100
    num_steps: int = 100
    learning_rate: float = 1.0
    step_size: float = 1.0  # λ of the I-MLE target
    num_samples: int = 1  # S per step for the sampling estimators
    num_eval_samples: int = 256  # draws per repetition for the sampled gap
    eval_every: int = 5  # steps between evaluations (and the last step)
    seed: int = 0
    methods: list[str] = field(default_factory=lambda: list(METHODS))

    def validate(self) -> None:
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ValueError(f"methods must be among {list(METHODS)}; got unknown {unknown}")
        if not 1 <= self.k <= self.n or self.n > 20:
            raise ValueError(f"need 1 <= k <= n <= 20 for exact enumeration; got n={self.n}, k={self.k}")
        for name in ("num_repetitions", "num_steps", "num_samples", "num_eval_samples", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        for name in ("learning_rate", "step_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0; got {getattr(self, name)}")


def _problem(config: SyntheticConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """States, the per-repetition squared distances ``[R, C]``, the initial θ ``[R, n]`` and the optimum ``[R]``."""
    g = torch.Generator().manual_seed(config.seed)
    b = torch.randn(config.num_repetitions, config.n, generator=g, dtype=torch.float64).abs()
    theta0 = torch.randn(config.num_repetitions, config.n, generator=g, dtype=torch.float64)
    states = ksubset_states(config.n, config.k, dtype=torch.float64)
    values = ((states.unsqueeze(0) - b.unsqueeze(1)) ** 2).sum(-1)  # [R, C]
    return states, values, theta0, b


def _make_gradient(method: str, config: SyntheticConfig, states: Tensor, values: Tensor, b: Tensor,
                   generator: torch.Generator) -> Callable[[Tensor], Tensor]:
    """A function θ ↦ a loss whose backward gives the method's gradient estimate."""
    if method == "exact":
        return lambda theta: enumeration_expectation(states, theta, values).sum()
    k = config.k
    common = dict(num_samples=config.num_samples, generator=generator)
    if method == "imle_sog":
        layer = imle(TopK(k), noise=SumOfGamma(k), target=PerturbedTarget(config.step_size), **common)
    elif method == "imle_gumbel":
        layer = imle(TopK(k), noise=Gumbel(), target=PerturbedTarget(config.step_size), **common)
    elif method == "straight_through":
        layer = straight_through(TopK(k), noise=SumOfGamma(k), **common)
    else:  # pragma: no cover - validated before
        raise ValueError(method)
    return lambda theta: ((layer(theta) - b) ** 2).sum(-1).mean(0).sum()


def _sampler_noise(method: str, k: int) -> Any:
    """The forward noise of a sampling method (``None`` for ``exact``, which samples p itself)."""
    return {"imle_sog": SumOfGamma(k), "straight_through": SumOfGamma(k), "imle_gumbel": Gumbel()}.get(method)


@torch.no_grad()
def _gaps(method: str, config: SyntheticConfig, theta: Tensor, states: Tensor, values: Tensor, b: Tensor,
          optimum: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Per-repetition exact and sampled gaps ``([R], [R])``."""
    exact = enumeration_expectation(states, theta, values) - optimum
    noise = _sampler_noise(method, config.k)
    if noise is None:
        return exact, exact
    eps = noise.sample((config.num_eval_samples, *theta.shape), generator=generator, dtype=theta.dtype)
    z = TopK(config.k)(theta + eps)
    sampled = ((z - b) ** 2).sum(-1).mean(0) - optimum
    return exact, sampled


def _run_method(method: str, config: SyntheticConfig, progress: Any = None) -> dict[str, Any]:
    states, values, theta0, b = _problem(config)
    optimum = values.min(-1).values
    generator = torch.Generator().manual_seed(config.seed + 1 + METHODS.index(method))
    eval_generator = torch.Generator().manual_seed(config.seed + 101 + METHODS.index(method))
    loss_fn = _make_gradient(method, config, states, values, b, generator)
    theta = theta0.clone().requires_grad_()
    optimizer = torch.optim.SGD([theta], lr=config.learning_rate)
    exact_curve, sampled_curve, steps = [], [], []
    for step in range(config.num_steps + 1):
        if step % config.eval_every == 0 or step == config.num_steps:
            exact, sampled = _gaps(method, config, theta.detach(), states, values, b, optimum, eval_generator)
            steps.append(step)
            exact_curve.append(float(exact.mean()))
            sampled_curve.append(float(sampled.mean()))
        if step == config.num_steps:
            break
        optimizer.zero_grad()
        loss_fn(theta).backward()
        optimizer.step()
        if progress is not None:
            progress.update(1)
    r = config.num_repetitions
    return {
        "steps": steps,
        "exact_gap": exact_curve,
        "sampled_gap": sampled_curve,
        "final_exact_gap_se": float(exact.std() / math.sqrt(r)) if r > 1 else 0.0,
        "final_sampled_gap_se": float(sampled.std() / math.sqrt(r)) if r > 1 else 0.0,
    }


def run_synthetic(config: SyntheticConfig, out_dir: str | Path | None = None, *, progress: bool = True,
                  plot: bool = True) -> dict[str, Any]:
    """Run every method of ``config``; write ``config.json``, ``curves.json``, ``results.json`` and
    ``curves.png`` to ``out_dir`` (atomically). A finished method found in ``out_dir`` with the same
    config is not run again (resume)."""
    config.validate()
    out = Path(out_dir) if out_dir is not None else None
    curves: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if (out / "config.json").exists() and (out / "curves.json").exists():
            if read_json(out / "config.json") == asdict(config):
                saved = read_json(out / "curves.json")
                curves = {m: v for m, v in saved.get("curves", {}).items() if m in config.methods}
                seconds = {m: v for m, v in saved.get("seconds", {}).items() if m in curves}
        write_json(out / "config.json", asdict(config))
    todo = [m for m in config.methods if m not in curves]
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo) * config.num_steps, desc="synthetic", unit="step")
    try:
        for method in todo:
            if bar is not None:
                bar.set_postfix_str(method)
            start = time.perf_counter()
            curves[method] = _run_method(method, config, bar)
            seconds[method] = time.perf_counter() - start
            if out is not None:
                write_json(out / "curves.json", {"curves": curves, "seconds": seconds})
    finally:
        if bar is not None:
            bar.close()
    results = _summarise(config, curves, seconds)
    if out is not None:
        write_json(out / "results.json", results)
        atomic_write_text(out / "results.md", format_table(results) + "\n")
        if plot:
            plot_curves(curves, out / "curves.png", config)
    return results


def _summarise(config: SyntheticConfig, curves: dict[str, dict[str, Any]], seconds: dict[str, float]) -> dict[str, Any]:
    rows = {}
    for method in config.methods:
        c = curves[method]
        rows[method] = {
            "initial_exact_gap": c["exact_gap"][0],
            "final_exact_gap": c["exact_gap"][-1],
            "final_exact_gap_se": c["final_exact_gap_se"],
            "final_sampled_gap": c["sampled_gap"][-1],
            "final_sampled_gap_se": c["final_sampled_gap_se"],
            "seconds": seconds.get(method),
        }
    return {"config": asdict(config), "methods": rows, "environment": environment_info()}


def format_table(results: dict[str, Any]) -> str:
    """A Markdown table of final gaps, mean ± standard error over repetitions."""
    cfg = results["config"]
    lines = [
        f"Synthetic top-k: E‖z − b‖² over {cfg['k']}-subsets of {cfg['n']}, {cfg['num_repetitions']} repetitions, "
        f"{cfg['num_steps']} SGD steps (lr {cfg['learning_rate']}, λ {cfg['step_size']}, S {cfg['num_samples']}); "
        "final optimality gaps, mean ± s.e. over repetitions",
        "",
        "| method | initial exact gap | final exact gap (p(z; θ)) | final sampled gap (own sampler) | seconds |",
        "|---|---|---|---|---|",
    ]
    for method, row in results["methods"].items():
        secs = "" if row["seconds"] is None else f"{row['seconds']:.1f}"
        lines.append(
            f"| {method} | {row['initial_exact_gap']:.3f} | {row['final_exact_gap']:.3f} ± {row['final_exact_gap_se']:.3f} "
            f"| {row['final_sampled_gap']:.3f} ± {row['final_sampled_gap_se']:.3f} | {secs} |"
        )
    return "\n".join(lines)


def plot_curves(curves: dict[str, dict[str, Any]], path: str | Path, config: SyntheticConfig) -> Path | None:
    """Optimality gap per step, log scale; needs matplotlib (``pip install discograd[plots]``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'discograd[plots]'") from exc
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=110, sharey=True)
    for ax, key, title in zip(axes, ("exact_gap", "sampled_gap"), ("exact gap under p(z; θ)", "sampled gap (own sampler)")):
        for method, c in curves.items():
            ax.plot(c["steps"], c[key], label=method, linestyle="--" if method == "exact" else "-")
        ax.set_yscale("log")
        ax.set_xlabel("SGD step")
        ax.set_title(title)
    axes[0].set_ylabel("optimality gap (mean over repetitions)")
    axes[0].legend()
    fig.suptitle(f"E‖z − b‖² over {config.k}-subsets of {config.n}")
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
