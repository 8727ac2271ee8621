"""Gradient estimators through discrete solvers.

- :func:`imle` / :class:`IMLE`: Implicit MLE (Niepert et al., 2021) with pluggable noise and targets;
  AIMLE is ``imle(..., target=AdaptiveTarget(...))``.
- :func:`straight_through`: perturb-and-MAP forward, identity backward.
"""

from ._batching import PerInstance, per_instance, solve_samples
from ._base import PerturbAndMAP
from .imle import IMLE, imle, imle_gradient
from .straight_through import StraightThrough, straight_through

__all__ = ["PerturbAndMAP", "IMLE", "imle", "imle_gradient", "StraightThrough", "straight_through", "PerInstance", "per_instance", "solve_samples"]
