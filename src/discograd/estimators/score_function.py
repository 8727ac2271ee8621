r"""The score-function estimator (REINFORCE; Williams, 1992) with a baseline, for distributions whose
log-probability is tractable: categorical (``Argmax``) and exactly-k (``TopK``).

``∇_θ E_{z~p(z;θ)}[L(z)] = E[(L(z) − b) ∇_θ log p(z; θ)]`` for any ``b`` independent of ``z``. Unbiased,
high variance, and it needs the loss *value* of each sample, not its gradient — so unlike the other
estimators it is used in two steps::

    sf = discograd.score_function(discograd.TopK(5), num_samples=8, generator=g)
    z = sf(theta)                                   # exact samples of p(z; θ), [8, *theta.shape]
    losses = ((z - b) ** 2).sum(-1)                 # one loss per sample, [8, *batch]
    sf.surrogate(theta, z, losses).mean().backward()

``surrogate`` has the value of ``losses`` and the gradient ``(L − b) ∇ log p(z; θ)`` with respect to
θ (plus the ordinary gradient of ``losses`` with respect to anything else it depends on).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .._validation import check_generator, check_num_samples, check_positive, check_theta
from ..exact import enumeration_sample, topk_log_prob, topk_sample
from ..solvers import Argmax, TopK

__all__ = ["ScoreFunction", "score_function", "reinforce"]

_BASELINES = ("leave_one_out", "mean", "none")


def _baseline(losses: Tensor, baseline: str | float) -> Tensor:
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(losses, float(baseline))
    if baseline == "none":
        return torch.zeros_like(losses)
    s = losses.shape[0]
    if baseline == "mean":
        return losses.mean(0, keepdim=True).expand_as(losses)
    if s < 2:
        raise ValueError("baseline='leave_one_out' needs at least 2 samples in the leading dimension; got 1")
    return (losses.sum(0, keepdim=True) - losses) / (s - 1)


def reinforce(losses: Tensor, log_prob: Tensor, *, baseline: str | float = "leave_one_out") -> Tensor:
    r"""The REINFORCE surrogate ``losses + (L − b)·(log p − stop_gradient(log p))``.

    Its value equals ``losses``; its gradient is ``(L − b) ∇ log p`` plus the pathwise gradient of
    ``losses``. ``losses`` and ``log_prob`` have shape ``[S, *batch]`` (samples first). Baselines:
    ``"leave_one_out"`` (the mean of the other samples: unbiased, needs S ≥ 2), ``"mean"`` (the mean of
    all samples, including this one: biased by a factor ``(S − 1)/S``), ``"none"``, or a number.
    """
    if losses.shape != log_prob.shape:
        raise ValueError(f"losses and log_prob must have the same shape [S, *batch]; got {tuple(losses.shape)} "
                         f"and {tuple(log_prob.shape)}")
    if not (isinstance(baseline, (int, float)) and not isinstance(baseline, bool)) and baseline not in _BASELINES:
        raise ValueError(f"baseline must be one of {_BASELINES} or a number; got {baseline!r}")
    advantage = (losses.detach() - _baseline(losses.detach(), baseline)).detach()
    return losses + advantage * (log_prob - log_prob.detach())


class ScoreFunction(torch.nn.Module):
    r"""Exact samples of ``p(z; θ) ∝ exp(<z, θ>/τ)`` and the REINFORCE surrogate, for ``Argmax`` (the
    categorical ``softmax(θ/τ)``) and ``TopK(k)`` (the exactly-k distribution, via the k-subset DP).

    ``layer(theta)`` returns ``num_samples`` exact samples ``[S, *theta.shape]`` (``theta.shape`` when
    ``num_samples`` is ``None``) without a gradient path; ``layer.log_prob(z, theta)`` is differentiable;
    ``layer.surrogate(theta, z, losses)`` gives the score-function gradient (see :func:`reinforce`).

    Example:
        >>> import torch, discograd
        >>> sf = discograd.score_function(discograd.Argmax(), num_samples=4, generator=torch.Generator().manual_seed(0))
        >>> theta = torch.zeros(3, requires_grad=True)
        >>> z = sf(theta)
        >>> sf.surrogate(theta, z, (z * torch.tensor([1.0, 2.0, 3.0])).sum(-1)).mean().backward()
        >>> theta.grad.shape
        torch.Size([3])
    """

    def __init__(self, solver: Callable[..., Tensor], *, num_samples: int | None = None,
                 baseline: str | float = "leave_one_out", temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if isinstance(solver, TopK):
            if solver.k is None:
                raise ValueError("score_function needs TopK(k) with k set at construction")
        elif not isinstance(solver, Argmax):
            raise TypeError(
                "score_function supports discograd.Argmax (categorical) and discograd.TopK(k) (exactly-k), whose "
                f"log-probabilities are tractable; got {type(solver).__name__}"
            )
        if not (isinstance(baseline, (int, float)) and not isinstance(baseline, bool)) and baseline not in _BASELINES:
            raise ValueError(f"baseline must be one of {_BASELINES} or a number; got {baseline!r}")
        self.solver = solver
        self.num_samples = check_num_samples(num_samples)
        if baseline == "leave_one_out" and (self.num_samples or 1) < 2:
            raise ValueError("baseline='leave_one_out' needs num_samples >= 2; use baseline='none' or a number")
        self.baseline = baseline
        self.temperature = check_positive(temperature, "temperature")
        self.generator = check_generator(generator)

    def forward(self, theta: Tensor) -> Tensor:
        check_theta(theta, "theta")
        with torch.no_grad():
            if isinstance(self.solver, TopK):
                return topk_sample(theta.detach(), self.solver.k, self.temperature, num_samples=self.num_samples,
                                   generator=self.generator)
            n = theta.shape[-1]
            states = torch.eye(n, dtype=theta.dtype, device=theta.device)
            return enumeration_sample(states, theta.detach(), self.temperature, num_samples=self.num_samples,
                                      generator=self.generator)

    def log_prob(self, z: Tensor, theta: Tensor) -> Tensor:
        """``log p(z; θ)``, differentiable in θ; ``z`` is ``[*sample, *theta.shape]``."""
        if isinstance(self.solver, TopK):
            return topk_log_prob(z, theta, self.solver.k, self.temperature)
        return (z * torch.log_softmax(theta / self.temperature, dim=-1)).sum(-1)

    def surrogate(self, theta: Tensor, z: Tensor, losses: Tensor) -> Tensor:
        """The REINFORCE surrogate for per-sample ``losses`` (``[S, *batch]``, or ``batch`` without samples)."""
        log_prob = self.log_prob(z, theta)
        if self.num_samples is None:
            return reinforce(losses.unsqueeze(0), log_prob.unsqueeze(0), baseline=self.baseline).squeeze(0)
        return reinforce(losses, log_prob, baseline=self.baseline)

    def extra_repr(self) -> str:
        return f"solver={self.solver!r}, num_samples={self.num_samples}, baseline={self.baseline!r}, temperature={self.temperature}"


def score_function(solver: Callable[..., Tensor], **options) -> ScoreFunction:
    """Make a :class:`ScoreFunction` estimator for ``Argmax`` or ``TopK(k)``."""
    return ScoreFunction(solver, **options)
