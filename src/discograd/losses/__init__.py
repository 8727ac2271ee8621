"""Losses for learning through solvers.

- :func:`fenchel_young_loss` / :class:`FenchelYoungLoss`: the perturbed Fenchel-Young loss (Berthet et al.,
  2020), gradient ``∇F_σ(θ) − z_true``; additive or multiplicative (InferOpt, PyEPO's ``PFYMul``)
  perturbation.
- :func:`spo_plus_loss`: SPO+ for predict-then-optimize (Elmachtoub & Grigas, 2022).
- :func:`structured_svm_loss` / :class:`StructuredSVMLoss`: the structured hinge loss with Hamming or 0-1
  base loss, loss-augmented decoding by one solver call (InferOpt's ``StructuredSVMLoss``).
- :func:`hamming_loss`: the normalised Hamming distance between structures (differentiable in ``z``).
- :class:`NCELoss`, :class:`CMAPLoss` (and :func:`nce_loss`, :func:`cmap_loss`): contrastive losses over a
  solution pool (Mulamba et al., 2021; PyEPO's ``NCE``, ``contrastiveMAP``).
- :class:`PointwiseLTRLoss`, :class:`PairwiseLTRLoss`, :class:`ListwiseLTRLoss` (and their functions): learning
  to rank over a pool (Mandi et al., 2022; PyEPO's ``ptLTR``, ``prLTR``, ``lsLTR``).

Every loss takes ``reduction="mean"`` (the default, as ``torch.nn`` and PyEPO), ``"sum"`` or ``"none"``
(one value per instance).
"""

from .contrastive import CMAPLoss, NCELoss, cmap_loss, nce_loss
from .fenchel_young import FenchelYoungLoss, fenchel_young_loss
from .hamming import hamming_loss
from .spo_plus import spo_plus_loss
from .ranking import (
    ListwiseLTRLoss,
    PairwiseLTRLoss,
    PointwiseLTRLoss,
    listwise_ltr_loss,
    pairwise_ltr_loss,
    pointwise_ltr_loss,
)
from .ssvm import StructuredSVMLoss, structured_svm_loss

__all__ = [
    "CMAPLoss",
    "FenchelYoungLoss",
    "ListwiseLTRLoss",
    "NCELoss",
    "PairwiseLTRLoss",
    "PointwiseLTRLoss",
    "StructuredSVMLoss",
    "cmap_loss",
    "fenchel_young_loss",
    "hamming_loss",
    "listwise_ltr_loss",
    "nce_loss",
    "pairwise_ltr_loss",
    "pointwise_ltr_loss",
    "spo_plus_loss",
    "structured_svm_loss",
]
