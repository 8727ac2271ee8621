"""Core benchmarks: what I-MLE costs on top of its unavoidable work, how fast Sum-of-Gamma noise is
sampled, and how much memory one I-MLE step holds at its peak.

Every comparison is a ratio against a baseline measured in the same run (medians of interleaved
repeats after a warm-up; ``time.perf_counter``, with ``torch.cuda.synchronize`` on CUDA). On CPU the
ratio of process CPU times (``time.process_time``, all threads) is reported next to it: it moves less when
other jobs compete for the cores.

1. ``imle_overhead``: ``discograd.imle(TopK(k), noise=SumOfGamma(k), num_samples=S,
   target=PerturbedTarget(1.0))`` forward + ``(z * w).sum().backward()`` against the *bare work* of the
   same step: one ``SumOfGamma(k).sample((S, B, n))``, one add (θ + ε), a TopK call on ``[S*B, n]``, an
   in-place subtraction (θ − λg + ε with λ = 1, g = w), a second TopK call, and the difference of the two
   states summed over samples. ``k = n // 10``. The user's loss ``(z * w).sum()`` and its backward are
   charged to I-MLE (a conservative ratio). Target: at most 1.2x.
2. ``sog_sampling``: the default ``SumOfGamma(k).sample(shape)`` (``method="table"``, inverse CDF) against
   ``SumOfGamma(k, method="gamma")`` (the Gamma terms summed), the original torch-imle style (one
   ``torch.distributions.Gamma(1/k, rate=i/k)`` object per term, ``s`` successive ``.sample(shape)``
   calls summed) and plain Gumbel noise of the same shape. Targets: at least 2x faster than torch-imle's,
   at the largest shape at least 15x faster than ``method="gamma"`` and at most 1.5x the Gumbel time. The
   three SoG samplers' mean and variance are compared with the exact ones, (τ/κ)(H_s − log s) and
   (τ²/κ) Σ_{i≤s} 1/i², in units of their standard errors.
3. ``imle_step``: one I-MLE top-k step (forward + backward, ``k = n // 10``) with the default noise
   against the same step with ``method="gamma"`` and against a torch-imle style step (the structure of
   its ``imle`` wrapper, its sampler, ``torch.topk`` and a scatter). Targets at n = 10⁴, B = 128, S = 10:
   at least 5x and 8x faster.
4. ``memory``: the peak memory of one I-MLE step (forward + backward) on ``[S, B, n]``, relative to the
   size of the noise tensor ``S·B·n·itemsize``, for both noise methods; each configuration runs in a fresh
   subprocess. On CPU the peak is the growth of the resident set's high-water mark (``VmHWM`` of
   ``/proc/self/status``, reset just before the step); on CUDA, ``torch.cuda.max_memory_allocated``. The
   bare work is measured the same way for reference.

Usage::

    python benchmarks/bench_core.py                 # full run: several minutes on 2 CPU cores
    python benchmarks/bench_core.py --num-threads 1 # per core
    python benchmarks/bench_core.py --quick         # every measurement once, tiny sizes (CI)
    python benchmarks/bench_core.py --device cuda --out benchmarks/results/core-cuda.json
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402  (the benchmarks folder is not a package)

import discograd  # noqa: E402
from discograd.noise import Gumbel, SumOfGamma  # noqa: E402
from discograd.solvers import TopK  # noqa: E402
from discograd.targets import PerturbedTarget  # noqa: E402

IMLE_OVERHEAD_TARGET = 1.2  # imle / bare, at most
SOG_SPEEDUP_TARGET = 2.0  # torch-imle style / SumOfGamma, at least
TABLE_VS_GAMMA_TARGET = 15.0  # SumOfGamma(method="gamma") / the default table sampler, at least
TABLE_VS_GUMBEL_TARGET = 1.5  # the table sampler / Gumbel noise of the same shape, at most
STEP_VS_GAMMA_TARGET = 5.0  # imle step with method="gamma" noise / with the default, at least
STEP_VS_TORCH_IMLE_TARGET = 8.0  # torch-imle style step / ours, at least
LAW_Z_TOLERANCE = 5.0  # |z-score| of a moment above this flags a sampler as off its law
NUM_TERMS = 10  # s, the truncation of the Sum-of-Gamma series (the paper's value)


@dataclass(frozen=True)
class Config:
    batch_size: int
    imle_sizes: tuple[int, ...]  # n; k = n // 10
    imle_samples: tuple[int, ...]  # S
    sog_shapes: tuple[tuple[int, ...], ...]
    sog_ks: tuple[int, ...]
    memory_shapes: tuple[tuple[int, int, int], ...]  # (S, B, n)
    step_shapes: tuple[tuple[int, int], ...]  # (n, S) of the step against torch-imle's
    quick: bool

    def repeats(self, numel: int, *, large: tuple[int, int] = (1, 5)) -> tuple[int, int]:
        """(warm-up calls, timed repeats) for a measurement drawing ``numel`` Gamma variates per call.

        Fewer repeats at the largest sizes (``large``) keep the full run under three minutes on 2 CPU cores.
        """
        if self.quick:
            return 1, 1
        if numel <= 2_000_000:
            return 2, 31
        if numel <= 20_000_000:
            return 1, 15
        return large


FULL = Config(
    batch_size=128,
    imle_sizes=(100, 10_000),
    imle_samples=(1, 10),
    sog_shapes=((10, 128, 100), (10, 128, 10_000)),
    sog_ks=(5, 50),
    memory_shapes=((10, 128, 10_000), (1, 128, 10_000)),
    step_shapes=((100, 10), (10_000, 10)),
    quick=False,
)
QUICK = Config(
    batch_size=8,
    imle_sizes=(100,),
    imle_samples=(1, 2),
    sog_shapes=((2, 8, 100),),
    sog_ks=(5,),
    memory_shapes=((2, 64, 4_000),),
    step_shapes=((100, 2),),
    quick=True,
)


# -- the work being compared -------------------------------------------------------------------------
def make_problem(batch_size: int, n: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    theta = torch.randn(batch_size, n, device=device, dtype=dtype, requires_grad=True)
    weights = torch.randn(batch_size, n, device=device, dtype=dtype)
    return theta, weights


def imle_step(layer: discograd.IMLE, theta: torch.Tensor, weights: torch.Tensor) -> None:
    """Forward + backward of the benchmarked loss ``Σ z·w`` through the I-MLE layer."""
    theta.grad = None
    z = layer(theta)
    (z * weights).sum().backward()


def bare_step(
    noise: SumOfGamma,
    solver: TopK,
    theta: torch.Tensor,
    weights: torch.Tensor,
    num_samples: int,
    device: torch.device,
    breakdown: list[dict[str, float]] | None = None,
) -> torch.Tensor:
    """The work any I-MLE implementation must do for that step, and nothing else.

    With ``breakdown`` the device is synchronised between stages and their times are appended.
    """
    timed = breakdown is not None
    clock: Callable[[], float] = (lambda: _common.clock(device)) if timed else (lambda: 0.0)
    batch_size, n = theta.shape
    t0 = clock()
    eps = noise.sample((num_samples, batch_size, n), device=device, dtype=theta.dtype)
    t1 = clock()
    perturbed = theta.detach() + eps  # θ + ε
    del eps
    t2 = clock()
    z = solver(perturbed.view(num_samples * batch_size, n))
    t3 = clock()
    perturbed.sub_(weights)  # θ − λg + ε with λ = 1 and g = ∂(Σ z·w)/∂z = w
    t4 = clock()
    z_target = solver(perturbed.view(num_samples * batch_size, n))
    t5 = clock()
    gradient = z.sub_(z_target).view(num_samples, batch_size, n).sum(0)
    t6 = clock()
    if timed:
        breakdown.append({"noise": t1 - t0, "solver": (t3 - t2) + (t5 - t4), "other": (t2 - t1) + (t4 - t3) + (t6 - t5)})
    return gradient


def torch_imle_style_sog(
    shape: tuple[int, ...], k: int, temperature: float, num_terms: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """The sampler of the original torch-imle code, with the scale κ/i given as rate i/κ: one Gamma
    distribution object per term, ``num_terms`` separate ``.sample(shape)`` calls accumulated."""
    total = torch.zeros(shape, device=device, dtype=dtype)
    for i in range(1, num_terms + 1):
        concentration = torch.tensor(1.0 / k, device=device, dtype=dtype)
        rate = torch.tensor(i / k, device=device, dtype=dtype)
        gamma = torch.distributions.Gamma(concentration=concentration, rate=rate)
        total = total + gamma.sample(torch.Size(shape))
    return (temperature / k) * (total - math.log(num_terms))


def sog_exact_moments(k: int, temperature: float, num_terms: int) -> tuple[float, float]:
    """Mean and variance of SoG(κ, τ, s): (τ/κ)(H_s − log s) and (τ²/κ) Σ_{i≤s} 1/i²."""
    harmonic = sum(1.0 / i for i in range(1, num_terms + 1))
    inverse_squares = sum(1.0 / i**2 for i in range(1, num_terms + 1))
    return temperature / k * (harmonic - math.log(num_terms)), temperature**2 / k * inverse_squares


def moment_check(sample: torch.Tensor, mean: float, variance: float) -> dict[str, float]:
    """Sample mean and variance, and their distances to the exact ones in standard errors.

    SE(mean) = sqrt(σ²/N); SE(variance) = sqrt((m4 − σ⁴)/N) with the sample's fourth central moment m4.
    """
    x = sample.detach().reshape(-1).double()
    count = x.numel()
    sample_mean = float(x.mean())
    centred = x - sample_mean
    sample_var = float(centred.square().mean())
    fourth = float(centred.square().square().mean())
    del centred
    se_mean = math.sqrt(variance / count)
    se_var = math.sqrt(max(fourth - sample_var**2, 1e-300) / count)
    return {
        "mean": sample_mean,
        "variance": sample_var,
        "mean_z": (sample_mean - mean) / se_mean,
        "variance_z": (sample_var - variance) / se_var,
    }


# -- 1. I-MLE overhead ------------------------------------------------------------------------------------
def bench_imle_overhead(config: Config, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    rows = []
    for n in config.imle_sizes:
        for num_samples in config.imle_samples:
            k = n // 10
            batch_size = config.batch_size
            theta, weights = make_problem(batch_size, n, device, dtype)
            noise, solver = SumOfGamma(k), TopK(k)
            layer = discograd.imle(solver, noise=noise, num_samples=num_samples, target=PerturbedTarget(1.0))
            breakdown: list[dict[str, float]] = []
            warmup, repeats = config.repeats(num_samples * batch_size * n * NUM_TERMS)
            times, cpu_times = _common.time_interleaved(
                {
                    "imle": lambda: imle_step(layer, theta, weights),
                    "bare": lambda: bare_step(noise, solver, theta, weights, num_samples, device),
                },
                repeats=repeats,
                warmup=warmup,
                device=device,
            )
            # the stage breakdown of the bare work, from separate (synchronised) calls
            for _ in range(max(1, repeats // 4)):
                bare_step(noise, solver, theta, weights, num_samples, device, breakdown)
            imle_s, bare_s = _common.median(times["imle"]), _common.median(times["bare"])
            imle_cpu_s, bare_cpu_s = _common.median(cpu_times["imle"]), _common.median(cpu_times["bare"])
            stages = {key: _common.median([b[key] for b in breakdown]) for key in ("noise", "solver", "other")}
            stage_total = sum(stages.values())
            rows.append({
                "n": n,
                "k": k,
                "num_samples": num_samples,
                "batch_size": batch_size,
                "repeats": repeats,
                "imle_s": imle_s,
                "bare_s": bare_s,
                "ratio": imle_s / bare_s,
                "imle_cpu_s": imle_cpu_s,
                "bare_cpu_s": bare_cpu_s,
                # host CPU time says nothing about the work of a GPU
                "ratio_cpu": imle_cpu_s / bare_cpu_s if device.type == "cpu" else None,
                "noise_s": stages["noise"],
                "solver_s": stages["solver"],
                "other_s": stages["other"],
                "noise_share": stages["noise"] / stage_total,
                "solver_share": stages["solver"] / stage_total,
                "imle_times_s": times["imle"],
                "bare_times_s": times["bare"],
                "imle_cpu_times_s": cpu_times["imle"],
                "bare_cpu_times_s": cpu_times["bare"],
            })
    worst = max(row["ratio"] for row in rows)
    return {
        "description": (
            "imle(TopK(k), noise=SumOfGamma(k), num_samples=S, target=PerturbedTarget(1.0)) forward + "
            "(z*w).sum().backward() vs bare work: SumOfGamma(k).sample((S,B,n)) + add + TopK on [S*B,n] + "
            "in-place sub + TopK + difference summed over samples; k = n // 10; ratio = imle / bare "
            "(medians of wall-clock time); ratio_cpu: the same with process CPU time (all threads), less sensitive to "
            "other load on the machine; noise_s/solver_s/other_s: stages of the bare work"
        ),
        "dtype": str(dtype),
        "target_max_ratio": IMLE_OVERHEAD_TARGET,
        "max_ratio": worst,
        "target_met": worst <= IMLE_OVERHEAD_TARGET,
        "rows": rows,
    }


# -- 2. Sum-of-Gamma sampling ------------------------------------------------------------------------------
SAMPLERS = ("torch_imle", "gamma", "table", "gumbel")  # the order of the interleaved calls


def bench_sog_sampling(config: Config, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    temperature = 1.0
    rows = []
    for shape in config.sog_shapes:
        for k in config.sog_ks:
            table = SumOfGamma(k, temperature=temperature, num_terms=NUM_TERMS)  # the default: method="table"
            gamma = SumOfGamma(k, temperature=temperature, num_terms=NUM_TERMS, method="gamma")
            gumbel = Gumbel(temperature)
            table.sample((1,))  # build (or load) the quantile table outside the timed calls
            last: dict[str, torch.Tensor] = {}
            draw: dict[str, Callable[[], torch.Tensor]] = {
                "torch_imle": lambda: torch_imle_style_sog(shape, k, temperature, NUM_TERMS, device, dtype),
                "gamma": lambda: gamma.sample(shape, device=device, dtype=dtype),
                "table": lambda: table.sample(shape, device=device, dtype=dtype),
                "gumbel": lambda: gumbel.sample(shape, device=device, dtype=dtype),
            }

            def keep(name: str) -> Callable[[], None]:
                def run() -> None:
                    last[name] = draw[name]()
                return run

            # the largest shape: no warm-up (the same code ran at the small shape just before)
            warmup, repeats = config.repeats(math.prod(shape) * NUM_TERMS, large=(0, 3))
            times, cpu_times = _common.time_interleaved(
                {name: keep(name) for name in SAMPLERS}, repeats=repeats, warmup=warmup, device=device
            )
            mean, variance = sog_exact_moments(k, temperature, NUM_TERMS)
            law = {name: moment_check(last[name], mean, variance) for name in SAMPLERS if name != "gumbel"}
            last.clear()
            medians = {name: _common.median(times[name]) for name in SAMPLERS}
            cpu_medians = {name: _common.median(cpu_times[name]) for name in SAMPLERS}
            on_cpu = device.type == "cpu"
            rows.append({
                "shape": list(shape),
                "k": k,
                "num_terms": NUM_TERMS,
                "temperature": temperature,
                "repeats": repeats,
                "seconds": medians,
                "cpu_seconds": cpu_medians if on_cpu else None,
                # the default sampler (method="table") against the others
                "speedup_vs_torch_imle": medians["torch_imle"] / medians["table"],
                "speedup_vs_gamma": medians["gamma"] / medians["table"],
                "ratio_to_gumbel": medians["table"] / medians["gumbel"],
                "speedup_vs_torch_imle_cpu": cpu_medians["torch_imle"] / cpu_medians["table"] if on_cpu else None,
                "speedup_vs_gamma_cpu": cpu_medians["gamma"] / cpu_medians["table"] if on_cpu else None,
                "ratio_to_gumbel_cpu": cpu_medians["table"] / cpu_medians["gumbel"] if on_cpu else None,
                "exact_mean": mean,
                "exact_variance": variance,
                "law": law,
                "law_ok": all(abs(z[key]) <= LAW_Z_TOLERANCE for z in law.values() for key in ("mean_z", "variance_z")),
                "times_s": times,
                "cpu_times_s": cpu_times,
            })
    large = [row for row in rows if math.prod(row["shape"]) == max(math.prod(r["shape"]) for r in rows)]
    worst_vs_torch_imle = min(row["speedup_vs_torch_imle"] for row in rows)
    worst_vs_gamma = min(row["speedup_vs_gamma"] for row in large)
    worst_to_gumbel = max(row["ratio_to_gumbel"] for row in large)
    return {
        "description": (
            "SumOfGamma(k).sample(shape) (the default, method='table': inverse CDF from a quantile table) vs "
            "SumOfGamma(k, method='gamma') (the Gamma terms summed), the torch-imle style sampler (one "
            "torch.distributions.Gamma(1/k, rate=i/k) object per term, s separate .sample(shape) calls summed) "
            "and Gumbel noise of the same shape; medians of wall-clock time (cpu_seconds: process CPU time of "
            "all threads, i.e. per core); moments of the three SoG samplers against the exact SoG mean and "
            "variance (z = standard errors); the gamma and Gumbel targets are read at the largest shape"
        ),
        "dtype": str(dtype),
        "targets": {
            "speedup_vs_torch_imle": {"target": f">= {SOG_SPEEDUP_TARGET}", "measured": worst_vs_torch_imle,
                                      "met": worst_vs_torch_imle >= SOG_SPEEDUP_TARGET},
            "speedup_vs_gamma": {"target": f">= {TABLE_VS_GAMMA_TARGET}", "measured": worst_vs_gamma,
                                 "met": worst_vs_gamma >= TABLE_VS_GAMMA_TARGET},
            "ratio_to_gumbel": {"target": f"<= {TABLE_VS_GUMBEL_TARGET}", "measured": worst_to_gumbel,
                                "met": worst_to_gumbel <= TABLE_VS_GUMBEL_TARGET},
        },
        "law_z_tolerance": LAW_Z_TOLERANCE,
        "law_ok": all(row["law_ok"] for row in rows),
        "rows": rows,
    }


# -- 4. the whole I-MLE step against torch-imle's ------------------------------------------------------------
def torch_imle_topk(k: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Top-k as research code writes it: ``torch.topk`` and a scatter of ones."""
    def solve(x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x).scatter_(-1, x.topk(k, dim=-1).indices, 1.0)
    return solve


class _TorchIMLEStyle(torch.autograd.Function):
    """The structure of torch-imle's ``imle`` wrapper (uclnlp/torch-imle, ``imle/wrapper.py``): noise
    ``[S, B, n]`` drawn by the per-term Gamma sampler and saved, the solver on ``[S·B, n]``, the mean over
    samples returned; the backward perturbs ``θ − λ·∂L/∂y`` (its ``TargetDistribution(alpha=1, beta=λ)``)
    with the same noise, solves again and returns the difference of the two means. (The original takes the
    mean of the ``[S·B, n]`` target solution over its first axis, a shape slip for S > 1; the mean over
    samples is taken here, at the same cost.)"""

    @staticmethod
    def forward(ctx: Any, theta: torch.Tensor, k: int, num_samples: int, lam: float) -> torch.Tensor:
        shape = (num_samples, *theta.shape)
        noise = torch_imle_style_sog(shape, k, 1.0, NUM_TERMS, theta.device, theta.dtype)
        solve = torch_imle_topk(k)
        out = solve((theta.unsqueeze(0) + noise).view(-1, theta.shape[-1])).view(shape)
        ctx.save_for_backward(theta, noise, out)
        ctx.k, ctx.lam = k, lam
        return out.mean(0)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        theta, noise, out = ctx.saved_tensors
        target = theta - ctx.lam * dy
        solved = torch_imle_topk(ctx.k)((target.unsqueeze(0) + noise).view(-1, theta.shape[-1])).view(out.shape)
        return solved.mean(0) - out.mean(0), None, None, None


def torch_imle_step(theta: torch.Tensor, weights: torch.Tensor, k: int, num_samples: int) -> None:
    theta.grad = None
    y = _TorchIMLEStyle.apply(theta, k, num_samples, 1.0)
    (y * weights).sum().backward()


def bench_imle_step(config: Config, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    rows = []
    for n, num_samples in config.step_shapes:
        k = n // 10
        batch_size = config.batch_size
        theta, weights = make_problem(batch_size, n, device, dtype)
        table = discograd.imle(TopK(k), noise=SumOfGamma(k), num_samples=num_samples, target=PerturbedTarget(1.0))
        gamma = discograd.imle(TopK(k), noise=SumOfGamma(k, method="gamma"), num_samples=num_samples,
                               target=PerturbedTarget(1.0))
        candidates = {
            "torch_imle": lambda: torch_imle_step(theta, weights, k, num_samples),
            "gamma": lambda: imle_step(gamma, theta, weights),
            "table": lambda: imle_step(table, theta, weights),
        }
        warmup, repeats = config.repeats(num_samples * batch_size * n * NUM_TERMS, large=(1, 3))
        times, cpu_times = _common.time_interleaved(candidates, repeats=repeats, warmup=warmup, device=device)
        medians = {name: _common.median(values) for name, values in times.items()}
        cpu_medians = {name: _common.median(values) for name, values in cpu_times.items()}
        on_cpu = device.type == "cpu"
        rows.append({
            "n": n,
            "k": k,
            "num_samples": num_samples,
            "batch_size": batch_size,
            "repeats": repeats,
            "seconds": medians,
            "cpu_seconds": cpu_medians if on_cpu else None,
            "speedup_vs_gamma": medians["gamma"] / medians["table"],
            "speedup_vs_torch_imle": medians["torch_imle"] / medians["table"],
            "speedup_vs_gamma_cpu": cpu_medians["gamma"] / cpu_medians["table"] if on_cpu else None,
            "speedup_vs_torch_imle_cpu": cpu_medians["torch_imle"] / cpu_medians["table"] if on_cpu else None,
            "times_s": times,
            "cpu_times_s": cpu_times,
        })
    largest = max(rows, key=lambda row: row["n"] * row["num_samples"])
    return {
        "description": (
            "one imle(TopK(k), num_samples=S, target=PerturbedTarget(1.0)) forward + (z*w).sum().backward() "
            "with the default SumOfGamma(k) (method='table') vs the same with SumOfGamma(k, method='gamma') "
            "and vs a torch-imle style step (its wrapper's structure, its per-term Gamma sampler, torch.topk + "
            "scatter); k = n // 10; medians; the targets are read at the largest shape"
        ),
        "dtype": str(dtype),
        "targets": {
            "speedup_vs_gamma": {"target": f">= {STEP_VS_GAMMA_TARGET}", "measured": largest["speedup_vs_gamma"],
                                 "met": largest["speedup_vs_gamma"] >= STEP_VS_GAMMA_TARGET},
            "speedup_vs_torch_imle": {"target": f">= {STEP_VS_TORCH_IMLE_TARGET}",
                                      "measured": largest["speedup_vs_torch_imle"],
                                      "met": largest["speedup_vs_torch_imle"] >= STEP_VS_TORCH_IMLE_TARGET},
        },
        "rows": rows,
    }


# -- 3. peak memory, one fresh process per configuration -------------------------------------------------
def memory_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one step (``spec["mode"]``: imle or bare) and return its peak memory above the starting point."""
    torch.set_num_threads(spec["num_threads"])
    torch.manual_seed(spec["seed"])
    device = torch.device(spec["device"])
    dtype = getattr(torch, spec["dtype"])
    num_samples, batch_size, n = spec["shape"]
    k = n // 10
    noise, solver = SumOfGamma(k, method=spec.get("noise_method", "table")), TopK(k)

    def step(theta: torch.Tensor, weights: torch.Tensor, s: int) -> None:
        if spec["mode"] in ("imle", "imle_recompute"):
            recompute = spec["mode"] == "imle_recompute"
            layer = discograd.imle(solver, noise=noise, num_samples=s, target=PerturbedTarget(1.0),
                                   generator=torch.Generator(device=device).manual_seed(spec["seed"]) if recompute else None,
                                   recompute_noise=recompute)
            imle_step(layer, theta, weights)
        else:
            bare_step(noise, solver, theta, weights, s, device)

    step(*make_problem(2, max(n // 100, k + 1), device, dtype), 1)  # load lazily initialised code paths
    theta, weights = make_problem(batch_size, n, device, dtype)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        step(theta, weights, num_samples)
        torch.cuda.synchronize(device)
        peak, method = torch.cuda.max_memory_allocated(device) - start, "torch.cuda.max_memory_allocated"
    else:
        start_kib = _common.read_proc_status_kib("VmRSS")
        was_reset = _common.reset_peak_rss()
        before_kib = _common.read_proc_status_kib("VmHWM")
        step(theta, weights, num_samples)
        after_kib = _common.read_proc_status_kib("VmHWM")
        if start_kib is None or after_kib is None or before_kib is None:
            peak, method = None, "unavailable (no /proc/self/status)"
        elif was_reset or after_kib > before_kib:
            peak, method = (after_kib - start_kib) * 1024, "VmHWM growth (/proc/self/status)"
        else:
            peak, method = None, "unavailable (VmHWM could not be reset and did not grow)"
    return {"peak_bytes": peak, "method": method}


def run_memory_worker(spec: dict[str, Any]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--memory-worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"memory worker failed for {spec}:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def bench_memory(config: Config, device: torch.device, dtype: torch.dtype, seed: int) -> dict[str, Any]:
    rows = []
    methods = set()
    itemsize = torch.empty((), dtype=dtype).element_size()
    for shape, noise_method in [(shape, method) for shape in config.memory_shapes for method in ("table", "gamma")]:
        noise_bytes = math.prod(shape) * itemsize
        row: dict[str, Any] = {"shape": list(shape), "k": shape[2] // 10, "noise_method": noise_method,
                               "noise_bytes": noise_bytes}
        for mode in ("imle", "imle_recompute", "bare"):
            spec = {
                "mode": mode,
                "noise_method": noise_method,
                "shape": list(shape),
                "device": str(device),
                "dtype": str(dtype).removeprefix("torch."),
                "num_threads": torch.get_num_threads(),
                "seed": seed,
            }
            result = run_memory_worker(spec)
            methods.add(result["method"])
            peak = result["peak_bytes"]
            row[f"{mode}_peak_bytes"] = peak
            row[f"{mode}_ratio"] = None if peak is None else peak / noise_bytes
        rows.append(row)
    return {
        "description": (
            "peak memory of one forward+backward step on [S,B,n] (fresh subprocess each), relative to the "
            "noise tensor's S*B*n*itemsize; imle_recompute = with recompute_noise=True (the noise drawn again "
            "in the backward); bare = the bare work of imle_overhead, for reference; noise_method: SumOfGamma's"
        ),
        "dtype": str(dtype),
        "method": ", ".join(sorted(methods)),
        "rows": rows,
    }


# -- report ------------------------------------------------------------------------------------------------
def _print_targets(targets: dict[str, dict[str, Any]]) -> None:
    for name, target in targets.items():
        print(f"   target {name} {target['target']}: measured {target['measured']:.2f} -> "
              f"{'met' if target['met'] else 'MISSED'}")


def print_report(results: dict[str, Any]) -> None:
    env = results["environment"]
    print(
        f"discograd core benchmarks{' (quick)' if results['quick'] else ''}: torch {env['torch_version']}, "
        f"device {env['device']}, {env['num_threads']} threads, git {env['git_sha']}, "
        f"load average {env['load_average_1min']} at start, {env['load_average_1min_end']} at end"
    )
    overhead = results["imle_overhead"]
    print(f"\n1. I-MLE forward+backward vs its bare work (k = n // 10, {overhead['dtype']}, medians, seconds)")
    print(_common.format_table(
        ["n", "k", "S", "B", "reps", "imle", "bare", "ratio", "ratio cpu", "noise", "solver x2", "other", "noise %"],
        [
            [r["n"], r["k"], r["num_samples"], r["batch_size"], r["repeats"], r["imle_s"], r["bare_s"], r["ratio"],
             r["ratio_cpu"], r["noise_s"], r["solver_s"], r["other_s"], f"{100 * r['noise_share']:.0f}%"]
            for r in overhead["rows"]
        ],
    ))
    print(f"   target: ratio <= {overhead['target_max_ratio']}; worst {overhead['max_ratio']:.3f} -> "
          f"{'met' if overhead['target_met'] else 'MISSED'}")

    sog = results["sog_sampling"]
    print(f"\n2. Sum-of-Gamma sampling (s = {NUM_TERMS}, {sog['dtype']}, medians, seconds): the default "
          "SumOfGamma (table) vs method='gamma', the torch-imle style sampler and Gumbel noise")
    print(_common.format_table(
        ["shape", "k", "reps", "torch-imle", "gamma", "table", "gumbel", "vs torch-imle", "vs gamma", "/ gumbel",
         "vs gamma cpu", "/ gumbel cpu"],
        [["x".join(map(str, r["shape"])), r["k"], r["repeats"], r["seconds"]["torch_imle"], r["seconds"]["gamma"],
          r["seconds"]["table"], r["seconds"]["gumbel"], r["speedup_vs_torch_imle"], r["speedup_vs_gamma"],
          r["ratio_to_gumbel"], r["speedup_vs_gamma_cpu"], r["ratio_to_gumbel_cpu"]]
         for r in sog["rows"]],
    ))
    _print_targets(sog["targets"])
    print("   same law: sample moments vs exact, z = (sample - exact) / standard error")
    print(_common.format_table(
        ["shape", "k", "exact mean", "z torch-imle", "z gamma", "z table", "exact var", "z torch-imle", "z gamma",
         "z table"],
        [
            ["x".join(map(str, r["shape"])), r["k"], r["exact_mean"],
             *[r["law"][name]["mean_z"] for name in ("torch_imle", "gamma", "table")], r["exact_variance"],
             *[r["law"][name]["variance_z"] for name in ("torch_imle", "gamma", "table")]]
            for r in sog["rows"]
        ],
    ))
    print(f"   all |z| <= {sog['law_z_tolerance']}: {'yes' if sog['law_ok'] else 'NO'}")

    step = results["imle_step"]
    print(f"\n3. One imle(TopK) step: default noise (table) vs method='gamma' vs a torch-imle style step "
          f"(B = {step['rows'][0]['batch_size']}, {step['dtype']}, medians, seconds)")
    print(_common.format_table(
        ["n", "k", "S", "reps", "torch-imle", "gamma", "table", "vs gamma", "vs torch-imle", "vs gamma cpu",
         "vs torch-imle cpu"],
        [[r["n"], r["k"], r["num_samples"], r["repeats"], r["seconds"]["torch_imle"], r["seconds"]["gamma"],
          r["seconds"]["table"], r["speedup_vs_gamma"], r["speedup_vs_torch_imle"], r["speedup_vs_gamma_cpu"],
          r["speedup_vs_torch_imle_cpu"]]
         for r in step["rows"]],
    ))
    _print_targets(step["targets"])

    memory = results["memory"]
    if memory is None:
        print("\n4. Peak memory: skipped (--skip-memory)")
        return
    print(f"\n4. Peak memory of one step / noise tensor size ({memory['method']}, {memory['dtype']})")
    mib = 1 << 20
    print(_common.format_table(
        ["S x B x n", "noise", "noise MiB", "imle peak MiB", "imle ratio", "recompute_noise ratio", "bare peak MiB",
         "bare ratio"],
        [
            ["x".join(map(str, r["shape"])), r["noise_method"], r["noise_bytes"] / mib,
             None if r["imle_peak_bytes"] is None else r["imle_peak_bytes"] / mib, r["imle_ratio"],
             r["imle_recompute_ratio"],
             None if r["bare_peak_bytes"] is None else r["bare_peak_bytes"] / mib, r["bare_ratio"]]
            for r in memory["rows"]
        ],
    ))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every measurement once at tiny sizes (CI; a few seconds)")
    parser.add_argument("--out", type=Path, default=_common.RESULTS_DIR / "core.json", help="where to write the JSON results")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of torch's default generator")
    parser.add_argument("--skip-memory", action="store_true", help="leave out the peak-memory subprocesses")
    parser.add_argument("--num-threads", type=int, default=None,
                        help="torch threads (default: torch's own choice; 1 compares per core)")
    parser.add_argument("--memory-worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_worker is not None:
        print(json.dumps(memory_worker(json.loads(args.memory_worker))))
        return 0
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)
    device = _common.resolve_device(args.device)
    dtype = torch.float32
    config = QUICK if args.quick else FULL
    torch.manual_seed(args.seed)
    results: dict[str, Any] = {
        "benchmark": "core",
        "quick": config.quick,
        "environment": _common.environment(device),
        "config": asdict(config),
    }
    results["imle_overhead"] = bench_imle_overhead(config, device, dtype)
    results["sog_sampling"] = bench_sog_sampling(config, device, dtype)
    results["imle_step"] = bench_imle_step(config, device, dtype)
    results["memory"] = None if args.skip_memory else bench_memory(config, device, dtype, args.seed)
    results["targets"] = {
        "imle_overhead_max_ratio": {
            "target": IMLE_OVERHEAD_TARGET, "measured": results["imle_overhead"]["max_ratio"],
            "met": results["imle_overhead"]["target_met"],
        },
        **{f"sog_{name}": target for name, target in results["sog_sampling"]["targets"].items()},
        "sog_same_law": {"target": f"|z| <= {LAW_Z_TOLERANCE}", "met": results["sog_sampling"]["law_ok"]},
        **{f"step_{name}": target for name, target in results["imle_step"]["targets"].items()},
    }
    results["environment"]["load_average_1min_end"] = _common.load_average()
    print_report(results)
    _common.write_json(args.out, results)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
