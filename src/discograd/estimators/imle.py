r"""Implicit Maximum Likelihood Estimation (I-MLE) as a PyTorch autograd op.

Niepert, Minervini, Franceschi, "Implicit MLE: Backpropagating Through Discrete Exponential Family
Distributions", NeurIPS 2021, arXiv:2106.01798; AIMLE: Minervini, Franceschi, Niepert, AAAI 2023,
arXiv:2209.04862.

Forward: ``z_s = MAP(θ + τ ε_s)`` with ``ε_s ~ ρ`` (perturb-and-MAP). Backward, for the upstream
gradient ``g_s = ∂L/∂z_s`` and a target distribution with parameters ``θ'``:

.. math::

    \nabla_\theta L \approx \sum_s \frac{1}{\lambda}\big[ z_s - \mathrm{MAP}(\theta' + \tau' \varepsilon_s) \big],
    \qquad \theta' = \theta - \lambda g_s,

with the **same** noise ``ε_s`` on both sides. The sum over samples is the chain rule: a loss that
averages over the sample dimension gets the average.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .._validation import check_finite, check_non_negative, check_theta
from ..noise import NoiseDistribution
from ..targets import PerturbedTarget, Target
from ..targets.base import instance_norm
from ._base import DEFAULT_NOISE, PerturbAndMAP, layer_or_decorator
from ._batching import solve_samples

__all__ = ["CHUNK_ELEMENTS", "IMLE", "imle", "ZERO_GRADIENT_PASSES"]

#: how many all-zero backward passes at the start of training make :class:`IMLE` warn (``warn_zero_gradient``)
ZERO_GRADIENT_PASSES = 10



class _IMLEFunction(torch.autograd.Function):
    """z = MAP(θ + τ ε) forward; the I-MLE difference of MAP states backward."""

    @staticmethod
    def forward(ctx, theta: Tensor, eps: Tensor | None, layer: "IMLE", args: tuple, kwargs: dict,
                target_theta: Tensor | None, noise_state: Tensor | None = None) -> Tensor:
        num_samples = layer.num_samples
        z = layer.perturb_and_solve(theta, eps, args, kwargs)
        ctx.layer = layer
        ctx.args = args
        ctx.kwargs = kwargs
        ctx.has_eps = eps is not None and noise_state is None
        ctx.noise_state = noise_state  # recompute_noise: the generator's state before ε was drawn
        ctx.has_target_theta = target_theta is not None
        empty = theta.new_empty(0)
        ctx.save_for_backward(theta.detach(), eps if ctx.has_eps else empty, z,
                              target_theta if target_theta is not None else empty)
        return z if num_samples is not None else z[0]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor | None, None, None, None, None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None, None, None
        layer: IMLE = ctx.layer
        theta, eps, z, target_theta = ctx.saved_tensors
        if ctx.noise_state is not None:
            # draw ε again, from the generator state the forward drew it from, each time it is needed: it is
            # then never alive next to the target's θ' and the solver's output at once
            noise_state = ctx.noise_state

            def eps() -> Tensor:
                replay = torch.Generator(device=layer.generator.device)
                replay.set_state(noise_state)
                return layer.sample_noise(theta, generator=replay)
        else:
            eps = eps if ctx.has_eps else None
        target_theta = target_theta if ctx.has_target_theta else None
        num_samples = layer.num_samples
        grad_z = grad_output if num_samples is not None else grad_output.unsqueeze(0)
        check_finite(grad_z, "the gradient of the loss with respect to z", hint=": check the loss")
        gradient, nonzero = summed_imle_gradient(
            layer.solver,
            theta,
            z,
            grad_z,
            eps,
            layer.target,
            args=ctx.args,
            kwargs=ctx.kwargs,
            num_samples=num_samples,
            target_temperature=layer.target_temperature,
            scale_by_step_size=layer.scale_by_step_size,
            event_dims=layer.event_dims,
            target_theta=target_theta,
            noise_temperature=layer.temperature,
        )
        if layer.warn_zero_gradient and layer._zero_backward_passes is not None:
            layer._count_zero_gradient(nonzero, grad_z)
        return gradient, None, None, None, None, None, None


def imle_gradient(
    solver: Callable[..., Tensor],
    theta: Tensor,
    z: Tensor,
    grad_z: Tensor,
    eps: Tensor | Callable[[], Tensor] | None,
    target: Target,
    *,
    args: tuple = (),
    kwargs: dict | None = None,
    num_samples: int | None = None,
    target_temperature: float = 1.0,
    scale_by_step_size: bool = True,
    event_dims: int = 1,
    target_theta: Tensor | None = None,
    noise_temperature: float = 1.0,
    noise_norm: Tensor | None = None,
    observe: bool = True,
) -> Tensor:
    """The per-sample I-MLE gradient ``[S, *theta.shape]`` (before the sum over samples).

    ``z`` and ``grad_z`` have shape ``[S, *theta.shape]``; ``eps`` too, or ``None`` for no noise, or a
    function returning a fresh copy of it (called each time the noise is needed, so that it is not kept).
    ``target_theta`` (``theta``'s shape) goes to targets that use it (:class:`~discograd.targets.KnownTarget`).
    Targets with ``uses_noise_norm = True`` (:class:`~discograd.targets.AdaptiveTarget`) also get
    ``noise_norm``: the per-instance norm ``‖τ ε_s‖`` of the forward perturbation (``noise_temperature`` is τ),
    shape ``[S, *batch, 1, ..., 1]``, or ``None`` without noise (computed here unless given). ``observe=False``
    does not pass the gradient to the target's ``observe`` (the caller does, e.g. once for all chunks).
    Exposed for estimators built on I-MLE and for tests; :class:`IMLE` is the user-facing op.
    """
    kwargs = {} if kwargs is None else kwargs
    theta_s = theta.unsqueeze(0).expand_as(grad_z)
    extra: dict[str, Any] = {}
    if target_theta is not None:
        extra["target_theta"] = target_theta
    def noise() -> Tensor:
        return eps() if callable(eps) else eps

    if getattr(target, "uses_noise_norm", False):
        if noise_norm is not None:
            extra["noise_norm"] = noise_norm
        else:
            extra["noise_norm"] = None if eps is None else instance_norm(noise(), event_dims).mul_(noise_temperature)
    params = target.params(theta_s, grad_z, event_dims=event_dims, **extra)

    def solve(x: Tensor) -> Tensor:
        # x is a fresh tensor from the target (TargetParams' contract), so the noise is added in place
        if eps is not None and target_temperature != 0.0:
            x.add_(noise(), alpha=target_temperature)
        return solve_samples(solver, x, args, kwargs, num_samples=num_samples, event_dims=event_dims)

    # drop each target-side buffer as soon as it has been solved, and reuse z_minus for the difference
    # (the saved forward sample z is never modified): peak memory stays a few times the noise tensor
    theta_plus, two_sided, lam = params.theta_plus, params.two_sided, params.step_size
    z_minus = solve(params.theta_minus)
    del params
    if theta_plus is None:
        gradient = torch.sub(z, z_minus, out=z_minus) if z_minus.is_contiguous() else z - z_minus
    else:
        z_plus = solve(theta_plus)
        del theta_plus
        gradient = z_plus.sub_(z_minus)
    del z_minus
    if two_sided:
        gradient.mul_(0.5)
    if isinstance(lam, Tensor):
        nonzero = lam != 0
        if scale_by_step_size:
            gradient.div_(torch.where(nonzero, lam, torch.ones_like(lam)))
        gradient.mul_(nonzero)
    elif scale_by_step_size and lam != 1.0:
        gradient.div_(lam)
    update = getattr(target, "observe", None) if observe else None
    if update is not None:
        update(gradient, event_dims=event_dims)
    return gradient


#: the target-side solves of the backward pass go in chunks of samples of about this many elements when the
#: ``[S, *theta.shape]`` tensors are larger (peak memory: the forward sample, the upstream gradient and the
#: noise, plus two chunks, instead of two more full-size tensors)
CHUNK_ELEMENTS = 1 << 21


def _sample_chunk(grad_z: Tensor, target: Any, num_samples: int | None) -> int | None:
    """Samples per chunk of the target-side solves, or ``None`` to solve all samples in one call."""
    if num_samples is None or grad_z.shape[0] < 2 or not getattr(target, "samplewise", False):
        return None
    if getattr(target, "observe", None) is not None and getattr(target, "observe_counts", None) is None:
        return None  # a stateful target that needs the whole per-sample gradient at once
    per_sample = grad_z[0].numel()
    chunk = max(1, CHUNK_ELEMENTS // max(per_sample, 1))
    return chunk if chunk < grad_z.shape[0] else None


def summed_imle_gradient(
    solver: Callable[..., Tensor],
    theta: Tensor,
    z: Tensor,
    grad_z: Tensor,
    eps: Tensor | Callable[[], Tensor] | None,
    target: Target,
    **options: Any,
) -> tuple[Tensor, bool]:
    """The I-MLE gradient summed over samples (``theta``'s shape) and whether any per-sample entry was
    non-zero; arguments as :func:`imle_gradient`.

    Large problems (``[S, *theta.shape]`` above :data:`CHUNK_ELEMENTS`, targets that act sample by sample,
    which every target of discograd does except ``AdaptiveTarget(norm="batch")``) solve the target side in
    chunks of samples, so that only two chunk-sized tensors join the forward sample, the upstream gradient
    and the noise at the peak; the result is the one of a single call (each instance is solved on its own).
    """
    chunk = _sample_chunk(grad_z, target, options.get("num_samples"))
    if chunk is None:
        gradient = imle_gradient(solver, theta, z, grad_z, eps, target, **options)
        return gradient.sum(0), bool(gradient.any())
    noise = eps() if callable(eps) else eps  # drawn once (recompute_noise), then sliced
    event_dims = options.get("event_dims", 1)
    noise_norm = None
    if getattr(target, "uses_noise_norm", False) and noise is not None:
        noise_norm = instance_norm(noise, event_dims).mul_(options.get("noise_temperature", 1.0))
    counts = [] if getattr(target, "observe_counts", None) is not None else None
    total: Tensor | None = None
    nonzero = False
    chunk_options = {**options, "observe": False}
    for lo in range(0, grad_z.shape[0], chunk):
        hi = min(grad_z.shape[0], lo + chunk)
        part = imle_gradient(solver, theta, z[lo:hi], grad_z[lo:hi], None if noise is None else noise[lo:hi],
                             target, **{**chunk_options, "num_samples": hi - lo},
                             noise_norm=None if noise_norm is None else noise_norm[lo:hi])
        if counts is not None:
            counts.append(target.nonzero_counts(part, event_dims=event_dims))
        nonzero = nonzero or bool(part.any())
        total = part.sum(0) if total is None else total.add_(part.sum(0))
        del part
    if counts is not None:
        target.observe_counts(torch.cat(counts))
    return total, nonzero


class IMLE(PerturbAndMAP):
    r"""A solver turned into a differentiable layer with I-MLE gradients.

    ``layer(theta, *args, **kwargs)`` returns ``z = MAP(θ + τ ε)`` (one sample with ``theta``'s shape
    when ``num_samples`` is ``None``; ``[S, *theta.shape]`` with ``num_samples=S``). Extra arguments go
    to the solver and get no gradient; wrap per-instance tensors with :func:`discograd.per_instance`.
    The keyword ``target_theta`` is the layer's own (never passed to the solver): the known target
    parameters θ* of :class:`~discograd.targets.KnownTarget`, of ``theta``'s shape.

    Args:
        solver: any callable ``solver(theta, *args, **kwargs)`` maximising ``<θ, z>`` over a batch (see
            :mod:`discograd.solvers`). Its ``event_dims`` attribute (default 1) says how many trailing
            dimensions form one instance.
        noise: the perturbation ρ (anything with ``sample(shape, *, generator, device, dtype)``);
            ``None`` for no noise (I-MLE "MAP-MAP"). Default :class:`~discograd.noise.Gumbel`; use
            :class:`~discograd.noise.SumOfGamma` for structures with exactly ``k`` ones.
        target: the target distribution (:class:`~discograd.targets.PerturbedTarget` by default, λ = 1;
            :class:`~discograd.targets.AdaptiveTarget` for AIMLE).
        num_samples: S, or ``None`` for one sample and no sample dimension.
        temperature: τ, multiplies the forward noise.
        target_temperature: τ', multiplies the same noise on the target side; ``None`` = ``temperature``.
        scale_by_step_size: divide by λ (the paper's estimator ``(1/λ)[z − MAP(θ')]``, the default); ``False`` drops the
            factor, the convention of the original torch-imle code (the learning rate absorbs it).
        generator: the ``torch.Generator`` for the noise (on ``theta``'s device); ``None`` uses torch's
            default generator.
        event_dims: overrides ``solver.event_dims``.
        warn_zero_gradient: warn (once per layer) when the first
            :data:`ZERO_GRADIENT_PASSES` backward passes of a layer with a
            :class:`~discograd.targets.PerturbedTarget` all returned an all-zero gradient although the loss's
            gradient was not zero: λ·g then moves no MAP state, typically because a loss averaged over many
            entries made ``g`` tiny. ``False`` silences it.
        recompute_noise: keep only the generator's state from the forward pass and draw ε again in the
            backward pass instead of keeping the ``[S, *theta.shape]`` noise tensor alive between them (less
            memory, one more noise draw; the gradients are identical). Needs ``generator``, and a noise
            object whose draws depend only on the generator's state (all of discograd's do).

    Shapes: ``theta`` is ``[*batch, *event]``; the noise has shape ``[S, *theta.shape]`` and is
    sampled on ``theta``'s device in ``theta``'s dtype. The solver is called once per pass on all
    samples together (sample-major ``[S * B, ...]``), twice in the backward pass when two-sided.

    Example:
        >>> import torch, discograd
        >>> from discograd.noise import SumOfGamma
        >>> layer = discograd.imle(discograd.solvers.TopK(2), noise=SumOfGamma(k=2), num_samples=8,
        ...                        generator=torch.Generator().manual_seed(0))
        >>> theta = torch.tensor([[3.0, 1.0, 2.0, 0.0]], requires_grad=True)
        >>> z = layer(theta)                       # [8, 1, 4], each row with 2 ones
        >>> (z * torch.tensor([1.0, 0, 0, 0])).mean(0).sum().backward()
        >>> theta.grad.shape
        torch.Size([1, 4])
    """

    def __init__(
        self,
        solver: Callable[..., Tensor],
        *,
        noise: NoiseDistribution | None = DEFAULT_NOISE,
        target: Target | None = None,
        num_samples: int | None = None,
        temperature: float = 1.0,
        target_temperature: float | None = None,
        scale_by_step_size: bool = True,
        generator: torch.Generator | None = None,
        event_dims: int | None = None,
        warn_zero_gradient: bool = True,
        recompute_noise: bool = False,
    ) -> None:
        super().__init__(solver, noise=noise, num_samples=num_samples, temperature=temperature,
                         generator=generator, event_dims=event_dims)
        if not isinstance(recompute_noise, bool):
            raise TypeError(f"recompute_noise must be a bool; got {type(recompute_noise).__name__}")
        if recompute_noise and generator is None:
            raise ValueError("recompute_noise=True needs a generator (the backward pass redraws the noise from the "
                             "generator's state at the forward pass): pass generator=torch.Generator()...")
        self.recompute_noise = recompute_noise
        target = PerturbedTarget() if target is None else target
        if not callable(getattr(target, "params", None)):
            raise TypeError(f"target must have a params(theta, grad_z, *, event_dims) method; got {type(target).__name__}")
        if not isinstance(scale_by_step_size, bool):
            raise TypeError(f"scale_by_step_size must be a bool; got {type(scale_by_step_size).__name__}")
        self.target = target
        self.target_temperature = (
            self.temperature if target_temperature is None else check_non_negative(target_temperature, "target_temperature")
        )
        self.scale_by_step_size = scale_by_step_size
        if not isinstance(warn_zero_gradient, bool):
            raise TypeError(f"warn_zero_gradient must be a bool; got {type(warn_zero_gradient).__name__}")
        self.warn_zero_gradient = warn_zero_gradient
        # backward passes so far that all returned zero; None once a non-zero gradient was seen or the warning
        # was given (only targets whose zero gradient signals a too-small step are watched)
        self._zero_backward_passes: int | None = 0 if isinstance(target, PerturbedTarget) else None

    def _count_zero_gradient(self, nonzero: bool, grad_z: Tensor) -> None:
        if nonzero:
            self._zero_backward_passes = None  # it learns: stop watching
            return
        if not bool(grad_z.any()):
            return  # nothing asked for a change: this pass does not count
        self._zero_backward_passes += 1
        if self._zero_backward_passes >= ZERO_GRADIENT_PASSES:
            self._zero_backward_passes = None
            warnings.warn(
                f"I-MLE: the first {ZERO_GRADIENT_PASSES} backward passes of this layer all returned a zero gradient "
                f"although the loss's gradient g was not zero: theta - step_size * g (step_size = "
                f"{self.target.step_size:g}) changed no MAP state. A loss averaged over many entries makes g small: "
                "sum the loss instead, raise step_size, or use AdaptiveTarget (lambda relative to |theta|/|g|). "
                "Pass warn_zero_gradient=False to silence this warning.", UserWarning, stacklevel=2)

    def forward(self, theta: Tensor, *args: Any, target_theta: Tensor | None = None, **kwargs: Any) -> Tensor:
        check_theta(theta, "theta", min_dim=max(1, self.event_dims))
        target_theta = self._check_target_theta(theta, target_theta)
        state = self.generator.get_state() if self.recompute_noise and self.noise is not None else None
        eps = self.sample_noise(theta)
        return _IMLEFunction.apply(theta, eps, self, args, kwargs, target_theta, state)

    def _check_target_theta(self, theta: Tensor, target_theta: Tensor | None) -> Tensor | None:
        uses = bool(getattr(self.target, "uses_target_theta", False))
        name = type(self.target).__name__
        if target_theta is None:
            if uses:
                raise ValueError(f"target {name} needs the target parameters: call the layer as "
                                 f"layer(theta, target_theta=theta_star) with theta_star of theta's shape {tuple(theta.shape)}")
            return None
        if not uses:
            raise ValueError(f"target_theta is only used by targets with known parameters (KnownTarget); target "
                             f"{name} would ignore it: drop target_theta or use target=KnownTarget(...)")
        check_theta(target_theta, "target_theta", min_dim=0)
        if target_theta.shape != theta.shape:
            raise ValueError(f"target_theta must have theta's shape {tuple(theta.shape)}; got {tuple(target_theta.shape)}")
        if target_theta.device != theta.device:
            raise ValueError(f"target_theta must be on theta's device {theta.device}; got {target_theta.device}")
        return target_theta.detach().to(theta.dtype)

    # the target's state (e.g. AIMLE's β) travels with the module's state_dict
    def get_extra_state(self) -> Any:
        state_dict = getattr(self.target, "state_dict", None)
        return {"target": state_dict()} if callable(state_dict) else {}

    def set_extra_state(self, state: Any) -> None:
        if state and "target" in state:
            self.target.load_state_dict(state["target"])

    def extra_repr(self) -> str:
        return (
            f"{self._base_repr()}, target={self.target!r}, target_temperature={self.target_temperature}, "
            f"scale_by_step_size={self.scale_by_step_size}"
        )


def imle(solver: Callable[..., Tensor] | None = None, /, **options: Any) -> IMLE | Callable[[Callable[..., Tensor]], IMLE]:
    """Make an I-MLE layer from a solver; also a decorator.

    ``discograd.imle(solver, noise=..., target=..., num_samples=None, temperature=1.0,
    target_temperature=None, scale_by_step_size=True, generator=None)`` returns an :class:`IMLE` layer.
    Used as ``@discograd.imle(noise=...)`` above a solver function, it turns that function into the layer.

    Example:
        >>> import torch, discograd
        >>> @discograd.imle(num_samples=4)
        ... def one_hot_argmax(theta):
        ...     return torch.nn.functional.one_hot(theta.argmax(-1), theta.shape[-1]).to(theta.dtype)
        >>> one_hot_argmax(torch.randn(2, 5)).shape
        torch.Size([4, 2, 5])
    """
    return layer_or_decorator(IMLE, solver, options)
