r"""Contrastive losses over a solution pool: NCE and CMAP.

Mulamba, Mandi, Diligenti, Lombardi, Bucarey, Guns, "Contrastive Losses and Solution Caching for
Predict-and-Optimize", IJCAI 2021, arXiv:2011.05354, Sections 3-4 (the self-contrastive NCE loss and its
MAP variant). Faithful to PyEPO 2.2.7, ``pyepo/func/contrastive.py``, ``noiseContrastiveEstimation``
(alias ``NCE``) and ``contrastiveMAP`` (alias ``CMAP``).

With the pool :math:`S = \{w_1, \dots, w_N\}` and the true optimum :math:`z^\star` of an instance, in
discograd's maximisation convention (scores :math:`\theta`):

.. math::

    \mathrm{NCE}(\theta) = \frac{1}{N} \sum_{n=1}^{N} \langle \theta, w_n - z^\star \rangle, \qquad
    \mathrm{CMAP}(\theta) = \max_{n} \langle \theta, w_n - z^\star \rangle .

Minimising them raises the score of :math:`z^\star` above those of the pooled solutions (CMAP: above the
best-scoring one, which is :math:`\ge 0` when :math:`z^\star` is in the pool). The gradients come from autograd
through the linear objective values: :math:`\partial\,\mathrm{NCE}/\partial\theta = \bar w - z^\star` and
:math:`\partial\,\mathrm{CMAP}/\partial\theta = w_{n^\star} - z^\star` with :math:`n^\star` the maximiser
(the first one among ties, ``torch.max``).

**PyEPO's convention.** PyEPO minimises :math:`\hat c^\top w` with the predicted cost :math:`\hat c` and writes
``NCE = mean_n (ĉᵀz* − ĉᵀw_n)`` and ``CMAP = max_n (ĉᵀz* − ĉᵀw_n)`` (``EPO.MINIMIZE``); with
:math:`\theta = -\hat c` these are the formulas above, value for value. For ``EPO.MAXIMIZE`` models PyEPO
uses ``ĉᵀw_n − ĉᵀz*``: take :math:`\theta = \hat c`. The gradient with respect to :math:`\hat c` is minus the
gradient with respect to :math:`\theta` (minimisation). PyEPO's ``true_sol`` argument is ``z_true`` here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..pool import SolutionPool
from ._common import apply_reduction
from ._pool_common import PoolLoss, check_pair, pool_matrix

__all__ = ["CMAPLoss", "NCELoss", "cmap_loss", "nce_loss"]


def _margins(theta: Tensor, z_true: Tensor, solutions: SolutionPool | Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """``<θ, w_n> − <θ, z*>`` as ``[B, N]`` and the batch shape."""
    z_true = check_pair(theta, z_true, "z_true")
    w, event_shape = pool_matrix(solutions, theta)
    batch = theta.shape[:theta.dim() - len(event_shape)]
    flat = theta.reshape(-1, w.shape[1])
    objective_true = (flat * z_true.reshape(-1, w.shape[1])).sum(dim=1, keepdim=True)
    return flat @ w.T - objective_true, batch


def nce_loss(theta: Tensor, z_true: Tensor, solutions: SolutionPool | Tensor, *, reduction: str = "mean") -> Tensor:
    r"""Noise-contrastive estimation loss (Mulamba et al., 2021) over a fixed pool:
    :math:`\frac{1}{N}\sum_n \langle \theta, w_n - z^\star \rangle` per instance.

    PyEPO: ``pyepo/func/contrastive.py``, ``noiseContrastiveEstimation.forward`` (``θ = −ĉ``). Gradient
    ``mean_n w_n − z*`` per instance (times the reduction's weight).

    Shapes: ``theta`` and ``z_true`` are ``[*batch, *event]``; ``solutions`` is a
    :class:`~discograd.pool.SolutionPool` or a ``[N, *event]`` tensor (N >= 1); the result is
    ``[*batch]`` for ``reduction="none"``, else a scalar (``"mean"``: over instances, ``"sum"``).

    Example:
        >>> import torch
        >>> pool = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        >>> theta = torch.tensor([2.0, 1.0, -3.0], requires_grad=True)
        >>> loss = nce_loss(theta, torch.tensor([1.0, 0.0, 0.0]), pool)   # ((2 + 1 - 3) / 3) - 2
        >>> loss.item()
        -2.0
        >>> loss.backward(); theta.grad                                   # mean(w) - z*
        tensor([-0.6667,  0.3333,  0.3333])
    """
    margins, batch = _margins(theta, z_true, solutions)
    return apply_reduction(margins.mean(dim=1).reshape(batch), reduction)


def cmap_loss(theta: Tensor, z_true: Tensor, solutions: SolutionPool | Tensor, *, reduction: str = "mean") -> Tensor:
    r"""Contrastive MAP loss (Mulamba et al., 2021) over a fixed pool:
    :math:`\max_n \langle \theta, w_n - z^\star \rangle` per instance.

    PyEPO: ``pyepo/func/contrastive.py``, ``contrastiveMAP.forward`` (``θ = −ĉ``). Gradient
    ``w_{n*} − z*`` with ``n*`` the best-scoring pooled solution (the first among ties). Shapes as
    :func:`nce_loss`.

    Example:
        >>> import torch
        >>> pool = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> cmap_loss(torch.tensor([[2.0, 3.0, 0.0], [2.0, 1.0, 0.0]]), torch.tensor([[1.0, 0, 0], [1.0, 0, 0]]),
        ...           pool, reduction="none")
        tensor([1., 0.])
    """
    margins, batch = _margins(theta, z_true, solutions)
    return apply_reduction(margins.max(dim=1).values.reshape(batch), reduction)


class NCELoss(PoolLoss):
    r"""The NCE loss (:func:`nce_loss`) with its pool refreshed by the solver, as PyEPO's ``NCE``.

    ``loss(theta, z_true, *args, **kwargs)``: in training mode, with probability ``solve_ratio`` per call,
    ``MAP(theta)`` is solved for the batch (``solver(theta, *args, **kwargs)``) and joins the pool
    (PyEPO: ``optModule._refresh_solution_pool`` in ``pyepo/func/abcmodule.py``, before the loss, so the
    fresh solutions count); then :func:`nce_loss` over the whole pool. In evaluation mode the pool is not
    refreshed.

    Args:
        solver: the MAP solver maximising ``<θ, z>`` (``None`` for a fixed pool, with ``solve_ratio=0``).
        pool: the :class:`~discograd.pool.SolutionPool`, started as PyEPO's from the training set's optimal
            solutions (PyEPO requires ``dataset`` for these losses; here a non-empty pool is needed
            whenever a call does not solve). Saved in this module's ``state_dict``.
        solve_ratio: probability of refreshing the pool on a call (PyEPO's default 1.0: every call).
        reduction: ``"mean"`` (default, PyEPO's), ``"sum"`` or ``"none"``.
        generator: ``torch.Generator`` for the refresh draws.

    Example:
        >>> import torch, discograd
        >>> from discograd.pool import SolutionPool
        >>> solver = discograd.TopK(1)
        >>> z_true = torch.tensor([[1.0, 0.0, 0.0]])
        >>> loss = NCELoss(solver, SolutionPool(3, z_true))       # pool starts from the training optima
        >>> theta = torch.tensor([[0.0, 2.0, 1.0]], requires_grad=True)
        >>> loss(theta, z_true).item(), len(loss.pool)            # MAP(θ) = e_2 joined: (0 + 2) / 2 - 0
        (1.0, 2)
    """

    def __init__(self, solver: Callable[..., Tensor] | None, pool: SolutionPool, *, solve_ratio: float = 1.0,
                 reduction: str = "mean", generator: torch.Generator | None = None) -> None:
        super().__init__(solver, pool, solve_ratio=solve_ratio, reduction=reduction, generator=generator)

    def forward(self, theta: Tensor, z_true: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        self.refresh(theta, args, kwargs)
        return nce_loss(theta, z_true, self.pool, reduction=self.reduction)


class CMAPLoss(PoolLoss):
    r"""The contrastive MAP loss (:func:`cmap_loss`) with its pool refreshed by the solver, as PyEPO's
    ``CMAP`` (``contrastiveMAP``). Arguments and pool semantics as :class:`NCELoss`.

    Example:
        >>> import torch, discograd
        >>> from discograd.pool import SolutionPool
        >>> z_true = torch.tensor([[1.0, 0.0, 0.0]])
        >>> loss = CMAPLoss(discograd.TopK(1), SolutionPool(3, z_true))
        >>> loss(torch.tensor([[0.0, 2.0, 1.0]]), z_true).item()     # max(0 - 0, 2 - 0)
        2.0
    """

    def __init__(self, solver: Callable[..., Tensor] | None, pool: SolutionPool, *, solve_ratio: float = 1.0,
                 reduction: str = "mean", generator: torch.Generator | None = None) -> None:
        super().__init__(solver, pool, solve_ratio=solve_ratio, reduction=reduction, generator=generator)

    def forward(self, theta: Tensor, z_true: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        self.refresh(theta, args, kwargs)
        return cmap_loss(theta, z_true, self.pool, reduction=self.reduction)
