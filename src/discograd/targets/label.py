"""The label target of the I-MLE paper's Eq. 14 (the Warcraft "M-M" variant)."""

from __future__ import annotations

import torch
from torch import Tensor

from .._validation import check_step_size
from .base import TargetParams

__all__ = ["LabelTarget"]


class LabelTarget:
    r"""Target of Niepert et al. (2021, arXiv:2106.01798) Eq. 14: ``θ'_i = −λ g_i`` where ``g_i ≠ 0`` and
    ``θ'_i = θ_i`` elsewhere.

    Where the loss has an opinion the target no longer depends on θ: it points straight at what the loss
    asks for. With a Hamming-type loss (``g = 1 − 2 z*`` for a 0/1 label ``z*``) every coordinate has
    ``g ≠ 0``, ``MAP(θ')`` is the label itself whenever ``λ`` dominates the target-side noise, and the
    I-MLE gradient becomes ``(μ(θ) − z*) / λ``: maximum likelihood with the label as the empirical
    distribution (the structured perceptron when there is no noise). Without noise this is the paper's
    "I-MLE M-M" (tf-imle ``WARCRAFT/maprop/warcraft_shortest_path/maprop.py``, mode ``type == 1``:
    ``weights_prime = lambda_val * grad_output``, then shifted to non-negative costs, which leaves its MAP
    unchanged). With noise on the forward side only it is the original code's "μ-MAP". The paper's
    "I-MLE μ-μ" is a different target: :class:`~discograd.targets.KnownTarget` (the true costs, perturbed).

    Unlike :class:`~discograd.targets.PerturbedTarget` it is not a small perturbation of θ, so it does
    not tend to ``J_μ(θ) g`` as ``λ → 0``; use it for supervised structures, not as a general-purpose
    gradient estimate. Nor does the gradient scale with ``g``: multiplying ``g`` by ``c`` moves θ' as
    multiplying λ by ``c`` would, but the ``1/λ`` in front stays. In particular a loss averaged over S
    samples gives the *sum* of the per-sample terms ``(z_s − MAP(θ' + ε_s))/λ``, not their mean.

    Args:
        step_size: λ > 0; its size against the target-side noise decides how often
            ``MAP(θ' + τ' ε)`` equals the label.

    Example:
        >>> import torch, discograd
        >>> from discograd.targets import LabelTarget
        >>> theta = torch.tensor([[3.0, 2.0, 1.0, 0.0]], requires_grad=True)
        >>> label = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
        >>> z = discograd.imle(discograd.TopK(2), noise=None, target=LabelTarget(1.0))(theta)
        >>> ((z - label) ** 2).sum().backward()  # Hamming loss: g = 1 - 2 z*
        >>> theta.grad                            # (z - z*) / λ
        tensor([[ 1.,  1., -1., -1.]])
    """

    #: θ' of a sample depends only on that sample (the backward pass may solve the samples in chunks)
    samplewise = True

    def __init__(self, step_size: float = 1.0) -> None:
        self.step_size = check_step_size(step_size, "step_size")

    def params(self, theta: Tensor, grad_z: Tensor, *, event_dims: int) -> TargetParams:
        theta_minus = torch.where(grad_z != 0, grad_z * (-self.step_size), theta)
        return TargetParams(theta_minus=theta_minus, theta_plus=None, step_size=self.step_size, two_sided=False)

    def __repr__(self) -> str:
        return f"LabelTarget(step_size={self.step_size})"
