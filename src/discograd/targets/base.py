"""The target-distribution contract used by the I-MLE backward pass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor

__all__ = ["Target", "TargetParams", "instance_norm"]


@dataclass
class TargetParams:
    """What a target tells the I-MLE backward pass.

    The per-sample gradient is ``c · [MAP(θ⁺ + τ' ε) − MAP(θ⁻ + τ' ε)] / λ`` with ``c = 1/2`` when
    ``two_sided`` (central difference) and ``c = 1`` otherwise; ``θ⁺ = None`` means "reuse the forward
    sample" (the one-sided estimator). Entries with ``λ = 0`` get a zero gradient.

    Attributes:
        theta_minus: θ⁻, shape ``[S, *theta.shape]``; a fresh tensor the estimator may overwrite.
        theta_plus: θ⁺ (same shape, fresh) or ``None``.
        step_size: λ, a positive float or a tensor broadcastable to ``theta_minus`` (per instance).
        two_sided: whether this is the central difference.
    """

    theta_minus: Tensor
    theta_plus: Tensor | None
    step_size: float | Tensor
    two_sided: bool = False


@runtime_checkable
class Target(Protocol):
    """A target distribution q(z; θ') for I-MLE.

    ``params(theta, grad_z, *, event_dims)`` receives ``theta`` broadcast to ``[S, *theta.shape]`` and
    the upstream gradient ``grad_z`` of shape ``[S, *theta.shape]`` (``S = 1`` when the layer draws a
    single sample) and returns :class:`TargetParams`. A target with state may also define
    ``observe(gradient, *, event_dims)``, called with the per-sample gradient after each backward pass.
    """

    def params(self, theta: Tensor, grad_z: Tensor, *, event_dims: int) -> TargetParams: ...


def instance_norm(x: Tensor, event_dims: int) -> Tensor:
    """Euclidean norm over the last ``event_dims`` dimensions, kept as size-1 dimensions."""
    if event_dims == 0:
        return x.abs()
    dims = tuple(range(x.dim() - event_dims, x.dim()))
    return x.norm(dim=dims, keepdim=True)
