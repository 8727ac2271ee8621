r"""Exact references by enumeration, for any feasible set small enough to list.

The feasible set ``C`` is given explicitly as a ``[num_states, *event]`` 0/1 tensor ``states``, and the
distribution is the constrained exponential family

.. math::

    p(z; θ) = \frac{\exp(⟨z, θ⟩ / τ)}{\sum_{z' ∈ C} \exp(⟨z', θ⟩ / τ)}, \qquad z ∈ C,

i.e. a softmax over the ``num_states`` scores ``⟨z, θ⟩ / τ``. ``theta`` has shape ``[*batch, *event]``
with ``event = states.shape[1:]`` (the event may have several dimensions, e.g. a grid). Everything is
exact and differentiable by autograd: the gradient of ``enumeration_marginals`` is the exact
Jacobian-vector product with ``J_μ = Cov_p(z) / τ``, and the gradient of ``enumeration_expectation`` is
the exact gradient of ``E_p[L(z)]`` for any ``L`` evaluated on every state.

Cost: ``O(num_states · prod(event))`` per instance; meant for tests and benchmarks (for example all
``C(10, 5) = 252`` subsets from :func:`ksubset_states`, or the feasible set listed by a solver's
``enumerate_feasible``).

Reference:
    M. Niepert, P. Minervini, L. Franceschi, "Implicit MLE: Backpropagating Through Discrete
    Exponential Family Distributions", NeurIPS 2021, arXiv:2106.01798.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._validation import (
    check_finite,
    check_generator,
    check_int,
    check_k,
    check_num_samples,
    check_positive,
    check_theta,
)

__all__ = [
    "ksubset_states",
    "enumeration_log_probs",
    "enumeration_marginals",
    "enumeration_expectation",
    "enumeration_sample",
    "MAX_ENUMERATED_STATES",
]

#: the largest number of states :func:`ksubset_states` agrees to list
MAX_ENUMERATED_STATES = 10**6


def ksubset_states(
    n: int,
    k: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """All ``C(n, k)`` k-subsets of ``n`` items as a ``[C(n, k), n]`` 0/1 tensor.

    Order: lexicographic in the sorted index tuples, i.e. the order of
    ``itertools.combinations(range(n), k)``; the first row is ``[1]*k + [0]*(n-k)`` and the last row
    is ``[0]*(n-k) + [1]*k``. ``k = 0`` gives one all-zero row.

    Raises ``ValueError`` if ``C(n, k)`` exceeds ``MAX_ENUMERATED_STATES`` (``10**6``).

    Example:
        >>> from discograd.exact import ksubset_states
        >>> ksubset_states(4, 2).tolist()[:3]
        [[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]]
    """
    n = check_int(n, "n", minimum=0)
    k = check_k(k, n, "k")
    count = math.comb(n, k)
    if count > MAX_ENUMERATED_STATES:
        raise ValueError(
            f"ksubset_states refuses to list C(n, k) = C({n}, {k}) = {count} states "
            f"(more than {MAX_ENUMERATED_STATES}); use the dynamic programmes in discograd.exact.ksubset"
        )
    states = torch.zeros((count, n), dtype=dtype, device=device)
    if k == 0:
        return states
    index = torch.combinations(torch.arange(n, device=device), r=k)  # itertools order
    index = index.reshape(count, k)  # k == 1 returns a 1-d tensor
    return states.scatter_(1, index, 1.0)


def _check_states(states: object, theta: Tensor) -> tuple[Tensor, tuple[int, ...], tuple[int, ...]]:
    """Validate ``states`` against ``theta``; return them in theta's dtype, the batch and event shapes."""
    if not isinstance(states, Tensor):
        raise TypeError(f"states must be a torch.Tensor; got {type(states).__name__}")
    if states.dim() < 2:
        raise ValueError(
            f"states must have shape [num_states, *event] with at least one event dimension; "
            f"got shape {tuple(states.shape)}"
        )
    if states.shape[0] < 1:
        raise ValueError(f"states must list at least one state; got shape {tuple(states.shape)}")
    event = tuple(states.shape[1:])
    if theta.dim() < len(event) or tuple(theta.shape[theta.dim() - len(event):]) != event:
        raise ValueError(
            f"theta's trailing dimensions must equal the event shape states.shape[1:] = {event}; "
            f"got theta of shape {tuple(theta.shape)} and states of shape {tuple(states.shape)}"
        )
    if states.is_floating_point():
        check_finite(states, "states")
    if not bool(((states == 0) | (states == 1)).all()):
        raise ValueError(f"states must hold only 0/1 values; got a tensor of shape {tuple(states.shape)}")
    batch = tuple(theta.shape[: theta.dim() - len(event)])
    return states.to(dtype=theta.dtype, device=theta.device), batch, event


def _scores(states: Tensor, theta: Tensor, temperature: float) -> tuple[Tensor, tuple[int, ...], tuple[int, ...]]:
    """``⟨z, θ⟩ / τ`` for every state: ``[*batch, num_states]``."""
    theta = check_theta(theta, "theta", min_dim=1)
    temperature = check_positive(temperature, "temperature")
    states, batch, event = _check_states(states, theta)
    size = math.prod(event)
    flat_theta = theta.reshape(*batch, size)
    flat_states = states.reshape(states.shape[0], size)
    return (flat_theta @ flat_states.T) / temperature, batch, event


def enumeration_log_probs(states: Tensor, theta: Tensor, temperature: float = 1.0) -> Tensor:
    r"""``log p(z; θ)`` for every listed state: ``log_softmax(⟨states, θ⟩ / τ)``.

    Args:
        states: the feasible set, a ``[C, *event]`` 0/1 tensor (any dtype; converted to theta's).
        theta: scores θ of shape ``[*batch, *event]``, floating point, finite.
        temperature: τ > 0.

    Returns:
        ``[*batch, C]`` log-probabilities (``exp`` sums to one over the last dimension).

    Example:
        >>> import torch
        >>> from discograd.exact import enumeration_log_probs, ksubset_states
        >>> lp = enumeration_log_probs(ksubset_states(4, 2), torch.zeros(4))
        >>> round(lp.exp().sum().item(), 6), lp.shape
        (1.0, torch.Size([6]))
    """
    scores, _, _ = _scores(states, theta, temperature)
    return torch.log_softmax(scores, dim=-1)


def enumeration_marginals(states: Tensor, theta: Tensor, temperature: float = 1.0) -> Tensor:
    r"""Exact marginals ``μ(θ) = E_p[z] = Σ_z p(z; θ) z``.

    Differentiable: ``torch.autograd.grad(μ, theta, v)`` is the exact ``J_μ v`` with
    ``J_μ = Cov_p(z) / τ``.

    Args:
        states: the feasible set, a ``[C, *event]`` 0/1 tensor.
        theta: scores θ of shape ``[*batch, *event]``, floating point, finite.
        temperature: τ > 0.

    Returns:
        ``μ`` with ``theta``'s shape.

    Example:
        >>> import torch
        >>> from discograd.exact import enumeration_marginals, ksubset_states
        >>> enumeration_marginals(ksubset_states(4, 2), torch.zeros(4)).tolist()
        [0.5, 0.5, 0.5, 0.5]
    """
    scores, batch, event = _scores(states, theta, temperature)
    probs = torch.softmax(scores, dim=-1)
    flat_states = states.to(dtype=theta.dtype, device=theta.device).reshape(states.shape[0], -1)
    return (probs @ flat_states).reshape(*batch, *event)


def enumeration_expectation(states: Tensor, theta: Tensor, values: Tensor, temperature: float = 1.0) -> Tensor:
    r"""Exact expectation ``E_p[f(z)] = Σ_z p(z; θ) f(z)`` from ``f`` evaluated on every state.

    Differentiable in ``theta`` (and in ``values``): with ``values[..., c] = L(states[c])`` its
    gradient is the exact gradient of ``E_{z ~ p(z; θ)}[L(z)]``, the quantity every estimator in
    discograd approximates.

    Args:
        states: the feasible set, a ``[C, *event]`` 0/1 tensor.
        theta: scores θ of shape ``[*batch, *event]``, floating point, finite.
        values: ``f(z)`` for every state, shape ``[C]`` or ``[*batch, C]`` (anything whose last
            dimension is ``C`` and that broadcasts against ``[*batch, C]``).
        temperature: τ > 0.

    Returns:
        ``E_p[f(z)]`` of shape ``broadcast(values.shape, [*batch, C])[:-1]``.

    Example:
        >>> import torch
        >>> from discograd.exact import enumeration_expectation, ksubset_states
        >>> states = ksubset_states(4, 2)
        >>> b = torch.tensor([1.0, 1.0, 0.0, 0.0])
        >>> loss = ((states - b) ** 2).sum(-1)  # L(z) = ||z - b||^2 on every state
        >>> round(enumeration_expectation(states, torch.zeros(4), loss).item(), 4)
        2.0
    """
    scores, _, _ = _scores(states, theta, temperature)
    if not isinstance(values, Tensor):
        raise TypeError(f"values must be a torch.Tensor; got {type(values).__name__}")
    num_states = scores.shape[-1]
    if values.dim() < 1 or values.shape[-1] != num_states:
        raise ValueError(
            f"values must have shape [C] or [*batch, C] with C = {num_states} states; got shape "
            f"{tuple(values.shape)} (theta batch shape {tuple(scores.shape[:-1])})"
        )
    try:
        torch.broadcast_shapes(values.shape, scores.shape)
    except RuntimeError:
        raise ValueError(
            f"values of shape {tuple(values.shape)} does not broadcast against [*batch, C] = "
            f"{tuple(scores.shape)}"
        ) from None
    if values.is_floating_point():
        check_finite(values, "values")
    probs = torch.softmax(scores, dim=-1)
    return (probs * values.to(probs.dtype)).sum(-1)


def enumeration_sample(
    states: Tensor,
    theta: Tensor,
    temperature: float = 1.0,
    *,
    num_samples: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Exact samples from ``p(z; θ)`` over the listed states (Gumbel-max over the ``C`` scores).

    ``argmax_c (log p_c + G_c)`` with i.i.d. standard Gumbel ``G`` is an exact categorical sample; the
    noise comes from one ``torch.rand`` call on ``theta``'s device through ``generator`` (``None``: the
    default generator). No gradient flows through the samples.

    Args:
        states: the feasible set, a ``[C, *event]`` 0/1 tensor.
        theta: scores θ of shape ``[*batch, *event]``, floating point, finite.
        temperature: τ > 0.
        num_samples: ``None`` (no sample dimension) or ``S >= 1``.
        generator: a ``torch.Generator`` on ``theta``'s device, or ``None``.

    Returns:
        States in ``theta``'s dtype: ``[*batch, *event]``, or ``[S, *batch, *event]``.

    Example:
        >>> import torch
        >>> from discograd.exact import enumeration_sample, ksubset_states
        >>> z = enumeration_sample(ksubset_states(5, 2), torch.randn(3, 5), num_samples=4,
        ...                        generator=torch.Generator().manual_seed(0))
        >>> z.shape, bool((z.sum(-1) == 2).all())
        (torch.Size([4, 3, 5]), True)
    """
    num_samples = check_num_samples(num_samples)
    check_generator(generator)
    with torch.no_grad():
        theta = theta.detach() if isinstance(theta, Tensor) else theta
        scores, _, _ = _scores(states, theta, temperature)
        log_probs = torch.log_softmax(scores, dim=-1)
        num = 1 if num_samples is None else num_samples
        u = torch.rand(
            (num, *log_probs.shape), generator=generator, dtype=log_probs.dtype, device=log_probs.device
        )
        gumbel = -torch.log(-torch.log(u.clamp(min=torch.finfo(u.dtype).tiny)))
        index = (log_probs + gumbel).argmax(-1)  # [S, *batch]
        z = states.to(dtype=theta.dtype, device=theta.device)[index]
    return z[0] if num_samples is None else z
