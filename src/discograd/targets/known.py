"""The known-parameters target: q(z; θ*) itself, with θ* given per call (the Warcraft "μ-μ" of Table 2)."""

from __future__ import annotations

import torch
from torch import Tensor

from .._validation import check_step_size
from .base import TargetParams

__all__ = ["KnownTarget"]


class KnownTarget:
    r"""Target distribution ``q(z; θ*)`` with parameters θ* known at training time (e.g. ``θ* = −true cost``).

    The I-MLE gradient becomes

    .. math::

        \nabla_\theta L \approx \frac{1}{\lambda} \sum_s \big[ \mathrm{MAP}(\theta + \tau \varepsilon_s)
        - \mathrm{MAP}(\theta^* + \tau' \varepsilon_s) \big]

    with the forward pass's noise ``ε_s`` on both sides: the difference of the model's and the target's
    perturb-and-MAP marginals, :math:`\mu(\theta) - \mu(\theta^*)`. It does **not** use the values of the
    upstream gradient ``g`` (only that a backward pass happens); λ is a plain scale of the gradient.

    This is the "I-MLE μ-μ" of Niepert et al. (2021, arXiv:2106.01798), Table 2 (Warcraft shortest
    paths): the original code (tf-imle, ``WARCRAFT/maprop/warcraft_shortest_path/maprop.py``,
    ``ShortestPathMAP.backward``, mode ``type == 4`` with ``perturb_w_prime``) solves the *true* weights
    perturbed by the same noise, ``compute_marginals(ctx.true_weights, ctx.eps * temperature_prime)``,
    with λ = 10. With noise on both sides the target spreads over all equal-cost optimal structures, so the
    model learns to find *an* optimal structure, not the labelled one.

    **Privileged information.** Like SPO+ (which uses the true costs), this target needs the true
    parameters θ* of every training instance, not only a label: it is a supervised method for
    predict-then-optimize data where the true costs are observed. Pass them per call:
    ``layer(theta, target_theta=theta_star)``; ``target_theta`` must have ``theta``'s shape, be finite and
    live on ``theta``'s device; it is never passed to the solver and gets no gradient.

    Args:
        step_size: λ > 0, the scale ``1/λ`` of the gradient (the original's ``lambda_val``).

    Example:
        >>> import torch, discograd
        >>> from discograd.targets import KnownTarget
        >>> theta = torch.tensor([[3.0, 2.0, 1.0, 0.0]], requires_grad=True)
        >>> theta_star = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
        >>> layer = discograd.imle(discograd.TopK(2), noise=None, target=KnownTarget(2.0))
        >>> z = layer(theta, target_theta=theta_star)
        >>> (5.0 * z).sum().backward()           # any loss: only MAP(θ) − MAP(θ*) matters
        >>> theta.grad                            # (z − MAP(θ*)) / λ
        tensor([[ 0.5000,  0.5000, -0.5000, -0.5000]])
    """

    #: the layer must be called with ``target_theta=`` (see :class:`~discograd.IMLE`)
    uses_target_theta = True

    #: θ' of a sample depends only on that sample (the backward pass may solve the samples in chunks)
    samplewise = True

    def __init__(self, step_size: float = 1.0) -> None:
        self.step_size = check_step_size(step_size, "step_size")

    def params(self, theta: Tensor, grad_z: Tensor, *, event_dims: int, target_theta: Tensor | None = None) -> TargetParams:
        if target_theta is None:
            raise ValueError("KnownTarget needs the target parameters: call the layer as layer(theta, target_theta=...)")
        # a fresh [S, *theta.shape] tensor (the estimator adds the noise to it in place)
        theta_minus = torch.empty_like(theta, memory_format=torch.contiguous_format)
        theta_minus.copy_(target_theta)
        return TargetParams(theta_minus=theta_minus, theta_plus=None, step_size=self.step_size, two_sided=False)

    def __repr__(self) -> str:
        return f"KnownTarget(step_size={self.step_size})"
