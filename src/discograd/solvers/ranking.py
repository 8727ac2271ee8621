r"""Ranking: the MAP oracle over permutations of a rank vector (blackbox-backprop's ranking problem)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .._validation import check_finite, check_int
from .base import Solver

__all__ = ["Ranking"]

#: enumerate_feasible refuses to list more states than this (8! = 40320 is allowed)
MAX_ENUMERATED_STATES = 10**5


class Ranking(Solver):
    r"""Rank vector of the scores: :math:`z = \arg\max_{z \in \Pi(v)} \langle \theta, z \rangle`, where
    :math:`\Pi(v)` holds every permutation of the vector ``values`` :math:`v` (default
    :math:`v = (1, 2, \dots, n)`).

    **Rank convention.** By the rearrangement inequality the maximiser gives the largest value to the
    largest score: with the default values **the largest score gets rank n and the smallest rank 1**
    (``z[i] - 1`` is the number of entries ranked below ``i``).
    For the convention "rank 1 = best" of Rolínek et al. (2020, "Optimizing rank-based metrics with
    blackbox differentiation", arXiv:1912.03500), where ``rk(s) = argmin_π <s, π>``, pass
    ``theta = -scores``: ``Ranking()(-scores)`` is ``rk(scores)`` (among tied scores the lower index then
    gets the larger rank number), and it stays a maximiser of ``<θ, z>`` (no hidden minimisation flag).
    Reversing ``values`` changes nothing: ``Π(v)`` is the same set.

    ``values`` (at construction or per call, the per-call one wins) is any finite real vector of length
    ``n``, shared (``[n]``) or per instance (broadcastable to ``theta``'s shape); ``z`` is the
    permutation of it that maximises ``<θ, z>``: the ``j``-th largest score gets the ``j``-th largest
    value. For example ``values = 1 / log2(1 + (n, ..., 1))`` gives DCG-style position weights.

    Shapes: ``theta`` is ``[*batch, n]`` (any number of batch dimensions, including none); ``z`` has
    ``theta``'s shape, dtype and device. Every feasible ``z`` has the same sum, so adding a constant to
    ``theta`` (or applying any strictly increasing map) does not change ``z``.

    Ties: among equal scores the **lower index gets the larger value** (a *stable* descending sort of
    ``theta``), the same rule as :class:`TopK` and :class:`Argmax`: with the default values,
    ``Ranking()(theta) > n - k`` is exactly ``TopK(k)(theta)``.

    Cost: one stable ``torch.argsort`` (O(n log n)) and one scatter, on ``theta``'s device.

    Example:
        >>> import torch
        >>> from discograd.solvers import Ranking
        >>> theta = torch.tensor([0.3, -1.0, 2.0, 0.3])
        >>> Ranking()(theta)                  # the largest score gets n = 4; ties: lower index higher
        tensor([3., 1., 4., 2.])
        >>> Ranking()(-theta)                 # "rank 1 = best" (blackbox-backprop's rk)
        tensor([3., 4., 1., 2.])
        >>> Ranking(values=[0.0, 0.0, 1.0, 10.0])(theta)
        tensor([ 1.,  0., 10.,  0.])
    """

    event_dims = 1

    def __init__(self, values: Tensor | Sequence[float] | None = None) -> None:
        self.values = None if values is None else _check_values(values)

    def solve(self, theta: Tensor, values: Tensor | Sequence[float] | None = None) -> Tensor:
        n = theta.shape[-1]
        values = self.values if values is None else _check_values(values)
        order = torch.argsort(theta, dim=-1, descending=True, stable=True)
        if values is None:
            ranked = torch.arange(n, 0, -1, dtype=theta.dtype, device=theta.device)
        else:
            ranked = torch.sort(_broadcast_values(values, theta), dim=-1, descending=True).values
        z = torch.empty(theta.shape, dtype=theta.dtype, device=theta.device)
        return z.scatter_(-1, order, ranked.expand(theta.shape))

    def enumerate_feasible(self, n: int, *, values: Tensor | Sequence[float] | None = None,
                           dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
        """All distinct permutations of ``values`` (default ``(1, ..., n)``) as a ``[num_states, n]`` tensor.

        Rows follow ``itertools.permutations`` of ``values`` in the given order (lexicographic for the
        default); repeated values give repeated permutations, which are listed once (first occurrence
        kept). ``values`` must be one vector ``[n]`` (default: the one given at construction). Raises
        ``ValueError`` above ``10**5`` states (``n <= 8``).
        """
        n = check_int(n, "n", minimum=0)
        values = self.values if values is None else _check_values(values)
        if values is None:
            base = np.arange(1, n + 1, dtype=np.float64)
        else:
            if values.dim() != 1 or values.shape[0] != n:
                raise ValueError(f"values must have shape ({n},) to enumerate rankings of n = {n} items; "
                                 f"got shape {tuple(values.shape)}")
            base = values.detach().cpu().to(torch.float64).numpy()
        num_states = math.factorial(n)
        if num_states > MAX_ENUMERATED_STATES:
            raise ValueError(f"enumerate_feasible lists at most 10**5 states; the n! = {num_states} rankings of "
                             f"n = {n} items are too many")
        rows = np.array(list(itertools.permutations(base)), dtype=np.float64).reshape(num_states, n)
        _, first = np.unique(rows, axis=0, return_index=True)
        rows = rows[np.sort(first)]
        return torch.from_numpy(rows).to(device=device, dtype=dtype)

    def __repr__(self) -> str:
        return "Ranking()" if self.values is None else f"Ranking(values={self.values.tolist()!r})"


def _check_values(values: object) -> Tensor:
    """A finite real tensor with at least one dimension."""
    if not isinstance(values, Tensor):
        try:
            values = torch.as_tensor(values, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(
                f"values must be a tensor or a sequence of real numbers; got {type(values).__name__}"
            ) from exc
    if values.dtype == torch.bool or values.is_complex():
        raise TypeError(f"values must have a real dtype; got {values.dtype}")
    if values.dim() < 1:
        raise ValueError(
            f"values must have at least one dimension (the n values to rank); got shape {tuple(values.shape)}"
        )
    check_finite(values, "values")
    return values


def _broadcast_values(values: Tensor, theta: Tensor) -> Tensor:
    n = theta.shape[-1]
    if values.shape[-1] != n:
        raise ValueError(f"values must have n = {n} entries in its last dimension (theta's last dimension); "
                         f"got shape {tuple(values.shape)}")
    try:  # numpy's: torch.broadcast_shapes imports sympy on its first call (~0.5 s)
        shape = np.broadcast_shapes(tuple(values.shape), tuple(theta.shape))
    except ValueError:
        shape = None
    if shape != tuple(theta.shape):
        raise ValueError(f"values must be [n] or broadcastable to theta's shape {tuple(theta.shape)}; got shape "
                         f"{tuple(values.shape)}")
    return values.to(device=theta.device, dtype=theta.dtype)
