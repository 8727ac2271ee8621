"""Gradient estimators through discrete solvers.

- :func:`imle` / :class:`IMLE`: Implicit MLE (Niepert et al., 2021) with pluggable noise and targets;
  AIMLE is ``imle(..., target=AdaptiveTarget(...))``.
"""

from ._batching import PerInstance, per_instance, solve_samples
from .imle import IMLE, imle, imle_gradient

__all__ = ["IMLE", "imle", "imle_gradient", "PerInstance", "per_instance", "solve_samples"]
