"""discograd: learn through discrete choices and combinatorial solvers.

The public API, re-exported explicitly:

- :func:`imle` / :class:`IMLE`: turn any batched MAP solver into an autograd op with I-MLE gradients.
- :mod:`discograd.noise`: ``Gumbel``, ``SumOfGamma``, ``Normal``.
- :mod:`discograd.targets`: ``PerturbedTarget``, ``AdaptiveTarget`` (AIMLE).
- :mod:`discograd.solvers`: batched MAP oracles (``Argmax``, ``TopK``), all maximising ``<θ, z>``.
- :mod:`discograd.exact`: exact references (k-subset dynamic programmes, enumeration).
- :mod:`discograd.testing`: checks to run on your own solver.
"""

from . import exact, noise, solvers, targets, testing
from .estimators import IMLE, PerInstance, StraightThrough, imle, per_instance, straight_through
from .noise import Gumbel, Normal, SumOfGamma
from .solvers import Argmax, TopK
from .targets import AdaptiveTarget, PerturbedTarget

__version__ = "0.1.0"

__all__ = [
    "IMLE",
    "imle",
    "StraightThrough",
    "straight_through",
    "per_instance",
    "PerInstance",
    "Gumbel",
    "Normal",
    "SumOfGamma",
    "PerturbedTarget",
    "AdaptiveTarget",
    "Argmax",
    "TopK",
    "exact",
    "noise",
    "solvers",
    "targets",
    "testing",
    "__version__",
]
