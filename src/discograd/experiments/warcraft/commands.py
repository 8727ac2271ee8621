"""The Warcraft subcommands of the ``discograd`` command line: ``warcraft``, ``compare``, ``table2`` (and the
demo).

Wiring into an argparse CLI (two lines)::

    add_warcraft_commands(subparsers)              # in build_parser(), next to the other subcommands
    if hasattr(args, "warcraft_handler"): return run_warcraft_command(args)   # in main(), before dispatching

``add_warcraft_commands(subparsers, demo_name="demo")`` also registers :func:`~.compare.warcraft_demo` under
that name.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._cli import (
    add_dataclass_options,
    add_executor_options,
    add_run_options,
    announce_run,
    apply_options,
    check_threads,
    executor_options,
    reused_message,
    run_command,
)

__all__ = ["OPTION_HELP", "add_warcraft_commands", "run_warcraft_command"]

#: the help text of every WarcraftConfig field (the default is appended)
OPTION_HELP = {
    "method": "the training method",
    "grid_size": "K, the side of the grid: maps are 8K x 8K pixels (the paper: 12, 18, 24 or 30)",
    "num_train": "training maps (the first ones of the split)",
    "num_val": "validation maps",
    "num_test": "test maps",
    "data_seed": "seed of the generated data set (the same for every training seed)",
    "data_dir": "folder with the original data set ({train,val,test}_maps.npy, _vertex_weights.npy, "
                "_shortest_paths.npy) instead of generated maps",
    "epochs": "training epochs",
    "batch_size": "maps per training step",
    "learning_rate": "Adam's learning rate",
    "lr_milestones": "epochs after which the learning rate is multiplied by --lr-decay (none: a constant rate)",
    "lr_decay": "the factor applied at each milestone",
    "seed": "training seed (network initialisation, batch order, estimator noise)",
    "width": "channels of the ResNet18 stem and layer1 (64 in the paper)",
    "cost_activation": "map from the network's non-negative output to costs: abs (the original's), softplus "
                       "(strictly positive; our option) or identity",
    "loss_reduction": "mean: the Hamming loss averaged over the batch, the original's (g = ±1/batch per cell); "
                      "sum: summed (g = ±1), with the default λ divided by the batch size",
    "step_size": "λ of imle, imle_mm, imle_mumu, imle_mu_map and blackbox (unset: the original's 20 for blackbox "
                 "and imle, 50 for imle_mm and imle_mu_map, 10 for imle_mumu; divided by the batch size with "
                 "--loss-reduction sum)",
    "num_samples": "S, noise samples per map and step (imle, aimle, imle_mumu, imle_mu_map, straight_through, "
                   "perturbed_fy)",
    "temperature": "τ, scale of the forward Sum-of-Gamma noise",
    "target_temperature": "τ', scale of the same noise on the I-MLE target side (unset: = --temperature; "
                          "imle_mu_map: 0)",
    "noise_k": "κ of the Sum-of-Gamma noise (unset: int(1.3 * grid size), the original's)",
    "noise_terms": "terms of the truncated Sum-of-Gamma series",
    "aimle_target_nonzeros": "aimle: the number of non-zero gradient cells per map that β is steered to "
                             "(unset: grid size)",
    "aimle_update_step": "aimle: how much β moves per step",
    "aimle_initial_beta": "aimle: β at the start",
    "aimle_two_sided": "aimle: central difference (two solver calls per sample in the backward pass)",
    "fy_noise_scale": "σ of the Normal noise of perturbed_fy (the paper's row: 0.01)",
    "eval_batch_size": "maps per evaluation batch",
    "device": "cpu, cuda or cuda:N (the network; the solver always runs on the CPU)",
}


def _add_config_options(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One option per WarcraftConfig field; every default is ``None`` (= the preset's value)."""
    from .model import COST_ACTIVATIONS
    from .train import LOSS_REDUCTIONS, METHODS, WarcraftConfig

    add_dataclass_options(parser, WarcraftConfig, OPTION_HELP, skip=skip, aliases={"learning_rate": ["--lr"]},
                          choices={"method": list(METHODS), "cost_activation": list(COST_ACTIVATIONS),
                                   "loss_reduction": list(LOSS_REDUCTIONS)})


def _add_run_options(parser: argparse.ArgumentParser, default_out: str) -> None:
    add_run_options(parser, default_out, "the smoke-test preset: 200/50/50 maps, 2 epochs, batch 20 (seconds)",
                    cache_dir="data/warcraft")


def add_warcraft_commands(subparsers: Any, *, demo_name: str | None = None) -> None:
    """Register ``warcraft``, ``compare`` and ``table2`` (and, with ``demo_name``, the Warcraft demo) on an argparse
    subparsers object."""
    from .compare import TABLE2_GRID_SIZES, TABLE2_METHODS
    from .train import METHODS

    warcraft = subparsers.add_parser(
        "warcraft", help="train and evaluate one method on Warcraft shortest paths",
        description="Train one method on Warcraft maps (generated, or the original data with --data-dir): a "
                    "ResNet18-stem CNN predicts cell costs, GridShortestPath turns them into a path, the loss "
                    "compares paths. Defaults are the paper's protocol (10,000 maps, Adam 5e-4, batch 70, 50 "
                    "epochs, lr x0.1 after epochs 30 and 40). Writes config.json, metrics.jsonl/.csv, final.json, "
                    "curves.png, paths.png and checkpoints/last.pt to the run folder; rerunning the same command "
                    "resumes an interrupted run. --benchmark-epoch times one training epoch instead.")
    _add_run_options(warcraft, "runs/warcraft-<method>-<K>x<K>-seed<seed>")
    warcraft.add_argument("--benchmark-epoch", action="store_true",
                          help="time one training epoch (--num-train maps, --batch-size, --grid-size) split into data, "
                               "network, solver and estimator, for I-MLE with S = 1 and S = 10 against the two-stage "
                               "MSE step; --quick measures 5 batches")
    _add_config_options(warcraft)
    warcraft.set_defaults(warcraft_handler=_run_warcraft)

    compare = subparsers.add_parser(
        "compare", help="several Warcraft methods x seeds: one table (Markdown, CSV) and one figure",
        description="Train every method of --methods with every seed of --seeds on the same Warcraft data and "
                    "write compare.md, compare.csv, runs.csv, compare.json and compare.png (test metrics after the "
                    "last epoch, mean ± std over seeds, next to the paper's Table 2) to the output folder; each "
                    "run has its own folder <out>/<method>/seed<seed>/ and resumes when interrupted.")
    compare.add_argument("--methods", nargs="+", choices=list(METHODS), default=["imle", "blackbox", "straight_through"],
                         metavar="METHOD", help=f"methods to compare, among {', '.join(METHODS)} "
                                                "(default: imle blackbox straight_through)")
    compare.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], metavar="SEED",
                         help="training seeds (default: 0 1 2)")
    _add_run_options(compare, "runs/compare-<K>x<K>")
    add_executor_options(compare)
    _add_config_options(compare, skip=("method", "seed"))
    compare.set_defaults(warcraft_handler=_run_compare)

    table2 = subparsers.add_parser(
        "table2", help="the paper's Table 2: compare methods x seeds at several grid sizes, one table of %% optimal "
                       "paths (methods x grid sizes) next to the paper's",
        description="Run `compare` at every grid size of --grid-sizes (into <out>/K<K>/) and write table2.md, "
                    "table2.csv, table2.json and table2.png: % of test paths with optimal cost, mean ± std over "
                    "seeds, next to the paper's Table 2. Finished runs are reused, so rerunning with more seeds "
                    "trains only the new ones. The defaults are the paper's protocol (50 epochs of 10,000 maps: "
                    "hours per run on a CPU); docs/warcraft.md gives the reduced protocol measured on 2 CPU cores.")
    table2.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(TABLE2_METHODS), metavar="METHOD",
                        help=f"methods, among {', '.join(METHODS)} (default: {' '.join(TABLE2_METHODS)})")
    table2.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], metavar="SEED",
                        help="training seeds (default: 0 1 2; the paper used 5)")
    table2.add_argument("--grid-sizes", nargs="+", type=int, default=list(TABLE2_GRID_SIZES), metavar="K",
                        help="grid sizes (default: 12 18 24 30, the paper's)")
    _add_run_options(table2, "runs/table2")
    add_executor_options(table2)
    _add_config_options(table2, skip=("method", "seed", "grid_size"))
    table2.set_defaults(warcraft_handler=_run_table2)

    if demo_name is not None:
        from .compare import DEMO_CONFIG

        demo = subparsers.add_parser(
            demo_name, help="the Warcraft demo: I-MLE, blackbox and straight-through on generated 12x12 maps "
                            "(a few minutes on 2 CPU cores)",
            description=f"Train imle, blackbox and straight_through for {DEMO_CONFIG.epochs} epochs on "
                        f"{DEMO_CONFIG.num_train} generated 12x12 maps with 2 torch threads, print the accuracy "
                        "table and write the plots (default folder runs/demo).")
        demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default: runs/demo)")
        demo.add_argument("--cache-dir", type=Path, default=Path("data/warcraft"),
                          help="where generated maps are cached (default: data/warcraft)")
        demo.add_argument("--num-threads", type=int, default=2, help="torch threads (default: 2)")
        demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")
        demo.add_argument("--no-plot", action="store_true", help="skip the PNGs (no matplotlib needed)")
        demo.set_defaults(warcraft_handler=_run_demo)


def _config_from(args: argparse.Namespace, **fixed: Any) -> Any:
    from .train import WarcraftConfig

    config = WarcraftConfig.quick() if args.quick else WarcraftConfig()
    apply_options(config, args)
    return replace(config, **fixed) if fixed else config


def _run_warcraft(args: argparse.Namespace) -> int:
    from .train import benchmark_epoch, format_benchmark

    config = _config_from(args)
    config.validate()
    check_threads(args)
    if args.benchmark_epoch:
        previous = None
        if args.num_threads is not None:
            import torch

            previous = torch.get_num_threads()
            torch.set_num_threads(args.num_threads)
        try:
            result = benchmark_epoch(config.grid_size, config.num_train, config.batch_size,
                                     max_batches=5 if args.quick else None, device=config.device,
                                     progress=not args.no_progress)
        finally:
            if previous is not None:
                torch.set_num_threads(previous)
        print(format_benchmark(result))
        if args.out is not None:
            from .._io import write_json

            write_json(Path(args.out) / "benchmark_epoch.json", result)
            print(f"\nwrote {args.out}/benchmark_epoch.json")
        return 0
    out = args.out if args.out is not None else Path("runs") / (
        f"warcraft-{config.method}-{config.grid_size}x{config.grid_size}-seed{config.seed}" + ("-quick" if args.quick else ""))
    from ... import distributed

    started_group = not _group_exists() and distributed.init_from_env()  # under torchrun: one rank per process
    try:
        return _train_and_report(args, config, out, distributed.rank() == 0)
    finally:
        if started_group:
            import torch

            torch.distributed.destroy_process_group()


def _group_exists() -> bool:
    import torch

    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _train_and_report(args: argparse.Namespace, config: Any, out: Path, speaker: bool) -> int:
    from .train import run_warcraft

    start = time.perf_counter()
    finished = announce_run(out) if speaker else False
    final = run_warcraft(config, out, progress=not args.no_progress, plot=not args.no_plot, cache_dir=args.cache_dir,
                         num_threads=args.num_threads)
    if not speaker:
        return 0
    test = final["test"]
    print(f"{config.method}, {config.grid_size}x{config.grid_size}, {final['epochs_done']} epochs: test "
          f"{test['optimal_pct']:.1f}% optimal cost, {test['exact_pct']:.1f}% exact path, cost ratio "
          f"{test['cost_ratio']:.4f}, regret {test['regret']:.3f}")
    if finished:
        print(reused_message(out))
    else:
        print(f"wrote {out}/ (config.json, metrics.jsonl, metrics.csv, final.json, checkpoints/"
              f"{'' if args.no_plot else ', curves.png, paths.png'}) in {time.perf_counter() - start:.0f} s")
    return 0


def _refuse_torchrun(command: str) -> None:
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(f"`{command}` runs many runs: launch it once (not under torchrun) and give it --executor ray "
                         f"to spread them; torchrun is for one data-parallel run (discograd warcraft)")


def _run_compare(args: argparse.Namespace) -> int:
    from .compare import format_compare, run_compare

    _refuse_torchrun("compare")

    config = _config_from(args)
    check_threads(args)
    out = args.out if args.out is not None else Path("runs") / (
        f"compare-{config.grid_size}x{config.grid_size}" + ("-quick" if args.quick else ""))
    start = time.perf_counter()
    results = run_compare(args.methods, args.seeds, config, out, progress=not args.no_progress, plot=not args.no_plot,
                          cache_dir=args.cache_dir, num_threads=args.num_threads, **executor_options(args))
    print(format_compare(results))
    print(f"\nwrote {out}/ (compare.md, compare.csv, runs.csv, compare.json{'' if args.no_plot else ', compare.png'}, "
          f"one folder per run) in {time.perf_counter() - start:.0f} s")
    return 0


def _run_table2(args: argparse.Namespace) -> int:
    from .compare import format_table2, run_table2

    _refuse_torchrun("table2")

    config = _config_from(args)
    check_threads(args)
    out = args.out if args.out is not None else Path("runs") / ("table2" + ("-quick" if args.quick else ""))
    start = time.perf_counter()
    results = run_table2(args.methods, args.seeds, config, args.grid_sizes, out, progress=not args.no_progress,
                         plot=not args.no_plot, cache_dir=args.cache_dir, num_threads=args.num_threads,
                         **executor_options(args))
    print(format_table2(results))
    print(f"\nwrote {out}/ (table2.md, table2.csv, table2.json{'' if args.no_plot else ', table2.png'}; one compare "
          f"folder K<K>/ per grid size) in {time.perf_counter() - start:.0f} s")
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from .compare import warcraft_demo

    check_threads(args)
    warcraft_demo(args.out, num_threads=args.num_threads, progress=not args.no_progress, plot=not args.no_plot,
                  cache_dir=args.cache_dir)
    return 0


def run_warcraft_command(args: argparse.Namespace) -> int:
    """Run a command registered by :func:`add_warcraft_commands`; returns the exit status (2 for a bad
    option, 130 when interrupted: rerun the same command to resume)."""
    name = args.command if hasattr(args, "command") else "warcraft"
    return run_command(name, args.warcraft_handler, args)
