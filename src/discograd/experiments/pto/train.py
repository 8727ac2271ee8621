r"""Predict-then-optimize on PyEPO's benchmarks: a linear model learns costs from features, a solver decides.

The settings of PyEPO's notebooks (khalil-research/PyEPO) are the defaults (:data:`PROBLEM_DEFAULTS`): for the
shortest path ``notebooks/03 Training and Testing.ipynb``, ``genData(1000 + 1000, 5 features, (5, 5), deg=4,
noise_width=0.5, seed=42)``, split by ``sklearn.model_selection.train_test_split(test_size=1000, random_state=42)``,
a linear model ``nn.Linear(num_features, d)``, Adam with learning rate 0.01, batch 32 (shuffled), 20 epochs; for
the knapsack ``notebooks/04 2D knapsack Solution Visualization.ipynb``, 100 training instances, 16 items, 2
resources of capacity 20, deg 6, genData's seed 135, split ``random_state=246``, 40 epochs, Adam 0.1. The test
regret (:func:`discograd.pto.dataset_regret`, PyEPO's normalisation Σ regret / Σ |z*|) after every epoch.

Problems (``PTOConfig.problem``), data from :mod:`discograd.pto` (bit-identical to PyEPO's ``genData``):

- ``shortest_path``: a ``grid × grid`` grid, arcs right and down in PyEPO's order
  (:func:`~discograd.pto.grid_graph`), costs to minimise, :class:`~discograd.solvers.ShortestPath`.
- ``knapsack``: ``num_items`` items, ``dim`` resources of ``capacity`` each, PyEPO's weights, values to maximise,
  :class:`~discograd.solvers.MultiKnapsack`.
- ``tsp``: ``num_nodes`` cities, symmetric edge costs to minimise, :class:`~discograd.solvers.TSP`.

Methods (``PTOConfig.method``), each PyEPO's module in the way PyEPO's docs train it (``docs`` *Training* page:
"Pattern A" losses, "Pattern B" solution layers with a task loss); PyEPO's predictions ``ĉ`` are costs (or values),
our solvers maximise ``⟨θ, w⟩``, so the layers get ``θ̂ = −ĉ`` for minimisation and ``θ̂ = ĉ`` for maximisation:

- ``two_stage``: ``MSELoss(ĉ, c)`` (no solver in training).
- ``spo_plus``: :func:`discograd.losses.spo_plus_loss` (PyEPO ``SPOPlus``), mean over the batch.
- ``dbb``: :func:`discograd.blackbox` with ``λ = lambd`` (PyEPO ``blackboxOpt``), objective loss
  ``L1Loss(⟨ŵ, c⟩, z*)``.
- ``nid``: :func:`discograd.negative_identity` (PyEPO ``negativeIdentity``), the same objective loss.
- ``dpo``: :func:`discograd.perturbed` with Normal noise ``σ``, ``num_samples`` and the leave-one-out control
  variate (PyEPO ``perturbedOpt`` with its default ``variance_reduction=True``),
  ``L1Loss(E ŵ, w*)`` (the notebook's ``ptbl1``).
- ``pfy``: :class:`discograd.losses.FenchelYoungLoss` (PyEPO ``perturbedFenchelYoung``), mean over the batch.
- ``imle``: :func:`discograd.imle` with Sum-of-Gamma noise ``κ = kappa`` on the costs (PyEPO's
  ``sumGammaDistribution(kappa=5)``, added to ``ĉ``: on ``θ̂ = −ĉ`` its mirror image), temperature ``σ``,
  ``PerturbedTarget(λ · num_samples)`` and the mean of the samples (PyEPO ``implicitMLE`` returns the mean solution),
  ``L1Loss(E ŵ, w*)``.
- ``aimle``: the same with :class:`discograd.AdaptiveTarget` in PyEPO's rule (PyEPO ``adaptiveImplicitMLE``).
- ``nce``, ``cmap``: the contrastive losses over a solution pool seeded with the training set's optima, refreshed
  with probability ``solve_ratio`` per batch (PyEPO ``NCE``, ``contrastiveMAP``).
- ``ltr_pointwise``, ``ltr_pairwise``, ``ltr_listwise``: learning to rank over the same pool (PyEPO
  ``ptLTR``, ``prLTR``, ``lsLTR``).

Unset hyperparameters (``None``) take :func:`method_defaults`: :data:`METHOD_DEFAULTS` (PyEPO's shortest-path
notebook, or PyEPO's docs where the notebook lacks the method), overridden per problem by
:data:`PROBLEM_METHOD_DEFAULTS` (the knapsack notebook's own settings).

Differences from PyEPO that remain: knapsack labels among equally optimal solutions follow our solver's
lowest-index tie rule, not Gurobi's (see ``docs/pto.md``); the batches are sliced from the stored tensors
(:meth:`discograd.pto.OptDataset.batches`) rather than collated by a ``DataLoader`` (the same batches for a given
permutation).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..harness import Trainer, open_run, torch_threads
from ..harness import train as harness_train

__all__ = ["METHODS", "METHOD_DEFAULTS", "PROBLEMS", "PROBLEM_DEFAULTS", "PROBLEM_METHOD_DEFAULTS", "method_defaults", "PTOConfig", "PTOData", "build_solver", "load_data",
           "make_method", "run_pto"]

PROBLEMS = ("shortest_path", "knapsack", "tsp")
SENSE = {"shortest_path": "min", "knapsack": "max", "tsp": "min"}
METHODS = ("two_stage", "spo_plus", "dbb", "nid", "dpo", "pfy", "imle", "aimle", "nce", "cmap", "ltr_pointwise",
           "ltr_pairwise", "ltr_listwise")
POOL_METHODS = ("nce", "cmap", "ltr_pointwise", "ltr_pairwise", "ltr_listwise")

#: per method, PyEPO's hyperparameters: those of its notebook ``03 Training and Testing`` (commit 04ea26b) where
#: it trains the method (spo_plus, dpo, pfy, dbb, nce, ltr_*), else those of PyEPO's docs (``docs/source/training.rst``
#: recipes: nid, imle, aimle, cmap)
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "two_stage": {},
    "spo_plus": {},
    "dbb": {"lambd": 20.0},
    "nid": {},
    "dpo": {"num_samples": 10, "sigma": 1.0},
    "pfy": {"num_samples": 1, "sigma": 1.0},
    "imle": {"num_samples": 10, "sigma": 1.0, "lambd": 10.0, "kappa": 5.0},
    "aimle": {"num_samples": 2, "sigma": 1.0, "kappa": 5.0},
    "nce": {"solve_ratio": 0.05},
    "cmap": {"solve_ratio": 0.05},
    "ltr_pointwise": {"solve_ratio": 0.05},
    "ltr_pairwise": {"solve_ratio": 0.05},
    "ltr_listwise": {"solve_ratio": 0.05},
}
#: where the problem's own PyEPO notebook trains a method with other settings: the knapsack notebook
#: (``notebooks/04 2D knapsack Solution Visualization.ipynb``) runs PFYL and DPO with 10 samples at σ = 0.5 and
#: NCE and listwise LTR with ``solve_ratio=0.10``
PROBLEM_METHOD_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "knapsack": {"pfy": {"num_samples": 10, "sigma": 0.5}, "dpo": {"num_samples": 10, "sigma": 0.5},
                 "nce": {"solve_ratio": 0.1}, "ltr_listwise": {"solve_ratio": 0.1}},
}


def method_defaults(problem: str, method: str) -> dict[str, Any]:
    """The hyperparameters ``method`` takes on ``problem`` when unset: :data:`METHOD_DEFAULTS`, overridden by
    :data:`PROBLEM_METHOD_DEFAULTS`."""
    return {**METHOD_DEFAULTS[method], **PROBLEM_METHOD_DEFAULTS.get(problem, {}).get(method, {})}


_HYPER = ("lambd", "sigma", "num_samples", "kappa", "solve_ratio")


#: per problem, the data and optimisation settings of PyEPO's notebook for it (``None`` fields of a config):
#: shortest path ``notebooks/03 Training and Testing.ipynb`` (commit 04ea26b); knapsack ``notebooks/04 2D knapsack
#: Solution Visualization.ipynb`` (commit 030b75b: 100 training instances, deg 6, genData's default seed 135, the
#: split's random_state 246, 40 epochs, Adam 0.1); TSP: no PyEPO training notebook, the shortest path's settings
PROBLEM_DEFAULTS: dict[str, dict[str, Any]] = {
    "shortest_path": {"num_train": 1000, "deg": 4, "data_seed": 42, "split_seed": 42, "epochs": 20,
                      "learning_rate": 1e-2},
    "knapsack": {"num_train": 100, "deg": 6, "data_seed": 135, "split_seed": 246, "epochs": 40, "learning_rate": 1e-1},
    "tsp": {"num_train": 1000, "deg": 4, "data_seed": 135, "split_seed": 42, "epochs": 20, "learning_rate": 1e-2},
}


@dataclass
class PTOConfig:
    """One predict-then-optimize run; ``None`` fields are filled by :meth:`resolve` from :data:`PROBLEM_DEFAULTS`
    (data and optimisation) and :data:`METHOD_DEFAULTS` (hyperparameters), and the resolved config is written to
    ``config.json``."""

    problem: str = "shortest_path"
    method: str = "spo_plus"
    # data (PyEPO's genData arguments; None: PROBLEM_DEFAULTS)
    num_train: int | None = None
    num_test: int = 1000
    num_features: int = 5
    deg: int | None = None
    noise_width: float = 0.5
    data_seed: int | None = None  # genData's seed
    split_seed: int | None = None  # train_test_split's random_state
    grid: int = 5  # shortest_path: a grid x grid grid
    num_items: int = 16  # knapsack
    dim: int = 2  # knapsack: resources
    capacity: float = 20.0  # knapsack: per resource
    num_nodes: int = 20  # tsp
    # optimisation (None: PROBLEM_DEFAULTS)
    epochs: int | None = None
    batch_size: int = 32
    learning_rate: float | None = None
    seed: int = 0
    # method hyperparameters (None: METHOD_DEFAULTS)
    lambd: float | None = None
    sigma: float | None = None
    num_samples: int | None = None
    kappa: float | None = None
    solve_ratio: float | None = None
    eval_batch_size: int = 1000

    @classmethod
    def quick(cls, **overrides: Any) -> PTOConfig:
        """The smoke-test preset (seconds): 200 training and 200 test instances, 2 epochs."""
        values: dict[str, Any] = {"num_train": 200, "num_test": 200, "epochs": 2}
        values.update(overrides)
        return cls(**values)

    def resolve_problem(self) -> PTOConfig:
        """A copy with the problem's defaults in the unset data and optimisation fields."""
        if self.problem not in PROBLEMS:
            raise ValueError(f"problem must be one of {list(PROBLEMS)}; got {self.problem!r}")
        defaults = PROBLEM_DEFAULTS[self.problem]
        return replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})

    def resolve(self) -> PTOConfig:
        """A copy with the problem's and the method's defaults in the unset fields (unused hyperparameters stay
        ``None``)."""
        config = self.resolve_problem()
        config.validate()
        defaults = method_defaults(config.problem, config.method)
        config = replace(config, **{k: v for k, v in defaults.items() if getattr(config, k) is None})
        config.validate()
        return config

    def validate(self) -> None:
        if self.problem not in PROBLEMS:
            raise ValueError(f"problem must be one of {list(PROBLEMS)}; got {self.problem!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}; got {self.method!r}")
        for name in ("num_train", "num_test", "num_features", "epochs", "batch_size", "eval_batch_size", "deg"):
            value = getattr(self, name)
            if value is None and name in PROBLEM_DEFAULTS[self.problem]:
                continue  # filled by resolve()
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        for name in ("data_seed", "split_seed"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be an integer >= 0 (or unset); got {value!r}")
        for name, low in (("grid", 2), ("num_items", 1), ("dim", 1), ("num_nodes", 3)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
        if not (self.noise_width >= 0 and math.isfinite(self.noise_width)):
            raise ValueError(f"noise_width must be finite and >= 0; got {self.noise_width!r}")
        if self.learning_rate is not None and not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate must be finite and > 0; got {self.learning_rate!r}")
        if not (self.capacity > 0 and math.isfinite(self.capacity)):
            raise ValueError(f"capacity must be finite and > 0; got {self.capacity!r}")
        for name in ("lambd", "sigma", "kappa"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be finite and > 0 (or unset); got {value!r}")
        if self.num_samples is not None and (isinstance(self.num_samples, bool) or self.num_samples < 1):
            raise ValueError(f"num_samples must be an integer >= 1 (or unset); got {self.num_samples!r}")
        if self.solve_ratio is not None and not 0.0 <= self.solve_ratio <= 1.0:
            raise ValueError(f"solve_ratio must be in [0, 1] (or unset); got {self.solve_ratio!r}")
        if self.method in ("nce", "cmap") or self.method.startswith("ltr"):
            return
        unused = [k for k in _HYPER if getattr(self, k) is not None and k not in METHOD_DEFAULTS[self.method]]
        if unused:
            raise ValueError(f"method {self.method!r} does not use {unused}; leave them unset")


@dataclass
class PTOData:
    """The generated problem: the solver's data and the two splits (numpy arrays, PyEPO's dtypes)."""

    problem: str
    x_train: np.ndarray
    c_train: np.ndarray
    x_test: np.ndarray
    c_test: np.ndarray
    weights: np.ndarray | None = None  # knapsack


def data_key(config: PTOConfig) -> tuple:
    """The fields that determine the data: runs with equal keys can share one :class:`PTOData`."""
    keys = ["problem", "num_train", "num_test", "num_features", "deg", "noise_width", "data_seed", "split_seed"]
    keys += {"shortest_path": ["grid"], "knapsack": ["num_items", "dim"], "tsp": ["num_nodes"]}[config.problem]
    return tuple(getattr(config, k) for k in keys)


def load_data(config: PTOConfig) -> PTOData:
    """PyEPO's data for ``config``: ``genData(num_train + num_test, ..., seed=data_seed)`` then sklearn's
    ``train_test_split(test_size=num_test, random_state=split_seed)``, as PyEPO's notebooks."""
    config = config.resolve_problem()
    from sklearn.model_selection import train_test_split

    from ...pto import knapsack_data, shortest_path_data, tsp_data

    n = config.num_train + config.num_test
    weights = None
    if config.problem == "shortest_path":
        x, c = shortest_path_data(n, config.num_features, (config.grid, config.grid), deg=config.deg,
                                  noise_width=config.noise_width, seed=config.data_seed)
    elif config.problem == "knapsack":
        weights, x, c = knapsack_data(n, config.num_features, config.num_items, dim=config.dim, deg=config.deg,
                                      noise_width=config.noise_width, seed=config.data_seed)
    else:
        x, c = tsp_data(n, config.num_features, config.num_nodes, deg=config.deg, noise_width=config.noise_width,
                        seed=config.data_seed)
    x_train, x_test, c_train, c_test = train_test_split(x, c, test_size=config.num_test,
                                                        random_state=config.split_seed)
    return PTOData(config.problem, x_train, c_train, x_test, c_test, weights)


def build_solver(config: PTOConfig, data: PTOData) -> Callable[..., Tensor]:
    """The problem's batched solver (maximising ``⟨θ, w⟩``)."""
    from ... import solvers
    from ...pto import grid_graph

    if config.problem == "shortest_path":
        g = config.grid
        return solvers.ShortestPath(g * g, grid_graph(g, g), 0, g * g - 1)
    if config.problem == "knapsack":
        capacities = np.full(config.dim, float(config.capacity))
        return solvers.MultiKnapsack(data.weights, capacities)
    return solvers.TSP(config.num_nodes)


class _NegatedNoise:
    """``−ε`` for ``ε`` of ``noise``: PyEPO perturbs the costs ``ĉ + σε``; on ``θ̂ = −ĉ`` that is ``θ̂ − σε``."""

    def __init__(self, noise: Any) -> None:
        self.noise = noise

    def sample(self, shape: Any, **kwargs: Any) -> Tensor:
        return self.noise.sample(shape, **kwargs).neg_()

    def __repr__(self) -> str:
        return f"Negated({self.noise!r})"


class Method:
    """One method's training loss on a batch: ``loss(cp, c, w, z)`` with PyEPO's names (predicted costs,
    true costs, optimal solutions, optimal objectives). ``module`` holds its state (AIMLE's β, a pool)."""

    def __init__(self, loss: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor], module: nn.Module | None = None):
        self.loss = loss
        self.module = module

    def __call__(self, cp: Tensor, c: Tensor, w: Tensor, z: Tensor) -> Tensor:
        return self.loss(cp, c, w, z)


def make_method(config: PTOConfig, solver: Callable[..., Tensor], train_sols: Tensor,
                generator: torch.Generator) -> Method:
    """The training loss of ``config.method`` (resolved config) for ``solver``; ``train_sols`` seed the pool of
    the pool methods."""
    import discograd
    from discograd import losses
    from discograd.estimators import negative_identity
    from discograd.noise import Normal, SumOfGamma

    sign = -1.0 if SENSE[config.problem] == "min" else 1.0  # θ = sign · cost
    method = config.method
    l1, l2 = nn.L1Loss(), nn.MSELoss()

    def objective_loss(layer: Callable[[Tensor], Tensor]) -> Callable[..., Tensor]:
        def loss(cp: Tensor, c: Tensor, w: Tensor, z: Tensor) -> Tensor:
            wp = layer(sign * cp)
            return l1((wp * c).sum(1, keepdim=True), z)
        return loss

    if method == "two_stage":
        return Method(lambda cp, c, w, z: l2(cp, c))
    if method == "spo_plus":
        return Method(lambda cp, c, w, z: losses.spo_plus_loss(sign * cp, sign * c, w, solver=solver))
    if method == "dbb":
        return Method(objective_loss(discograd.blackbox(solver, step_size=config.lambd, warn_zero_gradient=False)))
    if method == "nid":
        return Method(objective_loss(negative_identity(solver)))
    if method == "dpo":
        # PyEPO's perturbedOpt default variance_reduction=True: the leave-one-out control variate
        layer = discograd.perturbed(solver, noise=Normal(), noise_scale=config.sigma, num_samples=config.num_samples,
                                    control_variate="leave_one_out", generator=generator)
        return Method(lambda cp, c, w, z: l1(layer(sign * cp), w), layer)
    if method == "pfy":
        fy = losses.FenchelYoungLoss(solver, noise=Normal(), noise_scale=config.sigma, num_samples=config.num_samples,
                                     generator=generator)
        return Method(lambda cp, c, w, z: fy(sign * cp, w), fy)
    if method in ("imle", "aimle"):
        noise = SumOfGamma(int(config.kappa) if float(config.kappa).is_integer() else config.kappa)
        noise = _NegatedNoise(noise) if sign < 0 else noise
        d = train_sols.shape[-1]
        if method == "imle":
            target = discograd.PerturbedTarget(config.lambd * config.num_samples)
        else:
            # PyEPO 2.2.7 adaptiveImplicitMLE: alpha starts at 1.0 (self.alpha = 1.0), steps of 1e-3
            target = discograd.AdaptiveTarget(d, update_step=1e-3, initial_beta=1.0, norm="batch",
                                              initial_running_nonzeros=d, min_relative_norm=0.0)
        layer = discograd.imle(solver, noise=noise, temperature=config.sigma, target=target,
                               num_samples=config.num_samples, generator=generator)
        return Method(lambda cp, c, w, z: l1(layer(sign * cp).mean(0), w), layer)
    return _pool_method(config, solver, train_sols, generator, sign)


def _pool_method(config: PTOConfig, solver: Callable[..., Tensor], train_sols: Tensor, generator: torch.Generator,
                 sign: float) -> Method:
    from discograd.losses.contrastive import CMAPLoss, NCELoss
    from discograd.losses.ranking import (
        ListwiseLTRLoss,
        PairwiseLTRLoss,
        PointwiseLTRLoss,
    )
    from discograd.pool import SolutionPool

    pool = SolutionPool.from_solutions(train_sols)  # PyEPO seeds its pool with the training set's optima
    cls = {"nce": NCELoss, "cmap": CMAPLoss, "ltr_pointwise": PointwiseLTRLoss, "ltr_pairwise": PairwiseLTRLoss,
           "ltr_listwise": ListwiseLTRLoss}[config.method]
    loss = cls(solver, pool, solve_ratio=config.solve_ratio, generator=generator)
    if config.method in ("nce", "cmap"):
        return Method(lambda cp, c, w, z: loss(sign * cp, w), loss)
    return Method(lambda cp, c, w, z: loss(sign * cp, sign * c), loss)


def _derived_seed(*words: int) -> int:
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1, dtype=np.uint64)[0] >> 1)


def run_pto(config: PTOConfig, out_dir: str | os.PathLike | None = None, *, data: PTOData | None = None,
            progress: bool = True, plot: bool = True, stop_after_epochs: int | None = None,
            num_threads: int | None = None, bar_position: int = 0) -> dict[str, Any]:
    """Train one method; return the final numbers (also ``final.json`` in ``out_dir``).

    ``out_dir`` (``None``: nothing written) receives ``config.json``, ``metrics.jsonl`` / ``metrics.csv`` (epoch 0 =
    the untrained model: ``test_regret_pct`` in PyEPO's normalisation, ``test_mean_normalized_regret_pct`` the
    mean of per-instance ratios, ``train_loss``, ``train_seconds``), ``checkpoints/last.pt``, ``curves.png`` and
    ``final.json`` (the numbers after the last epoch, as PyEPO's notebooks report them). Rerunning resumes.
    """
    config = config.resolve()
    with torch_threads(num_threads):
        folder, finished = open_run(None if out_dir is None else Path(out_dir), asdict(config), stop_after_epochs)
        if finished is not None:
            return finished
        if data is None:
            data = load_data(config)
        if data.problem != config.problem:
            raise ValueError(f"data is for problem {data.problem!r} but config.problem is {config.problem!r}")
        return harness_train(_PTOTrainer(config, data), folder, config.epochs, stop_after_epochs=stop_after_epochs,
                             progress=progress, plot=plot, bar_position=bar_position)


class _PTOTrainer(Trainer):
    def __init__(self, config: PTOConfig, data: PTOData) -> None:
        from torch.utils.data import DataLoader

        from ...pto import OptDataset

        self.config, self.data = config, data
        self.sense = SENSE[config.problem]
        self.solver = build_solver(config, data)
        started = time.perf_counter()
        self.train_set = OptDataset(self.solver, data.x_train, data.c_train, sense=self.sense)
        self.test_set = OptDataset(self.solver, data.x_test, data.c_test, sense=self.sense)
        self.label_seconds = time.perf_counter() - started
        torch.manual_seed(_derived_seed(config.seed, 1))
        d = self.train_set.costs.shape[1]
        self.model = nn.Linear(config.num_features, d)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate)
        self.generator = torch.Generator().manual_seed(_derived_seed(config.seed, 2))
        self.method = make_method(config, self.solver, self.train_set.sols, self.generator)
        self.layer = self.method.module
        self.batch_order = torch.Generator().manual_seed(_derived_seed(config.seed, 3))
        self.num_batches = -(-len(self.train_set) // config.batch_size)
        self.test_loader = DataLoader(self.test_set, batch_size=config.eval_batch_size)
        self.eval_batches = len(self.test_loader)
        self.desc = f"pto {config.problem} {config.method} seed {config.seed}"

    def rank_state_dict(self) -> dict[str, Any]:
        return {**super().rank_state_dict(), "batch_order": self.batch_order.get_state()}

    def load_rank_state_dict(self, state: dict[str, Any]) -> None:
        super().load_rank_state_dict(state)
        self.batch_order.set_state(state["batch_order"])

    def train_epoch(self, epoch: int, on_batch: Callable[[float], None]) -> dict[str, Any]:
        self.model.train()
        total, count = 0.0, 0
        # the batches of DataLoader(shuffle=True), sliced from the stored tensors
        for x, c, w, z in self.train_set.batches(self.config.batch_size, shuffle=True, generator=self.batch_order):
            cp = self.model(x)
            loss = self.method(cp, c, w, z)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            value = float(loss.detach())
            total += value * len(x)
            count += len(x)
            on_batch(value)
        return {"train_loss": total / count}

    def evaluate(self, epoch: int, on_batch: Callable[[], None]) -> dict[str, Any]:
        from ...pto import dataset_regret

        regrets = dataset_regret(self.model, self.test_loader, self.solver, sense=self.sense, reduction="none")
        objs = self.test_set.objs.reshape(-1).double()
        for _ in range(self.eval_batches):
            on_batch()
        return {"test_regret_pct": 100.0 * float(regrets.sum() / (objs.abs().sum() + 1e-8)),
                "test_mean_normalized_regret_pct": 100.0 * float((regrets / objs.abs().clamp_min(1e-8)).mean())}

    def postfix(self, row: dict[str, Any]) -> dict[str, str]:
        return {"regret": f"{row['test_regret_pct']:.2f}%"}

    def final(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        last = history[-1]
        epochs = [r for r in history if r["epoch"] > 0]
        seconds = [r["train_seconds"] for r in epochs]
        return {**asdict(self.config), "epochs_done": last["epoch"], "test_regret_pct": last["test_regret_pct"],
                "test_mean_normalized_regret_pct": last["test_mean_normalized_regret_pct"],
                "regret_curve_pct": [r["test_regret_pct"] for r in history],
                "train_seconds": float(sum(seconds)),
                "epoch_seconds_median": float(np.median(seconds)) if seconds else 0.0,
                "label_seconds": self.label_seconds}

    def plot(self, out: Path, history: list[dict[str, Any]]) -> None:
        from .._io import pyplot, save_figure

        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        epochs = [r["epoch"] for r in history]
        axes[0].plot(epochs, [r["test_regret_pct"] for r in history], "o-")
        axes[0].set_xlabel("epoch")
        axes[0].set_ylabel("test regret % (PyEPO's normalisation)")
        trained = [r for r in history if r["epoch"] > 0]
        axes[1].plot([r["epoch"] for r in trained], [r["train_loss"] for r in trained], "o-", color="tab:orange")
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("training loss")
        fig.suptitle(f"{self.config.problem}, {self.config.method}, seed {self.config.seed}")
        fig.tight_layout()
        save_figure(fig, out / "curves.png")

