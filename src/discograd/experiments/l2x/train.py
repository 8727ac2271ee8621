r"""Learning to explain (L2X; Chen et al., ICML 2018, arXiv:1802.07814) with every k-subset estimator
(I-MLE paper, Niepert et al., NeurIPS 2021, Section 5.2 and Table 1).

An explainer has a *selector* that maps an input to per-feature (or per-token) scores ``θ``, a k-subset
``z`` drawn from ``θ`` by the chosen method, and a *predictor* that sees only the selected features
``x ⊙ z`` (for text: the selected tokens' embeddings) and predicts the target. Both are trained jointly on
the prediction loss; the selection is judged against ground truth. At evaluation every method selects
``z = TopK(k)(θ)``, the MAP state, without noise.

The text defaults are the original code's (tf-imle ``L2X/L2X-experiments-neurips.ipynb``; torch-adaptive-imle
``cli/l2x-cli.py`` and ``aaai23/torch/modules.py``); ``docs/l2x.md`` lists every setting with its source.

Methods (``L2XConfig.method``), for logits ``θ`` of shape ``[B, n]``:

- ``imle``: :func:`discograd.imle` with :class:`~discograd.solvers.TopK` and Sum-of-Gamma noise
  ``SumOfGamma(k, temperature=τ)`` on both sides (the paper's τ is the temperature of the SoG noise; ``imle``'s
  own temperature stays 1), PID target ``θ' = θ − λ g``. Text: τ = 1 and λ = 1000, the notebook's I-MLE cell
  (the paper's Table 1 row names τ = 30: ``temperature=30``); the gradient is ``z − z'`` without the ``1/λ``
  factor, as the original's (``imle_scale_by_step_size``). ``imle_two_sided``: the central difference
  ``(MAP(θ + λg + ε) − MAP(θ − λg + ε)) / 2``.
- ``aimle``: the same with :class:`~discograd.targets.AdaptiveTarget` (λ per instance, β steered towards
  ``aimle_target_nonzeros`` non-zero gradient entries per instance; two-sided by default).
- ``simple``: :func:`discograd.simple_topk` (exact k-subset sample, gradient of the exact marginals).
- ``softsub``: :func:`discograd.relaxed_topk` (Xie & Ermon), temperature ``relaxation_temperature``.
- ``l2x``: :func:`discograd.k_concrete` (the L2X relaxation) with ``concrete_draws`` Concrete draws,
  temperature ``relaxation_temperature``. Text: one draw, as the I-MLE code's ``Sample_Concrete`` (its noise has
  the shape of the logits, so the element-wise max is over a single softmax); tabular: k draws, Chen et al.'s.
- ``straight_through``: SoG perturb-and-MAP forward as ``imle``, identity backward.
- ``exact`` (tabular tasks only): the exact gradient of ``E_{z ~ p(z; θ)}[L]``, ``p(z; θ) ∝ exp⟨z, θ⟩`` over all
  ``C(10, k)`` subsets (:func:`discograd.exact.ksubset_states`), the predictor evaluated on every subset.

The relaxations feed the predictor continuous masks during training (as in the papers) and the top-k
indicator at evaluation.

Tasks (``L2XConfig.task``): the tabular ``xor``, ``orange_skin``, ``nonlinear_additive``, ``switch``
(:mod:`.data`; an MLP selector and an MLP predictor, binary cross-entropy against ``P(Y = 1 | x)``, as the
L2X code trains on the probabilities), ``reviews`` (:func:`.data.generate_reviews`) and ``beer`` (the original
BeerAdvocate files, :func:`.data.load_beer`). Text: the L2X selector (:class:`TextExplainer`) and, by default,
the original predictor ``Σ_t (e_t · z_t) / k → Dense(250) → ReLU → Dense(1) → sigmoid`` (``predictor="conv"``:
our convolutional, mean-pooling predictor), the squared error of the rating averaged over the batch.

Held-out data (text): the held-out reviews are split in half at random per seed into validation and test, as the
original (:meth:`.data.L2XData.split_heldout`). Every epoch is evaluated; the reported numbers (``test`` and ``val``
in ``final.json``) are those of the epoch with the lowest validation loss (the original's best-``val_mse``
checkpoint; tabular: the validation cross-entropy), and ``test_last`` / ``val_last`` those after the last epoch.

Metrics: tabular — ``tpr_pct`` (true-positive rate: % of the relevant features that are among the k
selected, per instance, averaged; with k = the number of relevant features it is also the precision),
``median_rank`` (per instance, the median of the ranks of the relevant features among the selector's scores,
rank 1 = highest score, ties averaged; averaged over instances; the optimum is (1 + r)/2 for r relevant
features), ``post_hoc_accuracy_pct`` (% of sampled test labels the predictor gets right from the selected
features alone) and ``bayes_accuracy_pct`` (the same for the Bayes classifier on all features, the ceiling).
Text — ``mse_x100`` (mean squared error of the rating × 100) and ``precision_pct`` (subset precision,
micro-averaged as the original: selected non-padding tokens inside annotated spans over all selected tokens of
the set, each review counting at least k; see :func:`subset_precision`). Every split also reports ``loss``
(the training loss without sampling, on ``TopK(k)(θ)``), which picks the best epoch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ... import (
    AdaptiveTarget,
    PerturbedTarget,
    SumOfGamma,
    imle,
    k_concrete,
    relaxed_topk,
    simple_topk,
    straight_through,
)
from ...exact import enumeration_log_probs, ksubset_states
from ...solvers import TopK
from .._io import environment_info, pyplot, save_checkpoint, save_figure
from ..harness import RunFolder, Trainer, open_run, torch_threads
from ..harness import train as harness_train
from .data import (
    TABULAR_TASKS,
    L2XData,
    TextSplit,
    generate_reviews,
    generate_tabular,
    load_beer,
)

__all__ = [
    "DEFAULT_K",
    "IMLE_SETTINGS",
    "METHODS",
    "ORIGINAL_TEXT_SETTINGS",
    "PAPER_TABLE1",
    "PREDICTORS",
    "TASKS",
    "TEXT_TASKS",
    "L2XConfig",
    "TabularExplainer",
    "TextExplainer",
    "best_epoch",
    "build_selector",
    "evaluate",
    "load_data",
    "median_ranks",
    "methods_for",
    "run_l2x",
    "subset_precision",
    "true_positive_rate",
]

#: the k-subset methods
METHODS = ("imle", "aimle", "simple", "softsub", "l2x", "straight_through", "exact")
#: methods that need every k-subset enumerated (tabular tasks only)
ENUMERATING_METHODS = ("exact",)
TEXT_TASKS = ("reviews", "beer")
#: every task: the tabular ones, then the text ones
TASKS = TABULAR_TASKS + TEXT_TASKS
PREDICTORS = ("original", "conv")
#: k when ``L2XConfig.k`` is unset: the number of relevant features (tabular), 10 for text
DEFAULT_K = {"xor": 2, "orange_skin": 4, "nonlinear_additive": 4, "switch": 5, "reviews": 10, "beer": 10}
#: the I-MLE paper's Table 1 (BeerAdvocate, aroma): (method, k) -> (test MSE × 100, subset precision %), 10 runs
PAPER_TABLE1 = {
    ("imle", 5): (2.62, 54.76), ("imle", 10): (2.71, 47.98), ("imle", 15): (2.91, 39.56),
    ("softsub", 10): (2.67, 44.44), ("l2x", 10): (6.68, 26.65), ("straight_through", 10): (4.44, 38.93),
}
#: the two I-MLE settings of the original: the notebook's I-MLE cell (tf-imle L2X/L2X-experiments-neurips.ipynb,
#: the default here) and the paper's Table 1 row ("I-MLE (τ = 30)"); pass them as ``temperature`` / ``step_size``
IMLE_SETTINGS = {"notebook": {"temperature": 1.0, "step_size": 1000.0},
                 "paper": {"temperature": 30.0, "step_size": 1000.0}}
#: the original code's text settings that the defaults of ``beer`` reproduce (``reviews`` too, except its
#: generated sizes); checked by the tests
ORIGINAL_TEXT_SETTINGS = {
    "k": 10, "max_length": 350, "batch_size": 40, "epochs": 20, "learning_rate": 1e-3, "adam_eps": 1e-7,
    "predictor": "original", "hidden": 250, "filters": 100, "loss_reduction": "mean", "temperature": 1.0,
    "step_size": 1000.0, "imle_scale_by_step_size": False, "imle_two_sided": False, "num_samples": 1,
    "noise_terms": 10, "concrete_draws": 1, "init": "glorot", "padding": "pre",
    "relaxation_temperature": {"l2x": 0.1, "softsub": 0.5},
}
TABULAR_METRICS = ("tpr_pct", "median_rank", "post_hoc_accuracy_pct", "bayes_accuracy_pct")
TEXT_METRICS = ("mse_x100", "precision_pct")


def methods_for(task: str) -> tuple[str, ...]:
    """The methods that can run on ``task`` (``exact`` enumerates subsets: tabular only)."""
    return METHODS if task in TABULAR_TASKS else tuple(m for m in METHODS if m not in ENUMERATING_METHODS)


# ---------------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------------


@dataclass
class L2XConfig:
    """Every hyperparameter of one run; ``None`` fields are filled by :meth:`resolve` from the task (see
    :data:`TASK_DEFAULTS`) and the resolved config is written to ``config.json``."""

    task: str = "xor"
    method: str = "imle"
    k: int | None = None
    # data
    num_train: int | None = None
    num_val: int | None = None
    num_test: int | None = None
    data_seed: int = 0
    data_dir: str | None = None  # beer: the folder with the original files
    aspect: int = 1  # beer: 1 = aroma (the paper's Table 1)
    max_length: int = 350  # beer: tokens kept per review
    padding: str = "pre"  # beer: "pre" (zeros before the review, the original's) or "post"
    embedding_file: str = "review+wiki.filtered.200.txt"
    seq_length: int = 200  # reviews
    vocab_size: int = 2000  # reviews
    embedding_dim: int = 50  # reviews
    # optimisation
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float = 1e-3
    adam_eps: float | None = None  # None: 1e-7 text (Keras' Adam, the original's), 1e-8 tabular (torch's)
    loss_reduction: str | None = None  # "mean" or "sum" over the batch; None: mean text (the original), sum tabular
    seed: int = 0
    # model
    predictor: str | None = None  # text: "original" (Σ e z / k → MLP) or "conv"; None: original
    hidden: int | None = None  # tabular: selector width (predictor: 2x); text: predictor's dense layer
    filters: int | None = None  # text: selector channels (the conv predictor: 2.5x)
    init: str | None = None  # "glorot" (Keras' defaults: Glorot-uniform weights, zero biases) or "torch"
    # estimators
    temperature: float | None = None  # τ of the SoG noise (imle, aimle, straight_through); None: 1 text, k tabular
    step_size: float | None = None  # λ of imle; None: 1000 text (the original's), 1 tabular
    imle_two_sided: bool = False  # imle: central difference (MAP(θ + λg + ε) − MAP(θ − λg + ε)) / 2
    imle_scale_by_step_size: bool = False  # imle: divide by λ (the original does not)
    num_samples: int = 1  # S, samples per instance and step (every method)
    noise_terms: int = 10  # s of SoG
    relaxation_temperature: float | None = None  # softsub, l2x; None: text 0.5 softsub / 0.1 l2x, tabular 0.1
    concrete_draws: int | None = None  # l2x: Concrete draws (max over them); None: 1 text (the original), k tabular
    aimle_target_nonzeros: float = 1.0
    aimle_update_step: float = 1e-2
    aimle_initial_beta: float = 1.0
    aimle_two_sided: bool = True
    eval_batch_size: int = 500
    device: str = "cpu"

    @classmethod
    def quick(cls, **overrides: Any) -> L2XConfig:
        """The smoke-test preset (a few seconds): small splits, one or two epochs."""
        values: dict[str, Any] = {"num_train": 600, "num_val": 100, "num_test": 100, "epochs": 2, "seq_length": 80,
                                  "vocab_size": 400, "embedding_dim": 16, "filters": 16, "hidden": 32,
                                  "max_length": 120}
        values.update(overrides)
        return cls(**values)

    def resolve(self) -> L2XConfig:
        """A copy with every ``None`` field set from :data:`TASK_DEFAULTS` and the method."""
        self.validate()
        defaults = TASK_DEFAULTS["tabular" if self.task in TABULAR_TASKS else self.task]
        names = {f.name for f in fields(self)}
        values = {name: (defaults[name] if getattr(self, name) is None else getattr(self, name))
                  for name in defaults if name in names}
        config = replace(self, **values)
        tabular = config.task in TABULAR_TASKS
        if config.k is None:
            config.k = DEFAULT_K[config.task]
        if config.temperature is None:
            config.temperature = float(config.k) if tabular else 1.0
        if config.concrete_draws is None:
            config.concrete_draws = config.k if tabular else 1
        if config.relaxation_temperature is None:
            config.relaxation_temperature = 0.5 if (config.method == "softsub" and not tabular) else 0.1
        config.validate()
        return config

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}; got {self.task!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}; got {self.method!r}")
        if self.method in ENUMERATING_METHODS and self.task not in TABULAR_TASKS:
            raise ValueError(f"method {self.method!r} enumerates every k-subset and needs a tabular task "
                             f"({', '.join(TABULAR_TASKS)}); got task {self.task!r}")
        if self.task == "beer" and not self.data_dir:
            raise ValueError("task 'beer' needs data_dir (--data-dir): the folder with reviews.aspect*.{train,heldout}"
                             ".txt, annotations.json and the embedding file")
        for name in ("num_train", "num_val", "num_test"):
            value, low = getattr(self, name), 0 if self.task == "beer" else 1
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ValueError(f"{name} must be an integer >= {low}{' (0: all)' if low == 0 else ''}; got {value!r}")
        for name in ("k", "epochs", "batch_size", "hidden", "filters", "concrete_draws",
                     "num_samples", "noise_terms", "eval_batch_size", "seq_length", "vocab_size", "embedding_dim",
                     "max_length"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        for name in ("seed", "data_seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
        if self.aspect not in range(5):
            raise ValueError(f"aspect must be 0..4; got {self.aspect!r}")
        for name in ("learning_rate", "adam_eps", "temperature", "step_size", "relaxation_temperature",
                     "aimle_target_nonzeros"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
        for name in ("aimle_update_step", "aimle_initial_beta"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
        for name, allowed in (("predictor", PREDICTORS), ("loss_reduction", ("mean", "sum")),
                              ("init", ("glorot", "torch")), ("padding", ("pre", "post"))):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}; got {value!r}")
        for name in ("imle_two_sided", "imle_scale_by_step_size", "aimle_two_sided"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool; got {getattr(self, name)!r}")
        n = 10 if self.task in TABULAR_TASKS else (self.seq_length if self.task == "reviews" else self.max_length)
        if self.k is not None and self.k >= n:
            raise ValueError(f"k must be < {n}, the number of {'features' if n == 10 else 'tokens'}; got {self.k}")


#: per-task defaults of the ``None`` fields ("tabular": the four tabular tasks; ``temperature``,
#: ``concrete_draws`` and ``relaxation_temperature`` depend on k and the method, see :meth:`L2XConfig.resolve`).
#: ``beer`` has the original code's settings (tf-imle's L2X notebook: batch 40, 20 epochs, selector with 100
#: channels, predictor Dense(250), Keras' Adam and initialisers, the batch-mean MSE, λ = 1000, τ = 1); ``reviews``
#: the same on generated data of 2,000 / 500 + 500 reviews.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "tabular": {"num_train": 10_000, "num_val": 2_000, "num_test": 2_000, "epochs": 10, "batch_size": 100,
                "hidden": 100, "step_size": 1.0, "adam_eps": 1e-8, "loss_reduction": "sum", "init": "torch",
                "predictor": "original"},
    "reviews": {"num_train": 2_000, "num_val": 500, "num_test": 500, "epochs": 20, "batch_size": 40, "hidden": 250,
                "filters": 100, "step_size": 1000.0, "adam_eps": 1e-7, "loss_reduction": "mean", "init": "glorot",
                "predictor": "original"},
    "beer": {"num_train": 0, "num_val": 0, "num_test": 0, "epochs": 20, "batch_size": 40, "hidden": 250,
             "filters": 100, "step_size": 1000.0, "adam_eps": 1e-7, "loss_reduction": "mean", "init": "glorot",
             "predictor": "original"},
}


# ---------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------


def load_data(config: L2XConfig) -> L2XData:
    """The data of a resolved config: generated (tabular, reviews) or read from ``data_dir`` (beer; ``num_* = 0``
    keeps every review). Text: the validation and test reviews come back as one ``heldout`` set, which every run
    splits in half with its own seed (:meth:`.data.L2XData.split_heldout`); for ``reviews`` it holds
    ``num_val + num_test`` generated reviews."""
    if config.task in TABULAR_TASKS:
        return generate_tabular(config.task, config.num_train, config.num_val, config.num_test, seed=config.data_seed)
    if config.task == "reviews":
        data = generate_reviews(config.num_train, config.num_val, config.num_test, seq_length=config.seq_length,
                                vocab_size=config.vocab_size, embedding_dim=config.embedding_dim, seed=config.data_seed)
        heldout = TextSplit(np.concatenate([data.val.tokens, data.test.tokens]),
                            np.concatenate([data.val.rating, data.test.rating]),
                            np.concatenate([data.val.spans, data.test.spans]))
        return replace(data, val=None, test=None, heldout=heldout)
    return load_beer(config.data_dir, aspect=config.aspect, max_length=config.max_length,
                     embedding_file=config.embedding_file, num_train=config.num_train or None,
                     num_val=config.num_val or None, num_test=config.num_test or None, padding=config.padding)


# ---------------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------------


def _dropout(x: Tensor, p: float, training: bool, generator: torch.Generator | None) -> Tensor:
    """Dropout drawing its mask from ``generator`` (never torch's global generator)."""
    if not training or p == 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= p
    return x * keep / (1.0 - p)


def _glorot(module: nn.Module) -> None:
    """Keras' default initialisers (the original is a Keras model): Glorot-uniform weights, zero biases."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv1d)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)


class TabularExplainer(nn.Module):
    """L2X's synthetic-data explainer: selector ``10 → h → h → 10`` (SELU), predictor ``10 → 2h → 2h → 1`` (ReLU)
    on ``x ⊙ z``, the logit of ``P(Y = 1)``."""

    def __init__(self, num_features: int = 10, hidden: int = 100) -> None:
        super().__init__()
        self.selector = nn.Sequential(nn.Linear(num_features, hidden), nn.SELU(), nn.Linear(hidden, hidden), nn.SELU(),
                                      nn.Linear(hidden, num_features))
        self.predictor = nn.Sequential(nn.Linear(num_features, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, 2 * hidden),
                                       nn.ReLU(), nn.Linear(2 * hidden, 1))

    def scores(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.selector(x)

    def predict(self, x: Tensor, z: Tensor) -> Tensor:
        """``x`` ``[B, n]``, ``z`` ``[S, B, n]`` → logits ``[S, B]``."""
        return self.predictor(x * z).squeeze(-1)


class TextExplainer(nn.Module):
    """The L2X network for text, as the I-MLE code builds it for BeerAdvocate.

    Selector (tf-imle notebook ``construct_gumbel_selector``; torch-adaptive-imle ``GumbelSelector``): frozen
    embeddings → Conv1d(D, F, 3) ReLU; global: max-pool over tokens → Linear(F, F) ReLU; local: two Conv1d(F, F, 3)
    ReLU; concatenation (global broadcast to every token) → dropout 0.2 → Conv1d(2F, F, 1) ReLU → Conv1d(F, 1, 1):
    one logit per token (F = 100 in the original).

    Predictor, ``predictor="original"`` (the notebook's ``Mean`` layer and dense layers; torch-adaptive-imle
    ``PredictionModel``): ``h = Σ_t e_t z_t / k`` (the selected embeddings summed and divided by k, no convolution)
    → Linear(D, H) ReLU → Linear(H, 1) → sigmoid, the rating in [0, 1] (H = 250). ``predictor="conv"`` (ours):
    Conv1d(D, P, 3) ReLU on ``e ⊙ z`` (P = 2.5 F) → mean-pool over all L tokens → Linear(P, H) ReLU → Linear(H, 1) →
    sigmoid; the mean over L shrinks every ``∂L/∂z_t`` by 1/L (our λ was 1e5 with it).

    ``init="glorot"``: Keras' defaults (Glorot-uniform weights, zero biases), the original's; ``"torch"``: torch's.
    """

    def __init__(self, embedding: np.ndarray | Tensor, filters: int = 100, hidden: int = 250, *, k: int = 10,
                 predictor: str = "original", init: str = "glorot") -> None:
        super().__init__()
        if predictor not in PREDICTORS:
            raise ValueError(f"predictor must be one of {list(PREDICTORS)}; got {predictor!r}")
        weight = torch.as_tensor(np.asarray(embedding), dtype=torch.float32)
        self.register_buffer("embedding", weight)
        self.k = int(k)
        self.predictor = predictor
        d, f = weight.shape[1], filters
        self.conv = nn.Conv1d(d, f, 3, padding=1)
        self.global_dense = nn.Linear(f, f)
        self.local1 = nn.Conv1d(f, f, 3, padding=1)
        self.local2 = nn.Conv1d(f, f, 3, padding=1)
        self.combine = nn.Conv1d(2 * f, f, 1)
        self.logit = nn.Conv1d(f, 1, 1)
        if predictor == "conv":
            p = max(1, round(2.5 * filters))
            self.pred_conv = nn.Conv1d(d, p, 3, padding=1)
            self.pred_dense = nn.Linear(p, hidden)
        else:
            self.pred_dense = nn.Linear(d, hidden)
        self.pred_out = nn.Linear(hidden, 1)
        if init == "glorot":
            _glorot(self)
        elif init != "torch":
            raise ValueError(f"init must be 'glorot' or 'torch'; got {init!r}")

    def embed(self, tokens: Tensor) -> Tensor:
        return self.embedding[tokens]  # [B, L, D]

    def scores(self, tokens: Tensor, generator: torch.Generator | None = None) -> Tensor:
        e = self.embed(tokens).transpose(1, 2)  # [B, D, L]
        first = torch.relu(self.conv(e))
        global_info = torch.relu(self.global_dense(first.amax(dim=2)))  # [B, F]
        local = torch.relu(self.local2(torch.relu(self.local1(first))))
        combined = torch.cat([global_info.unsqueeze(2).expand_as(local), local], dim=1)
        combined = _dropout(combined, 0.2, self.training, generator)
        return self.logit(torch.relu(self.combine(combined))).squeeze(1)  # [B, L]

    def pooled(self, tokens: Tensor, z: Tensor) -> Tensor:
        """The predictor's input ``[S, B, D]``: ``Σ_t e_t z_t / k`` (original) or the mean-pooled convolution."""
        e = self.embed(tokens)  # [B, L, D]
        if self.predictor == "original":
            return torch.einsum("sbl,bld->sbd", z.to(e.dtype), e) / self.k
        s, b, length = z.shape
        masked = e.unsqueeze(0) * z.unsqueeze(-1)  # [S, B, L, D]
        h = torch.relu(self.pred_conv(masked.reshape(s * b, length, -1).transpose(1, 2))).mean(dim=2)
        return h.reshape(s, b, -1)

    def predict(self, tokens: Tensor, z: Tensor) -> Tensor:
        """``tokens`` ``[B, L]``, ``z`` ``[S, B, L]`` → ratings ``[S, B]``."""
        h = torch.relu(self.pred_dense(self.pooled(tokens, z)))
        return torch.sigmoid(self.pred_out(h)).squeeze(-1)


def build_model(config: L2XConfig, data: L2XData) -> nn.Module:
    """The explainer of a resolved config, initialised from a seed derived from ``config.seed`` without touching
    torch's global generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_derived_seed(config.seed, 0))
        if config.task in TABULAR_TASKS:
            model = TabularExplainer(data.train.x.shape[1], config.hidden)
        else:
            model = TextExplainer(data.embedding, config.filters, config.hidden, k=config.k,
                                  predictor=config.predictor, init=config.init)
    return model.to(config.device)


# ---------------------------------------------------------------------------------------------------
# methods: logits [B, n] -> k-subsets [S, B, n]
# ---------------------------------------------------------------------------------------------------


class Selector:
    """``selector(theta) -> z`` of shape ``[S, B, n]`` for training; ``layer`` is the estimator module whose
    ``state_dict`` (AIMLE's β) is checkpointed, or ``None``. ``weights(theta)``: the ``[S, B]`` weights that
    combine the per-sample losses into one per instance (``None``: their mean; ``exact``: ``p(z_s; θ)``)."""

    def __init__(self, fn: Callable[[Tensor], Tensor], layer: nn.Module | None,
                 weights: Callable[[Tensor], Tensor] | None = None) -> None:
        self.fn = fn
        self.layer = layer
        self.weights = weights

    def __call__(self, theta: Tensor) -> Tensor:
        return self.fn(theta)

    def combine(self, losses: Tensor, theta: Tensor) -> Tensor:
        """Per-instance losses ``[B]`` from the per-sample ``[S, B]``."""
        if self.weights is None:
            return losses.mean(0)
        return (self.weights(theta) * losses).sum(0)


def build_selector(config: L2XConfig, generator: torch.Generator | None = None) -> Selector:
    """The training-time k-subset layer of ``config.method`` (a resolved config)."""
    k, s = config.k, config.num_samples
    if config.method in ("imle", "aimle", "straight_through"):
        noise = SumOfGamma(k, temperature=config.temperature, num_terms=config.noise_terms)
        if config.method == "straight_through":
            layer = straight_through(TopK(k), noise=noise, num_samples=s, generator=generator)
        elif config.method == "imle":
            target = PerturbedTarget(config.step_size, two_sided=config.imle_two_sided)
            layer = imle(TopK(k), noise=noise, target=target, num_samples=s, generator=generator,
                         scale_by_step_size=config.imle_scale_by_step_size)
        else:
            target = AdaptiveTarget(config.aimle_target_nonzeros, config.aimle_update_step, config.aimle_initial_beta,
                                    two_sided=config.aimle_two_sided)
            layer = imle(TopK(k), noise=noise, target=target, num_samples=s, generator=generator)
        return Selector(layer, layer)
    if config.method == "simple":
        return Selector(lambda theta: simple_topk(theta, k, num_samples=s, generator=generator), None)
    if config.method == "exact":
        def states_for(theta: Tensor) -> Tensor:
            return ksubset_states(theta.shape[-1], k, dtype=theta.dtype, device=theta.device)

        def every_subset(theta: Tensor) -> Tensor:
            states = states_for(theta)
            return states.unsqueeze(1).expand(states.shape[0], *theta.shape)  # [C(n, k), B, n]

        def probabilities(theta: Tensor) -> Tensor:
            return enumeration_log_probs(states_for(theta), theta).exp().transpose(0, 1)  # [C(n, k), B]

        return Selector(every_subset, None, probabilities)
    t = config.relaxation_temperature
    if config.method == "softsub":
        return Selector(lambda theta: relaxed_topk(theta.unsqueeze(0).expand(s, *theta.shape), k, temperature=t,
                                                   generator=generator), None)
    draws = config.concrete_draws
    return Selector(lambda theta: k_concrete(theta.unsqueeze(0).expand(s, *theta.shape), draws, temperature=t,
                                             generator=generator), None)


# ---------------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------------


def _average_ranks(scores: np.ndarray) -> np.ndarray:
    """Ranks along the last axis, 1 = the highest score, ties given their average rank."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, axis=-1, kind="stable")
    sorted_scores = np.take_along_axis(-scores, order, axis=-1)
    n = scores.shape[-1]
    ranks_sorted = np.broadcast_to(np.arange(1, n + 1, dtype=np.float64), scores.shape).copy()
    # average over runs of equal scores
    for row in np.nonzero((np.diff(sorted_scores, axis=-1) == 0).any(axis=-1))[0] if scores.ndim == 2 else []:
        values = sorted_scores[row]
        start = 0
        while start < n:
            end = start
            while end + 1 < n and values[end + 1] == values[start]:
                end += 1
            ranks_sorted[row, start:end + 1] = (start + end + 2) / 2.0
            start = end + 1
    ranks = np.empty_like(ranks_sorted)
    np.put_along_axis(ranks, order, ranks_sorted, axis=-1)
    return ranks


def median_ranks(scores: np.ndarray | Tensor, relevant: np.ndarray | Tensor) -> np.ndarray:
    """Per instance, the median rank of the relevant features among ``scores`` ``[N, n]`` (rank 1 = the highest
    score; ties get their average rank); ``relevant`` is a boolean ``[N, n]`` mask with at least one feature per
    row. The optimum is ``(1 + r) / 2`` for ``r`` relevant features (1.5 for XOR, 2.5 for orange skin)."""
    scores = np.asarray(scores.detach().cpu() if isinstance(scores, Tensor) else scores, dtype=np.float64)
    relevant = np.asarray(relevant.cpu() if isinstance(relevant, Tensor) else relevant, dtype=bool)
    if scores.ndim != 2 or scores.shape != relevant.shape:
        raise ValueError(f"scores and relevant must both be [N, n]; got {scores.shape} and {relevant.shape}")
    if not relevant.any(axis=1).all():
        raise ValueError("relevant must mark at least one feature per instance")
    ranks = _average_ranks(scores)
    masked = np.where(relevant, ranks, np.nan)
    return np.nanmedian(masked, axis=1)


def true_positive_rate(selected: np.ndarray | Tensor, relevant: np.ndarray | Tensor) -> float:
    """Mean over instances of ``|selected ∩ relevant| / |relevant|`` (both ``[N, n]`` 0/1 masks), in [0, 1]."""
    selected = np.asarray(selected.cpu() if isinstance(selected, Tensor) else selected) > 0.5
    relevant = np.asarray(relevant.cpu() if isinstance(relevant, Tensor) else relevant, dtype=bool)
    if selected.shape != relevant.shape:
        raise ValueError(f"selected and relevant must have the same shape; got {selected.shape} and {relevant.shape}")
    return float(np.mean((selected & relevant).sum(1) / np.maximum(relevant.sum(1), 1)))


def subset_precision(selected: np.ndarray | Tensor, spans: np.ndarray | Tensor, k: int | None = None, *,
                     tokens: np.ndarray | Tensor | None = None, average: str = "micro") -> float:
    """Subset precision of selections ``selected`` against annotated ``spans`` (``[N, L]`` 0/1 masks), in [0, 1].

    ``average="micro"`` (the original's, tf-imle notebook ``subset_precision``): the selected tokens inside spans,
    summed over the set, over the selected tokens summed over the set, each review counting at least ``k``
    selected tokens (the original: ``max(selected non-padding words, select_k)``; ``k=None``: no minimum).
    ``tokens`` (``[N, L]`` ids): tokens with id 0 (padding; annotated words unknown to the vocabulary) are
    neither right nor selected, as in the original. ``average="macro"``: the mean over reviews of each review's
    precision (with the same counting).

    >>> spans = np.array([[1, 1, 1, 0], [0, 0, 0, 1]])
    >>> chosen = np.array([[1, 1, 0, 1], [1, 0, 0, 0]])
    >>> subset_precision(chosen, spans), subset_precision(chosen, spans, average="macro")  # (2 + 0) / (3 + 1)
    (0.5, 0.3333333333333333)
    """
    selected = np.asarray(selected.cpu() if isinstance(selected, Tensor) else selected) > 0.5
    spans = np.asarray(spans.cpu() if isinstance(spans, Tensor) else spans, dtype=bool)
    if selected.shape != spans.shape or selected.ndim != 2:
        raise ValueError(f"selected and spans must have the same shape [N, L]; got {selected.shape} and {spans.shape}")
    if average not in ("micro", "macro"):
        raise ValueError(f"average must be 'micro' or 'macro'; got {average!r}")
    if tokens is not None:
        tokens = np.asarray(tokens.cpu() if isinstance(tokens, Tensor) else tokens)
        if tokens.shape != selected.shape:
            raise ValueError(f"tokens must have the shape of selected, {selected.shape}; got {tokens.shape}")
        selected = selected & (tokens != 0)
    right = (selected & spans).sum(1)
    counted = np.maximum(selected.sum(1), 0 if k is None else k)
    if average == "micro":
        return float(right.sum() / max(1, counted.sum()))
    return float(np.mean(right / np.maximum(counted, 1)))


# ---------------------------------------------------------------------------------------------------
# training and evaluation
# ---------------------------------------------------------------------------------------------------


def _derived_seed(*words: int) -> int:
    return int(np.random.SeedSequence(list(words)).generate_state(1, dtype=np.uint64)[0] % (2**63 - 1))


def _inputs(config: L2XConfig, split: Any, index: np.ndarray | slice) -> tuple[Tensor, Tensor]:
    if config.task in TABULAR_TASKS:
        return (torch.as_tensor(split.x[index], device=config.device),
                torch.as_tensor(split.prob[index], device=config.device))
    return (torch.as_tensor(split.tokens[index], device=config.device),
            torch.as_tensor(split.rating[index], device=config.device))


def _losses(config: L2XConfig, output: Tensor, target: Tensor) -> Tensor:
    """Per-instance losses ``[S, B]``: binary cross-entropy (tabular, against P(Y=1|x)) or squared error (text)."""
    target = target.unsqueeze(0).expand_as(output)
    if config.task in TABULAR_TASKS:
        return nn.functional.binary_cross_entropy_with_logits(output, target, reduction="none")
    return (output - target) ** 2


def _objective(config: L2XConfig, per_instance: Tensor) -> Tensor:
    """The training objective from the per-instance losses ``[B]``: their mean over the batch (text, the original's
    Keras ``loss='mse'``, so λ is in its units) or their sum (tabular: an instance's ``g = ∂L/∂z`` then does not
    depend on the batch size)."""
    return per_instance.mean() if config.loss_reduction == "mean" else per_instance.sum()


@torch.no_grad()
def evaluate(model: nn.Module, config: L2XConfig, split: Any) -> dict[str, float]:
    """The metrics of a split with ``z = TopK(k)(θ)`` (see the module docstring); ``loss``: the mean training loss
    on those selections."""
    model.eval()
    solver = TopK(config.k)
    scores, selected, outputs, losses = [], [], [], []
    for start in range(0, len(split), config.eval_batch_size):
        inputs, target = _inputs(config, split, slice(start, start + config.eval_batch_size))
        theta = model.scores(inputs)
        z = solver(theta)
        out = model.predict(inputs, z.unsqueeze(0))
        scores.append(theta.cpu())
        selected.append(z.cpu())
        outputs.append(out[0].cpu())
        losses.append(_losses(config, out, target)[0].cpu())
    theta, z, out = torch.cat(scores), torch.cat(selected), torch.cat(outputs)
    loss = float(torch.cat(losses).double().mean())
    if config.task in TABULAR_TASKS:
        y = split.y
        return {
            "tpr_pct": 100.0 * true_positive_rate(z, split.relevant),
            "median_rank": float(np.mean(median_ranks(theta, split.relevant))),
            "post_hoc_accuracy_pct": 100.0 * float(np.mean((out.numpy() > 0) == (y == 1))),
            "bayes_accuracy_pct": 100.0 * float(np.mean((split.prob > 0.5) == (y == 1))),
            "loss": loss,
        }
    row = {"mse_x100": 100.0 * float(np.mean((out.numpy().astype(np.float64) - split.rating) ** 2)), "loss": loss}
    if split.spans is not None:
        row["precision_pct"] = 100.0 * subset_precision(z, split.spans, config.k, tokens=split.tokens)
    return row


def _evaluate_splits(model: nn.Module, config: L2XConfig, data: L2XData) -> dict[str, float]:
    """``val_*`` and ``test_*`` metrics; with annotated reviews (beer) the test precision is measured on them."""
    row = {f"val_{key}": value for key, value in evaluate(model, config, data.val).items()}
    row.update({f"test_{key}": value for key, value in evaluate(model, config, data.test).items()})
    if data.annotated is not None:
        row["test_precision_pct"] = evaluate(model, config, data.annotated)["precision_pct"]
    return row


def best_epoch(history: list[dict[str, Any]]) -> int:
    """The trained epoch (>= 1) with the lowest ``val_loss``; the first of equal ones, as Keras'
    ``ModelCheckpoint(monitor='val_mse', save_best_only=True, mode='min')`` of the original keeps the first.
    ``0`` when no epoch has been trained.

    >>> best_epoch([{"epoch": 0, "val_loss": 0.1}, {"epoch": 1, "val_loss": 0.3}, {"epoch": 2, "val_loss": 0.2},
    ...             {"epoch": 3, "val_loss": 0.2}])
    2
    """
    best, value = 0, math.inf
    for row in history:
        if row["epoch"] >= 1 and row["val_loss"] < value:
            best, value = row["epoch"], row["val_loss"]
    return best


def run_l2x(config: L2XConfig, out_dir: str | os.PathLike | None = None, *, data: L2XData | None = None,
            progress: bool = True, plot: bool = True, stop_after_epochs: int | None = None,
            num_threads: int | None = None, bar_position: int = 0) -> dict[str, Any]:
    """Train one explainer; return the final numbers (also written to ``final.json``).

    ``out_dir`` (``None``: nothing is written or resumed) receives ``config.json`` (the resolved config),
    ``metrics.jsonl`` (one row per epoch; epoch 0 = before training), ``final.json``, ``curves.png`` (with
    ``plot``), ``checkpoints/last.pt`` after every epoch (model, optimiser, the noise generator, the estimator's
    state such as AIMLE's β, the epoch and the metrics so far; ``torch.load(..., weights_only=True)`` reads it)
    and ``checkpoints/best.pt`` (the model of the best-validation epoch, :func:`best_epoch`).
    Every write is atomic. Rerunning with the same config resumes after the last finished epoch and ends with
    the numbers of an uninterrupted run; a finished run is not trained again; a different config in ``out_dir``
    is an error. ``stop_after_epochs`` stops early, as an interruption would. ``bar_position``: the screen line of
    the first progress bar. ``data``: the splits (``None``:
    :func:`load_data`); comparisons pass it to share one data set. A held-out set (text) is split in half with
    ``config.seed`` (:meth:`.data.L2XData.split_heldout`).

    ``final.json``: ``test`` and ``val`` at the best-validation epoch (``best_epoch``), ``test_last`` and
    ``val_last`` after the last epoch.
    """
    config = config.resolve()
    with torch_threads(num_threads):
        return _run(config, None if out_dir is None else Path(out_dir), data, progress, plot, stop_after_epochs,
                    bar_position)


def _run(config: L2XConfig, out: Path | None, data: L2XData | None, progress: bool, plot: bool,
         stop_after_epochs: int | None, bar_position: int) -> dict[str, Any]:
    folder, finished = open_run(out, asdict(config), stop_after_epochs)
    if finished is not None:
        return finished
    if data is None:
        data = load_data(config)
    if data.task != config.task:
        raise ValueError(f"data is for task {data.task!r} but config.task is {config.task!r}")
    data = data.split_heldout(config.seed)
    if data.val is None or data.test is None:
        raise ValueError("data needs val and test splits (or a heldout set to split)")
    return harness_train(_L2XTrainer(config, data), folder, config.epochs, stop_after_epochs=stop_after_epochs,
                         progress=progress, plot=plot, bar_position=bar_position, map_location=config.device)


class _L2XTrainer(Trainer):
    """One explainer for :func:`~discograd.experiments.harness.train`: Adam on the explainer, every epoch
    evaluated, the best-validation model kept in ``checkpoints/best.pt``."""

    def __init__(self, config: L2XConfig, data: L2XData) -> None:
        self.config, self.data = config, data
        self.model = build_model(config, data)
        self.generator = torch.Generator(device=config.device).manual_seed(_derived_seed(config.seed, 2))
        self.selector = build_selector(config, self.generator)
        self.layer = self.selector.layer
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(parameters, lr=config.learning_rate, eps=config.adam_eps)
        self.num_batches = -(-len(data.train) // config.batch_size)
        self.desc = f"l2x {config.task} {config.method} k={config.k} seed {config.seed}"

    def train_epoch(self, epoch: int, on_batch: Callable[[float], None]) -> dict[str, Any]:
        config, train, model, selector = self.config, self.data.train, self.model, self.selector
        model.train()
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(
            _derived_seed(config.seed, 1, epoch))).numpy()
        total = 0.0
        for b in range(self.num_batches):
            index = np.sort(order[b * config.batch_size:(b + 1) * config.batch_size])
            inputs, target = _inputs(config, train, index)
            theta = model.scores(inputs, self.generator)
            z = selector(theta)
            per_instance = selector.combine(_losses(config, model.predict(inputs, z), target), theta)
            self.optimizer.zero_grad(set_to_none=True)
            _objective(config, per_instance).backward()
            self.optimizer.step()
            loss = float(per_instance.detach().mean())
            total += loss * len(index)
            on_batch(loss)
        return {"train_loss": total / len(train)}

    def evaluate(self, epoch: int, on_batch: Callable[[], None]) -> dict[str, Any]:
        return _evaluate_splits(self.model, self.config, self.data)

    def epoch_extras(self) -> dict[str, Any]:
        layer = self.selector.layer
        if layer is not None and isinstance(getattr(layer, "target", None), AdaptiveTarget):
            return {"aimle_beta": layer.target.beta}
        return {}

    def after_epoch(self, folder: RunFolder, history: list[dict[str, Any]]) -> None:
        epoch = history[-1]["epoch"]
        if folder.writer and best_epoch(history) == epoch:
            save_checkpoint(folder.path / "checkpoints" / "best.pt", {"epoch": epoch, "model": self.model.state_dict()})

    def postfix(self, row: dict[str, Any]) -> dict[str, str]:
        return {"val_loss": f"{row['val_loss']:.4g}"}

    def final(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        return _final(self.config, history, self.data)

    def plot(self, out: Path, history: list[dict[str, Any]]) -> None:
        plot_curves(history, self.config, out / "curves.png")


def _final(config: L2XConfig, history: list[dict[str, Any]], data: L2XData) -> dict[str, Any]:
    last = history[-1]
    best = history[best_epoch(history)] if len(history) > 1 else last
    keys = TABULAR_METRICS if config.task in TABULAR_TASKS else TEXT_METRICS

    def pick(row: dict[str, Any], prefix: str) -> dict[str, float]:
        return {key: row[f"{prefix}_{key}"] for key in (*keys, "loss") if f"{prefix}_{key}" in row}

    return {
        "task": config.task, "method": config.method, "k": config.k, "seed": config.seed,
        "epochs_done": last["epoch"], "epochs": config.epochs, "best_epoch": best["epoch"],
        "test": pick(best, "test"), "val": pick(best, "val"),
        "test_last": pick(last, "test"), "val_last": pick(last, "val"),
        "train_seconds": sum(row["train_seconds"] for row in history),
        "data": {"source": data.source, "num_train": len(data.train), "num_val": len(data.val),
                 "num_test": len(data.test),
                 **({} if data.annotated is None else {"num_annotated": len(data.annotated)}), **data.info},
        "config": asdict(config), "environment": environment_info(),
    }


def plot_curves(history: list[dict[str, Any]], config: L2XConfig, path: str | os.PathLike) -> Path:
    """Training loss and the test metrics per epoch."""
    plt = pyplot()
    keys = ("tpr_pct", "median_rank") if config.task in TABULAR_TASKS else ("mse_x100", "precision_pct")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    epochs = [row["epoch"] for row in history]
    axes[0].plot(epochs[1:], [row["train_loss"] for row in history[1:]], marker="o")
    axes[0].set_title("training loss")
    for ax, key in zip(axes[1:], keys):
        ax.plot(epochs, [row.get(f"test_{key}") for row in history], marker="o", label="test")
        ax.plot(epochs, [row.get(f"val_{key}") for row in history], marker=".", label="val")
        ax.set_title(key)
    best = best_epoch(history)
    for i, ax in enumerate(axes):
        if best:
            ax.axvline(best, color="grey", linestyle=":", label=f"best val (epoch {best})")
        if best or i > 0:
            ax.legend()
        ax.set_xlabel("epoch")
    fig.suptitle(f"L2X {config.task}, {config.method}, k = {config.k}, seed {config.seed}")
    fig.tight_layout()
    return save_figure(fig, path)
