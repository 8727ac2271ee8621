"""Blackbox differentiation of combinatorial solvers (Vlastelica, Paulus, Musil, Martius, Rolínek, ICLR 2020)."""

from __future__ import annotations

from typing import Callable

from torch import Tensor

from ..targets import PerturbedTarget
from .imle import IMLE

__all__ = ["blackbox"]


def blackbox(solver: Callable[..., Tensor], *, step_size: float, event_dims: int | None = None,
             warn_zero_gradient: bool = True) -> IMLE:
    r"""Blackbox differentiation (arXiv:1912.02175): forward ``MAP(θ)``, backward
    ``(1/λ) [MAP(θ) − MAP(θ − λ g)]``.

    This is exactly I-MLE with no noise (ρ = δ₀) and the PID target, so the returned layer is an
    :class:`~discograd.IMLE` with ``noise=None`` and ``PerturbedTarget(step_size)``. (Vlastelica et al.
    write the minimisation form ``−(1/λ)[y(w) − y(w + λ g)]`` for costs ``w = −θ``: the same map.)
    ``warn_zero_gradient`` as in :class:`~discograd.IMLE`.

    Example:
        >>> import torch, discograd
        >>> layer = discograd.blackbox(discograd.TopK(1), step_size=2.0)
        >>> t = torch.tensor([1.0, 0.5, 0.0], requires_grad=True)
        >>> (layer(t) * torch.tensor([1.0, 0.0, 0.0])).sum().backward()   # g pushes item 0 down
        >>> t.grad.tolist()                                                   # (MAP(θ) − MAP(θ − 2g)) / 2
        [0.5, -0.5, 0.0]
    """
    return IMLE(solver, noise=None, target=PerturbedTarget(step_size), event_dims=event_dims,
                warn_zero_gradient=warn_zero_gradient)
