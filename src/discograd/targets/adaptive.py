"""The adaptive target of AIMLE: λ chosen per instance so that gradients are neither all zero nor dense."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import distributed
from .._validation import check_non_negative, check_positive
from .base import TargetParams, instance_norm

__all__ = ["AdaptiveTarget"]

NORMS = ("instance", "batch")


def _total(norms: Tensor, across_ranks: bool = False) -> Tensor:
    """The norm of the whole tensor from its per-instance norms, as a tensor of ``norms``' rank (over every
    rank's shard with ``across_ranks``)."""
    squares = norms.square().sum()
    if across_ranks:
        squares = distributed.all_reduce_sum(squares)
    return squares.sqrt().reshape((1,) * norms.dim())


class AdaptiveTarget:
    r"""Adaptive perturbation target (AIMLE; Minervini, Franceschi, Niepert, AAAI 2023, arXiv:2209.04862).

    For every instance and sample, ``λ = β · max(‖θ‖, m · ‖τ ε‖) / ‖g‖`` (``λ = 0``, hence a zero
    gradient, where ``g = 0``), then ``θ' = θ − λ g`` (or ``θ ± λ g`` when ``two_sided``); ``τ ε`` is the
    forward sample's perturbation and ``m`` is ``min_relative_norm``. After each backward pass the number
    of non-zero entries of the per-sample gradient is counted per instance and averaged over instances and
    samples; a running average ``r ← decay · r + (1 − decay) · count`` (initialised to the first count, or
    to ``initial_running_nonzeros``) steers β: ``β ← β + update_step`` if ``r < target_nonzeros``,
    ``β ← max(0, β − update_step)`` if ``r > target_nonzeros``.

    **The floor** ``m · ‖τ ε‖``: without it (``min_relative_norm=0``, the original rule) λ is 0 whenever
    θ = 0, a common initialisation, so the target equals the forward sample, every gradient is zero and θ
    never leaves 0. With it, the step ``λ g`` is never shorter than ``β · m`` times the perturbation's own
    length, so the target differs from the forward sample as soon as β has grown, whatever the scale of θ.
    It only binds while ``‖θ‖ < m ‖τ ε‖`` (scores a tenth of the noise with the default ``m = 0.1``).

    **Norms per instance** (``norm="instance"``, over the solver's event dimensions, per sample), not
    over the whole batch: instances in a batch have scores and upstream gradients of very different sizes,
    and a whole-batch ratio would let the instance with the largest ``g`` set a tiny λ for all the others
    (their gradients would then vanish), while per-instance norms make β mean the same relative step for
    every instance. ``norm="batch"`` takes both norms over the whole ``[S, *theta.shape]`` tensor, as
    torch-adaptive-imle does (``imle/target.py``, ``AdaptiveTargetDistribution._perturbation_magnitude``).

    **The original's settings** are :meth:`torch_adaptive_imle`: whole-batch norms, β₀ = 1, β step 1e-4,
    running average started at 1, no floor (``imle/target.py``, ``AdaptiveTargetDistribution.__init__``).
    Two differences remain there, both conventions of the layer rather than of the target: the original
    averages the per-sample gradients where :class:`~discograd.IMLE` sums them (the chain rule), and for
    S > 1 its θ' uses ``‖θ‖`` of θ repeated S times while it divides by λ computed from the unrepeated θ (a
    factor √S); we use the same λ for both. For one sample the gradients agree up to the sum/mean factor.

    **Data parallelism.** Under ``torch.distributed`` (each rank holding a shard of the batch) the count of
    non-zero entries is averaged over every rank's instances (an all-reduce per backward pass), and with
    ``norm="batch"`` the norms are over the whole batch, so β and the running average stay identical on every
    rank and equal what one process computes on the whole batch. ``distributed=False`` keeps them per rank.

    The state (β, the running average and the number of updates) belongs to this object:
    ``state_dict()``, ``load_state_dict()`` and ``reset()``. An :class:`~discograd.IMLE` layer includes
    it in the module's own ``state_dict``.

    Args:
        target_nonzeros: the desired average number of non-zero gradient entries per instance and sample
            (e.g. 1 for L2X, 10 for a discrete VAE); > 0.
        update_step: how much β moves per backward pass (0 freezes β).
        initial_beta: β at the start and after ``reset()``. With the default 0, gradients are zero until
            β has grown.
        decay: the running-average decay in [0, 1).
        two_sided: use the central difference ``(1/(2λ)) [MAP(θ + λg + ε) − MAP(θ − λg + ε)]``.
        min_relative_norm: ``m`` of the floor above, ≥ 0 (0: the original rule, which cannot leave θ = 0).
        norm: ``"instance"`` (default) or ``"batch"`` (torch-adaptive-imle's).
        initial_running_nonzeros: the running average before the first pass (``None``: the first count;
            torch-adaptive-imle starts it at 1).
        distributed: share the statistics across ``torch.distributed`` ranks when a process group is
            initialised (``True``, default) or keep them per rank (``False``).
    """

    def __init__(
        self,
        target_nonzeros: float = 1.0,
        update_step: float = 1e-3,
        initial_beta: float = 0.0,
        decay: float = 0.9,
        two_sided: bool = False,
        min_relative_norm: float = 0.1,
        norm: str = "instance",
        initial_running_nonzeros: float | None = None,
        distributed: bool = True,
    ) -> None:
        self.target_nonzeros = check_positive(target_nonzeros, "target_nonzeros")
        self.update_step = check_non_negative(update_step, "update_step")
        self.initial_beta = check_non_negative(initial_beta, "initial_beta")
        decay = check_non_negative(decay, "decay")
        if not decay < 1.0:
            raise ValueError(f"decay must satisfy 0 <= decay < 1; got {decay}")
        self.decay = decay
        if not isinstance(two_sided, bool):
            raise TypeError(f"two_sided must be a bool; got {type(two_sided).__name__}")
        self.two_sided = two_sided
        self.min_relative_norm = check_non_negative(min_relative_norm, "min_relative_norm")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}; got {norm!r}")
        self.norm = norm
        if not isinstance(distributed, bool):
            raise TypeError(f"distributed must be a bool; got {type(distributed).__name__}")
        self.distributed = distributed
        self.initial_running_nonzeros = (None if initial_running_nonzeros is None
                                         else check_non_negative(initial_running_nonzeros, "initial_running_nonzeros"))
        self.reset()

    @classmethod
    def torch_adaptive_imle(cls, target_nonzeros: float = 1.0, *, two_sided: bool = False) -> "AdaptiveTarget":
        """torch-adaptive-imle's ``AdaptiveTargetDistribution`` defaults (``imle/target.py``): whole-batch
        norms, β₀ = 1, β step 1e-4, decay 0.9, running average started at 1, no floor on λ."""
        return cls(target_nonzeros, update_step=1e-4, initial_beta=1.0, decay=0.9, two_sided=two_sided,
                   min_relative_norm=0.0, norm="batch", initial_running_nonzeros=1.0)

    # -- state ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """Return β to ``initial_beta`` and forget the running average."""
        self.beta = self.initial_beta
        self.running_nonzeros: float | None = self.initial_running_nonzeros
        self.num_updates = 0

    def state_dict(self) -> dict[str, Any]:
        return {"beta": self.beta, "running_nonzeros": self.running_nonzeros, "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"beta", "running_nonzeros", "num_updates"} - set(state)
        if missing:
            raise KeyError(f"AdaptiveTarget state is missing {sorted(missing)}")
        self.beta = check_non_negative(state["beta"], "state['beta']")
        r = state["running_nonzeros"]
        self.running_nonzeros = None if r is None else float(r)
        self.num_updates = int(state["num_updates"])

    # -- the target ------------------------------------------------------------------------------
    #: the layer passes ``noise_norm``, the per-instance norm of the forward perturbation τε
    uses_noise_norm = True

    def step_sizes(self, theta: Tensor, grad_z: Tensor, event_dims: int,
                   noise_norm: Tensor | None = None) -> Tensor:
        """λ per instance and sample, shape ``[S, *batch, 1, ..., 1]`` (event dimensions kept as 1)
        (``norm="batch"``: one λ, shape ``[1, ..., 1]``). ``noise_norm``: ``‖τ ε‖`` per instance and
        sample, for the floor (``None``: no floor)."""
        theta_norm = instance_norm(theta, event_dims)
        grad_norm = instance_norm(grad_z, event_dims)
        if self.norm == "batch":
            shared = self._shared()
            theta_norm, grad_norm = _total(theta_norm, shared), _total(grad_norm, shared)
            noise_norm = None if noise_norm is None else _total(noise_norm, shared)
        if noise_norm is not None and self.min_relative_norm > 0:
            theta_norm = torch.maximum(theta_norm, noise_norm.to(theta_norm.dtype) * self.min_relative_norm)
        ratio = theta_norm / grad_norm.clamp_min(torch.finfo(grad_z.dtype).tiny)
        return torch.where(grad_norm > 0, self.beta * ratio, torch.zeros_like(ratio))

    def params(self, theta: Tensor, grad_z: Tensor, *, event_dims: int,
               noise_norm: Tensor | None = None) -> TargetParams:
        lam = self.step_sizes(theta, grad_z, event_dims, noise_norm)
        step = lam * grad_z
        theta_minus = theta - step
        theta_plus = theta + step if self.two_sided else None
        return TargetParams(theta_minus=theta_minus, theta_plus=theta_plus, step_size=lam, two_sided=self.two_sided)

    @property
    def samplewise(self) -> bool:
        """Whether θ' of a sample depends only on that sample (per-instance norms): the backward pass may then
        solve the samples in chunks (and report their counts with :meth:`observe_counts`)."""
        return self.norm == "instance"

    @staticmethod
    def nonzero_counts(gradient: Tensor, *, event_dims: int) -> Tensor:
        """The number of non-zero entries of each instance and sample of a per-sample gradient (float32)."""
        if event_dims == 0:
            return (gradient != 0).to(torch.float32)
        flat = gradient.reshape(*gradient.shape[: gradient.dim() - event_dims], -1)
        return (flat != 0).sum(-1).to(torch.float32)

    def observe(self, gradient: Tensor, *, event_dims: int) -> None:
        """Update the running average of non-zero entries and β from one per-sample gradient."""
        self.observe_counts(self.nonzero_counts(gradient, event_dims=event_dims))

    def observe_counts(self, counts: Tensor) -> None:
        """Update the running average and β from the non-zero counts of every instance and sample of one
        backward pass (:meth:`nonzero_counts`)."""
        if self._shared():  # the mean over every rank's instances: sum and number, all-reduced together
            totals = distributed.all_reduce_sum(torch.stack([counts.double().sum(),
                                                             torch.tensor(float(counts.numel()), dtype=torch.float64,
                                                                          device=counts.device)]))
            current = float(totals[0] / totals[1].clamp_min(1.0))
        else:
            current = float(counts.mean())
        if self.running_nonzeros is None:
            self.running_nonzeros = current
        else:
            self.running_nonzeros = self.decay * self.running_nonzeros + (1.0 - self.decay) * current
        if self.running_nonzeros < self.target_nonzeros:
            self.beta += self.update_step
        elif self.running_nonzeros > self.target_nonzeros:
            self.beta = max(0.0, self.beta - self.update_step)
        self.num_updates += 1

    def _shared(self) -> bool:
        return self.distributed and distributed.is_distributed()

    def __repr__(self) -> str:
        return (
            f"AdaptiveTarget(target_nonzeros={self.target_nonzeros}, update_step={self.update_step}, "
            f"initial_beta={self.initial_beta}, decay={self.decay}, two_sided={self.two_sided}, "
            f"min_relative_norm={self.min_relative_norm}, norm={self.norm!r}; beta={self.beta:.4g})"
        )
