r"""Negative identity backpropagation (NID): forward ``MAP(θ)``, backward the identity.

Sahoo, Paulus, Vlastelica, Musil, Kuleshov, Martius, "Backpropagation through Combinatorial Algorithms:
Identity with Projection Works", ICLR 2023, arXiv:2205.15213; PyEPO's ``negativeIdentity`` / ``NID``
(``pyepo/func/blackbox.py``, ``negativeIdentityFunc``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from ._base import layer_or_decorator
from .straight_through import StraightThrough

__all__ = ["negative_identity"]


def negative_identity(solver: Callable[..., Tensor] | None = None, /, *, event_dims: int | None = None) -> Any:
    r"""Negative identity (PyEPO's ``NID``): forward ``z = MAP(θ)``, backward ``∂L/∂θ = ∂L/∂z``.

    PyEPO states it for a minimiser of costs ``c``: ``w = argmin_w cᵀw``, and the solver's Jacobian
    is replaced by ``−I`` (``negativeIdentityFunc.backward`` returns ``−grad_output``; ``+grad_output``
    for a maximiser). discograd's solvers maximise ``<θ, z>`` with ``θ = −c``, where the same rule is
    ``+I``: ``∂L/∂θ = ∂L/∂z``, and autograd through ``θ = −c`` gives PyEPO's ``∂L/∂c = −∂L/∂z``.
    That is exactly :class:`~discograd.StraightThrough` without noise, so this returns
    ``StraightThrough(solver, noise=None)``: no hyperparameter, no solver call in the backward pass. It is
    blackbox differentiation (:func:`~discograd.blackbox`) in the limit of a large step where
    ``MAP(θ − λg)`` moves by ``λg``. Sahoo et al.'s "projection" (e.g. standardising θ before the solver)
    belongs to the model: apply it to θ before this layer.

    Shapes: ``theta`` ``[*batch, *event]`` in, ``z`` of the same shape out. Also a decorator
    (``@negative_identity()`` or ``@negative_identity(event_dims=...)``, keeping the function's name and
    docstring), like :func:`~discograd.imle`.

    Example:
        >>> import torch, discograd
        >>> layer = discograd.estimators.negative_identity(discograd.TopK(1))
        >>> cost = torch.tensor([3.0, 1.0, 2.0], requires_grad=True)
        >>> z = layer(-cost)                        # the cheapest item
        >>> z.tolist()
        [0.0, 1.0, 0.0]
        >>> (z * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
        >>> cost.grad.tolist()                      # PyEPO's −I in the costs
        [-1.0, -2.0, -3.0]
    """
    return layer_or_decorator(StraightThrough, solver, {"noise": None, "event_dims": event_dims})
