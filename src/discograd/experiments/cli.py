"""The ``discograd`` command line.

- ``discograd demo``: the Warcraft shortest-path demo (generated 12×12 maps; I-MLE, blackbox and
  straight-through trained briefly; accuracy table and plots).
- ``discograd warcraft ...`` / ``discograd compare ...`` / ``discograd table2 ...``: one Warcraft method, methods ×
  seeds, or methods × seeds × grid sizes next to the paper's Table 2.
- ``discograd synthetic ...``: the synthetic top-k study.
- ``discograd l2x ...`` / ``discograd dvae ...``: learning to explain and the discrete VAE.
- ``discograd pto ...``: predict-then-optimize on PyEPO's benchmarks (shortest path, knapsack, TSP), methods x seeds.
- ``discograd study [--quick] ...``: the paper's optimisation study: every estimator's optimality gap
  after 50 SGD steps, the λ × learning-rate grid of Sum-of-Gamma against Gumbel noise, and the
  paper's claims checked on both gaps.
- ``discograd bench gradients [--quick] ...``: the gradient-quality benchmark (cosine, bias and
  variance of every estimator against exact gradients on k-subset problems).

Every command writes its run folder atomically and resumes an interrupted run with the same config.
"""

from __future__ import annotations

import argparse
import sys
import time
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main", "build_parser"]


def _add_synthetic_options(parser: argparse.ArgumentParser) -> None:
    from .synthetic import METHODS, SyntheticConfig

    defaults = SyntheticConfig()
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<command>)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(defaults.methods),
                        help=f"default {' '.join(defaults.methods)}")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib needed)")
    for f in fields(SyntheticConfig):
        if f.name == "methods":
            continue
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name)),
                            default=getattr(defaults, f.name), help=f"default {getattr(defaults, f.name)}")


def _add_config_options(parser: argparse.ArgumentParser, config_cls: type, choices: dict[str, Sequence[str]]) -> None:
    """One option per field of a config dataclass, default ``None`` (= the preset's value); list fields
    take several values."""
    defaults = config_cls()
    hints = typing.get_type_hints(config_cls)
    for f in fields(config_cls):
        default = getattr(defaults, f.name)
        option = f"--{f.name.replace('_', '-')}"
        text = " ".join(map(str, default)) if isinstance(default, list) else str(default)
        if isinstance(default, list):
            (item_type,) = typing.get_args(hints[f.name])
            parser.add_argument(option, nargs="+", type=item_type, choices=choices.get(f.name), default=None,
                                help=f"default {text}")
        else:
            parser.add_argument(option, type=type(default), default=None, help=f"default {text}")


def _add_run_options(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--quick", action="store_true", help="the small smoke-test preset (seconds)")
    parser.add_argument("--out", type=Path, default=None, help=f"run folder (default: {default_out})")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNGs (no matplotlib needed)")


def build_parser() -> argparse.ArgumentParser:
    """The ``argparse`` parser of the ``discograd`` command line, with every subcommand."""
    from .gradient_quality import ESTIMATORS, LOSSES, PROBLEMS, GradientQualityConfig
    from .synthetic import StudyConfig

    parser = argparse.ArgumentParser(prog="discograd", description="discograd experiments, studies and benchmarks")
    sub = parser.add_subparsers(dest="command", required=True)
    synthetic = sub.add_parser("synthetic", help="the paper's synthetic top-k study (100 repetitions, about 20 s on 2 cores)")
    _add_synthetic_options(synthetic)

    study = sub.add_parser(
        "study",
        help="the paper's optimisation study: gaps of every estimator, the λ × lr grid, the claims (a few minutes)",
        description="Minimise E‖z − b‖² over 5-subsets of 10 by SGD with every estimator (I-MLE SoG and Gumbel, "
                    "AIMLE, STE, SIMPLE, score function, relaxed top-k, exact), then the λ × learning-rate grid of "
                    "I-MLE with Sum-of-Gamma against Gumbel noise, and check the paper's three claims on the exact "
                    "and the sampled optimality gap. Writes study.md, study.json, grid.json, grid.png and gaps/ "
                    "into the run folder (default runs/study; runs/study-quick with --quick).",
    )
    _add_run_options(study, "runs/study")
    _add_config_options(study, StudyConfig, {})

    bench = sub.add_parser("bench", help="benchmarks: 'discograd bench gradients'")
    bench_sub = bench.add_subparsers(dest="benchmark", required=True)
    gradients = bench_sub.add_parser(
        "gradients",
        help="gradient quality of every estimator against exact gradients (a few minutes; --quick: seconds)",
        description="Cosine, bias and variance of every estimator's gradient against the exact ∇E_p[L(z)] and "
                    "∇L(μ(θ)) on TopK(10, 5) and TopK(20, 10), as functions of num_samples and λ / σ / τ. Writes "
                    "results.md, results.json, cells.json and quality_<problem>.png into the run folder (default "
                    "runs/bench-gradients; runs/bench-gradients-quick with --quick).",
    )
    _add_run_options(gradients, "runs/bench-gradients")
    _add_config_options(gradients, GradientQualityConfig,
                        {"problems": list(PROBLEMS), "losses": list(LOSSES), "estimators": list(ESTIMATORS)})
    _add_experiment_commands(sub)
    return parser


def _add_experiment_commands(sub: Any) -> None:
    """The experiment packages register their own subcommands (and set a handler attribute on args)."""
    from .dvae import add_dvae_commands
    from .l2x.commands import add_l2x_commands
    from .pto.commands import add_pto_commands
    from .warcraft.commands import add_warcraft_commands

    add_warcraft_commands(sub, demo_name="demo")
    add_dvae_commands(sub)
    add_l2x_commands(sub)
    add_pto_commands(sub)


def _run_synthetic(args: argparse.Namespace) -> int:
    from .synthetic import SyntheticConfig, format_table, run_synthetic

    config = SyntheticConfig(**{f.name: getattr(args, f.name) for f in fields(SyntheticConfig)})
    out = args.out if args.out is not None else Path("runs") / args.command
    start = time.perf_counter()
    results = run_synthetic(config, out, progress=not args.no_progress, plot=not args.no_plot)
    print(format_table(results))
    print(f"\nwrote {out}/ (config.json, curves.json, results.json, results.md"
          f"{'' if args.no_plot else ', curves.png'}) in {time.perf_counter() - start:.1f} s")
    return 0


def _config_from(args: argparse.Namespace, config_cls: type) -> Any:
    config = config_cls.quick() if args.quick else config_cls()
    for f in fields(config_cls):
        value = getattr(args, f.name)
        if value is not None:
            setattr(config, f.name, value)
    return config


def _run_study(args: argparse.Namespace) -> int:
    from .synthetic import StudyConfig, format_study, run_study

    config = _config_from(args, StudyConfig)
    out = args.out if args.out is not None else Path("runs") / ("study-quick" if args.quick else "study")
    start = time.perf_counter()
    results = run_study(config, out, progress=not args.no_progress, plot=not args.no_plot)
    print(format_study(results))
    print(f"\nwrote {out}/ (study.md, study.json, grid.json, gaps/{'' if args.no_plot else ', grid.png'}) "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def _run_bench_gradients(args: argparse.Namespace) -> int:
    from .gradient_quality import GradientQualityConfig, format_tables, run_gradient_quality

    config = _config_from(args, GradientQualityConfig)
    out = args.out if args.out is not None else Path("runs") / ("bench-gradients-quick" if args.quick else "bench-gradients")
    start = time.perf_counter()
    results = run_gradient_quality(config, out, progress=not args.no_progress, plot=not args.no_plot)
    text = format_tables(results)
    print(text[: text.index("### Every cell")].rstrip())
    print(f"\nwrote {out}/ (results.md with every cell, results.json, cells.json"
          f"{'' if args.no_plot else ', quality_<problem>.png'}) in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``discograd`` command line on ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    if hasattr(args, "warcraft_handler"):
        from .warcraft.commands import run_warcraft_command

        return run_warcraft_command(args)
    if hasattr(args, "dvae_handler"):
        from .dvae import run_dvae_command

        return run_dvae_command(args)
    if hasattr(args, "l2x_handler"):
        from .l2x.commands import run_l2x_command

        return run_l2x_command(args)
    if hasattr(args, "pto_handler"):
        from .pto.commands import run_pto_command

        return run_pto_command(args)
    command = args.command if args.command != "bench" else f"bench {args.benchmark}"
    try:
        if args.command == "synthetic":
            return _run_synthetic(args)
        if args.command == "study":
            return _run_study(args)
        if args.command == "bench" and args.benchmark == "gradients":
            return _run_bench_gradients(args)
    except (ValueError, ImportError) as exc:
        print(f"discograd {command}: error: {exc}", file=sys.stderr)
        return 2
    return 1  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
