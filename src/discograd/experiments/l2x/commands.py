"""``discograd l2x train`` and ``discograd l2x compare``.

Wiring into the ``discograd`` argparse CLI (two lines)::

    add_l2x_commands(subparsers)                                        # in build_parser()
    if hasattr(args, "l2x_handler"): return run_l2x_command(args)      # in main(), before dispatching
"""

from __future__ import annotations

import argparse
import time
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

__all__ = ["OPTION_HELP", "add_l2x_commands", "run_l2x_command"]

#: the help text of every L2XConfig field (the default is appended)
OPTION_HELP = {
    "task": "xor, orange_skin, nonlinear_additive, switch (L2X's synthetic tabular data), reviews (synthetic reviews "
            "with annotated spans) or beer (the original BeerAdvocate files; needs --data-dir)",
    "method": "the k-subset method",
    "k": "features / tokens selected (unset: 2, 4, 4, 5 for the tabular tasks, 10 for text)",
    "num_train": "training instances (unset: 10000 tabular, 2000 reviews, all for beer; 0 = all for beer)",
    "num_val": "validation instances (unset: 2000 tabular, 500 reviews; text: the held-out set is num_val + num_test "
               "reviews, split in half at random per seed; beer: held-out reviews read, 0 = all)",
    "num_test": "test instances (unset: 2000 tabular, 500 reviews; beer: annotated reviews read for the precision, "
                "0 = all 994)",
    "data_seed": "seed of the generated data (the same for every training seed)",
    "data_dir": "beer: the folder with reviews.aspect<A>.{train,heldout}.txt[.gz], annotations.json[.gz] and the "
                "embedding file",
    "aspect": "beer: the aspect, 0 appearance, 1 aroma (the paper's Table 1), 2 palate, 3 taste, 4 overall",
    "max_length": "beer: tokens kept per review (the first ones)",
    "padding": "beer: pre (zeros before the review, the original's) or post",
    "embedding_file": "beer: the word-embedding file inside --data-dir (a word and its floats per line)",
    "seq_length": "reviews: tokens per review",
    "vocab_size": "reviews: vocabulary size",
    "embedding_dim": "reviews: embedding dimension",
    "epochs": "training epochs (unset: 10 tabular, 20 text)",
    "batch_size": "instances per step (unset: 100 tabular, 40 text)",
    "learning_rate": "Adam's learning rate",
    "adam_eps": "Adam's epsilon (unset: 1e-7 text, Keras' default as the original; 1e-8 tabular)",
    "loss_reduction": "mean or sum of the per-instance losses over the batch; λ is in its units (unset: mean text, "
                      "as the original; sum tabular)",
    "seed": "training seed (initialisation, batch order, estimator noise, dropout)",
    "predictor": "text: original (Σ_t e_t z_t / k → Dense → ReLU → Dense → sigmoid, the I-MLE code's) or conv (ours: "
                 "Conv1d, mean-pool over all tokens)",
    "hidden": "tabular: selector width (predictor 2x); text: the predictor's dense units (unset: 100 tabular, 250 "
              "text)",
    "filters": "text: selector channels; the conv predictor has 2.5x (unset: 100)",
    "init": "glorot (Keras' defaults, the original's) or torch (unset: glorot text, torch tabular)",
    "temperature": "τ of the Sum-of-Gamma noise of imle, aimle, straight_through (unset: 1 text, the notebook's "
                   "I-MLE cell; the paper's Table 1 names τ = 30; k tabular)",
    "step_size": "λ of imle, in the units of the batch loss (unset: 1000 text, the original's; 1 tabular)",
    "imle_two_sided": "imle: central difference (MAP(θ + λg + ε) − MAP(θ − λg + ε)) / 2",
    "imle_scale_by_step_size": "imle: divide the gradient by λ (the original does not)",
    "num_samples": "S, samples per instance and step",
    "noise_terms": "terms of the Sum-of-Gamma series",
    "relaxation_temperature": "temperature of softsub and l2x (unset: text 0.5 softsub and 0.1 l2x, the original's; "
                              "0.1 tabular)",
    "concrete_draws": "l2x: Concrete draws, the mask is their element-wise max (unset: 1 text, as the I-MLE code's "
                      "Sample_Concrete; k tabular, as Chen et al.'s L2X)",
    "aimle_target_nonzeros": "aimle: the non-zero gradient entries per instance β is steered to",
    "aimle_update_step": "aimle: how much β moves per step",
    "aimle_initial_beta": "aimle: β at the start",
    "aimle_two_sided": "aimle: central difference",
    "eval_batch_size": "instances per evaluation batch",
    "device": "cpu, cuda or cuda:N",
}


def _add_config_options(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    from .train import METHODS, TASKS, L2XConfig

    add_dataclass_options(parser, L2XConfig, OPTION_HELP, skip=skip,
                          choices={"task": list(TASKS), "method": list(METHODS)})


def _add_run_options(parser: argparse.ArgumentParser, default_out: str) -> None:
    add_run_options(parser, default_out, "the smoke-test preset (600/100/100 instances, 2 epochs, small networks; "
                    "seconds)", threads_default=1,
                    threads_help="torch threads (default: 1; these networks are small, more threads mostly contend)")


def add_l2x_commands(subparsers: Any) -> None:
    """Register ``l2x`` (with ``train`` and ``compare``) on an argparse subparsers object."""
    from .train import METHODS

    l2x = subparsers.add_parser(
        "l2x", help="learning to explain: k-subset feature / token selection (L2X tasks, I-MLE Table 1)",
        description="Learning to explain (Chen et al. 2018; I-MLE paper Section 5.2): a selector scores the features "
                    "or tokens, a k-subset method picks k of them, a predictor sees only those. 'train' runs one "
                    "method, 'compare' methods x seeds (x k).")
    sub = l2x.add_subparsers(dest="l2x_command", required=True, metavar="{train,compare}")
    train = sub.add_parser(
        "train", help="train one explainer",
        description="Train one method on one task and write config.json, metrics.jsonl, final.json, curves.png, "
                    "checkpoints/last.pt and checkpoints/best.pt (the best-validation epoch) to the run folder; "
                    "rerunning the same command resumes.")
    _add_run_options(train, "runs/l2x-<task>-<method>-k<k>-seed<seed>")
    _add_config_options(train)
    train.set_defaults(l2x_handler=_run_train)

    compare = sub.add_parser(
        "compare", help="methods x seeds (x k): one table (Markdown, CSV) and one figure",
        description="Train every method of --methods with every seed of --seeds (and every k of --ks) on the same "
                    "data and write compare.md, compare.csv, runs.csv, compare.json and compare.png (test metrics "
                    "at the best-validation epoch and after the last, mean ± std over seeds; for --task beer next to "
                    "the paper's Table 1); each "
                    "run has its own folder <out>/<method>-k<k>/seed<seed>/ and resumes when interrupted.")
    compare.add_argument("--methods", nargs="+", choices=list(METHODS), default=None, metavar="METHOD",
                         help=f"methods, among {', '.join(METHODS)} (default: all that the task allows; exact is "
                              "tabular only)")
    compare.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], metavar="SEED",
                         help="training seeds (default: 0 1 2)")
    compare.add_argument("--ks", nargs="+", type=int, default=None, metavar="K",
                         help="subset sizes (default: --k, or the task's default; the paper: 5 10 15)")
    _add_run_options(compare, "runs/l2x-compare-<task>")
    add_executor_options(compare)
    _add_config_options(compare, skip=("method", "seed"))
    compare.set_defaults(l2x_handler=_run_compare)


def _config_from(args: argparse.Namespace) -> Any:
    from .train import L2XConfig

    config = L2XConfig.quick() if args.quick else L2XConfig()
    apply_options(config, args)
    return config


def _summary(final: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in final["test"].items())


def _run_train(args: argparse.Namespace) -> int:
    from .train import run_l2x

    config = _config_from(args).resolve()
    check_threads(args)
    out = args.out if args.out is not None else Path("runs") / (
        f"l2x-{config.task}-{config.method}-k{config.k}-seed{config.seed}" + ("-quick" if args.quick else ""))
    start = time.perf_counter()
    finished = announce_run(out)
    final = run_l2x(config, out, progress=not args.no_progress, plot=not args.no_plot, num_threads=args.num_threads)
    print(f"l2x {config.task}, {config.method}, k = {config.k}, {final['epochs_done']} epochs: test {_summary(final)}")
    if finished:
        print(reused_message(out))
    else:
        print(f"wrote {out}/ (config.json, metrics.jsonl, final.json, checkpoints/last.pt, best.pt"
              f"{'' if args.no_plot else ', curves.png'}) in {time.perf_counter() - start:.1f} s")
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    from .compare import format_compare, run_compare

    config = _config_from(args)
    config.validate()
    check_threads(args)
    out = args.out if args.out is not None else Path("runs") / (
        f"l2x-compare-{config.task}" + ("-quick" if args.quick else ""))
    start = time.perf_counter()
    results = run_compare(args.methods, args.seeds, config, out, ks=args.ks, progress=not args.no_progress,
                          plot=not args.no_plot, num_threads=args.num_threads, **executor_options(args))
    print(format_compare(results))
    print(f"\nwrote {out}/ (compare.md, compare.csv, runs.csv, compare.json{'' if args.no_plot else ', compare.png'}, "
          f"one folder per run) in {time.perf_counter() - start:.1f} s")
    return 0


def run_l2x_command(args: argparse.Namespace) -> int:
    """Run a command registered by :func:`add_l2x_commands`; returns the exit status (2 for a bad option or a
    missing file, 130 when interrupted: rerun the same command to resume)."""
    name = f"l2x {getattr(args, 'l2x_command', '')}".strip()
    return run_command(name, args.l2x_handler, args, (ValueError, ImportError, FileNotFoundError))
