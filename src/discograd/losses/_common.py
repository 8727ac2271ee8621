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


REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> str:
    """``reduction`` validated: one of ``"mean"``, ``"sum"``, ``"none"`` (as in ``torch.nn`` losses)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}; got {reduction!r}")
    return reduction


def apply_reduction(values: Tensor, reduction: str) -> Tensor:
    """Per-instance loss ``values`` reduced: their mean (``"mean"``), sum (``"sum"``) or as they are (``"none"``)."""
    check_reduction(reduction)
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values
