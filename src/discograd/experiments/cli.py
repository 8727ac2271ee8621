"""The ``discograd`` command line: ``discograd demo``, ``discograd synthetic ...``."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Sequence

__all__ = ["main", "build_parser"]


def _add_synthetic_options(parser: argparse.ArgumentParser) -> None:
    from .synthetic import METHODS, SyntheticConfig

    defaults = SyntheticConfig()
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<command>)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(defaults.methods))
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib needed)")
    for f in fields(SyntheticConfig):
        if f.name == "methods":
            continue
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name)),
                            default=getattr(defaults, f.name), help=f"default {getattr(defaults, f.name)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="discograd", description="discograd experiments and demos")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the paper's synthetic top-k study, 100 repetitions (about a minute on 2 cores)")
    _add_synthetic_options(demo)
    synthetic = sub.add_parser("synthetic", help="the synthetic top-k study with every option")
    _add_synthetic_options(synthetic)
    return parser


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in ("demo", "synthetic"):
            return _run_synthetic(args)
    except (ValueError, ImportError) as exc:
        print(f"discograd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 1  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
