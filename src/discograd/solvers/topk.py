"""Top-k selection: the MAP oracle of the exactly-k (k-subset) distribution."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor

from .._validation import check_int, check_k
from .base import Solver

__all__ = ["TopK"]

#: enumerate_feasible refuses to list more states than this
MAX_ENUMERATED_STATES = 10**6


class TopK(Solver):
    r"""Indicator of the ``k`` largest scores:
    :math:`z = \arg\max_{z \in \{0,1\}^n,\ \sum_i z_i = k} \langle \theta, z \rangle`.

    Shapes: ``theta`` is ``[*batch, n]`` (any number of batch dimensions, including none); ``z`` has
    ``theta``'s shape, dtype and device, with exactly ``k`` ones in every row of the last dimension.

    ``k`` is set at construction, per call (``solver(theta, k=3)`` or ``solver(theta, 3)``), or both; the
    per-call value wins. Per call it may also be an integer tensor broadcastable to the batch shape
    ``theta.shape[:-1]``, one ``k`` per instance. Every ``k`` must satisfy ``0 <= k <= n``.

    Ties: among equal scores the **lower index wins**. Equivalently, ``z`` selects the first ``k`` entries
    of a *stable* descending sort of ``theta``. The result is the same on every device and for every
    batch layout.

    Cost: for an integer ``k``, one ``torch.topk`` (values only) finds the ``k``-th largest score of
    each row and one comparison pass builds ``z``; rows with ties at that threshold (rare for continuous
    scores) are then resolved exactly with a cumulative sum over the equality mask. No full sort.
    A per-instance ``k`` uses ``torch.topk`` with ``max(k)``.

    With per-coordinate Sum-of-Gamma noise ``SumOfGamma(k=k)``, ``TopK(k)(theta + noise)`` perturbs every
    k-subset's score by exactly Gumbel noise (Niepert et al., 2021, arXiv:2106.01798, Theorem 1).

    Example:
        >>> import torch
        >>> from discograd.solvers import TopK
        >>> theta = torch.tensor([[0.5, 2.0, 1.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
        >>> TopK(2)(theta)
        tensor([[0., 1., 0., 1.],
                [1., 1., 0., 0.]])
        >>> TopK()(theta, k=torch.tensor([1, 3]))
        tensor([[0., 1., 0., 0.],
                [1., 1., 1., 0.]])
    """

    event_dims = 1

    def __init__(self, k: int | None = None) -> None:
        self.k = None if k is None else check_int(k, "k", minimum=0)

    def solve(self, theta: Tensor, k: int | Tensor | None = None) -> Tensor:
        if k is None:
            k = self.k
        if k is None:
            raise TypeError("k must be given, either at construction (TopK(k=...)) or per call (solver(theta, k=...))")
        n = theta.shape[-1]
        flat = theta.reshape(math.prod(theta.shape[:-1]), n)
        if isinstance(k, Tensor):
            k_flat = _check_k_tensor(k, theta)
            if k_flat is None:  # a 0-dim tensor: same k for every instance
                k = check_k(int(k), n)
            else:
                return _top_k_per_instance(flat, k_flat).reshape(theta.shape)
        k = check_k(k, n)
        if k == 0:
            return torch.zeros_like(theta, memory_format=torch.contiguous_format)
        if k == n:
            return torch.ones_like(theta, memory_format=torch.contiguous_format)
        threshold = torch.topk(flat, k, dim=-1, largest=True, sorted=False).values.amin(dim=-1, keepdim=True)
        return _select_at_least(flat, threshold, k).reshape(theta.shape)

    def reference(self, theta: Tensor, k: int | None = None) -> Tensor:
        """The documented tie rule written out per instance (for :func:`discograd.testing.check_tie_rule`):
        the first ``k`` entries of a stable descending sort (integer ``k`` only)."""
        k = self.k if k is None else k
        rows = theta.reshape(-1, theta.shape[-1]).tolist()
        z = torch.zeros(len(rows), theta.shape[-1], dtype=theta.dtype)
        for i, row in enumerate(rows):
            for j in sorted(range(len(row)), key=lambda j: -row[j])[:k]:  # sorted() is stable
                z[i, j] = 1.0
        return z.reshape(theta.shape).to(theta.device)

    def enumerate_feasible(self, n: int, *, k: int | None = None, dtype: torch.dtype = torch.float32,
                           device: torch.device | str | None = None) -> Tensor:
        """All ``C(n, k)`` k-subsets of ``n`` items as a ``[C(n, k), n]`` 0/1 tensor.

        Rows are in lexicographic order of the selected indices (the order of
        ``itertools.combinations(range(n), k)``): for ``n = 3, k = 2`` the rows select
        ``(0, 1), (0, 2), (1, 2)``. ``k`` defaults to the one given at construction. Raises
        ``ValueError`` above ``10**6`` states.
        """
        n = check_int(n, "n", minimum=0)
        if k is None:
            k = self.k
        if k is None:
            raise TypeError("k must be given, either at construction (TopK(k=...)) or to enumerate_feasible(n, k=...)")
        k = check_k(k, n)
        num_states = math.comb(n, k)
        if num_states > MAX_ENUMERATED_STATES:
            raise ValueError(
                f"enumerate_feasible lists at most 10**6 states; C(n={n}, k={k}) = {num_states} is too many"
            )
        states = torch.zeros(num_states, n, dtype=dtype, device=device)
        if k > 0:
            chosen = np.fromiter(
                itertools.chain.from_iterable(itertools.combinations(range(n), k)),
                dtype=np.int64, count=num_states * k,
            ).reshape(num_states, k)
            states.scatter_(1, torch.from_numpy(chosen).to(device=states.device), 1.0)
        return states

    def __repr__(self) -> str:
        return f"TopK(k={self.k!r})"


def _check_k_tensor(k: Tensor, theta: Tensor) -> Tensor | None:
    """Validate a tensor ``k``; return it as a flat ``[num_instances, 1]`` int64 tensor on theta's device,
    or ``None`` for a 0-dim tensor (then treated as an int)."""
    if k.dtype == torch.bool or k.is_floating_point() or k.is_complex():
        raise TypeError(f"k must be an integer or a tensor with an integer dtype; got a tensor of dtype {k.dtype}")
    if k.dim() == 0:
        return None
    n = theta.shape[-1]
    batch_shape = tuple(theta.shape[:-1])
    try:
        broadcast = torch.broadcast_shapes(tuple(k.shape), batch_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != batch_shape:
        raise ValueError(
            f"k must be an int or a tensor broadcastable to the batch shape theta.shape[:-1] = {batch_shape}; "
            f"got a tensor of shape {tuple(k.shape)}"
        )
    k = k.to(device=theta.device, dtype=torch.int64)
    if k.numel() > 0:
        k_min, k_max = int(k.min()), int(k.max())
        if k_min < 0 or k_max > n:
            raise ValueError(
                f"k must satisfy 0 <= k <= n = {n} (the size of the last dimension) for every instance; "
                f"got values in [{k_min}, {k_max}]"
            )
    return k.expand(batch_shape).reshape(-1, 1)


def _top_k_per_instance(flat: Tensor, k: Tensor) -> Tensor:
    """Top-k of each row of ``flat`` ``[m, n]`` with its own ``k`` ``[m, 1]``."""
    k_max = int(k.max()) if k.numel() > 0 else 0
    if k_max == 0:
        return torch.zeros_like(flat, memory_format=torch.contiguous_format)
    values = torch.topk(flat, k_max, dim=-1, largest=True, sorted=True).values
    threshold = values.gather(-1, (k - 1).clamp(min=0))
    # rows with k = 0 select nothing: no finite score reaches +inf
    threshold = threshold.masked_fill(k == 0, float("inf"))
    return _select_at_least(flat, threshold, k)


def _select_at_least(flat: Tensor, threshold: Tensor, k: int | Tensor) -> Tensor:
    """Select the ``k`` largest entries per row of ``flat`` ``[m, n]``, given the ``k``-th largest value
    ``threshold`` ``[m, 1]`` of each row; ties at the threshold go to the lowest indices."""
    # compare straight into a float output (no bool intermediate)
    z = torch.ge(flat, threshold, out=torch.empty(flat.shape, dtype=flat.dtype, device=flat.device))
    # 0/1 counts are exact in float32 up to 2**24 terms; float16/bfloat16 are not
    count_dtype = torch.float64 if flat.shape[-1] > 2**24 else torch.float32
    count = z.sum(dim=-1, keepdim=True, dtype=count_dtype)
    too_many = (count != k).squeeze(-1)  # count > k exactly when the threshold value is tied
    if not bool(too_many.any()):
        return z
    rows = too_many.nonzero().squeeze(-1)
    sub = flat.index_select(0, rows)
    sub_threshold = threshold.index_select(0, rows)
    sub_k = k.index_select(0, rows) if isinstance(k, Tensor) else k
    above = sub > sub_threshold
    remaining = sub_k - above.sum(dim=-1, keepdim=True)
    tied = sub == sub_threshold
    take_tied = tied & (tied.cumsum(dim=-1) <= remaining)
    z.index_copy_(0, rows, (above | take_tied).to(flat.dtype))
    return z
