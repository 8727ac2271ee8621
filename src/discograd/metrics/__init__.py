"""Metrics for structured prediction through solvers (no gradients needed; all per instance).

- :func:`regret`: ``<θ, z*> − <θ, z>``, the score lost by choosing ``z`` instead of the optimum.
- :func:`normalized_regret`: regret divided by ``|<θ, z*>|``.
- :func:`hamming_distance`: the number of differing entries.
- :func:`exact_match`: 1.0 where ``z`` equals ``z_true`` exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._validation import check_int, check_theta
from ..losses._common import event_sum

__all__ = ["regret", "normalized_regret", "hamming_distance", "exact_match"]


def _check(theta: Tensor, z: Tensor, z_true: Tensor) -> None:
    for name, t in (("theta", theta), ("z", z), ("z_true", z_true)):
        check_theta(t, name)
    if not (theta.shape == z.shape == z_true.shape):
        raise ValueError(f"theta, z and z_true must have the same shape; got {tuple(theta.shape)}, "
                         f"{tuple(z.shape)} and {tuple(z_true.shape)}")


@torch.no_grad()
def regret(theta: Tensor, z: Tensor, z_true: Tensor, *, event_dims: int = 1) -> Tensor:
    r"""``<θ, z_true> − <θ, z>`` per instance (≥ 0 when ``z_true`` is optimal for θ; maximisation).

    For a cost-minimisation problem with costs ``c`` pass ``theta = −c``: the result is then
    ``cᵀz − cᵀz*``, the usual regret.

    Example:
        >>> import torch
        >>> from discograd.metrics import regret
        >>> regret(torch.tensor([3.0, 1.0]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0]))
        tensor(2.)
    """
    _check(theta, z, z_true)
    event_dims = check_int(event_dims, "event_dims", minimum=0)
    return event_sum(theta * z_true, event_dims) - event_sum(theta * z, event_dims)


@torch.no_grad()
def normalized_regret(theta: Tensor, z: Tensor, z_true: Tensor, *, event_dims: int = 1) -> Tensor:
    """:func:`regret` divided by ``|<θ, z_true>|`` (the optimal objective), per instance."""
    optimum = event_sum(theta * z_true, event_dims).abs()
    return regret(theta, z, z_true, event_dims=event_dims) / optimum.clamp_min(torch.finfo(theta.dtype).tiny)


@torch.no_grad()
def hamming_distance(z: Tensor, z_true: Tensor, *, event_dims: int = 1) -> Tensor:
    """The number of entries where ``z`` and ``z_true`` differ, per instance."""
    return event_sum((z != z_true).to(torch.get_default_dtype()), event_dims)


@torch.no_grad()
def exact_match(z: Tensor, z_true: Tensor, *, event_dims: int = 1) -> Tensor:
    """1.0 where the whole structure matches, else 0.0, per instance."""
    return (hamming_distance(z, z_true, event_dims=event_dims) == 0).to(torch.get_default_dtype())
