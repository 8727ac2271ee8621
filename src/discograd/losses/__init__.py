"""Losses for learning through solvers.

- :func:`fenchel_young_loss`: the perturbed Fenchel-Young loss (Berthet et al., 2020), gradient
  ``y_σ(θ) − z_true``.
- :func:`spo_plus_loss`: SPO+ for predict-then-optimize (Elmachtoub & Grigas, 2022).
- :func:`hamming_loss`: the normalised Hamming distance between structures (differentiable in ``z``).
"""

from .fenchel_young import FenchelYoungLoss, fenchel_young_loss
from .hamming import hamming_loss
from .spo_plus import spo_plus_loss

__all__ = ["FenchelYoungLoss", "fenchel_young_loss", "spo_plus_loss", "hamming_loss"]
