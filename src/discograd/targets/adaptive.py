"""The adaptive target of AIMLE: λ chosen per instance so that gradients are neither all zero nor dense."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._validation import check_non_negative, check_positive
from .base import TargetParams, instance_norm

__all__ = ["AdaptiveTarget"]


class AdaptiveTarget:
    r"""Adaptive perturbation target (AIMLE; Minervini, Franceschi, Niepert, AAAI 2023, arXiv:2209.04862).

    For every instance and sample, ``λ = β · ‖θ‖ / ‖g‖`` (``λ = 0``, hence a zero gradient, where
    ``g = 0``), then ``θ' = θ − λ g`` (or ``θ ± λ g`` when ``two_sided``). After each backward pass the
    number of non-zero entries of the per-sample gradient is counted per instance and averaged over
    instances and samples; a running average ``r ← decay · r + (1 − decay) · count`` (initialised to the
    first count) steers β: ``β ← β + update_step`` if ``r < target_nonzeros``, ``β ← max(0, β −
    update_step)`` if ``r > target_nonzeros``.

    Norms are taken **per instance** (over the solver's event dimensions, per sample), not over the whole
    batch: instances in a batch have scores and upstream gradients of very different sizes, and a
    whole-batch ratio would let the instance with the largest ``g`` set a tiny λ for all the others
    (their gradients would then vanish), while per-instance norms make β mean the same relative step
    for every instance.

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
    """

    def __init__(
        self,
        target_nonzeros: float = 1.0,
        update_step: float = 1e-3,
        initial_beta: float = 0.0,
        decay: float = 0.9,
        two_sided: bool = False,
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
        self.reset()

    # -- state ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """Return β to ``initial_beta`` and forget the running average."""
        self.beta = self.initial_beta
        self.running_nonzeros: float | None = None
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
    def step_sizes(self, theta: Tensor, grad_z: Tensor, event_dims: int) -> Tensor:
        """λ per instance and sample, shape ``[S, *batch, 1, ..., 1]`` (event dimensions kept as 1)."""
        theta_norm = instance_norm(theta, event_dims)
        grad_norm = instance_norm(grad_z, event_dims)
        ratio = theta_norm / grad_norm.clamp_min(torch.finfo(grad_z.dtype).tiny)
        return torch.where(grad_norm > 0, self.beta * ratio, torch.zeros_like(ratio))

    def params(self, theta: Tensor, grad_z: Tensor, *, event_dims: int) -> TargetParams:
        lam = self.step_sizes(theta, grad_z, event_dims)
        step = lam * grad_z
        theta_minus = theta - step
        theta_plus = theta + step if self.two_sided else None
        return TargetParams(theta_minus=theta_minus, theta_plus=theta_plus, step_size=lam, two_sided=self.two_sided)

    def observe(self, gradient: Tensor, *, event_dims: int) -> None:
        """Update the running average of non-zero entries and β from one per-sample gradient."""
        if event_dims == 0:
            count = (gradient != 0).to(torch.float32).mean()
        else:
            flat = gradient.reshape(*gradient.shape[: gradient.dim() - event_dims], -1)
            count = (flat != 0).sum(-1).to(torch.float32).mean()
        current = float(count)
        if self.running_nonzeros is None:
            self.running_nonzeros = current
        else:
            self.running_nonzeros = self.decay * self.running_nonzeros + (1.0 - self.decay) * current
        if self.running_nonzeros < self.target_nonzeros:
            self.beta += self.update_step
        elif self.running_nonzeros > self.target_nonzeros:
            self.beta = max(0.0, self.beta - self.update_step)
        self.num_updates += 1

    def __repr__(self) -> str:
        return (
            f"AdaptiveTarget(target_nonzeros={self.target_nonzeros}, update_step={self.update_step}, "
            f"initial_beta={self.initial_beta}, decay={self.decay}, two_sided={self.two_sided}; beta={self.beta:.4g})"
        )
