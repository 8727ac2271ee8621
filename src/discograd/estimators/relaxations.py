r"""Continuous relaxations of categorical and k-subset sampling.

- :func:`gumbel_softmax`: the Concrete / Gumbel-softmax relaxation (Jang, Gu, Poole, ICLR 2017,
  arXiv:1611.01144; Maddison, Mnih, Teh, ICLR 2017, arXiv:1611.00712).
- :func:`relaxed_topk`: SoftSub, k successive softmaxes over Gumbel-perturbed logits (Xie & Ermon,
  IJCAI 2019, arXiv:1901.10517).
- :func:`k_concrete`: the L2X relaxation, the element-wise maximum of k independent Concrete draws
  (Chen, Song, Wainwright, Jordan, ICML 2018, arXiv:1802.07814).

All take logits of shape ``[*batch, n]`` (relaxed over the last dimension), draw their Gumbel noise on
the logits' device and dtype from the keyword ``generator``, and with ``hard=True`` return the discrete
structure in the forward pass with the relaxation's gradient (straight-through).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._validation import check_generator, check_int, check_k, check_positive, check_theta
from ..noise import standard_gumbel
from ..solvers import Argmax, TopK

__all__ = ["gumbel_softmax", "relaxed_topk", "k_concrete"]


def _perturbed_logits(logits: Tensor, generator: torch.Generator | None, extra_shape: tuple[int, ...] = ()) -> Tensor:
    check_generator(generator)
    g = standard_gumbel((*extra_shape, *logits.shape), generator=generator, device=logits.device, dtype=logits.dtype)
    return logits + g


def _straight_through(hard: Tensor, soft: Tensor) -> Tensor:
    return hard + (soft - soft.detach())


def gumbel_softmax(logits: Tensor, *, temperature: float = 1.0, hard: bool = False,
                   generator: torch.Generator | None = None) -> Tensor:
    r"""``softmax((logits + G) / τ)`` with ``G`` i.i.d. Gumbel(0, 1), over the last dimension.

    As ``τ → 0`` the samples become one-hot draws from ``softmax(logits)``. ``hard=True`` returns the
    one-hot ``argmax`` in the forward pass and the relaxed gradient (the "straight-through
    Gumbel-softmax"). Shape ``[*batch, n]`` in and out.

    Example:
        >>> import torch, discograd
        >>> y = discograd.gumbel_softmax(torch.zeros(2, 4), temperature=0.5, generator=torch.Generator().manual_seed(0))
        >>> y.shape, bool(torch.allclose(y.sum(-1), torch.ones(2)))
        (torch.Size([2, 4]), True)
    """
    check_theta(logits, "logits")
    tau = check_positive(temperature, "temperature")
    soft = torch.softmax(_perturbed_logits(logits, generator) / tau, dim=-1)
    return _straight_through(Argmax()(soft), soft) if hard else soft


def relaxed_topk(logits: Tensor, k: int, *, temperature: float = 1.0, hard: bool = False,
                 generator: torch.Generator | None = None) -> Tensor:
    r"""SoftSub (Xie & Ermon, 2019): a relaxed k-hot sample over the last dimension.

    With ``r = logits + G`` (Gumbel noise), repeat ``k`` times: ``a_j = softmax(r / τ)``, add ``a_j`` to the
    k-hot relaxation, and ``r ← r + log(1 − a_j)`` (items already chosen are suppressed). The result lies
    in ``[0, 1]^n`` and sums to ``k``; as ``τ → 0`` it becomes the top-k of ``logits + G``, an exact
    sample of the "sampling without replacement" distribution. ``hard=True``: the top-k indicator
    forward (lowest index wins ties), the relaxation's gradient backward.

    Example:
        >>> import torch, discograd
        >>> y = discograd.relaxed_topk(torch.randn(3, 6), 2, temperature=0.5, generator=torch.Generator().manual_seed(0))
        >>> bool(torch.allclose(y.sum(-1), torch.full((3,), 2.0), atol=1e-5))
        True
    """
    check_theta(logits, "logits")
    k = check_k(k, logits.shape[-1])
    tau = check_positive(temperature, "temperature")
    r = _perturbed_logits(logits, generator)
    tiny = torch.finfo(logits.dtype).tiny
    khot = torch.zeros_like(logits)
    for _ in range(k):
        a = torch.softmax(r / tau, dim=-1)
        khot = khot + a
        r = r + torch.log((1.0 - a).clamp_min(tiny))
    return _straight_through(TopK(k)(khot), khot) if hard else khot


def k_concrete(logits: Tensor, k: int, *, temperature: float = 1.0, hard: bool = False,
               generator: torch.Generator | None = None) -> Tensor:
    r"""The L2X relaxation (Chen et al., 2018): the element-wise maximum of ``k`` independent Concrete draws.

    ``max_{j ≤ k} softmax((logits + G_j) / τ)`` over the last dimension, each ``G_j`` i.i.d. Gumbel. The
    result lies in ``[0, 1]^n`` but does not sum to ``k`` (draws may pick the same item). ``hard=True``:
    the top-k indicator of the relaxation forward, its gradient backward.

    Example:
        >>> import torch, discograd
        >>> y = discograd.k_concrete(torch.randn(5, 8), 3, temperature=0.1, generator=torch.Generator().manual_seed(0))
        >>> y.shape, bool((y <= 1).all())
        (torch.Size([5, 8]), True)
    """
    check_theta(logits, "logits")
    k = check_int(k, "k", minimum=1)
    check_k(k, logits.shape[-1])
    tau = check_positive(temperature, "temperature")
    draws = torch.softmax(_perturbed_logits(logits, generator, (k,)) / tau, dim=-1)  # [k, *batch, n]
    soft = draws.amax(dim=0)
    return _straight_through(TopK(k)(soft), soft) if hard else soft
