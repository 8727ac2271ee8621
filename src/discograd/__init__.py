"""discograd: learn through discrete choices and combinatorial solvers.

The public API, re-exported explicitly:

- :func:`imle` / :class:`IMLE`: turn any batched MAP solver into an autograd op with I-MLE gradients.
- The baselines in one API: :func:`blackbox`, :func:`straight_through`, :func:`negative_identity`, :func:`perturbed`,
  :func:`gumbel_softmax`, :func:`relaxed_topk`, :func:`k_concrete`, :func:`simple_topk`,
  :func:`score_function`.
- :mod:`discograd.losses` (Fenchel-Young, SPO+, structured SVM, Hamming, NCE / CMAP, learning to rank; each with
  ``reduction=``) and :mod:`discograd.metrics` (regret, ...).
- :mod:`discograd.pool`: ``SolutionPool`` and ``CachedSolver`` (solution caching, PyEPO's ``solve_ratio``, for any
  estimator).
- :mod:`discograd.pto`: predict-then-optimize as in PyEPO: its data generators (bit-identical), grid and TSP
  graphs in its edge order, ``OptDataset``, and ``batch_regret`` / ``dataset_regret`` in its normalisation.
- :mod:`discograd.noise`: ``Gumbel``, ``SumOfGamma``, ``Normal``.
- :mod:`discograd.targets`: ``PerturbedTarget``, ``AdaptiveTarget`` (AIMLE), ``LabelTarget`` (Eq. 14),
  ``KnownTarget`` (known target parameters).
- :mod:`discograd.solvers`: batched MAP oracles (``Argmax``, ``TopK``, ``GridShortestPath``, ``ShortestPath``,
  ``LinearAssignment``, ``Ranking``, ``SpanningTree``, ``Knapsack``, ``MultiKnapsack``, ``TSP``, ``MILP``), all
  maximising ``<θ, z>``.

Every solver, noise distribution and target is importable from the top level and from its submodule.
- :mod:`discograd.exact`: exact references (k-subset dynamic programmes, enumeration).
- :mod:`discograd.testing`: checks to run on your own solver.
"""

from . import exact, losses, metrics, noise, pool, pto, solvers, targets, testing
from .estimators import (
    IMLE,
    SIMPLE,
    PerInstance,
    Perturbed,
    ScoreFunction,
    StraightThrough,
    blackbox,
    gumbel_softmax,
    imle,
    k_concrete,
    negative_identity,
    per_instance,
    perturbed,
    reinforce,
    relaxed_topk,
    score_function,
    simple,
    simple_topk,
    straight_through,
)
from .noise import Gumbel, Normal, SumOfGamma
from .pool import CachedSolver, SolutionPool
from .solvers import (
    MILP,
    Argmax,
    GridShortestPath,
    Knapsack,
    LinearAssignment,
    MultiKnapsack,
    Ranking,
    ShortestPath,
    SpanningTree,
    TopK,
    TSP,
)
from .targets import AdaptiveTarget, KnownTarget, LabelTarget, PerturbedTarget

__version__ = "0.1.0"

__all__ = [
    "IMLE",
    "imle",
    "StraightThrough",
    "straight_through",
    "negative_identity",
    "blackbox",
    "Perturbed",
    "perturbed",
    "gumbel_softmax",
    "relaxed_topk",
    "k_concrete",
    "SIMPLE",
    "simple",
    "simple_topk",
    "ScoreFunction",
    "score_function",
    "reinforce",
    "per_instance",
    "PerInstance",
    "Gumbel",
    "Normal",
    "SumOfGamma",
    "PerturbedTarget",
    "AdaptiveTarget",
    "LabelTarget",
    "KnownTarget",
    "Argmax",
    "TopK",
    "GridShortestPath",
    "ShortestPath",
    "LinearAssignment",
    "Ranking",
    "SpanningTree",
    "Knapsack",
    "MultiKnapsack",
    "TSP",
    "MILP",
    "SolutionPool",
    "CachedSolver",
    "exact",
    "losses",
    "metrics",
    "noise",
    "pool",
    "pto",
    "solvers",
    "targets",
    "testing",
    "__version__",
]
