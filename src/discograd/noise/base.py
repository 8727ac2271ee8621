"""The noise contract: anything with ``sample(shape, *, generator=None, device=None, dtype=None)``."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import torch
from torch import Tensor

__all__ = ["NoiseDistribution", "resolve_dtype"]


@runtime_checkable
class NoiseDistribution(Protocol):
    """A perturbation distribution ρ for perturb-and-MAP.

    ``sample(shape, *, generator=None, device=None, dtype=None)`` returns a tensor of the given shape with
    i.i.d. draws, created directly on ``device`` in ``dtype`` (default: torch's default dtype) and
    consuming randomness only from ``generator`` (``None``: torch's default generator).
    """

    def sample(
        self,
        shape: Sequence[int] | torch.Size,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor: ...


def resolve_dtype(dtype: torch.dtype | None) -> torch.dtype:
    """``dtype`` or torch's default floating dtype; integer dtypes are rejected."""
    if dtype is None:
        return torch.get_default_dtype()
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype for noise samples; got {dtype}")
    return dtype
