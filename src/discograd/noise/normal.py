"""Gaussian noise N(0, scale²), the usual choice of perturbed optimizers (Berthet et al., 2020)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .._validation import check_generator, check_positive
from .base import resolve_dtype

__all__ = ["Normal"]


class Normal:
    """I.i.d. ``N(0, scale²)`` noise on every coordinate.

    Example:
        >>> import torch
        >>> from discograd.noise import Normal
        >>> Normal(scale=0.5).sample((4,), generator=torch.Generator().manual_seed(0)).shape
        torch.Size([4])
    """

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = check_positive(scale, "scale")

    def sample(
        self,
        shape: Sequence[int] | torch.Size,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        check_generator(generator)
        eps = torch.randn(tuple(shape), generator=generator, device=device, dtype=resolve_dtype(dtype))
        return eps if self.scale == 1.0 else eps.mul_(self.scale)

    def grad_neg_log_density(self, eps: Tensor) -> Tensor:
        """∇ν(ε) for the density ``exp(−ν(ε))`` of this noise: ``ε / scale²``.

        Used by perturbed optimizers (Berthet et al., 2020) for the Jacobian of ``E[MAP(θ + σε)]``.
        """
        return eps / (self.scale * self.scale)

    def __repr__(self) -> str:
        return f"Normal(scale={self.scale})"
