"""Gradient estimators through discrete solvers, behind one interface.

Perturbation-based layers (take a solver, return a callable ``layer(theta, *solver_args)``):

- :func:`imle` / :class:`IMLE`: Implicit MLE (Niepert et al., 2021) with pluggable noise and targets;
  AIMLE is ``imle(..., target=AdaptiveTarget(...))``.
- :func:`blackbox`: Vlastelica et al. (2020), I-MLE without noise.
- :func:`straight_through`: perturb-and-MAP forward, identity backward.
- :func:`negative_identity`: PyEPO's ``NID`` (Sahoo et al., 2023), ``MAP(θ)`` forward, identity backward
  (straight-through without noise).
- :func:`perturbed`: perturbed optimizers (Berthet et al., 2020), the smoothed mean ``E[MAP(η)]`` with an
  additive (``θ + σε``) or multiplicative (``θ ⊙ exp(σε − σ²/2)``) perturbation.

Relaxations and exact-sampling estimators (take logits):

- :func:`gumbel_softmax`, :func:`relaxed_topk` (SoftSub), :func:`k_concrete` (L2X).
- :func:`simple_topk` / :func:`simple`: SIMPLE (Ahmed et al., 2023).
- :func:`score_function`: REINFORCE with a baseline for ``Argmax`` and ``TopK``.
"""

from ._base import PerturbAndMAP
from ._batching import PerInstance, per_instance, solve_samples
from .blackbox import blackbox
from .imle import IMLE, imle, imle_gradient
from .negative_identity import negative_identity
from .perturbed import Perturbed, perturbed
from .relaxations import gumbel_softmax, k_concrete, relaxed_topk
from .score_function import ScoreFunction, reinforce, score_function
from .simple import SIMPLE, simple, simple_topk
from .straight_through import StraightThrough, straight_through

__all__ = [
    "IMLE",
    "SIMPLE",
    "PerInstance",
    "PerturbAndMAP",
    "Perturbed",
    "ScoreFunction",
    "StraightThrough",
    "blackbox",
    "gumbel_softmax",
    "imle",
    "imle_gradient",
    "k_concrete",
    "negative_identity",
    "per_instance",
    "perturbed",
    "reinforce",
    "relaxed_topk",
    "score_function",
    "simple",
    "simple_topk",
    "solve_samples",
    "straight_through",
]
