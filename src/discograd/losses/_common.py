from __future__ import annotations

from torch import Tensor


def event_sum(x: Tensor, event_dims: int) -> Tensor:
    """Sum over the last ``event_dims`` dimensions (dropped)."""
    if event_dims == 0:
        return x
    return x.sum(dim=tuple(range(x.dim() - event_dims, x.dim())))


def check_same_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}")
