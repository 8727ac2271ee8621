"""Straight-through estimator (STE): perturb-and-MAP forward, identity backward."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .._validation import check_theta
from ._base import PerturbAndMAP, layer_or_decorator

__all__ = ["StraightThrough", "straight_through"]


class _StraightThroughFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta: Tensor, eps: Tensor | None, layer: "StraightThrough", args: tuple, kwargs: dict) -> Tensor:
        z = layer.perturb_and_solve(theta, eps, args, kwargs)
        ctx.num_samples = layer.num_samples
        return z if layer.num_samples is not None else z[0]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None, None, None]:
        grad = grad_output.sum(0) if ctx.num_samples is not None else grad_output
        return grad, None, None, None, None


class StraightThrough(PerturbAndMAP):
    """Straight-through estimator: ``z = MAP(θ + τ ε)`` forward, ``∂L/∂θ = Σ_s ∂L/∂z_s`` backward.

    Biased (it treats the solver as the identity), cheap (no solver call in the backward pass), and the
    baseline every discrete-gradient paper compares against (Bengio et al., 2013, arXiv:1308.3432).
    Arguments (``solver``, ``noise``, ``num_samples``, ``temperature``, ``generator``, ``event_dims``)
    as in :class:`~discograd.IMLE`; ``noise=None`` for no noise.

    Example:
        >>> import torch, discograd
        >>> layer = discograd.straight_through(discograd.TopK(2), noise=None)
        >>> t = torch.tensor([0.3, 2.0, 1.0], requires_grad=True)
        >>> (layer(t) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
        >>> t.grad.tolist()
        [1.0, 2.0, 3.0]
    """

    def forward(self, theta: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        check_theta(theta, "theta", min_dim=max(1, self.event_dims))
        return _StraightThroughFunction.apply(theta, self.sample_noise(theta), self, args, kwargs)

    def extra_repr(self) -> str:
        return self._base_repr()


def straight_through(solver: Callable[..., Tensor] | None = None, /, **options: Any) -> Any:
    """Make a :class:`StraightThrough` layer from a solver; also a decorator, like :func:`discograd.imle`."""
    return layer_or_decorator(StraightThrough, solver, options)
