"""``discograd pto``: the predict-then-optimize benchmark (PyEPO's problems and methods), methods x seeds."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .._cli import (
    add_dataclass_options,
    add_executor_options,
    add_run_options,
    apply_options,
    check_threads,
    executor_options,
    run_command,
)

__all__ = ["OPTION_HELP", "add_pto_commands", "run_pto_command"]

#: the help text of every PTOConfig field (the default is appended)
OPTION_HELP = {
    "problem": "shortest_path (grid x grid, arc costs), knapsack (multi-dimensional 0/1, values) or tsp (complete "
               "graph, edge costs); PyEPO's generators",
    "method": "the method",
    "num_train": "training instances (unset: the problem's PyEPO notebook: 1000 shortest path and TSP, 100 knapsack)",
    "num_test": "test instances",
    "num_features": "features per instance (PyEPO's num_feat)",
    "deg": "polynomial degree of the feature-to-cost map (model misspecification; unset: 4, knapsack 6)",
    "noise_width": "half-width of the multiplicative uniform noise on the costs",
    "data_seed": "seed of genData (unset: 42 shortest path, as its notebook; 135, genData's default, otherwise)",
    "split_seed": "random_state of the train/test split (unset: 42, knapsack 246, as the notebooks)",
    "grid": "shortest_path: the grid's side",
    "num_items": "knapsack: items",
    "dim": "knapsack: resources (constraints)",
    "capacity": "knapsack: capacity of every resource",
    "num_nodes": "tsp: cities",
    "epochs": "training epochs (unset: 20, knapsack 40)",
    "batch_size": "instances per step",
    "learning_rate": "Adam's learning rate (unset: 0.01, knapsack 0.1)",
    "seed": "training seed (model initialisation, batch order, the estimators' noise)",
    "lambd": "dbb and imle: the interpolation / finite-difference step λ in PyEPO's units (unset: the method's "
             "default)",
    "sigma": "dpo, pfy, imle, aimle: the noise scale σ (unset: the method's default)",
    "num_samples": "dpo, pfy, imle, aimle: perturbed samples per instance (unset: the method's default)",
    "kappa": "imle, aimle: κ of the Sum-of-Gamma noise (unset: 5, PyEPO's)",
    "solve_ratio": "nce, cmap, ltr_*: probability of solving the batch (and growing the pool) at a step (unset: "
                   "0.05, PyEPO's notebook)",
    "eval_batch_size": "instances per evaluation batch",
}


def add_pto_commands(subparsers: Any) -> None:
    """Register ``pto`` on an argparse subparsers object."""
    from .compare import PROTOCOLS
    from .train import METHODS, PROBLEMS, PTOConfig

    pto = subparsers.add_parser(
        "pto", help="predict-then-optimize on PyEPO's benchmarks (shortest path, knapsack, TSP): methods x seeds",
        description="Decision-focused learning on PyEPO's synthetic benchmarks (data bit-identical to PyEPO's "
                    "genData): a linear model predicts costs from features, the solver decides, each method trains "
                    "it; the test regret (PyEPO's normalisation) after every epoch. Writes compare.md, compare.csv, "
                    "runs.csv, compare.json and compare.png (regret against epochs) to the output folder, one "
                    "folder per run <out>/<setting>/<method>/seed<seed>/ with config.json, metrics.jsonl, "
                    "metrics.csv, final.json, curves.png and checkpoints/last.pt; rerunning the same command "
                    "resumes. Defaults: PyEPO's notebooks, '03 Training and Testing' for the shortest path (5x5 grid, "
                    "1000 training and 1000 test instances, 5 features, deg 4, noise 0.5, batch 32, Adam 0.01, 20 "
                    "epochs) and '04 2D knapsack Solution Visualization' for the knapsack (16 items, 2 resources of "
                    "capacity 20, 100 training instances, deg 6, Adam 0.1, 40 epochs).")
    pto.add_argument("--methods", nargs="+", choices=list(METHODS), default=["spo_plus", "dbb", "pfy", "imle"],
                     metavar="METHOD", help=f"methods, among {', '.join(METHODS)} (default: spo_plus dbb pfy imle)")
    pto.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="SEED", help="training seeds (default: 0)")
    pto.add_argument("--protocol", choices=list(PROTOCOLS), default="notebook",
                     help="notebook: the one data setting of the options; paper: PyEPO paper's grid, training sizes "
                          "100 1000 5000 x deg 1 2 4 6 x noise 0 0.5 (24 settings; --num-train, --deg and "
                          "--noise-width are then ignored) (default: notebook)")
    add_run_options(pto, "runs/pto-<problem>", "the smoke-test preset (200 training and 200 test instances, 2 "
                    "epochs; seconds)", threads_default=1,
                    threads_help="torch threads per run (default: 1; a linear model, more threads mostly contend)")
    add_executor_options(pto)
    add_dataclass_options(pto, PTOConfig, OPTION_HELP, skip=("method", "seed"),
                          choices={"problem": list(PROBLEMS)})
    pto.set_defaults(pto_handler=_run)


def _run(args: argparse.Namespace) -> int:
    from .compare import format_compare, run_compare
    from .train import PTOConfig

    config = PTOConfig.quick() if args.quick else PTOConfig()
    apply_options(config, args)
    config.validate()
    check_threads(args)
    out = args.out if args.out is not None else Path("runs") / (
        f"pto-{config.problem}" + (f"-{args.protocol}" if args.protocol != "notebook" else "")
        + ("-quick" if args.quick else ""))
    start = time.perf_counter()
    results = run_compare(args.methods, args.seeds, config, out, protocol=args.protocol,
                          progress=not args.no_progress, plot=not args.no_plot, num_threads=args.num_threads,
                          **executor_options(args))
    print(format_compare(results))
    print(f"\nwrote {out}/ (compare.md, compare.csv, runs.csv, compare.json{'' if args.no_plot else ', compare.png'}, "
          f"one folder per run) in {time.perf_counter() - start:.1f} s")
    return 0


def run_pto_command(args: argparse.Namespace) -> int:
    """Run ``discograd pto``; returns the exit status (2 for a bad option, 130 when interrupted: rerun to resume)."""
    return run_command("pto", args.pto_handler, args)
