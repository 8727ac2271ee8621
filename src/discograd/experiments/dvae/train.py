"""Training runs of the discrete VAE (:func:`run_dvae`) and method × seed comparisons (:func:`run_compare`).

A run folder holds ``config.json`` (the resolved config), ``metrics.jsonl`` (one row per epoch; epoch 0 is
the untrained network), ``final.json``, ``checkpoints/last.pt`` (rewritten after every epoch; loadable with
``torch.load(..., weights_only=True)``), and with plots ``curves.png``, ``reconstructions.png`` and
``samples.png``. Every write is atomic; rerunning with the same config resumes after the last finished
epoch and ends with the numbers of an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._format import csv_text, mean_std_cell, over_seeds
from .._io import atomic_write_text, environment_info, pyplot, save_figure, write_json
from ..executors import RunTask, run_tasks
from ..harness import Trainer, open_run, torch_threads
from ..harness import train as harness_train
from .data import DATASETS, BinaryImages, load_digits_binary, load_mnist_binary
from .model import (
    INITS,
    METHODS,
    RELAXATION_METHODS,
    SOG_NOISES,
    DiscreteVAE,
    EstimatorSettings,
    build_estimator,
    evaluate,
    latent_kind,
    sample_posterior,
    sample_prior,
    training_kl,
)

__all__ = ["LOSS_REDUCTIONS", "METRICS", "METRIC_DESCRIPTIONS", "DVAEConfig", "annealed_temperature",
           "default_hidden", "format_compare", "load_data", "run_compare", "run_dvae", "training_loss"]

#: the evaluation metrics of every epoch (nats per test image); the first two are the headline numbers
METRICS = ("original_loss", "nelbo", "sampler_reconstruction", "reconstruction", "proxy_kl", "kl", "proxy_loss")
#: what each metric is (also written to ``final.json``)
METRIC_DESCRIPTIONS = {
    "original_loss": "the original code's reported test loss: reconstruction with z drawn by the method's training "
                     "sampler + the categorical proxy KL",
    "nelbo": "the exact negative ELBO: reconstruction with exact samples of q + the exact KL (k-subset DP)",
    "sampler_reconstruction": "reconstruction term, z from the method's training sampler",
    "reconstruction": "reconstruction term, z from exact samples of q(z; θ)",
    "proxy_kl": "KL(softmax(θ_g) ‖ uniform(n)) summed over groups (exact for categorical latents)",
    "kl": "exact KL(q ‖ uniform prior)",
    "proxy_loss": "reconstruction (exact q) + proxy KL",
}
TRAIN_KL = ("exact", "proxy")
LOSS_REDUCTIONS = ("mean", "sum")
#: hidden widths when ``hidden`` is empty: the original's on MNIST, a quarter of them on the 8 × 8 digits
ORIGINAL_HIDDEN = (512, 256)
DIGITS_HIDDEN = (128, 64)


def default_hidden(dataset: str) -> list[int]:
    """The encoder's hidden widths (the decoder mirrors them) when ``hidden`` is not given.

    ``"mnist"``: the original ``512, 256`` (encoder 784-512-256-400, decoder 400-256-512-784). ``"digits"``
    (64 pixels, 12.25 times fewer than MNIST's 784): the original widths divided by 4, ``128, 64`` (the
    square root of the pixel ratio is 3.5, rounded to the power of two 4, which keeps the original's halving
    from layer to layer).

    Example:
        >>> default_hidden("mnist"), default_hidden("digits")
        ([512, 256], [128, 64])
    """
    return list(ORIGINAL_HIDDEN if dataset == "mnist" else DIGITS_HIDDEN)


def annealed_temperature(epoch: int, initial: float = 1.0, minimum: float = 0.5, rate: float = 3e-4) -> float:
    """The Gumbel-softmax temperature of ``epoch`` (1-based) under the tf-imle DVAE notebook's schedule.

    The notebook updates ``τ ← max(τ · exp(−rate · epoch), τ_min)`` at the start of every epoch, from
    ``τ = initial``: a compounding decay, ``τ_e = max(initial · exp(−rate · e(e+1)/2), τ_min)``. With the
    defaults τ reaches 0.5 at epoch 68 and stays there. ``rate = 0``: a constant τ. Epoch 0 (evaluation of
    the untrained network) gives ``initial``.

    Example:
        >>> round(annealed_temperature(1), 5), round(annealed_temperature(67), 4), annealed_temperature(68)
        (0.9997, 0.5049, 0.5)
    """
    return max(initial * math.exp(-rate * epoch * (epoch + 1) / 2), minimum)


def training_loss(reconstruction: torch.Tensor, kl: torch.Tensor, reduction: str) -> torch.Tensor:
    """The scalar that is differentiated: reconstruction ``[S, B]`` plus KL ``[B]``.

    ``"mean"`` (the original code): ``mean_b(mean_s recon[s, b] + kl[b])``, the batch mean of the per-image
    loss, so every sample's upstream gradient is ``1/(S·B)`` of its own. ``"sum"``: ``Σ_b (Σ_s recon[s, b] +
    S · kl[b])``, so that every sample's upstream gradient is its own and I-MLE's λ keeps its meaning for any
    batch size; it is exactly ``S·B`` times the mean.

    Example:
        >>> import torch
        >>> r, kl = torch.ones(1, 4), torch.zeros(4)
        >>> float(training_loss(r, kl, "mean")), float(training_loss(r, kl, "sum"))
        (1.0, 4.0)
    """
    if reduction == "mean":
        return (reconstruction.mean(0) + kl).mean()
    if reduction == "sum":
        return (reconstruction.sum(0) + reconstruction.shape[0] * kl).sum()
    raise ValueError(f"loss_reduction must be one of {list(LOSS_REDUCTIONS)}; got {reduction!r}")


@dataclass
class DVAEConfig:
    """Every hyperparameter of one run; written, resolved, to ``config.json``.

    The defaults are the original code's settings (tf-imle DVAE notebook; torch-adaptive-imle
    ``cli/vae-cli.py``), see ``docs/dvae.md``: 20 groups of 10-of-20 subsets, Sum-of-Gamma κ = 10, τ = 10,
    λ = 10 on a batch-mean loss, hidden widths 512-256 (a quarter on the 8 × 8 digits), Glorot init, Adam
    1e-3, batch 100, 100 epochs, the categorical proxy KL in the training loss; Gumbel-softmax on 20
    categoricals of 20 with τ annealed 1 → 0.5. Our own variants are options: ``train_kl="exact"``,
    ``loss_reduction="sum"``, ``hidden``, ``step_size``, ``sog_noise``.
    """

    method: str = "subset_imle"
    dataset: str = "digits"
    data_dir: str | None = None  # MNIST: a folder with the IDX files
    data_seed: int = 0  # the digits train / test split
    num_train: int | None = None  # None: every training image
    # latents: `groups` variables; categorical over `categories`, or k-of-`subset_size` subsets
    groups: int = 20
    categories: int = 20
    subset_size: int = 20
    subset_k: int = 10
    # the encoder's hidden widths (the decoder mirrors them); empty: default_hidden(dataset)
    hidden: list[int] = field(default_factory=list)
    init: str = "glorot"  # "glorot" (Keras Dense default, the tf-imle notebook) or "torch"
    # optimisation
    epochs: int = 100
    batch_size: int = 100
    learning_rate: float = 1e-3
    seed: int = 0
    loss_reduction: str = "mean"  # "mean" over the batch (the original) or "sum"
    train_kl: str = "proxy"  # "proxy" (the original code's categorical KL) or "exact" (the DP)
    # estimators
    num_samples: int = 1  # S per example (the score function draws max(2, S))
    step_size: float = 10.0  # λ of I-MLE
    temperature: float = 10.0  # τ of the Sum-of-Gamma perturb-and-MAP noise (subset_imle, _aimle, _straight_through)
    sog_noise: str = "scale"  # "scale" (the paper's Sum-of-Gamma) or "tf_imle_rate" (the notebook's mix-up)
    cat_temperature: float = 1.0  # τ of the Gumbel perturb-and-MAP noise (cat_imle, cat_straight_through)
    relaxation_temperature: float = 1.0  # initial τ of Gumbel-softmax and relaxed top-k
    relaxation_min_temperature: float = 0.5  # its floor
    relaxation_anneal_rate: float = 3e-4  # τ_e = max(τ_0 exp(−rate e(e+1)/2), τ_min); 0: constant
    aimle_target_nonzeros: float = 10.0
    aimle_update_step: float = 1e-3
    aimle_initial_beta: float = 1.0
    # evaluation
    eval_samples: int = 4  # samples per test image for each reconstruction term (exact q; training sampler)
    eval_batch_size: int = 500
    eval_every: int = 1  # evaluate after every N-th epoch (and after the last; epoch 0 always)

    @classmethod
    def quick(cls, **overrides: Any) -> DVAEConfig:
        """The smoke-test preset: 3 epochs, 300 training images (seconds)."""
        values: dict[str, Any] = {"epochs": 3, "num_train": 300, "eval_samples": 2}
        values.update(overrides)
        return cls(**values)

    @property
    def kind(self) -> str:
        return latent_kind(self.method)

    @property
    def n(self) -> int:
        return self.categories if self.kind == "categorical" else self.subset_size

    @property
    def hidden_widths(self) -> list[int]:
        """``hidden``, or the dataset's default widths (:func:`default_hidden`) when it is empty."""
        return list(self.hidden) if self.hidden else default_hidden(self.dataset)

    def resolved(self) -> DVAEConfig:
        """A copy with ``hidden`` filled in (what ``config.json`` records)."""
        return replace(self, hidden=self.hidden_widths)

    def relaxation_temperature_at(self, epoch: int) -> float:
        """The relaxation τ used in ``epoch`` (:func:`annealed_temperature` with this config's schedule)."""
        return annealed_temperature(epoch, self.relaxation_temperature, self.relaxation_min_temperature,
                                    self.relaxation_anneal_rate)

    def validate(self) -> None:
        latent_kind(self.method)
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {list(DATASETS)}; got {self.dataset!r}")
        if self.dataset == "mnist" and self.data_dir is None:
            raise ValueError("dataset 'mnist' needs data_dir, a folder with train-images-idx3-ubyte and "
                             "t10k-images-idx3-ubyte (optionally .gz)")
        for name, allowed in (("train_kl", TRAIN_KL), ("loss_reduction", LOSS_REDUCTIONS), ("init", INITS),
                              ("sog_noise", SOG_NOISES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}; got {getattr(self, name)!r}")
        for name in ("groups", "categories", "subset_size", "subset_k", "epochs", "batch_size",
                     "num_samples", "eval_samples", "eval_batch_size", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        if not isinstance(self.hidden, (list, tuple)) or any(
                isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a list of integers >= 1 (empty: the dataset's default); got {self.hidden!r}")
        if self.categories < 2:
            raise ValueError(f"categories must be >= 2; got {self.categories}")
        if not self.subset_k < self.subset_size:
            raise ValueError(f"subset_k must be < subset_size; got subset_k={self.subset_k}, "
                             f"subset_size={self.subset_size}")
        if self.num_train is not None and (isinstance(self.num_train, bool) or not isinstance(self.num_train, int)
                                           or self.num_train < 1):
            raise ValueError(f"num_train must be an integer >= 1 (or unset); got {self.num_train!r}")
        for name in ("data_seed", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
        for name in ("learning_rate", "step_size", "temperature", "cat_temperature", "relaxation_temperature",
                     "relaxation_min_temperature", "aimle_target_nonzeros"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
        for name in ("relaxation_anneal_rate", "aimle_update_step", "aimle_initial_beta"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")

    def estimator_settings(self, epoch: int | None = None) -> EstimatorSettings:
        """The estimator's settings; with ``epoch``, the relaxation τ of that epoch (else the initial τ)."""
        tau = self.relaxation_temperature if epoch is None else self.relaxation_temperature_at(epoch)
        return EstimatorSettings(method=self.method, k=self.subset_k, num_samples=self.num_samples,
                                 step_size=self.step_size, temperature=self.temperature,
                                 relaxation_temperature=tau,
                                 aimle_target_nonzeros=self.aimle_target_nonzeros,
                                 aimle_update_step=self.aimle_update_step, aimle_initial_beta=self.aimle_initial_beta,
                                 cat_temperature=self.cat_temperature, sog_noise=self.sog_noise)


def load_data(config: DVAEConfig) -> BinaryImages:
    """The binarised images of ``config`` (digits split by ``data_seed``, or MNIST from ``data_dir``)."""
    if config.dataset == "mnist":
        return load_mnist_binary(config.data_dir)
    return load_digits_binary(seed=config.data_seed)


def _derived_seed(*words: int) -> int:
    """A 63-bit seed from integers (NumPy's SeedSequence: stable across runs and machines)."""
    return int(np.random.SeedSequence(list(words)).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))






def run_dvae(config: DVAEConfig, out_dir: str | os.PathLike | None = None, *, data: BinaryImages | None = None,
             progress: bool = True, plot: bool = True, num_threads: int | None = None,
             stop_after_epochs: int | None = None, bar_position: int = 0) -> dict[str, Any]:
    """Train one discrete VAE and return the final numbers (also written to ``final.json``).

    Args:
        config: the run's hyperparameters (validated; written, with ``hidden`` resolved, to ``config.json``).
        out_dir: the run folder (``None``: nothing is written or resumed). A folder holding a run with a
            different config is an error; a finished run is returned without training.
        data: the images (``None``: :func:`load_data`); the first ``num_train`` training images are used.
        progress: tqdm bars (epochs, and batches within an epoch).
        plot: write ``curves.png``, ``reconstructions.png`` and ``samples.png`` (needs matplotlib).
        num_threads: torch threads for this run (restored afterwards).
        stop_after_epochs: stop (with a checkpoint) after this many epochs, as an interruption would.
        bar_position: the screen line of the first progress bar.
    """
    config.validate()
    config = config.resolved()
    with torch_threads(num_threads):
        return _run(config, None if out_dir is None else Path(out_dir), data, progress, plot, stop_after_epochs,
                    bar_position)


def _run(config: DVAEConfig, out: Path | None, data: BinaryImages | None, progress: bool, plot: bool,
         stop_after_epochs: int | None, bar_position: int) -> dict[str, Any]:
    folder, finished = open_run(out, asdict(config), stop_after_epochs)
    if finished is not None:
        return finished
    data = load_data(config) if data is None else data
    return harness_train(_DVAETrainer(config, data), folder, config.epochs, stop_after_epochs=stop_after_epochs,
                         progress=progress, plot=plot, bar_position=bar_position)


class _DVAETrainer(Trainer):
    """One discrete VAE for :func:`~discograd.experiments.harness.train`: Adam, the relaxation temperature
    annealed per epoch, the test metrics every ``eval_every`` epochs and after the last."""

    def __init__(self, config: DVAEConfig, data: BinaryImages) -> None:
        self.config, self.data = config, data
        self.train = data.train if config.num_train is None else data.train[:config.num_train]
        self.test = data.test
        method_index = METHODS.index(config.method)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_derived_seed(config.seed, 0, method_index))
            self.model = DiscreteVAE(data.num_pixels, config.groups, config.n, config.hidden, init=config.init)
        self.generator = torch.Generator().manual_seed(_derived_seed(config.seed, 2, method_index))
        self.settings = config.estimator_settings()  # its relaxation τ is set every epoch (the annealing schedule)
        self.estimator = build_estimator(self.settings, self.generator)
        self.layer = self.estimator.layer
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate)
        self.num_batches = -(-len(self.train) // config.batch_size)
        self.desc = f"dvae {config.method} s{config.seed}"

    def train_epoch(self, epoch: int, on_batch: Any) -> dict[str, Any]:
        config, train, model = self.config, self.train, self.model
        kind, k = config.kind, config.subset_k
        self.settings.relaxation_temperature = config.relaxation_temperature_at(epoch)
        model.train()
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(_derived_seed(config.seed, 1, epoch)))
        total = 0.0
        for b in range(self.num_batches):
            x = train[order[b * config.batch_size:(b + 1) * config.batch_size]]
            theta = model.encode(x)
            reconstruction = self.estimator.loss(model, theta, x)  # [S, B]
            kl = training_kl(theta, kind, k, config.train_kl)  # [B]
            self.optimizer.zero_grad(set_to_none=True)
            # "mean" (the original): each sample's upstream gradient is 1/(S·B) of its own; "sum": its own
            training_loss(reconstruction, kl, config.loss_reduction).backward()
            self.optimizer.step()
            loss = float((reconstruction.detach().mean(0) + kl.detach()).mean())
            if not math.isfinite(loss):
                raise FloatingPointError(f"{config.method}: the training loss became {loss} in epoch {epoch}")
            total += loss * len(x)
            on_batch(loss)
        return {"train_loss": total / len(train)}

    def evaluate(self, epoch: int, on_batch: Any) -> dict[str, Any]:
        config = self.config
        if epoch != 0 and epoch % config.eval_every != 0 and epoch != config.epochs:
            return {}
        g = torch.Generator().manual_seed(_derived_seed(config.seed, 3, epoch))
        values = evaluate(self.model, self.test, config.kind, config.subset_k, config.eval_samples,
                          config.eval_batch_size, g, settings=config.estimator_settings(epoch))
        return {f"test_{name}": values[name] for name in METRICS}

    def epoch_extras(self) -> dict[str, Any]:
        row: dict[str, Any] = {}
        if self.config.method in RELAXATION_METHODS:
            row["relaxation_temperature"] = self.settings.relaxation_temperature
        layer = self.estimator.layer
        if layer is not None and hasattr(getattr(layer, "target", None), "beta"):
            row["aimle_beta"] = float(layer.target.beta)
        return row

    def postfix(self, row: dict[str, Any]) -> dict[str, str]:
        if "test_nelbo" not in row:
            return {}
        return {"test_original": f"{row['test_original_loss']:.2f}", "test_nelbo": f"{row['test_nelbo']:.2f}"}

    def final(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        config, data = self.config, self.data
        last = history[-1]
        evaluated = next(row for row in reversed(history) if "test_nelbo" in row)
        return {
            "method": config.method, "latent": config.kind, "seed": config.seed, "epochs_done": last["epoch"],
            "epochs": config.epochs, "evaluated_epoch": evaluated["epoch"],
            "test": {name: evaluated[f"test_{name}"] for name in METRICS},
            "metrics": dict(METRIC_DESCRIPTIONS),
            "model": {"encoder": [data.num_pixels, *config.hidden, config.groups * config.n],
                      "decoder": [config.groups * config.n, *reversed(config.hidden), data.num_pixels],
                      "init": config.init},
            "train_seconds": sum(row["train_seconds"] for row in history),
            "data": {"source": data.source, "num_train": len(self.train), "num_test": len(self.test)},
            "config": asdict(config), "environment": environment_info(),
        }

    def plot(self, out: Path, history: list[dict[str, Any]]) -> None:
        config, data = self.config, self.data
        title = f"{config.method}, seed {config.seed}"
        plot_curves(history, out / "curves.png", title=title)
        g = torch.Generator().manual_seed(_derived_seed(config.seed, 4))
        plot_reconstructions(self.model, self.test[:10], data.height, data.width, config.kind, config.subset_k,
                             out / "reconstructions.png", g, title=title)
        plot_samples(self.model, data.height, data.width, config.kind, config.subset_k, out / "samples.png", g,
                     title=title)


# ---------------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------------


def plot_curves(history: list[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """Training loss; the test loss of the original code and the exact −ELBO; their terms, per epoch."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5), dpi=100)
    trained = [r for r in history if r["train_loss"] is not None]
    history = [r for r in history if "test_nelbo" in r]  # the evaluated epochs
    epochs = [r["epoch"] for r in history]
    axes[0].plot([r["epoch"] for r in trained], [r["train_loss"] for r in trained], marker=".")
    axes[0].set_title("training loss (recon. + KL, per image)")
    axes[1].plot(epochs, [r["test_original_loss"] for r in history], marker=".",
                 label="original metric (sampler recon. + proxy KL)")
    axes[1].plot(epochs, [r["test_nelbo"] for r in history], marker=".", label="−ELBO (exact)")
    axes[1].set_title("test, nats per image")
    axes[1].legend()
    axes[2].plot(epochs, [r["test_reconstruction"] for r in history], marker=".", label="reconstruction (exact q)")
    axes[2].plot(epochs, [r["test_sampler_reconstruction"] for r in history], marker=".",
                 label="reconstruction (training sampler)")
    axes[2].plot(epochs, [r["test_kl"] for r in history], marker=".", label="KL (exact)")
    axes[2].plot(epochs, [r["test_proxy_kl"] for r in history], marker=".", label="proxy KL")
    axes[2].set_title("test terms")
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("epoch")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def _grid(rows: list[torch.Tensor], height: int, width: int, path: str | os.PathLike, title: str,
          labels: list[str]) -> Path:
    plt = pyplot()
    cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(cols * 0.9, len(rows) * 1.0 + 0.4), dpi=100, squeeze=False)
    for i, row in enumerate(rows):
        for j in range(cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(row):
                ax.imshow(row[j].view(height, width).numpy(), cmap="gray", vmin=0.0, vmax=1.0)
        axes[i][0].set_ylabel(labels[i], fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


@torch.no_grad()
def plot_reconstructions(model: DiscreteVAE, images: torch.Tensor, height: int, width: int, kind: str, k: int,
                         path: str | os.PathLike, generator: torch.Generator, title: str = "") -> Path:
    """Test images (top) and the decoder's pixel probabilities at two exact samples of q(z | x)."""
    model.eval()
    z = sample_posterior(model.encode(images), kind, k, 2, generator)
    probs = torch.sigmoid(model.decode(z))
    return _grid([images, probs[0], probs[1]], height, width, path, f"{title}: reconstructions",
                 ["data", "sample 1", "sample 2"])


@torch.no_grad()
def plot_samples(model: DiscreteVAE, height: int, width: int, kind: str, k: int, path: str | os.PathLike,
                 generator: torch.Generator, title: str = "", num: int = 30) -> Path:
    """Decoder pixel probabilities at ``num`` draws from the uniform prior."""
    model.eval()
    z = sample_prior(num, model.groups, model.n, kind, k, generator)
    probs = torch.sigmoid(model.decode(z))
    rows = [probs[i:i + 10] for i in range(0, num, 10)]
    return _grid(rows, height, width, path, f"{title}: samples from the prior", [""] * len(rows))


# ---------------------------------------------------------------------------------------------------
# compare: methods x seeds
# ---------------------------------------------------------------------------------------------------


def run_compare(methods: list[str], seeds: list[int], config: DVAEConfig, out_dir: str | os.PathLike, *,
                progress: bool = True, plot: bool = True, num_threads: int | None = None,
                data: BinaryImages | None = None, executor: str = "local", ray_address: str | None = None,
                ray_num_cpus: int | None = None) -> dict[str, Any]:
    """Train every method with every seed (``<out>/<method>/seed<seed>/``, each resumable) and write
    ``compare.md``, ``compare.csv``, ``runs.csv``, ``compare.json`` and (with ``plot``) ``compare.png``.
    ``executor``: ``"local"`` (the runs share ``data``) or ``"ray"`` (one Ray task per run, each loading its own
    data; :mod:`discograd.experiments.executors`)."""
    if not methods:
        raise ValueError("methods must list at least one method")
    if not seeds:
        raise ValueError("seeds must list at least one seed")
    for method in methods:
        latent_kind(method)
    if len(set(methods)) != len(methods) or len(set(seeds)) != len(seeds):
        raise ValueError(f"methods and seeds must not repeat; got methods {methods}, seeds {seeds}")
    out = Path(out_dir)
    configs = [replace(config, method=m, seed=s) for m in methods for s in seeds]
    for c in configs:
        c.validate()
    if executor != "local" and data is not None:
        raise ValueError("data (in memory) can only be shared by local runs; with the ray executor every task loads "
                         "its own")
    if data is None and executor == "local":
        data = load_data(config)
    started = time.perf_counter()
    tasks = [RunTask("dvae", asdict(c), str(out / c.method / f"seed{c.seed}"), num_threads=num_threads,
                     options={"plot": plot}, label=f"{c.method} seed {c.seed}") for c in configs]
    runs = run_tasks(tasks, executor, ray_address=ray_address, ray_num_cpus=ray_num_cpus,
                     data_for=lambda task: data, progress=progress, desc="dvae compare")
    rows = []
    for method in methods:
        finals = [r for r in runs if r["method"] == method]
        row: dict[str, Any] = {"method": method, "latent": latent_kind(method), "seeds": len(finals)}
        for name in METRICS:
            values = [r["test"][name] for r in finals]
            row[f"{name}_mean"] = statistics.fmean(values)
            row[f"{name}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        row["train_seconds_mean"] = statistics.fmean(r["train_seconds"] for r in finals)
        rows.append(row)
    results = {"methods": methods, "seeds": seeds, "rows": rows, "runs": [{k: v for k, v in r.items() if k != "config"}
                                                                         for r in runs],
               "config": asdict(config), "wall_seconds": time.perf_counter() - started,
               "environment": environment_info()}
    write_json(out / "compare.json", results)
    atomic_write_text(out / "compare.md", format_compare(results) + "\n")
    atomic_write_text(out / "compare.csv", csv_text(rows))
    atomic_write_text(out / "runs.csv", csv_text([{"method": r["method"], "seed": r["seed"], "epochs": r["epochs_done"],
                                                "train_seconds": r["train_seconds"],
                                                **{f"test_{n}": r["test"][n] for n in METRICS}} for r in runs]))
    if plot:
        plot_compare(results, out, out / "compare.png")
    return results


#: the columns of compare.md: the two headline metrics side by side, then their terms
COMPARE_COLUMNS = (("original_loss", "original metric (sampler recon. + proxy KL)"), ("nelbo", "−ELBO (exact)"),
                   ("sampler_reconstruction", "recon. (training sampler)"), ("reconstruction", "recon. (exact q)"),
                   ("proxy_kl", "proxy KL"), ("kl", "KL (exact)"))


def format_compare(results: dict[str, Any]) -> str:
    """A Markdown table, mean ± std over seeds: the original code's test loss and the exact −ELBO side by
    side, then their terms."""
    cfg = results["config"]
    num_seeds = len(results["seeds"])
    lines = [(f"Discrete VAE, test set, nats per image (lower is better), {over_seeds(list(results['seeds']))}; "
             f"{cfg['epochs']} epochs, data {cfg['dataset']}, "
             f"training KL {cfg['train_kl']}, loss reduction {cfg['loss_reduction']}. Original metric: what the "
             "original code reports, the reconstruction with z drawn by the method's training sampler (Sum-of-Gamma "
             "perturb-and-MAP for subset_imle / aimle / straight_through, which is not q; Gumbel-max for the "
             "Gumbel-softmax methods) + the categorical proxy KL of each group's logits (the exact KL for "
             f"categorical latents). −ELBO (exact): {cfg['eval_samples']} exact samples of q per image + the exact "
             "KL."), "",
             "| method | latent | " + " | ".join(label for _, label in COMPARE_COLUMNS) + " | train s / run |",
             "|---|---|" + "---|" * len(COMPARE_COLUMNS) + "---|"]
    for row in results["rows"]:
        cells = " | ".join(mean_std_cell(row[f"{n}_mean"], row[f"{n}_std"], num_seeds, 2) for n, _ in COMPARE_COLUMNS)
        lines.append(f"| {row['method']} | {row['latent']} | {cells} | {row['train_seconds_mean']:.1f} |")
    return "\n".join(lines)


def plot_compare(results: dict[str, Any], out: Path, path: str | os.PathLike) -> Path:
    """Left: final test loss of the original code and exact −ELBO per method (mean ± std). Right: the test
    −ELBO curves, mean over seeds."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), dpi=100)
    rows = results["rows"]
    names = [r["method"] for r in rows]
    ys = np.arange(len(names))
    axes[0].barh(ys - 0.2, [r["original_loss_mean"] for r in rows], height=0.4,
                 xerr=[r["original_loss_std"] for r in rows], color="C1", label="original metric")
    axes[0].barh(ys + 0.2, [r["nelbo_mean"] for r in rows], height=0.4, xerr=[r["nelbo_std"] for r in rows],
                 color="C0", label="−ELBO (exact)")
    axes[0].set_yticks(ys, names)
    axes[0].invert_yaxis()
    axes[0].legend(fontsize=7)
    axes[0].set_xlabel("test, nats per image")
    values = []
    for i, method in enumerate(names):
        for metric, style, label in (("test_nelbo", "-", method), ("test_original_loss", "--", None)):
            curves = []
            for seed in results["seeds"]:
                metrics = out / method / f"seed{seed}" / "metrics.jsonl"
                if metrics.exists():
                    rows_ = [json.loads(line) for line in metrics.read_text().splitlines() if line]
                    curves.append([(r["epoch"], r[metric]) for r in rows_ if metric in r])
            if curves:
                length = min(len(c) for c in curves)
                mean = [statistics.fmean(c[j][1] for c in curves) for j in range(length)]
                values += mean[1:]
                axes[1].plot([e for e, _ in curves[0][:length]], mean, style, color=f"C{i % 10}", label=label)
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("test, nats per image (mean over seeds)")
    axes[1].set_title("solid: −ELBO (exact); dashed: original metric", fontsize=9)
    axes[1].legend(fontsize=7)
    if values:
        axes[1].set_ylim(min(values) * 0.95, max(r["nelbo_mean"] for r in rows) * 1.3)
    fig.tight_layout()
    return save_figure(fig, path)
