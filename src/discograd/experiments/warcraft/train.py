r"""Training on Warcraft shortest paths (Vlastelica et al., ICLR 2020; Niepert et al., NeurIPS 2021, Table 2).

A CNN (:class:`~.model.WarcraftNet`) reads a terrain map and predicts one cost per cell; the solver
(:class:`~discograd.solvers.GridShortestPath`, 8 neighbours, top-left to bottom-right, costs on the vertices)
turns the scores ``θ = −cost`` into a path; the loss compares paths. :func:`run_warcraft` trains one
method and writes a run folder; :func:`path_metrics` computes the paper's metrics.

Methods (``WarcraftConfig.method``); every method feeds ``θ = −cost`` to the solver, and every
method predicts the unperturbed ``MAP(−cost)`` at evaluation. The paper's Table 2 rows are ``imle_mumu``,
``imle_mm``, ``blackbox`` and ``perturbed_fy``; their defaults are the original runs' settings (tf-imle
``WARCRAFT/maprop/warcraft_shortest_path/maprop.py``, ``ShortestPathMAP`` and ``DijkstraMAP``; the run
names in ``WARCRAFT/tools/warcraft-plots-neurips.py``), listed in ``docs/warcraft.md``:

- ``imle_mumu``: the paper's "I-MLE μ-μ" (the original's mode ``type == 4`` with noise on both sides):
  the target is the distribution of the **true** costs, :class:`~discograd.targets.KnownTarget` with
  ``θ* = −true cost``; the gradient ``(1/λ)[MAP(θ + τε) − MAP(θ* + τ'ε)]`` with the same Sum-of-Gamma noise
  ``SoG(κ = int(1.3 K), 10 terms)``, τ = τ' = 1, one sample, λ = 10 (a plain scale: the upstream gradient's
  values are not used). It uses the true costs, as ``spo_plus`` does.
- ``imle_mm``: the paper's "I-MLE M-M" (mode ``type == 1``, no noise): the label target of the paper's
  Eq. 14, :class:`~discograd.targets.LabelTarget`: ``θ'_i = −λ g_i`` where ``g_i ≠ 0``; λ = 50.
- ``blackbox``: Vlastelica et al.'s blackbox differentiation (mode ``type == 0``, no noise),
  ``(1/λ)[MAP(θ) − MAP(θ − λ g)]``; λ = 20.
- ``perturbed_fy``: perturbed optimizer with the Fenchel-Young loss (Berthet et al., 2020), Normal noise
  of scale σ = ``fy_noise_scale`` (0.01, the run behind the paper's row), ``num_samples`` samples; the loss
  is on the scores, against the true path.
- ``imle_mu_map``: the label target of ``imle_mm`` with Sum-of-Gamma noise on the forward side only (the
  original's "μ-MAP": ``perturb_w`` without ``perturb_w_prime``; τ' = 0 unless ``target_temperature`` is
  set); λ = 50. Not a Table 2 row. (Before 0.1.0 this was called ``imle_mumu``, with τ' = τ.)
- ``imle``: I-MLE, Sum-of-Gamma noise ``SoG(κ)`` at temperature τ, PID target ``θ' = θ − λ g``; λ = 20,
  the cost move of ``blackbox`` (our choice: not a Table 2 row).
- ``aimle``: I-MLE with the adaptive target (:class:`~discograd.targets.AdaptiveTarget`: λ per instance,
  β steered so that gradients have about ``aimle_target_nonzeros`` non-zero cells; two-sided by default).
- ``spo_plus``: SPO+ (Elmachtoub & Grigas) with the true costs (``θ_true = −true cost``).
- ``straight_through``: the SoG perturb-and-MAP forward of ``imle``, identity backward; Hamming loss.
- ``two_stage``: supervised cost regression, squared error of predicted against true costs; no solver
  in training.

κ of the Sum-of-Gamma noise is ``int(1.3 K)`` for every SoG method unless ``noise_k`` is set (the
original's "heuristic average path length", ``gamma_k = int(height_size * 1.3)``).

What the label target does (``imle_mm``, ``imle_mu_map``). With the Hamming loss, ``g = (1 − 2z*)/B`` is
non-zero on every cell, so ``θ' = λ (2z* − 1)/B``: positive on the cells of the true path, negative
elsewhere. Its MAP is the true path ``z*`` itself (the solver clamps the negative costs of the path to 0; any
other path pays more), so the I-MLE gradient is ``(z − z*)/λ`` ("M-M": the perceptron rule). The label
supervises the path directly; no true costs are used.

Loss scale (``loss_reduction``). ``"mean"`` (default, the original's ``HammingLoss``: mean over the batch,
sum over the cells): the objective is the per-instance loss averaged over the batch (and summed over
samples, so that with S samples each sample's upstream gradient is that of the original's loss on the
sample mean), hence ``g = ±1/B`` per cell and the original λ values move costs as far as the original's
do: blackbox's target moves every cell by ``λ/B = 20/70 ≈ 0.29``. ``"sum"`` sums over the batch
(``g = ±1``, per-instance gradients independent of the batch size); its default λ values are the
original's divided by the batch size, so that the cost move is the same. Adam is invariant to the scale
of the objective, so the two train alike. Reported losses are per instance (mean over the batch and
samples): for Hamming methods, the number of wrong cells.

Metrics (per split, each epoch; :func:`path_metrics`): ``optimal_pct``, the paper's accuracy, % of maps whose
predicted path has the optimal **true** cost (within ``1e-6`` relative, so a different path of equal cost
counts); ``exact_pct``, % of predicted paths equal to the label; ``cost_ratio``, mean of predicted-path
cost / optimal cost; ``regret``, mean of their difference; ``hamming``, mean number of wrong cells.

Randomness. Nothing touches torch's global generator outside :func:`build_model`, which initialises the
network inside ``torch.random.fork_rng`` with a seed derived from ``seed`` (the global state is restored
afterwards). The batch order of epoch ``e`` is a permutation from its own generator seeded by
``(seed, e)``; the estimator noise comes from one ``torch.Generator`` seeded by ``seed`` whose state is
checkpointed. Hence a resumed run replays exactly what an uninterrupted run computes.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ... import (
    AdaptiveTarget,
    Normal,
    PerturbedTarget,
    SumOfGamma,
    blackbox,
    distributed,
    imle,
    straight_through,
)
from ...losses import FenchelYoungLoss, hamming_loss, spo_plus_loss
from ...solvers import GridShortestPath
from ...targets import KnownTarget, LabelTarget
from .._io import environment_info, pyplot, save_figure
from ..harness import Trainer, open_run, torch_threads
from ..harness import train as harness_train
from .model import COST_ACTIVATIONS, WarcraftNet

__all__ = [
    "METHODS",
    "PAPER_TABLE2",
    "ArraySplit",
    "LabelTarget",
    "WarcraftConfig",
    "benchmark_epoch",
    "build_method",
    "build_model",
    "evaluate",
    "format_benchmark",
    "load_data",
    "path_metrics",
    "plot_curves",
    "plot_path_panel",
    "predict",
    "run_warcraft",
]

METHODS = ("imle", "aimle", "imle_mm", "imle_mumu", "imle_mu_map", "blackbox", "perturbed_fy", "spo_plus",
           "straight_through", "two_stage")
#: methods whose training loss is the Hamming distance between paths
HAMMING_METHODS = ("imle", "aimle", "imle_mm", "imle_mumu", "imle_mu_map", "blackbox", "straight_through")
#: methods that draw SoG noise (and use ``noise_k``)
SOG_METHODS = ("imle", "aimle", "imle_mumu", "imle_mu_map", "straight_through")
#: λ of the methods that have one, when ``step_size`` is left unset, for ``loss_reduction="mean"`` (the
#: original runs' ``lambda_val``: blackbox 20, M-M 50, μ-μ 10); with ``"sum"`` they are divided by the batch size
DEFAULT_STEP_SIZES = {"imle": 20.0, "imle_mm": 50.0, "imle_mumu": 10.0, "imle_mu_map": 50.0, "blackbox": 20.0}
LOSS_REDUCTIONS = ("mean", "sum")
#: the paper's Table 2: % of test paths with optimal cost, mean over 5 seeds, per grid size
PAPER_TABLE2 = {
    "imle_mumu": {12: 97.2, 18: 95.8, 24: 94.3, 30: 93.6},
    "imle_mm": {12: 95.2, 18: 94.4, 24: 93.2, 30: 93.7},
    "blackbox": {12: 95.2, 18: 94.7, 24: 93.8, 30: 93.6},
    "perturbed_fy": {12: 94.8, 18: 92.3, 24: 91.5, 30: 91.5},
}
#: relative tolerance of the "optimal cost" test: the original's ``below_0.0001_percent_acc`` (tf-imle
#: ``WARCRAFT/maprop/utils.py``, ``all_accuracies``: ``cost_ratio - 1.0 < 10.0 ** (-i - 1)`` with i = 5)
OPTIMAL_RTOL = 1e-6
SPLITS = ("val", "test")
METRIC_KEYS = ("optimal_pct", "exact_pct", "cost_ratio", "regret", "hamming")


# ---------------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------------


@dataclass
class WarcraftConfig:
    """Every hyperparameter of one run; written, resolved, to ``config.json`` in the run folder.

    Defaults are the paper's protocol (Adam 5e-4, batch 70, 50 epochs, learning rate × 0.1 after epochs 30
    and 40; 10,000 / 1,000 / 1,000 maps). ``None`` fields are resolved by :meth:`resolve` from the method
    and the data (see each field).
    """

    method: str = "imle"
    grid_size: int = 12
    # data: generated (num_* maps, data_seed) unless data_dir points at the original data set
    num_train: int = 10_000
    num_val: int = 1_000
    num_test: int = 1_000
    data_seed: int = 0
    data_dir: str | None = None
    # optimisation
    epochs: int = 50
    batch_size: int = 70
    learning_rate: float = 5e-4
    lr_milestones: list[int] = field(default_factory=lambda: [30, 40])
    lr_decay: float = 0.1
    seed: int = 0
    # model
    width: int = 64
    cost_activation: str = "abs"  # the original's; "softplus" is our option
    # estimators
    loss_reduction: str = "mean"  # "mean" over the batch (the original's) or "sum" (see "Loss scale")
    step_size: float | None = None  # λ; None: DEFAULT_STEP_SIZES[method] (/ batch_size with "sum")
    num_samples: int = 1  # S, samples per step (noisy methods and perturbed_fy)
    temperature: float = 1.0  # τ of the forward noise
    target_temperature: float | None = None  # τ'; None: = temperature (imle_mu_map: 0)
    noise_k: int | None = None  # κ of SoG; None: int(1.3 * grid_size), the original's
    noise_terms: int = 10  # s of SoG
    aimle_target_nonzeros: float | None = None  # None: grid_size
    aimle_update_step: float = 0.01
    aimle_initial_beta: float = 1.0
    aimle_two_sided: bool = True
    fy_noise_scale: float = 0.01  # σ of perturbed_fy (the run behind the paper's row; σ = 1 scores far lower)
    # evaluation
    eval_batch_size: int = 250
    device: str = "cpu"

    @classmethod
    def quick(cls, **overrides: Any) -> WarcraftConfig:
        """The smoke-test preset: 12 × 12, 200 / 50 / 50 maps, 2 epochs of batches of 20 (seconds)."""
        values: dict[str, Any] = {"num_train": 200, "num_val": 50, "num_test": 50, "epochs": 2, "batch_size": 20,
                                  "lr_milestones": []}
        values.update(overrides)
        return cls(**values)

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}; got {self.method!r}")
        if self.loss_reduction not in LOSS_REDUCTIONS:
            raise ValueError(f"loss_reduction must be one of {list(LOSS_REDUCTIONS)}; got {self.loss_reduction!r}")
        if self.cost_activation not in COST_ACTIVATIONS:
            raise ValueError(f"cost_activation must be one of {list(COST_ACTIVATIONS)}; got {self.cost_activation!r}")
        for name in ("grid_size", "num_train", "num_val", "num_test", "epochs", "batch_size", "width", "num_samples",
                     "noise_terms", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        if self.grid_size < 2:
            raise ValueError(f"grid_size must be >= 2 (a path from the top-left to the bottom-right cell); got {self.grid_size}")
        for name in ("data_seed", "seed"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be an integer >= 0; got {getattr(self, name)!r}")
        for name in ("learning_rate", "lr_decay", "fy_noise_scale"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
        for name in ("step_size", "aimle_target_nonzeros"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0 (or unset); got {value!r}")
        for name in ("temperature", "target_temperature", "aimle_update_step", "aimle_initial_beta"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
        if self.method in SOG_METHODS and self.temperature == 0:
            raise ValueError(f"temperature must be > 0 for method {self.method!r} (it draws Sum-of-Gamma noise); "
                             "for noise-free I-MLE use method 'imle_mm' or 'blackbox'")
        if self.noise_k is not None and (isinstance(self.noise_k, bool) or not isinstance(self.noise_k, int)
                                         or self.noise_k < 1):
            raise ValueError(f"noise_k must be an integer >= 1 (or unset); got {self.noise_k!r}")
        milestones = list(self.lr_milestones)
        if any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in milestones) or milestones != sorted(set(milestones)):
            raise ValueError(f"lr_milestones must be increasing integers >= 1 (epochs after which the learning rate "
                             f"is multiplied by lr_decay); got {milestones}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N'; got {self.device!r}")

    def resolve(self) -> WarcraftConfig:
        """A copy with every ``None`` that matters for ``method`` filled in (the resolved config)."""
        self.validate()
        resolved = replace(self, lr_milestones=list(self.lr_milestones))
        if resolved.step_size is None and self.method in DEFAULT_STEP_SIZES:
            resolved.step_size = DEFAULT_STEP_SIZES[self.method]
            if self.loss_reduction == "sum":
                resolved.step_size /= self.batch_size
        if resolved.target_temperature is None:
            resolved.target_temperature = 0.0 if self.method == "imle_mu_map" else self.temperature
        if resolved.noise_k is None and self.method in SOG_METHODS:
            resolved.noise_k = max(1, int(1.3 * self.grid_size))
        if resolved.aimle_target_nonzeros is None and self.method == "aimle":
            resolved.aimle_target_nonzeros = float(self.grid_size)
        return resolved


# ---------------------------------------------------------------------------------------------------
# the label target (paper Eq. 14) and the methods
# ---------------------------------------------------------------------------------------------------


def _derived_seed(*words: int) -> int:
    """A 63-bit seed from integers (NumPy's SeedSequence: well mixed, stable across runs and machines)."""
    return int(np.random.SeedSequence(list(words)).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def build_model(config: WarcraftConfig) -> WarcraftNet:
    """The network of ``config``, initialised from ``seed`` without changing torch's global RNG state."""
    devices = [] if not torch.cuda.is_available() else list(range(torch.cuda.device_count()))
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(_derived_seed(config.seed, 0))
        model = WarcraftNet(config.grid_size, width=config.width, cost_activation=config.cost_activation)
    return model.to(config.device)


class Method:
    """One training method: ``loss(costs, paths, true_costs)`` returns the per-instance losses ``[S, B]``
    (``S = 1`` for methods without samples); ``objective(losses)`` is the scalar that is backpropagated
    (see "Loss scale"). ``layer`` is the estimator module (or ``None``); its ``state_dict`` (AIMLE's β) is
    checkpointed."""

    def __init__(self, name: str, loss: Callable[[Tensor, Tensor, Tensor], Tensor], layer: torch.nn.Module | None,
                 solver: GridShortestPath, loss_reduction: str = "mean") -> None:
        self.name = name
        self.loss = loss
        self.layer = layer
        self.solver = solver
        self.loss_reduction = loss_reduction

    def objective(self, losses: Tensor, batch_size: int | None = None) -> Tensor:
        """Sum over samples; mean (``"mean"``) or sum (``"sum"``) over the batch. ``batch_size``: the whole
        batch's size when ``losses`` holds one rank's shard of it (data parallelism: the mean is then the
        shard's sum over the whole batch's size, and the ranks' gradients are summed)."""
        per_instance = losses.sum(0)
        if self.loss_reduction == "sum":
            return per_instance.sum()
        return per_instance.mean() if batch_size is None else per_instance.sum() / batch_size


def build_method(config: WarcraftConfig, generator: torch.Generator | None = None,
                 solver: GridShortestPath | None = None) -> Method:
    """The estimator and loss of ``config.method`` (``config`` must be resolved: see
    :meth:`WarcraftConfig.resolve`). ``generator`` draws the estimator noise."""
    solver = GridShortestPath(neighbourhood=8) if solver is None else solver
    method = config.method
    samples: dict[str, Any] = {"num_samples": config.num_samples, "generator": generator}
    sog = SumOfGamma(config.noise_k, num_terms=config.noise_terms) if method in SOG_METHODS else None
    temps = {"temperature": config.temperature, "target_temperature": config.target_temperature}
    layer: torch.nn.Module | None
    if method == "imle":
        layer = imle(solver, noise=sog, target=PerturbedTarget(config.step_size), **temps, **samples)
    elif method == "aimle":
        target = AdaptiveTarget(target_nonzeros=config.aimle_target_nonzeros, update_step=config.aimle_update_step,
                                initial_beta=config.aimle_initial_beta, two_sided=config.aimle_two_sided)
        layer = imle(solver, noise=sog, target=target, **temps, **samples)
    elif method == "imle_mm":
        layer = imle(solver, noise=None, target=LabelTarget(config.step_size))
    elif method == "imle_mumu":
        layer = imle(solver, noise=sog, target=KnownTarget(config.step_size), **temps, **samples)
    elif method == "imle_mu_map":
        layer = imle(solver, noise=sog, target=LabelTarget(config.step_size), **temps, **samples)
    elif method == "blackbox":
        layer = blackbox(solver, step_size=config.step_size)
    elif method == "straight_through":
        layer = straight_through(solver, noise=sog, temperature=config.temperature, **samples)
    elif method == "perturbed_fy":
        layer = FenchelYoungLoss(solver, noise=Normal(), noise_scale=config.fy_noise_scale, reduction="none", **samples)
    else:
        layer = None

    if method in HAMMING_METHODS:
        def loss(costs: Tensor, paths: Tensor, true_costs: Tensor) -> Tensor:
            z = layer(-costs, target_theta=-true_costs) if method == "imle_mumu" else layer(-costs)
            z = z if z.dim() == 4 else z.unsqueeze(0)
            return hamming_loss(z, paths, event_dims=2, normalize=False, reduction="none")
    elif method == "perturbed_fy":
        def loss(costs: Tensor, paths: Tensor, true_costs: Tensor) -> Tensor:
            return layer(-costs, paths).unsqueeze(0)
    elif method == "spo_plus":
        def loss(costs: Tensor, paths: Tensor, true_costs: Tensor) -> Tensor:
            return spo_plus_loss(-costs, -true_costs, paths, solver=solver, reduction="none").unsqueeze(0)
    elif method == "two_stage":
        def loss(costs: Tensor, paths: Tensor, true_costs: Tensor) -> Tensor:
            return ((costs - true_costs) ** 2).sum(dim=(-2, -1)).unsqueeze(0)
    else:  # pragma: no cover - validated before
        raise ValueError(method)
    return Method(method, loss, layer, solver, config.loss_reduction)


# ---------------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------------


@torch.no_grad()
def path_metrics(pred_paths: Tensor, true_paths: Tensor, true_costs: Tensor) -> dict[str, Tensor]:
    """Per-map metrics of predicted paths ``[B, K, K]`` against the labels, under the **true** costs.

    Returns float64 tensors ``[B]``: ``optimal`` (1.0 where the predicted path's true cost is within
    ``1e-6`` relative of the optimal cost: the paper's accuracy; a different path of equal cost counts),
    ``exact`` (1.0 where the paths are equal), ``cost_ratio`` (predicted / optimal cost), ``regret``
    (predicted − optimal cost) and ``hamming`` (number of differing cells).

    Example:
        >>> import torch
        >>> costs = torch.ones(1, 2, 2)                       # every 2-cell-diagonal path costs 2 ...
        >>> label = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
        >>> other = torch.tensor([[[1.0, 1.0], [0.0, 1.0]]])  # ... this one costs 3
        >>> path_metrics(other, label, costs)["regret"].tolist()
        [1.0]
    """
    pred = pred_paths.detach().to(torch.float64)
    true = true_paths.detach().to(torch.float64)
    costs = true_costs.detach().to(torch.float64)
    if not (pred.shape == true.shape == costs.shape) or pred.dim() < 2:
        raise ValueError(f"pred_paths, true_paths and true_costs must have the same shape [..., K, K]; got "
                         f"{tuple(pred.shape)}, {tuple(true.shape)} and {tuple(costs.shape)}")
    pred_cost = (pred * costs).sum(dim=(-2, -1))
    best_cost = (true * costs).sum(dim=(-2, -1))
    regret = pred_cost - best_cost
    hamming = (pred != true).to(torch.float64).sum(dim=(-2, -1))
    return {
        "optimal": (regret.abs() <= OPTIMAL_RTOL * best_cost.abs()).to(torch.float64),
        "exact": (hamming == 0).to(torch.float64),
        "cost_ratio": pred_cost / best_cost,
        "regret": regret,
        "hamming": hamming,
    }


def _summary(per_map: dict[str, list[Tensor]]) -> dict[str, float]:
    cat = {k: torch.cat(v) for k, v in per_map.items()}
    return {
        "optimal_pct": 100.0 * float(cat["optimal"].mean()),
        "exact_pct": 100.0 * float(cat["exact"].mean()),
        "cost_ratio": float(cat["cost_ratio"].mean()),
        "regret": float(cat["regret"].mean()),
        "hamming": float(cat["hamming"].mean()),
    }


# ---------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------


def load_data(config: WarcraftConfig, *, cache_dir: str | os.PathLike | None = None, progress: bool = False) -> Any:
    """The data of ``config``: the original data set from ``data_dir`` (first ``num_*`` maps of each split),
    or ``generate_warcraft(grid_size, num_train, num_val, num_test, seed=data_seed)``."""
    from . import data as warcraft_data

    if config.data_dir is not None:
        data = warcraft_data.load_warcraft(config.data_dir, config.grid_size)
        for name, limit in (("train", config.num_train), ("val", config.num_val), ("test", config.num_test)):
            split = getattr(data, name)
            if len(split) < limit:
                raise ValueError(f"num_{name} must be at most the {len(split)} maps of the {name} split in "
                                 f"{config.data_dir}; got {limit}")
        return data
    return warcraft_data.generate_warcraft(config.grid_size, config.num_train, config.num_val, config.num_test,
                                           seed=config.data_seed, cache_dir=cache_dir, progress=progress)


def _split_arrays(split: Any, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(maps uint8 [N, H, W, 3], weights float32 [N, K, K], paths float32 [N, K, K])`` of the first ``limit`` maps."""
    n = min(len(split), limit)
    maps = np.asarray(split.maps[:n])
    if maps.dtype != np.uint8 or maps.ndim != 4 or maps.shape[-1] != 3:
        raise ValueError(f"maps must be uint8 [N, H, W, 3]; got {maps.dtype} {maps.shape}")
    weights = np.asarray(split.weights[:n], dtype=np.float32)
    paths = np.asarray(split.paths[:n], dtype=np.float32)
    return maps, weights, paths


def _channel_stats(maps: np.ndarray, chunk: int = 1000) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 maps in [0, 1] units (float64 sums, chunked)."""
    total = np.zeros(3)
    squares = np.zeros(3)
    for lo in range(0, len(maps), chunk):
        block = maps[lo:lo + chunk].reshape(-1, 3).astype(np.float64) / 255.0
        total += block.sum(0)
        squares += (block * block).sum(0)
    count = maps.shape[0] * maps.shape[1] * maps.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean * mean, 1e-12))
    return mean.tolist(), std.tolist()


@dataclass
class ArraySplit:
    """A split given as arrays: ``maps`` uint8 ``[N, 8K, 8K, 3]``, ``weights`` and ``paths`` ``[N, K, K]``
    (the fields of ``WarcraftSplit`` that training reads)."""

    maps: np.ndarray
    weights: np.ndarray
    paths: np.ndarray

    def __len__(self) -> int:
        return len(self.maps)


class _Split:
    """One split as arrays plus the normalisation: batches of ``(images, true_costs, paths)`` tensors."""

    def __init__(self, split: Any, limit: int, mean: list[float] | None, std: list[float] | None, device: str) -> None:
        self.maps, self.weights, self.paths = _split_arrays(split, limit)
        if mean is None or std is None:
            mean, std = _channel_stats(self.maps)
        self.mean, self.std = mean, std
        self.device = torch.device(device)
        # (x / 255 − mean) / std = x * scale + shift, per channel
        self._scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=torch.float32).view(1, 3, 1, 1)
        self._shift = torch.tensor([-m / s for m, s in zip(mean, std)], dtype=torch.float32).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(self.maps)

    def images(self, index: np.ndarray | slice) -> Tensor:
        """Normalised images ``[B, 3, H, W]`` (channels-last memory, which CPU convolutions prefer)."""
        x = torch.from_numpy(np.ascontiguousarray(self.maps[index])).to(self.device)
        x = x.permute(0, 3, 1, 2).to(torch.float32)
        return x.mul_(self._scale.to(self.device)).add_(self._shift.to(self.device))

    def batch(self, index: np.ndarray | slice) -> tuple[Tensor, Tensor, Tensor]:
        weights = torch.from_numpy(np.ascontiguousarray(self.weights[index])).to(self.device)
        paths = torch.from_numpy(np.ascontiguousarray(self.paths[index])).to(self.device)
        return self.images(index), weights, paths


# ---------------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------------


@torch.no_grad()
def predict(model: WarcraftNet, split: _Split, solver: GridShortestPath, batch_size: int,
            index: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
    """Predicted costs and paths (the unperturbed ``MAP(−cost)``) of the maps ``index`` (default all)."""
    model.eval()
    index = np.arange(len(split)) if index is None else index
    costs, paths = [], []
    for lo in range(0, len(index), batch_size):
        c = model(split.images(index[lo:lo + batch_size]))
        costs.append(c)
        paths.append(solver(-c))
    return torch.cat(costs), torch.cat(paths)


@torch.no_grad()
def evaluate(model: WarcraftNet, split: _Split, solver: GridShortestPath, batch_size: int,
             progress: Any = None) -> dict[str, float]:
    """The metrics of :func:`path_metrics`, averaged over the split (percentages for optimal / exact)."""
    on_batch = None if progress is None else (lambda: progress.update(1))
    return _summary(_per_map(model, split, solver, batch_size, 0, len(split), on_batch))


@torch.no_grad()
def _per_map(model: torch.nn.Module, split: _Split, solver: GridShortestPath, batch_size: int, lo: int, hi: int,
             on_batch: Callable[[], None] | None) -> dict[str, list[Tensor]]:
    """:func:`path_metrics` of the maps ``lo .. hi - 1``, in batches of ``batch_size``."""
    model.eval()
    per_map: dict[str, list[Tensor]] = {k: [] for k in ("optimal", "exact", "cost_ratio", "regret", "hamming")}
    for start in range(lo, hi, batch_size):
        images, weights, paths = split.batch(slice(start, min(hi, start + batch_size)))
        pred = solver(-model(images))
        for key, value in path_metrics(pred.cpu(), paths.cpu(), weights.cpu()).items():
            per_map[key].append(value)
        if on_batch is not None:
            on_batch()
    return per_map


def _step(model: torch.nn.Module, method: Method, optimizer: torch.optim.Optimizer, images: Tensor, weights: Tensor,
          paths: Tensor, batch_size: int | None = None) -> float:
    """One optimisation step; returns the mean per-instance loss (of this rank's shard: ``batch_size`` is the
    whole batch's size under data parallelism, see :meth:`Method.objective`)."""
    costs = model(images)
    losses = method.loss(costs, paths, weights)  # [S, B]
    optimizer.zero_grad(set_to_none=True)
    method.objective(losses, batch_size).backward()
    optimizer.step()
    return float(losses.detach().mean())


def _plain_scheduler_state(state: dict[str, Any]) -> dict[str, Any]:
    """The scheduler state with its milestone ``Counter`` as a plain dict (loadable with weights_only)."""
    return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in state.items()}


def _config_dict(config: WarcraftConfig) -> dict[str, Any]:
    return asdict(config)


def run_warcraft(config: WarcraftConfig, out_dir: str | os.PathLike | None = None, *, data: Any = None,
                 progress: bool = True, plot: bool = True, cache_dir: str | os.PathLike | None = None,
                 num_threads: int | None = None, stop_after_epochs: int | None = None,
                 bar_position: int = 0) -> dict[str, Any]:
    """Train ``config.method`` on Warcraft maps; return the final numbers (also written to ``final.json``).

    Args:
        config: the run's hyperparameters (``None`` fields are resolved from the data; the resolved config
            is written to ``config.json``).
        out_dir: the run folder (``None``: nothing is written and nothing is resumed). It receives
            ``config.json``, ``metrics.jsonl`` / ``metrics.csv`` (one row per epoch, epoch 0 = before
            training), ``final.json``, ``curves.png`` and ``paths.png`` (with ``plot``), and
            ``checkpoints/last.pt`` (after every epoch: model, optimiser, scheduler, the noise generator's
            state, the estimator's state such as AIMLE's β, the epoch and the metrics so far; loadable with
            ``torch.load(..., weights_only=True)``). Every write is atomic.
        data: a ``WarcraftData`` (``train`` / ``val`` / ``test`` splits with ``maps`` uint8 ``[N, 8K, 8K, 3]``,
            ``weights`` and ``paths`` ``[N, K, K]``); ``None`` loads or generates it (:func:`load_data`).
            The first ``num_train`` / ``num_val`` / ``num_test`` maps of each split are used.
        progress: tqdm progress bars (epochs, and batches within an epoch).
        plot: write the PNGs (needs matplotlib).
        cache_dir: where generated data is cached (passed to ``generate_warcraft``).
        num_threads: torch threads for this run (restored afterwards); ``None`` leaves them.
        stop_after_epochs: stop (with a checkpoint) once this many epochs are done, as an interruption would;
            calling again resumes.
        bar_position: the screen line of the first progress bar (for callers that show their own bars).

    Resume: when ``out_dir`` holds a checkpoint of a run with the same resolved config, training continues
    after its last completed epoch and ends with exactly the numbers of an uninterrupted run (a finished
    run is not trained again). A different config in ``out_dir`` is an error.

    Data parallelism: with a ``torch.distributed`` process group of N ranks (``torchrun --nproc_per_node N
    -m discograd warcraft ...``), every batch of ``batch_size`` maps is split into N contiguous shards, each
    rank perturbs and solves its own with its own noise stream (:func:`discograd.distributed.rank_generator`),
    and the gradients are summed over ranks with the objective normalised by the whole batch, so every
    instance's upstream gradient is what one process computes. Batch normalisation uses per-rank statistics
    on the CPU (``SyncBatchNorm`` with CUDA). Every rank evaluates a shard of each split and the metrics
    are over the whole split; rank 0 writes the run folder. Resuming needs the same number of ranks.
    """
    config.validate()
    with torch_threads(num_threads):
        return _run(config, None if out_dir is None else Path(out_dir), data, progress, plot, cache_dir,
                    stop_after_epochs, bar_position)


def _run(config: WarcraftConfig, out: Path | None, data: Any, progress: bool, plot: bool,
         cache_dir: str | os.PathLike | None, stop_after_epochs: int | None, bar_position: int) -> dict[str, Any]:
    if data is None:  # under data parallelism rank 0 first, so that it alone generates (and caches) the maps
        if distributed.rank() == 0:
            data = load_data(config, cache_dir=cache_dir, progress=progress)
        distributed.barrier()
        if data is None:
            data = load_data(config, cache_dir=cache_dir, progress=False)
    grid = int(np.asarray(data.train.weights[:1]).shape[-1])
    if grid != config.grid_size:
        raise ValueError(f"grid_size is {config.grid_size} but the data has {grid} x {grid} grids")
    train = _Split(data.train, config.num_train, None, None, config.device)
    val = _Split(data.val, config.num_val, train.mean, train.std, config.device)
    test = _Split(data.test, config.num_test, train.mean, train.std, config.device)
    config = config.resolve()
    folder, finished = open_run(out, _config_dict(config), stop_after_epochs)
    if finished is not None:
        return finished
    trainer = _WarcraftTrainer(config, data, train, val, test)
    return harness_train(trainer, folder, config.epochs, stop_after_epochs=stop_after_epochs, progress=progress,
                         plot=plot, bar_position=bar_position, map_location=config.device)


class _WarcraftTrainer(Trainer):
    """The Warcraft run for :func:`~discograd.experiments.harness.train`: network, method, Adam with the
    step schedule, and the path metrics on val and test."""

    def __init__(self, config: WarcraftConfig, data: Any, train: _Split, val: _Split, test: _Split) -> None:
        self.config, self.data, self.train, self.val, self.test = config, data, train, val, test
        model = build_model(config)
        if config.device == "cpu":
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.generator = distributed.rank_generator(_derived_seed(config.seed, 2), config.device)
        self.method = build_method(config, self.generator)
        self.layer = self.method.layer
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=list(config.lr_milestones),
                                                              gamma=config.lr_decay)
        self.ranks = distributed.world_size()
        self.net: torch.nn.Module = model
        if distributed.is_distributed():
            from torch.nn.parallel import DistributedDataParallel

            if config.device != "cpu":
                model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
                self.model = model
            self.net = DistributedDataParallel(model, device_ids=None if config.device == "cpu" else [self.model_device()])
            self.net.register_comm_hook(None, distributed.sum_gradients_hook)
        self.num_batches = -(-len(train) // config.batch_size)
        self.eval_batches = sum(-(-(hi - lo) // config.eval_batch_size)
                                for lo, hi in (distributed.shard_bounds(len(s), distributed.rank(), self.ranks)
                                               for s in (val, test)))
        self.desc = f"warcraft {config.method}"

    def model_device(self) -> torch.device:
        return next(self.model.parameters()).device

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "scheduler": _plain_scheduler_state(self.scheduler.state_dict())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        scheduler_state = dict(state["scheduler"])
        scheduler_state["milestones"] = Counter({int(k): v for k, v in scheduler_state["milestones"].items()})
        self.scheduler.load_state_dict(scheduler_state)

    def untrained_fields(self) -> dict[str, Any]:
        return {"lr": None, "train_loss": None}

    def train_epoch(self, epoch: int, on_batch: Callable[[float], None]) -> dict[str, Any]:
        config, train = self.config, self.train
        self.net.train()
        lr = self.optimizer.param_groups[0]["lr"]
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(_derived_seed(config.seed, 1, epoch)))
        order = order.numpy()
        total_loss = 0.0
        for b in range(self.num_batches):
            index = np.sort(order[b * config.batch_size:(b + 1) * config.batch_size])
            mine = distributed.shard(index)
            images, weights, paths = train.batch(mine)
            loss = _step(self.net, self.method, self.optimizer, images, weights, paths,
                         len(index) if self.ranks > 1 else None)
            total_loss += loss * len(mine)
            on_batch(loss)
        self.scheduler.step()
        if self.ranks > 1:
            total_loss = float(distributed.all_reduce_sum(torch.tensor(total_loss, dtype=torch.float64)))
        return {"lr": lr, "train_loss": total_loss / len(train)}

    def evaluate(self, epoch: int, on_batch: Callable[[], None]) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name, split in (("val", self.val), ("test", self.test)):
            lo, hi = distributed.shard_bounds(len(split), distributed.rank(), self.ranks)
            per_map = _per_map(self.model, split, self.method.solver, self.config.eval_batch_size, lo, hi, on_batch)
            if self.ranks > 1:
                gathered = distributed.all_gather_object({k: torch.cat(v) if v else torch.zeros(0, dtype=torch.float64)
                                                          for k, v in per_map.items()})
                per_map = {k: [part[k] for part in gathered] for k in per_map}
            row.update({f"{name}_{k}": v for k, v in _summary(per_map).items()})
        return row

    def postfix(self, row: dict[str, Any]) -> dict[str, str]:
        return {"val_optimal": f"{row['val_optimal_pct']:.1f}%", "loss": f"{row['train_loss']:.3g}"}

    def final(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        return _final(self.config, history, self.data, self.train)

    def plot(self, out: Path, history: list[dict[str, Any]]) -> None:
        config, test = self.config, self.test
        plot_curves(history, out / "curves.png", title=f"{config.method}, {config.grid_size} x {config.grid_size}")
        index = np.arange(min(8, len(test)))
        _, pred = predict(self.model, test, self.method.solver, config.eval_batch_size, index)
        plot_path_panel(test.maps[index], test.paths[index], pred.cpu().numpy(), test.weights[index],
                        out / "paths.png", title=f"{config.method}: test maps after {config.epochs} epochs")


def _final(config: WarcraftConfig, history: list[dict[str, Any]], data: Any, train: _Split) -> dict[str, Any]:
    last = history[-1]
    trained = [row for row in history if row["epoch"] > 0]
    best = max(trained, key=lambda r: (r["val_optimal_pct"], -r["epoch"])) if trained else last
    environment = environment_info()
    if distributed.world_size() > 1:
        environment["world_size"] = distributed.world_size()
    return {
        "method": config.method,
        "grid_size": config.grid_size,
        "seed": config.seed,
        "epochs_done": last["epoch"],
        "epochs": config.epochs,
        "test": {k: last[f"test_{k}"] for k in METRIC_KEYS},
        "val": {k: last[f"val_{k}"] for k in METRIC_KEYS},
        "best_val_epoch": best["epoch"],
        "test_at_best_val": {k: best[f"test_{k}"] for k in METRIC_KEYS},
        "train_seconds": sum(row["train_seconds"] for row in history),
        "data": {"source": getattr(data, "source", None), "num_train": len(train),
                 "image_mean": train.mean, "image_std": train.std},
        "config": _config_dict(config),
        "environment": environment,
    }


# ---------------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------------


def plot_curves(history: list[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """Learning curves: training loss, and val / test % optimal, % exact and regret per epoch."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), dpi=100)
    epochs = [r["epoch"] for r in history]
    trained = [r for r in history if r["train_loss"] is not None]
    axes[0].plot([r["epoch"] for r in trained], [r["train_loss"] for r in trained], marker=".")
    axes[0].set_title("training loss (per map)")
    for ax, key, label in zip(axes[1:], ("optimal_pct", "exact_pct", "regret"),
                              ("% paths with optimal cost", "% paths equal to the label", "regret (true cost)")):
        for split in SPLITS:
            ax.plot(epochs, [r[f"{split}_{key}"] for r in history], marker=".", label=split)
        ax.set_title(label)
        ax.legend()
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, Path(path))


def plot_path_panel(maps: np.ndarray, true_paths: np.ndarray, pred_paths: np.ndarray, weights: np.ndarray,
                    path: str | os.PathLike, title: str | None = None) -> Path:
    """Maps with their true and predicted paths, each titled with the predicted path's cost (``data.plot_paths``)."""
    from .data import plot_paths

    return Path(plot_paths(maps, true_paths, pred_paths, path=path, max_maps=len(maps), weights=weights, title=title))


# ---------------------------------------------------------------------------------------------------
# benchmark: one training epoch, split into data / network / solver / estimator
# ---------------------------------------------------------------------------------------------------


class _TimedSolver:
    """A solver proxy that adds the seconds spent in each call to ``seconds``."""

    event_dims = 2

    def __init__(self, solver: GridShortestPath) -> None:
        self.solver = solver
        self.seconds = 0.0

    def __call__(self, theta: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        start = time.perf_counter()
        try:
            return self.solver(theta, *args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def benchmark_epoch(grid_size: int = 12, num_maps: int = 10_000, batch_size: int = 70, *,
                    sample_counts: tuple[int, ...] = (1, 10), max_batches: int | None = None, seed: int = 0,
                    device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Time one training epoch of I-MLE (S = each of ``sample_counts``) against the two-stage MSE step.

    Every configuration trains its own copy of the same network (same initialisation, Adam) on the same
    batches of random maps ``[batch_size, 3, 8K, 8K]`` with random costs and their shortest paths;
    configurations take turns batch by batch, so a change in machine load hits all of them alike. The
    step time is split into ``data`` (gathering and normalising a batch), ``network`` (forward, backward
    and the Adam step of the CNN), ``solver`` (the Dijkstra calls, forward and backward) and
    ``estimator`` (the rest: noise, target, loss and autograd bookkeeping); the backward pass is split at
    the gradient of the costs (a tensor hook). ``max_batches`` caps the batches (the epoch time is then
    extrapolated to ``num_maps``). Returns per configuration the seconds per component for the epoch and
    ``ratio_to_two_stage`` (epoch time over the two-stage epoch time).
    """
    num_batches = -(-num_maps // batch_size)
    measured = num_batches if max_batches is None else min(num_batches, max_batches)
    g = torch.Generator().manual_seed(seed)
    side = 8 * grid_size
    pool = 4 * batch_size  # distinct random maps, reused across batches
    maps = torch.randint(0, 256, (pool, side, side, 3), generator=g, dtype=torch.uint8).numpy()
    true_costs = (0.8 + 8.4 * torch.rand(pool, grid_size, grid_size, generator=g)).numpy()
    solver = GridShortestPath(neighbourhood=8)
    true_paths = solver(-torch.from_numpy(true_costs)).numpy()
    split = _Split(ArraySplit(maps, true_costs, true_paths), pool, [0.5] * 3, [0.25] * 3, device)
    names = ["two_stage"] + [f"imle_S{s}" for s in sample_counts]
    runs = {}
    for name in names:
        s = 1 if name == "two_stage" else int(name.split("S")[1])
        config = WarcraftConfig(method="imle" if name != "two_stage" else "two_stage", grid_size=grid_size,
                                num_samples=s, device=device, seed=seed).resolve()
        timed = _TimedSolver(solver)
        model = build_model(config)
        if device == "cpu":
            model = model.to(memory_format=torch.channels_last)
        method = build_method(config, torch.Generator(device=device).manual_seed(seed), solver=timed)
        runs[name] = {"model": model, "method": method, "solver": timed,
                      "optimizer": torch.optim.Adam(model.parameters(), lr=5e-4),
                      "times": dict.fromkeys(("data", "network", "estimator_and_solver"), 0.0)}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=measured * len(names), desc="benchmark epoch", unit="step")
    order = np.random.default_rng(seed).integers(0, pool, size=(measured, batch_size))
    for b in range(measured):
        for name in names:
            run = runs[name]
            times = run["times"]
            t0 = time.perf_counter()
            images, weights, paths = split.batch(np.sort(order[b]))
            t1 = time.perf_counter()
            costs = run["model"](images)
            t2 = time.perf_counter()
            arrived: list[float] = []
            costs.register_hook(lambda grad, arrived=arrived: arrived.append(time.perf_counter()))
            losses = run["method"].loss(costs, paths, weights)
            run["optimizer"].zero_grad(set_to_none=True)
            total = run["method"].objective(losses)
            t3 = time.perf_counter()
            total.backward()
            t5 = time.perf_counter()
            run["optimizer"].step()
            t6 = time.perf_counter()
            t4 = arrived[0] if arrived else t3
            times["data"] += t1 - t0
            times["network"] += (t2 - t1) + (t5 - t4) + (t6 - t5)
            times["estimator_and_solver"] += (t3 - t2) + (t4 - t3)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    scale = num_batches / measured
    results: dict[str, Any] = {}
    for name in names:
        run = runs[name]
        solver_seconds = run["solver"].seconds
        parts = {
            "data": run["times"]["data"] * scale,
            "network": run["times"]["network"] * scale,
            "solver": solver_seconds * scale,
            "estimator": max(0.0, run["times"]["estimator_and_solver"] - solver_seconds) * scale,
        }
        parts["total"] = sum(parts.values())
        results[name] = parts
    base = results["two_stage"]["total"]
    for name in names:
        results[name]["ratio_to_two_stage"] = results[name]["total"] / base
    return {
        "grid_size": grid_size, "num_maps": num_maps, "batch_size": batch_size, "batches_measured": measured,
        "num_batches": num_batches, "device": device, "results": results, "environment": environment_info(),
    }


def format_benchmark(result: dict[str, Any]) -> str:
    """A Markdown table of :func:`benchmark_epoch`'s result."""
    lines = [
        (f"One training epoch, {result['num_maps']} maps of {result['grid_size']} x {result['grid_size']}, batch "
         f"{result['batch_size']} ({result['batches_measured']} of {result['num_batches']} batches measured, "
         f"extrapolated), device {result['device']}, {result['environment']['num_threads']} torch threads; seconds"),
        "",
        "| step | data | network | solver | estimator | total | × two-stage |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result["results"].items():
        lines.append(f"| {name} | {r['data']:.2f} | {r['network']:.2f} | {r['solver']:.2f} | {r['estimator']:.2f} | "
                     f"{r['total']:.2f} | {r['ratio_to_two_stage']:.3f} |")
    return "\n".join(lines)
