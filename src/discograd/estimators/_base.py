"""The shared front half of perturb-and-MAP estimators: arguments, validation and noise sampling."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from .._validation import check_finite, check_generator, check_int, check_non_negative, check_num_samples
from ..noise import Gumbel, NoiseDistribution
from ..solvers.base import event_dims_of
from ._batching import solve_samples

__all__ = ["PerturbAndMAP", "DEFAULT_NOISE"]

#: sentinel default: ``noise=None`` means "no noise", leaving ``noise`` out means ``Gumbel()``
DEFAULT_NOISE: Any = object()


class PerturbAndMAP(torch.nn.Module):
    """Base of the layers whose forward pass is ``z = MAP(θ + τ ε)`` with ``ε`` of shape ``[S, *θ.shape]``.

    Subclasses define ``forward``; this class validates the common arguments, samples the noise on
    ``theta``'s device and dtype, and solves all samples with one solver call.
    """

    def __init__(
        self,
        solver: Callable[..., Tensor],
        *,
        noise: NoiseDistribution | None = DEFAULT_NOISE,
        num_samples: int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        event_dims: int | None = None,
    ) -> None:
        super().__init__()
        if not callable(solver):
            raise TypeError(f"solver must be callable as solver(theta, *args, **kwargs); got {type(solver).__name__}")
        noise = Gumbel() if noise is DEFAULT_NOISE else noise
        if noise is not None and not callable(getattr(noise, "sample", None)):
            raise TypeError(
                f"noise must have a sample(shape, *, generator, device, dtype) method or be None; got {type(noise).__name__}"
            )
        self.solver = solver
        self.noise = noise
        self.num_samples = check_num_samples(num_samples)
        self.temperature = check_non_negative(temperature, "temperature")
        self.generator = check_generator(generator)
        self.event_dims = event_dims_of(solver) if event_dims is None else check_int(event_dims, "event_dims", minimum=0)

    def sample_noise(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor | None:
        """The noise ``ε`` of shape ``[S, *theta.shape]`` on ``theta``'s device and dtype (``None`` if no noise),
        from ``generator`` (default: the layer's)."""
        if self.noise is None:
            return None
        shape = (1 if self.num_samples is None else self.num_samples, *theta.shape)
        generator = self.generator if generator is None else generator
        eps = self.noise.sample(shape, generator=generator, device=theta.device, dtype=theta.dtype)
        if not isinstance(eps, Tensor) or eps.shape != shape:
            raise ValueError(
                f"noise.sample returned {getattr(eps, 'shape', type(eps).__name__)}; expected a tensor of shape {shape}"
            )
        check_finite(eps, f"the noise drawn by {self.noise!r}", hint=": check the noise object's sample method")
        return eps

    def perturb_and_solve(self, theta: Tensor, eps: Tensor | None, args: tuple, kwargs: dict) -> Tensor:
        """``MAP(θ + τ ε)`` for all samples, shape ``[S, *theta.shape]`` (``S = 1`` without ``num_samples``)."""
        s = 1 if self.num_samples is None else self.num_samples
        if eps is None:
            perturbed = theta.detach().unsqueeze(0).expand(s, *theta.shape)
        else:
            perturbed = torch.add(theta.detach().unsqueeze(0), eps, alpha=self.temperature)
        return solve_samples(self.solver, perturbed, args, kwargs, num_samples=self.num_samples,
                             event_dims=self.event_dims)

    def _base_repr(self) -> str:
        return f"solver={self.solver!r}, noise={self.noise!r}, num_samples={self.num_samples}, temperature={self.temperature}"


def layer_or_decorator(cls: type, solver: Callable[..., Tensor] | None, options: dict[str, Any]) -> Any:
    """``cls(solver, **options)``; with ``solver=None`` a decorator that wraps the decorated solver function
    (keeping its name and docstring)."""
    if solver is not None:
        return cls(solver, **options)

    def decorate(fn: Callable[..., Tensor]) -> Any:
        layer = cls(fn, **options)
        for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
            if hasattr(fn, attr):
                object.__setattr__(layer, attr, getattr(fn, attr))
        return layer

    return decorate
