r"""Learning-to-rank losses over a solution pool: pointwise, pairwise and listwise.

Mandi, Bucarey, Mulamba, Guns, "Decision-Focused Learning: Through the Lens of Learning to Rank", ICML 2022,
arXiv:2112.03609: rank the pooled solutions by their objective under the predicted scores so that the order
matches the order under the true scores. Faithful to PyEPO 2.2.7, ``pyepo/func/rank.py``,
``pointwiseLearningToRank`` (``ptLTR``), ``pairwiseLearningToRank`` (``prLTR``) and
``listwiseLearningToRank`` (``lsLTR``), with their defaults (no margin, no temperature, the target
probabilities clamped at ``1e-8``, ``reduction="mean"``).

With the pool :math:`S = \{w_1, \dots, w_N\}`, predicted objectives :math:`s_n = \langle \theta, w_n \rangle`
and true objectives :math:`t_n = \langle \theta^\star, w_n \rangle` (maximisation; per instance):

.. math::

    \text{pointwise:}\quad & \frac{1}{N} \sum_n (t_n - s_n)^2, \\
    \text{pairwise:}\quad & \frac{1}{\max(N - 1, 1)} \sum_n \max(0,\ s_n - s_b), \qquad
        b = \arg\max_n t_n \ \text{(the first among ties)}, \\
    \text{listwise:}\quad & -\sum_n \max\!\big(\mathrm{softmax}(t)_n,\ 10^{-8}\big)\, \log \mathrm{softmax}(s)_n .

Gradients come from autograd through :math:`s`. Pointwise: :math:`\frac{2}{N} \sum_n (s_n - t_n) w_n`;
pairwise: :math:`\frac{1}{\max(N-1,1)} \sum_{n:\, s_n > s_b} (w_n - w_b)`; listwise, with
:math:`q_n = \max(\mathrm{softmax}(t)_n, 10^{-8})` and :math:`p = \mathrm{softmax}(s)`:
:math:`\sum_n (p_n \textstyle\sum_m q_m - q_n)\, w_n`.

**PyEPO's convention.** PyEPO takes the predicted and true costs :math:`\hat c, c` of a minimisation
(``EPO.MINIMIZE``): pointwise ``((c − ĉ)ᵀw)²``, pairwise ``relu(ĉᵀw_b − ĉᵀw_n)`` with ``b = argmin cᵀw``,
listwise ``softmax(−cᵀw)`` against ``log_softmax(−ĉᵀw)``. With :math:`\theta = -\hat c` and
:math:`\theta^\star = -c` these are the formulas above, value for value (for ``EPO.MAXIMIZE`` models take
:math:`\theta = \hat c,\ \theta^\star = c`). PyEPO's ``true_cost`` argument is ``theta_true`` here, and the
gradient with respect to :math:`\hat c` is minus the one with respect to :math:`\theta`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..pool import SolutionPool
from ._common import apply_reduction
from ._pool_common import PoolLoss, check_pair, pool_matrix

__all__ = [
    "ListwiseLTRLoss",
    "PairwiseLTRLoss",
    "PointwiseLTRLoss",
    "listwise_ltr_loss",
    "pairwise_ltr_loss",
    "pointwise_ltr_loss",
]

#: PyEPO's floor on the listwise target probabilities (``.clamp(min=1e-8)`` in ``listwiseLearningToRank``)
LISTWISE_MIN_PROBABILITY = 1e-8


def _objectives(theta: Tensor, theta_true: Tensor, solutions: SolutionPool | Tensor
                ) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """Predicted and true objectives of the pooled solutions, ``[B, N]`` each, and the batch shape."""
    theta_true = check_pair(theta, theta_true, "theta_true")
    w, event_shape = pool_matrix(solutions, theta)
    batch = theta.shape[:theta.dim() - len(event_shape)]
    d = w.shape[1]
    return theta.reshape(-1, d) @ w.T, theta_true.reshape(-1, d) @ w.T, batch


def pointwise_ltr_loss(theta: Tensor, theta_true: Tensor, solutions: SolutionPool | Tensor, *,
                       reduction: str = "mean") -> Tensor:
    r"""Pointwise learning-to-rank loss (Mandi et al., 2022): the mean squared error of the pooled objectives,
    :math:`\frac{1}{N}\sum_n \langle \theta^\star - \theta, w_n \rangle^2` per instance.

    PyEPO: ``pyepo/func/rank.py``, ``pointwiseLearningToRank.forward`` (``θ = −ĉ``, ``θ* = −c``).

    Shapes: ``theta`` and ``theta_true`` are ``[*batch, *event]``; ``solutions`` is a
    :class:`~discograd.pool.SolutionPool` or a ``[N, *event]`` tensor (N >= 1); the result is ``[*batch]``
    for ``reduction="none"``, else a scalar.

    Example:
        >>> import torch
        >>> pool = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
        >>> pointwise_ltr_loss(torch.tensor([1.0, 1.0]), torch.tensor([2.0, 0.0]), pool).item()  # (1² + 0²) / 2
        0.5
    """
    predicted, true, batch = _objectives(theta, theta_true, solutions)
    return apply_reduction((true - predicted).square().mean(dim=1).reshape(batch), reduction)


def pairwise_ltr_loss(theta: Tensor, theta_true: Tensor, solutions: SolutionPool | Tensor, *,
                      reduction: str = "mean") -> Tensor:
    r"""Pairwise learning-to-rank loss (Mandi et al., 2022) as PyEPO implements it: the best pooled solution
    under the true scores against each other one,
    :math:`\frac{1}{\max(N-1, 1)} \sum_n \max(0, \langle \theta, w_n - w_b \rangle)` with
    :math:`b = \arg\max_n \langle \theta^\star, w_n \rangle` (the first among ties).

    PyEPO: ``pyepo/func/rank.py``, ``pairwiseLearningToRank.forward`` (``θ = −ĉ``, ``θ* = −c``; PyEPO's
    ``argmin cᵀw`` is this ``argmax``). The paper's pairwise loss compares all ordered pairs; PyEPO's (and
    this) keeps the pairs with the true best. Shapes as :func:`pointwise_ltr_loss`.

    Example:
        >>> import torch
        >>> pool = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
        >>> # true best: w_0; predicted objectives 1, 3, 2 -> (0 + 2 + 1) / 2
        >>> pairwise_ltr_loss(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 0.0]), pool).item()
        1.5
    """
    predicted, true, batch = _objectives(theta, theta_true, solutions)
    best = true.argmax(dim=1, keepdim=True)
    difference = predicted - predicted.gather(1, best)
    return apply_reduction((F.relu(difference).sum(dim=1) / max(predicted.shape[1] - 1, 1)).reshape(batch),
                           reduction)


def listwise_ltr_loss(theta: Tensor, theta_true: Tensor, solutions: SolutionPool | Tensor, *,
                      reduction: str = "mean") -> Tensor:
    r"""Listwise learning-to-rank loss (Mandi et al., 2022): the cross-entropy between the softmax of the
    true pooled objectives and that of the predicted ones,
    :math:`-\sum_n \max(\mathrm{softmax}(t)_n, 10^{-8}) \log \mathrm{softmax}(s)_n` with
    :math:`s_n = \langle \theta, w_n \rangle`, :math:`t_n = \langle \theta^\star, w_n \rangle`.

    PyEPO: ``pyepo/func/rank.py``, ``listwiseLearningToRank.forward`` (``θ = −ĉ``, ``θ* = −c``), including its
    clamp of the target probabilities at ``1e-8`` (so they may sum to slightly more than 1). Smooth in
    ``theta``. Shapes as :func:`pointwise_ltr_loss`.

    Example:
        >>> import torch
        >>> pool = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> round(listwise_ltr_loss(torch.zeros(2), torch.zeros(2), pool).item(), 6)   # log 2
        0.693147
    """
    predicted, true, batch = _objectives(theta, theta_true, solutions)
    target = F.softmax(true, dim=1).clamp(min=LISTWISE_MIN_PROBABILITY)
    return apply_reduction(-(F.log_softmax(predicted, dim=1) * target).sum(dim=1).reshape(batch), reduction)


class _RankingLoss(PoolLoss):
    _loss: Callable[..., Tensor]

    def __init__(self, solver: Callable[..., Tensor] | None, pool: SolutionPool, *, solve_ratio: float = 1.0,
                 reduction: str = "mean", generator: torch.Generator | None = None) -> None:
        super().__init__(solver, pool, solve_ratio=solve_ratio, reduction=reduction, generator=generator)

    def forward(self, theta: Tensor, theta_true: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        self.refresh(theta, args, kwargs)
        return type(self)._loss(theta, theta_true, self.pool, reduction=self.reduction)


class PointwiseLTRLoss(_RankingLoss):
    r"""The pointwise loss (:func:`pointwise_ltr_loss`) with its pool refreshed by the solver, as PyEPO's
    ``ptLTR`` (``pointwiseLearningToRank``).

    ``loss(theta, theta_true, *args, **kwargs)``: in training mode, with probability ``solve_ratio`` per call
    (PyEPO's ``optModule._refresh_solution_pool``), ``MAP(theta)`` is solved for the batch and joins the pool
    before the loss is computed over the whole pool; in evaluation mode the pool is left unchanged.

    Args:
        solver: the MAP solver maximising ``<θ, z>`` (``None`` for a fixed pool, with ``solve_ratio=0``).
        pool: the :class:`~discograd.pool.SolutionPool` (PyEPO starts it from the training set's optimal
            solutions); saved in this module's ``state_dict``.
        solve_ratio: probability of refreshing the pool on a call (PyEPO's default 1.0).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        generator: ``torch.Generator`` for the refresh draws.

    Example:
        >>> import torch, discograd
        >>> from discograd.pool import SolutionPool
        >>> loss = PointwiseLTRLoss(None, SolutionPool(2, torch.tensor([[1.0, 0.0], [1.0, 1.0]])), solve_ratio=0)
        >>> loss(torch.tensor([1.0, 1.0]), torch.tensor([2.0, 0.0])).item()
        0.5
    """

    _loss = staticmethod(pointwise_ltr_loss)


class PairwiseLTRLoss(_RankingLoss):
    r"""The pairwise loss (:func:`pairwise_ltr_loss`) with its pool refreshed by the solver, as PyEPO's
    ``prLTR`` (``pairwiseLearningToRank``). Arguments and pool semantics as :class:`PointwiseLTRLoss`.

    Example:
        >>> import torch, discograd
        >>> from discograd.pool import SolutionPool
        >>> loss = PairwiseLTRLoss(discograd.Argmax(), SolutionPool(2, torch.tensor([[1.0, 0.0]])))
        >>> loss(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 0.0])).item()   # e_1 joins: relu(3 - 1) / 1
        2.0
    """

    _loss = staticmethod(pairwise_ltr_loss)


class ListwiseLTRLoss(_RankingLoss):
    r"""The listwise loss (:func:`listwise_ltr_loss`) with its pool refreshed by the solver, as PyEPO's
    ``lsLTR`` (``listwiseLearningToRank``). Arguments and pool semantics as :class:`PointwiseLTRLoss`.

    Example:
        >>> import torch, discograd
        >>> from discograd.pool import SolutionPool
        >>> loss = ListwiseLTRLoss(discograd.Argmax(), SolutionPool(2, torch.tensor([[1.0, 0.0]])))
        >>> value = loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]]))   # e_1 joins the pool
        >>> q, p = torch.tensor([1.0, 0.0]).softmax(0), torch.tensor([0.0, 1.0]).softmax(0)
        >>> bool(torch.isclose(value, -(q * p.log()).sum()))
        True
    """

    _loss = staticmethod(listwise_ltr_loss)
