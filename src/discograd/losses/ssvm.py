r"""The structured SVM loss (structured hinge loss) with loss-augmented decoding through the solver.

Tsochantaridis, Joachims, Hofmann, Altun, "Large Margin Methods for Structured and Interdependent Output
Variables", JMLR 2005; Nowozin & Lampert, "Structured Learning and Prediction in Computer Vision", 2011,
Chapter 6. The form and the defaults follow InferOpt.jl's ``StructuredSVMLoss``
(``src/imitation/ssvm_loss.jl``, ``prediction_and_loss`` and its ``rrule``):

    ℓ(θ, y) = max_z { Δ(z, y) + α <θ, z − y> },    subgradient  α (ẑ − y),  ẑ = the maximiser.

``ℓ ≥ 0`` when ``y`` is feasible (take ``z = y``), and ``ℓ ≥ Δ(MAP(θ), y)``: the loss upper-bounds the
base loss of the prediction, and is 0 exactly when ``y`` beats every other structure by a margin of
``Δ(z, y) / α``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .._validation import check_int, check_positive, check_theta
from ..estimators._batching import solve_samples
from ..solvers.base import event_dims_of
from ._common import apply_reduction, check_reduction, check_same_shape, event_sum

__all__ = ["BASE_LOSSES", "StructuredSVMLoss", "structured_svm_loss"]

#: the base losses Δ whose loss-augmented decoding is one exact solver call
BASE_LOSSES = ("hamming", "zero_one")


def _event_size(x: Tensor, event_dims: int) -> int:
    size = 1
    for d in x.shape[x.dim() - event_dims:]:
        size *= d
    return size


def _check_one_hot(z: Tensor, event_dims: int, name: str) -> None:
    flat = z.reshape(*z.shape[:z.dim() - event_dims], -1) if event_dims else z.unsqueeze(-1)
    binary = bool(((flat == 0) | (flat == 1)).all())
    if not binary or not bool((flat.sum(-1) == 1).all()):
        raise ValueError(
            f"{name} must be one-hot over its last {event_dims} dimension(s) (one 1, the rest 0) with "
            "base_loss='zero_one': its loss-augmented decoding is exact only over one-hot structures, where the "
            "0-1 loss is half the Hamming distance (a solver such as Argmax); use base_loss='hamming' otherwise"
        )


class _StructuredSVMFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta: Tensor, z_true: Tensor, loss: StructuredSVMLoss, args: tuple, kwargs: dict) -> Tensor:
        event_dims = loss.event_dims
        theta = theta.detach()
        alpha = loss.score_scale
        if loss.base_loss == "zero_one":
            scale = 0.5  # on one-hot vectors, 1[z ≠ y] = Hamming(z, y) / 2
        else:
            scale = 1.0 / _event_size(theta, event_dims) if loss.normalize else 1.0
        # Δ_H(z, y) = <1 − 2y, z> + <1, y> is linear in z: argmax_z Δ + α<θ, z> = MAP(αθ + s(1 − 2y))
        augmented = alpha * theta + scale * (1 - 2 * z_true)
        z_hat = solve_samples(loss.solver, augmented.unsqueeze(0), args, kwargs, num_samples=None,
                              event_dims=event_dims)[0]
        if loss.base_loss == "zero_one":
            _check_one_hot(z_hat, event_dims, "the solution of the loss-augmented problem")
        delta = scale * event_sum(z_hat * (1 - z_true) + (1 - z_hat) * z_true, event_dims)
        value = delta + alpha * (event_sum(theta * z_hat, event_dims) - event_sum(theta * z_true, event_dims))
        ctx.save_for_backward(alpha * (z_hat - z_true))
        ctx.event_dims = event_dims
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None, None, None]:
        (subgradient,) = ctx.saved_tensors
        g = grad_output.reshape(*grad_output.shape, *([1] * ctx.event_dims))
        return g * subgradient, None, None, None, None


class StructuredSVMLoss(torch.nn.Module):
    r"""Structured SVM (structured hinge) loss ``ℓ(θ, y) = max_z {Δ(z, y) + α <θ, z − y>}``.

    InferOpt.jl's ``StructuredSVMLoss`` (``src/imitation/ssvm_loss.jl``) in discograd's maximisation
    convention (θ = −cost). The loss-augmented problem ``max_z {Δ(z, y) + α<θ, z>}`` is solved **exactly
    by one solver call** for the base losses offered:

    - ``base_loss="hamming"`` (the default): ``Δ(z, y) = s Σ_i [z_i (1 − y_i) + (1 − z_i) y_i]``, the
      number of differing entries for 0/1 vectors (``s = 1``) or their fraction (``normalize=True``,
      ``s = 1 / event size``, as :func:`~discograd.losses.hamming_loss`). It is linear in ``z``, so
      ``ẑ = MAP(αθ + s(1 − 2y))``.
    - ``base_loss="zero_one"``: ``Δ(z, y) = 1[z ≠ y]`` (InferOpt's ``zero_one_loss``, its shipped base loss,
      for multiclass). Over one-hot structures it is half the Hamming distance, so ``ẑ = MAP(αθ + (1 − 2y)/2)``
      is exact; ``y`` and ``ẑ`` must be one-hot (``ValueError`` otherwise; use it with
      :class:`~discograd.Argmax`). InferOpt's ``zero_one_loss_maximizer`` returns ``y`` whenever
      ``argmax θ`` is the true class, which gives 0 where the exact maximum is
      ``1 − α(θ_y − max_{j≠y} θ_j) > 0`` (a correct prediction with a margin below ``1/α``); ours is the
      exact maximum (the Crammer-Singer multiclass hinge loss for ``α = 1``).

    The value is ``Δ(ẑ, y) + α(<θ, ẑ> − <θ, y>)`` per instance; the gradient in θ is ``α(ẑ − y)``
    (a subgradient; ``y`` gets none). ``y`` should be feasible (then ``ℓ ≥ 0``).

    Args:
        solver: a batched MAP oracle over the feasible set (see :mod:`discograd.solvers`).
        base_loss: ``"hamming"`` or ``"zero_one"`` (above).
        score_scale: α > 0, the weight of the scores against the base loss (InferOpt's ``α``, default 1).
        normalize: divide the Hamming distance by the event size (``base_loss="hamming"`` only).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` over the per-instance values.
        event_dims: the number of event dimensions (default: the solver's).

    Shapes: ``theta`` and ``z_true`` ``[*batch, *event]``; per-instance values ``[*batch]`` before the
    reduction. Extra arguments of ``loss(theta, z_true, *args, **kwargs)`` go to the solver.

    Example:
        >>> import torch, discograd
        >>> loss = discograd.losses.StructuredSVMLoss(discograd.Argmax(), base_loss="zero_one")
        >>> theta = torch.tensor([1.0, 0.9, -1.0], requires_grad=True)
        >>> value = loss(theta, torch.tensor([1.0, 0.0, 0.0]))   # right, but with a margin 0.1 < 1
        >>> round(value.item(), 4)                                # 1 + (0.9 − 1.0)
        0.9
        >>> value.backward()
        >>> theta.grad                                            # ẑ − y: raise θ_0, lower θ_1
        tensor([-1.,  1.,  0.])
    """

    def __init__(self, solver: Callable[..., Tensor], *, base_loss: str = "hamming", score_scale: float = 1.0,
                 normalize: bool = False, reduction: str = "mean", event_dims: int | None = None) -> None:
        super().__init__()
        if not callable(solver):
            raise TypeError(f"solver must be callable as solver(theta, *args, **kwargs); got {type(solver).__name__}")
        if not isinstance(base_loss, str) or base_loss not in BASE_LOSSES:
            raise ValueError(f"base_loss must be one of {BASE_LOSSES}; got {base_loss!r}")
        if not isinstance(normalize, bool):
            raise TypeError(f"normalize must be a bool; got {type(normalize).__name__}")
        if normalize and base_loss != "hamming":
            raise ValueError(f"normalize=True applies to base_loss='hamming' only; got base_loss={base_loss!r}")
        self.solver = solver
        self.base_loss = base_loss
        self.score_scale = check_positive(score_scale, "score_scale")
        self.normalize = normalize
        self.reduction = check_reduction(reduction)
        self.event_dims = (event_dims_of(solver) if event_dims is None
                           else check_int(event_dims, "event_dims", minimum=0))

    def forward(self, theta: Tensor, z_true: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        check_theta(theta, "theta", min_dim=max(1, self.event_dims))
        check_theta(z_true, "z_true")
        check_same_shape(theta, z_true, "theta", "z_true")
        z_true = z_true.detach().to(theta.dtype)
        if self.base_loss == "zero_one":
            _check_one_hot(z_true, self.event_dims, "z_true")
        values = _StructuredSVMFunction.apply(theta, z_true, self, args, kwargs)
        return apply_reduction(values, self.reduction)

    def extra_repr(self) -> str:
        return (f"solver={self.solver!r}, base_loss={self.base_loss!r}, score_scale={self.score_scale}, "
                f"normalize={self.normalize}, reduction={self.reduction!r}")


def structured_svm_loss(theta: Tensor, z_true: Tensor, *, solver: Callable[..., Tensor], base_loss: str = "hamming",
                        score_scale: float = 1.0, normalize: bool = False, reduction: str = "mean",
                        solver_args: tuple = (), solver_kwargs: dict[str, Any] | None = None) -> Tensor:
    """Functional form of :class:`StructuredSVMLoss`; ``solver_args`` / ``solver_kwargs`` go to the solver.

    Example:
        >>> import torch, discograd
        >>> theta = torch.tensor([[2.0, 1.0, 0.0, -0.5]])
        >>> z_true = torch.tensor([[0.0, 1.0, 1.0, 0.0]])       # the true top-2
        >>> structured_svm_loss(theta, z_true, solver=discograd.TopK(2))   # ẑ = MAP(θ + 1 − 2y) = [1, 0, 0, 1]
        tensor(4.5000)
    """
    return StructuredSVMLoss(solver, base_loss=base_loss, score_scale=score_scale, normalize=normalize,
                             reduction=reduction)(theta, z_true, *solver_args, **(solver_kwargs or {}))
