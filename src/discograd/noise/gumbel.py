"""Gumbel(0, scale) noise: the perturbation that makes perturb-and-MAP exact for one-hot structures."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .._validation import check_generator, check_positive
from .base import resolve_dtype

__all__ = ["Gumbel", "standard_gumbel"]


def standard_gumbel(
    shape: Sequence[int] | torch.Size,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """I.i.d. Gumbel(0, 1) draws, ``-log(-log(U))`` with ``U ~ Uniform(0, 1)``.

    ``U`` is clamped away from 0 to the dtype's smallest normal number, so every draw is finite
    (the largest magnitude is about 4.5 on the left and ``-log(-log(1 - eps))`` on the right).
    Computed in place on one buffer: one allocation of the output's size.
    """
    dtype = resolve_dtype(dtype)
    u = torch.rand(tuple(shape), generator=generator, device=device, dtype=dtype)
    u.clamp_(min=torch.finfo(dtype).tiny)
    return u.log_().neg_().log_().neg_()


class Gumbel:
    r"""Gumbel noise with location 0 and the given ``scale``.

    With ``scale = 1`` and one-hot structures, ``argmax(θ + ε)`` is an exact sample of
    ``softmax(θ)`` (the Gumbel-max trick); ``E[onehot(argmax(θ + σ ε))] = softmax(θ / σ)``.
    For structures of fixed size ``k > 1`` prefer :class:`~discograd.noise.SumOfGamma`.

    Example:
        >>> import torch
        >>> from discograd.noise import Gumbel
        >>> eps = Gumbel().sample((2, 3), generator=torch.Generator().manual_seed(0))
        >>> eps.shape
        torch.Size([2, 3])
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
        eps = standard_gumbel(shape, generator=generator, device=device, dtype=dtype)
        return eps if self.scale == 1.0 else eps.mul_(self.scale)

    def grad_neg_log_density(self, eps: Tensor) -> Tensor:
        """∇ν(ε) for the density ``exp(−ν(ε))`` of this noise: ``(1 − exp(−ε/scale)) / scale``.

        Used by perturbed optimizers (Berthet et al., 2020) for the Jacobian of ``E[MAP(θ + σε)]``.
        """
        return (1.0 - torch.exp(-eps / self.scale)) / self.scale

    def __repr__(self) -> str:
        return f"Gumbel(scale={self.scale})"
