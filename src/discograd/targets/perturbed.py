"""The perturbation-based implicit differentiation (PID) target of I-MLE."""

from __future__ import annotations

import torch
from torch import Tensor

from .._validation import check_step_size
from .base import TargetParams

__all__ = ["PerturbedTarget"]


class PerturbedTarget:
    r"""PID target θ' = θ − λ g (Niepert et al., 2021, arXiv:2106.01798, Section 3).

    One-sided (default): the gradient is ``(1/λ) [z − MAP(θ − λg + ε)]`` with ``z`` the forward sample.
    Two-sided (the central difference of AIMLE, Minervini et al., 2023, arXiv:2209.04862):
    ``(1/(2λ)) [MAP(θ + λg + ε) − MAP(θ − λg + ε)]``, less biased for the same λ at the price of one
    more solver call per sample in the backward pass.

    As λ → 0 both tend to ``J_μ(θ) g``, the gradient of ``L(μ(θ))``; a larger λ trades bias for a
    non-zero gradient more often (piecewise-constant MAP needs a step that changes the solution).

    Args:
        step_size: λ > 0.
        two_sided: use the central difference.
    """

    #: θ' of a sample depends only on that sample (the backward pass may solve the samples in chunks)
    samplewise = True

    def __init__(self, step_size: float = 1.0, two_sided: bool = False) -> None:
        self.step_size = check_step_size(step_size, "step_size")
        if not isinstance(two_sided, bool):
            raise TypeError(f"two_sided must be a bool; got {type(two_sided).__name__}")
        self.two_sided = two_sided

    def params(self, theta: Tensor, grad_z: Tensor, *, event_dims: int) -> TargetParams:
        lam = self.step_size
        # one fused pass each (theta - lam * grad_z would make two and a temporary)
        theta_minus = torch.add(theta, grad_z, alpha=-lam)
        theta_plus = torch.add(theta, grad_z, alpha=lam) if self.two_sided else None
        return TargetParams(theta_minus=theta_minus, theta_plus=theta_plus, step_size=lam, two_sided=self.two_sided)

    def __repr__(self) -> str:
        return f"PerturbedTarget(step_size={self.step_size}, two_sided={self.two_sided})"
