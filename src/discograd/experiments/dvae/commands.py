"""The ``discograd dvae`` subcommands: ``dvae train`` (one run) and ``dvae compare`` (methods × seeds).

Wiring into an argparse CLI (two lines)::

    add_dvae_commands(subparsers)                                   # in build_parser()
    if hasattr(args, "dvae_handler"): return run_dvae_command(args)  # in main(), before dispatching
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

__all__ = ["OPTION_HELP", "add_dvae_commands", "run_dvae_command"]

#: the help text of every DVAEConfig field (the default is appended)
OPTION_HELP = {
    "method": "the gradient estimator and latent: cat_* on --groups categoricals of --categories values, subset_* "
              "on --groups k-of-n subsets (defaults: 20 of 20, 20 groups of 10-of-20)",
    "dataset": "digits (scikit-learn's bundled 8x8 digits) or mnist (local IDX files in --data-dir)",
    "data_dir": "folder with train-images-idx3-ubyte and t10k-images-idx3-ubyte (optionally .gz), for --dataset mnist",
    "data_seed": "seed of the digits train / test split",
    "num_train": "use only the first N training images (unset: all)",
    "groups": "latent variables (groups)",
    "categories": "categories per categorical variable",
    "subset_size": "n, items per k-subset group",
    "subset_k": "k, ones per k-subset group",
    "hidden": "hidden widths of the encoder MLP, the decoder mirrors them (unset: 512 256, the original, for mnist; "
              "128 64 for the 8x8 digits)",
    "init": "weight initialisation: glorot (Keras' Dense default, the original notebook) or torch (nn.Linear's)",
    "epochs": "training epochs",
    "batch_size": "images per training step",
    "learning_rate": "Adam's learning rate",
    "loss_reduction": "mean (the original: the batch mean, so λ acts per instance as λ / batch size) or sum "
                      "(every sample's upstream gradient is its own)",
    "seed": "training seed (initialisation, batch order, estimator noise, evaluation samples)",
    "train_kl": "the KL term of the training loss: proxy (the original code's categorical KL of each group's "
                "logits) or exact (the k-subset DP)",
    "num_samples": "S, latent samples per image and step (the score function draws max(2, S))",
    "step_size": "λ of I-MLE (cat_imle, subset_imle), on the reduced loss",
    "temperature": "τ of the Sum-of-Gamma perturb-and-MAP noise (subset_imle, subset_aimle, subset_straight_through)",
    "sog_noise": "scale (the paper's Sum-of-Gamma, Gamma scale κ/i) or tf_imle_rate (the tf-imle notebook's: κ/i "
                 "passed as a rate, 6.3 times less spread)",
    "cat_temperature": "τ of the Gumbel perturb-and-MAP noise (cat_imle, cat_straight_through)",
    "relaxation_temperature": "initial τ of Gumbel-softmax and relaxed top-k",
    "relaxation_min_temperature": "the floor of the annealed relaxation τ",
    "relaxation_anneal_rate": "per-epoch annealing rate r: τ_e = max(τ_0 exp(-r e(e+1)/2), τ_min) (the original "
                              "notebook's schedule); 0: constant τ",
    "aimle_target_nonzeros": "subset_aimle: non-zero gradient entries per instance that β is steered to",
    "aimle_update_step": "subset_aimle: how much β moves per step",
    "aimle_initial_beta": "subset_aimle: β at the start",
    "eval_samples": "samples per test image for each reconstruction term: exact samples of q (the ELBO) and draws "
                    "of the training sampler (the original metric)",
    "eval_batch_size": "images per evaluation batch",
    "eval_every": "evaluate the test metrics after every N-th epoch (and after the last)",
}


def _add_config_options(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    from .data import DATASETS
    from .model import INITS, METHODS, SOG_NOISES
    from .train import LOSS_REDUCTIONS, TRAIN_KL, DVAEConfig

    add_dataclass_options(parser, DVAEConfig, OPTION_HELP, skip=skip,
                          choices={"method": list(METHODS), "dataset": list(DATASETS), "train_kl": list(TRAIN_KL),
                                   "loss_reduction": list(LOSS_REDUCTIONS), "init": list(INITS),
                                   "sog_noise": list(SOG_NOISES)})


def _add_run_options(parser: argparse.ArgumentParser, default_out: str) -> None:
    add_run_options(parser, default_out, "the smoke-test preset: 3 epochs on 300 training images (seconds)")


def add_dvae_commands(subparsers: Any) -> None:
    """Register ``dvae`` (with ``train`` and ``compare``) on an argparse subparsers object."""
    from .model import METHODS

    dvae = subparsers.add_parser(
        "dvae", help="discrete VAE on binarised digits: categorical and k-subset latents, original metric and exact ELBO",
        description="A discrete VAE (MLP encoder and decoder) on binarised 8x8 digits (scikit-learn, no download) or "
                    "local MNIST IDX files, with 20 categorical latents of 20 categories or 20 groups of 10-of-20 "
                    "subsets, trained with one gradient estimator; the defaults are the original I-MLE code's "
                    "settings. Every epoch reports the original code's test loss (the training sampler's "
                    "reconstruction + the categorical proxy KL) and the exact negative ELBO (exact KL by the "
                    "k-subset DP, reconstruction with exact samples of q).")
    sub = dvae.add_subparsers(dest="dvae_command", required=True)
    train = sub.add_parser(
        "train", help="train and evaluate one method",
        description="Train one method; writes config.json, metrics.jsonl, final.json, checkpoints/last.pt, "
                    "curves.png, reconstructions.png and samples.png to the run folder. Rerunning the same command "
                    "resumes an interrupted run.")
    _add_run_options(train, "runs/dvae-<method>-seed<seed>")
    _add_config_options(train)
    train.set_defaults(dvae_handler=_run_train)

    compare = sub.add_parser(
        "compare", help="several methods x seeds: one table (Markdown, CSV) and one figure",
        description="Train every method of --methods with every seed of --seeds (each run in <out>/<method>/seed<seed>/, "
                    "resumable) and write compare.md, compare.csv, runs.csv, compare.json and compare.png: the "
                    "original code's test loss and the exact -ELBO side by side, and their terms, mean ± std over "
                    "seeds.")
    compare.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS), metavar="METHOD",
                         help=f"methods to compare, among {', '.join(METHODS)} (default: all)")
    compare.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], metavar="SEED",
                         help="training seeds (default: 0 1 2)")
    _add_run_options(compare, "runs/dvae-compare")
    add_executor_options(compare)
    _add_config_options(compare, skip=("method", "seed"))
    compare.set_defaults(dvae_handler=_run_compare)


def _config_from(args: argparse.Namespace) -> Any:
    from .train import DVAEConfig

    config = DVAEConfig.quick() if args.quick else DVAEConfig()
    apply_options(config, args)
    return config


def _run_train(args: argparse.Namespace) -> int:
    from .train import run_dvae

    config = _config_from(args)
    config.validate()
    check_threads(args)
    out = args.out if args.out is not None else Path("runs") / (
        f"dvae-{config.method}-seed{config.seed}" + ("-quick" if args.quick else ""))
    start = time.perf_counter()
    finished = announce_run(out)
    final = run_dvae(config, out, progress=not args.no_progress, plot=not args.no_plot, num_threads=args.num_threads)
    test = final["test"]
    print(f"{config.method}, {final['epochs_done']} epochs: test original metric {test['original_loss']:.2f} nats "
          f"(training-sampler reconstruction {test['sampler_reconstruction']:.2f} + proxy KL {test['proxy_kl']:.2f}); "
          f"test -ELBO {test['nelbo']:.2f} nats (reconstruction {test['reconstruction']:.2f} + exact KL "
          f"{test['kl']:.2f})")
    if finished:
        print(reused_message(out))
    else:
        print(f"wrote {out}/ (config.json, metrics.jsonl, final.json, checkpoints/"
              f"{'' if args.no_plot else ', curves.png, reconstructions.png, samples.png'}) in "
              f"{time.perf_counter() - start:.0f} s")
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    from .train import format_compare, run_compare

    config = _config_from(args)
    check_threads(args)
    out = args.out if args.out is not None else Path("runs") / ("dvae-compare" + ("-quick" if args.quick else ""))
    start = time.perf_counter()
    results = run_compare(list(args.methods), list(args.seeds), replace(config, method=args.methods[0]), out,
                          progress=not args.no_progress, plot=not args.no_plot, num_threads=args.num_threads,
                          **executor_options(args))
    print(format_compare(results))
    print(f"\nwrote {out}/ (compare.md, compare.csv, runs.csv, compare.json{'' if args.no_plot else ', compare.png'}, "
          f"one folder per run) in {time.perf_counter() - start:.0f} s")
    return 0


def run_dvae_command(args: argparse.Namespace) -> int:
    """Run a command registered by :func:`add_dvae_commands`; returns the exit status (2 for a bad option,
    130 when interrupted: rerun the same command to resume)."""
    name = f"dvae {getattr(args, 'dvae_command', '')}".strip()
    return run_command(name, args.dvae_handler, args)
