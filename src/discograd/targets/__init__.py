"""Target distributions for the I-MLE backward pass.

- :class:`PerturbedTarget`: θ' = θ − λg, one- or two-sided (the I-MLE / AIMLE central difference).
- :class:`AdaptiveTarget`: λ = β‖θ‖/‖g‖ per instance with β steered to a target gradient density (AIMLE).
- :class:`LabelTarget`: θ' = −λg where g ≠ 0 (the paper's Eq. 14; supervised structures, the Warcraft
  "M-M" variant).
- :class:`KnownTarget`: q(z; θ*) with known target parameters θ* passed per call (the Warcraft "μ-μ").

A user's own target implements ``params(theta, grad_z, *, event_dims) -> TargetParams`` (see
:class:`Target`).
"""

from .adaptive import AdaptiveTarget
from .base import Target, TargetParams, instance_norm
from .known import KnownTarget
from .label import LabelTarget
from .perturbed import PerturbedTarget

__all__ = ["Target", "TargetParams", "PerturbedTarget", "AdaptiveTarget", "LabelTarget", "KnownTarget", "instance_norm"]
