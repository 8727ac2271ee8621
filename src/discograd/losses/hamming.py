from __future__ import annotations

from torch import Tensor

from .._validation import check_int, check_theta
from ._common import apply_reduction, check_reduction, event_sum

__all__ = ["hamming_loss"]


def hamming_loss(z: Tensor, z_true: Tensor, *, event_dims: int = 1, normalize: bool = True,
                 reduction: str = "mean") -> Tensor:
    r"""``Σ_i z_i (1 − z*_i) + (1 − z_i) z*_i`` per instance, divided by the event size when ``normalize``.

    Equal to the number of differing entries for 0/1 vectors, and linear in ``z`` (gradient ``1 − 2 z*``),
    so it is the usual loss on the output of an estimator layer. ``z`` may carry leading sample dimensions
    that ``z_true`` lacks (broadcasting). The per-instance values (shape ``z.shape[:-event_dims]``, sample
    dimensions included) are reduced by ``reduction``: ``"mean"`` (the default, over every leading
    dimension), ``"sum"``, or ``"none"`` (returned as they are).

    Example:
        >>> import torch
        >>> from discograd.losses import hamming_loss
        >>> hamming_loss(torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([1.0, 1.0, 0.0, 0.0]))
        tensor(0.5000)
        >>> z = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
        >>> hamming_loss(z, torch.tensor([1.0, 1.0, 0.0, 0.0]), normalize=False, reduction="none")
        tensor([2., 0.])
    """
    check_theta(z, "z", min_dim=event_dims)
    check_theta(z_true, "z_true", min_dim=event_dims)
    event_dims = check_int(event_dims, "event_dims", minimum=0)
    check_reduction(reduction)
    if z.shape[z.dim() - event_dims:] != z_true.shape[z_true.dim() - event_dims:]:
        raise ValueError(f"z and z_true must share their last {event_dims} dimension(s); got shapes "
                         f"{tuple(z.shape)} and {tuple(z_true.shape)}")
    diff = z * (1 - z_true) + (1 - z) * z_true
    total = event_sum(diff, event_dims)
    if normalize:
        size = 1
        for d in z.shape[z.dim() - event_dims:]:
            size *= d
        total = total / size
    return apply_reduction(total, reduction)
