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
2. ``sog_sampling``: ``SumOfGamma(k).sample(shape)`` against the original torch-imle style (one
   ``torch.distributions.Gamma(1/k, rate=i/k)`` object per term, ``s`` successive ``.sample(shape)``
   calls summed). Target: at least 2x faster. Both samplers' mean and variance are compared with the
   exact ones, (τ/κ)(H_s − log s) and (τ²/κ) Σ_{i≤s} 1/i², in units of their standard errors.
3. ``memory``: the peak memory of one I-MLE step (forward + backward) on ``[S, B, n]``, relative to the
   size of the noise tensor ``S·B·n·itemsize``; each configuration runs in a fresh subprocess. On CPU the
   peak is the growth of the resident set's high-water mark (``VmHWM`` of ``/proc/self/status``, reset
   just before the step); on CUDA, ``torch.cuda.max_memory_allocated``. The bare work is measured the
   same way for reference.

Usage::

    python benchmarks/bench_core.py                 # full run: about 2.5 minutes on 2 idle CPU cores
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
from discograd.noise import SumOfGamma  # noqa: E402
from discograd.solvers import TopK  # noqa: E402
from discograd.targets import PerturbedTarget  # noqa: E402

IMLE_OVERHEAD_TARGET = 1.2  # imle / bare, at most
SOG_SPEEDUP_TARGET = 2.0  # torch-imle style / SumOfGamma, at least
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
    quick=False,
)
QUICK = Config(
    batch_size=8,
    imle_sizes=(100,),
    imle_samples=(1, 2),
    sog_shapes=((2, 8, 100),),
    sog_ks=(5,),
    memory_shapes=((2, 64, 4_000),),
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
def bench_sog_sampling(config: Config, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    temperature = 1.0
    rows = []
    for shape in config.sog_shapes:
        for k in config.sog_ks:
            ours = SumOfGamma(k, temperature=temperature, num_terms=NUM_TERMS)
            last: dict[str, torch.Tensor] = {}

            def run_ours() -> None:
                last["ours"] = ours.sample(shape, device=device, dtype=dtype)

            def run_baseline() -> None:
                last["baseline"] = torch_imle_style_sog(shape, k, temperature, NUM_TERMS, device, dtype)

            # the largest shape: no warm-up (the same code ran at the small shape just before)
            warmup, repeats = config.repeats(math.prod(shape) * NUM_TERMS, large=(0, 3))
            times, cpu_times = _common.time_interleaved(
                {"baseline": run_baseline, "ours": run_ours}, repeats=repeats, warmup=warmup, device=device
            )
            mean, variance = sog_exact_moments(k, temperature, NUM_TERMS)
            law = {name: moment_check(sample, mean, variance) for name, sample in last.items()}
            last.clear()
            baseline_s, ours_s = _common.median(times["baseline"]), _common.median(times["ours"])
            baseline_cpu_s, ours_cpu_s = _common.median(cpu_times["baseline"]), _common.median(cpu_times["ours"])
            rows.append({
                "shape": list(shape),
                "k": k,
                "num_terms": NUM_TERMS,
                "temperature": temperature,
                "repeats": repeats,
                "baseline_s": baseline_s,
                "ours_s": ours_s,
                "speedup": baseline_s / ours_s,
                "baseline_cpu_s": baseline_cpu_s,
                "ours_cpu_s": ours_cpu_s,
                "speedup_cpu": baseline_cpu_s / ours_cpu_s if device.type == "cpu" else None,
                "exact_mean": mean,
                "exact_variance": variance,
                "ours_law": law["ours"],
                "baseline_law": law["baseline"],
                "law_ok": all(
                    abs(law[name][key]) <= LAW_Z_TOLERANCE for name in law for key in ("mean_z", "variance_z")
                ),
                "baseline_times_s": times["baseline"],
                "ours_times_s": times["ours"],
                "baseline_cpu_times_s": cpu_times["baseline"],
                "ours_cpu_times_s": cpu_times["ours"],
            })
    worst = min(row["speedup"] for row in rows)
    return {
        "description": (
            "SumOfGamma(k).sample(shape) vs the torch-imle style sampler (one torch.distributions.Gamma("
            "1/k, rate=i/k) object per term, s separate .sample(shape) calls summed); speedup = baseline / "
            "ours (medians of wall-clock time); speedup_cpu: the same with process CPU time (all threads), i.e. "
            "per core; moments of both against the exact SoG mean and variance (z = standard errors)"
        ),
        "dtype": str(dtype),
        "target_min_speedup": SOG_SPEEDUP_TARGET,
        "min_speedup": worst,
        "target_met": worst >= SOG_SPEEDUP_TARGET,
        "law_z_tolerance": LAW_Z_TOLERANCE,
        "law_ok": all(row["law_ok"] for row in rows),
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
    noise, solver = SumOfGamma(k, method=spec.get("noise_method", "gamma")), TopK(k)

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
    for shape in config.memory_shapes:
        noise_bytes = math.prod(shape) * itemsize
        row: dict[str, Any] = {"shape": list(shape), "k": shape[2] // 10, "noise_bytes": noise_bytes}
        for mode in ("imle", "imle_recompute", "bare"):
            spec = {
                "mode": mode,
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
            "in the backward); bare = the bare work of imle_overhead, for reference"
        ),
        "dtype": str(dtype),
        "method": ", ".join(sorted(methods)),
        "rows": rows,
    }


# -- report ------------------------------------------------------------------------------------------------
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
    print(f"\n2. SumOfGamma.sample vs torch-imle style sampler (s = {NUM_TERMS}, {sog['dtype']}, medians, seconds)")
    print(_common.format_table(
        ["shape", "k", "reps", "torch-imle", "ours", "speed-up", "torch-imle cpu", "ours cpu", "speed-up cpu"],
        [["x".join(map(str, r["shape"])), r["k"], r["repeats"], r["baseline_s"], r["ours_s"], r["speedup"],
          r["baseline_cpu_s"], r["ours_cpu_s"], r["speedup_cpu"]]
         for r in sog["rows"]],
    ))
    print(f"   (torch's CPU Gamma kernel runs on one thread, SumOfGamma on {results['environment']['num_threads']} "
          "worker threads on CPU: the cpu columns, process CPU time of all threads, compare per core)")
    print(f"   target: speed-up >= {sog['target_min_speedup']}; worst {sog['min_speedup']:.2f} -> "
          f"{'met' if sog['target_met'] else 'MISSED'}")
    print("   same law: sample moments vs exact, z = (sample - exact) / standard error")
    print(_common.format_table(
        ["shape", "k", "exact mean", "ours", "z", "torch-imle", "z", "exact var", "ours", "z", "torch-imle", "z"],
        [
            ["x".join(map(str, r["shape"])), r["k"],
             r["exact_mean"], r["ours_law"]["mean"], r["ours_law"]["mean_z"],
             r["baseline_law"]["mean"], r["baseline_law"]["mean_z"],
             r["exact_variance"], r["ours_law"]["variance"], r["ours_law"]["variance_z"],
             r["baseline_law"]["variance"], r["baseline_law"]["variance_z"]]
            for r in sog["rows"]
        ],
    ))
    print(f"   all |z| <= {sog['law_z_tolerance']}: {'yes' if sog['law_ok'] else 'NO'}")

    memory = results["memory"]
    if memory is None:
        print("\n3. Peak memory: skipped (--skip-memory)")
        return
    print(f"\n3. Peak memory of one step / noise tensor size ({memory['method']}, {memory['dtype']})")
    mib = 1 << 20
    print(_common.format_table(
        ["S x B x n", "noise MiB", "imle peak MiB", "imle ratio", "recompute_noise ratio", "bare peak MiB",
         "bare ratio"],
        [
            ["x".join(map(str, r["shape"])), r["noise_bytes"] / mib,
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
    parser.add_argument("--memory-worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_worker is not None:
        print(json.dumps(memory_worker(json.loads(args.memory_worker))))
        return 0
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
    results["memory"] = None if args.skip_memory else bench_memory(config, device, dtype, args.seed)
    results["targets"] = {
        "imle_overhead_max_ratio": {
            "target": IMLE_OVERHEAD_TARGET, "measured": results["imle_overhead"]["max_ratio"],
            "met": results["imle_overhead"]["target_met"],
        },
        "sog_min_speedup": {
            "target": SOG_SPEEDUP_TARGET, "measured": results["sog_sampling"]["min_speedup"],
            "met": results["sog_sampling"]["target_met"],
        },
        "sog_same_law": {"target": f"|z| <= {LAW_Z_TOLERANCE}", "met": results["sog_sampling"]["law_ok"]},
    }
    results["environment"]["load_average_1min_end"] = _common.load_average()
    print_report(results)
    _common.write_json(args.out, results)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
