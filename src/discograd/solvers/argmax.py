"""One-hot argmax: the MAP oracle of a categorical distribution."""

from __future__ import annotations

import torch
from torch import Tensor

from .._validation import check_int
from .base import Solver

__all__ = ["Argmax"]


class Argmax(Solver):
    r"""One-hot vector of the largest score: :math:`z = \arg\max_{z \in C} \langle \theta, z \rangle` with
    :math:`C = \{e_1, \dots, e_n\}`.

    Shapes: ``theta`` is ``[*batch, n]`` (any number of batch dimensions, including none) with ``n >= 1``;
    ``z`` has ``theta``'s shape, dtype and device, one ``1`` per row of the last dimension and ``0`` elsewhere.

    Ties: among equal largest scores the **lowest index wins** (``torch.argmax`` returns the first
    maximal index), on every device.

    With i.i.d. Gumbel(0, 1) noise, ``Argmax()(theta + noise)`` is an exact sample of
    ``Categorical(logits=theta)`` (the Gumbel-max trick).

    Example:
        >>> import torch
        >>> from discograd.solvers import Argmax
        >>> Argmax()(torch.tensor([[0.1, 2.0, -1.0], [3.0, 3.0, 0.0]]))
        tensor([[0., 1., 0.],
                [1., 0., 0.]])
    """

    event_dims = 1

    def solve(self, theta: Tensor) -> Tensor:
        n = theta.shape[-1]
        if n == 0:
            raise ValueError(
                f"theta must have a non-empty last dimension for Argmax (n >= 1); got shape {tuple(theta.shape)}"
            )
        index = theta.argmax(dim=-1, keepdim=True)
        return torch.zeros_like(theta, memory_format=torch.contiguous_format).scatter_(-1, index, 1.0)

    def reference(self, theta: Tensor) -> Tensor:
        """The documented tie rule written out per instance (for :func:`discograd.testing.check_tie_rule`):
        the first index whose score equals the maximum."""
        rows = theta.reshape(-1, theta.shape[-1]).tolist()
        z = torch.zeros(len(rows), theta.shape[-1], dtype=theta.dtype)
        for i, row in enumerate(rows):
            z[i, row.index(max(row))] = 1.0
        return z.reshape(theta.shape).to(theta.device)

    def enumerate_feasible(self, n: int, *, dtype: torch.dtype = torch.float32,
                           device: torch.device | str | None = None) -> Tensor:
        """All ``n`` one-hot vectors, as the identity matrix ``[n, n]`` (row ``i`` selects index ``i``)."""
        n = check_int(n, "n", minimum=1)
        return torch.eye(n, dtype=dtype, device=device)

    def __repr__(self) -> str:
        return "Argmax()"
