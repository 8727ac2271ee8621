"""Checks of the solver contract (see :mod:`discograd.solvers.base`) that users run on their own solvers.

Every check raises ``AssertionError`` with a message that names the solver, the failing instance and
what was expected, so that they read well inside pytest.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validation import check_generator, check_int
from ..solvers.base import event_dims_of

__all__ = [
    "SolverCheckReport",
    "check_output_contract",
    "check_feasible",
    "check_optimal",
    "check_batch_equals_loop",
    "check_deterministic",
    "check_tie_rule",
    "check_solver",
]

# bound on the elements of temporary [rows, num_states, event] comparisons
_CHUNK_ELEMENTS = 2**24


def _name(solver: object) -> str:
    text = repr(solver)
    return text if len(text) <= 80 else text[:77] + "..."


def _call(solver: Callable[..., Tensor], theta: Tensor, args: tuple, kwargs: dict) -> Tensor:
    z = solver(theta, *args, **kwargs)
    if not isinstance(z, Tensor):
        raise AssertionError(f"{_name(solver)} returned a {type(z).__name__}, not a torch.Tensor")
    return z


def _instance(flat_index: int, batch_shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat_index, batch_shape)) if batch_shape else ()


def _event_dims(states: Tensor) -> int:
    if not isinstance(states, Tensor) or states.dim() < 1:
        raise TypeError("states must be a tensor of shape [num_states, *event_shape]")
    return states.dim() - 1


def _split(theta: Tensor, event_dims: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    cut = theta.dim() - event_dims
    if cut < 0:
        raise ValueError(f"theta must have at least {event_dims} event dimension(s); got shape {tuple(theta.shape)}")
    return tuple(theta.shape[:cut]), tuple(theta.shape[cut:])


def _flat(x: Tensor, batch_shape: tuple[int, ...], event_shape: tuple[int, ...]) -> Tensor:
    return x.reshape(math.prod(batch_shape), math.prod(event_shape))


def check_output_contract(solver: Callable[..., Tensor], theta: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    """Check that ``z = solver(theta, *args, **kwargs)`` follows the output contract of a solver.

    ``z`` must be a tensor with ``theta``'s shape, dtype and device, finite, and without autograd
    history even when ``theta`` requires a gradient (the solver is called on a copy of ``theta`` with
    ``requires_grad=True``); the solver must not modify ``theta`` in place. Returns ``z``.

    Example:
        >>> import torch
        >>> from discograd.solvers import TopK
        >>> from discograd.testing import check_output_contract
        >>> z = check_output_contract(TopK(2), torch.randn(4, 6))
        >>> z.shape
        torch.Size([4, 6])
    """
    original = theta.detach().clone()
    theta_in = original.clone().requires_grad_(theta.is_floating_point())
    z = _call(solver, theta_in, args, kwargs)
    name = _name(solver)
    problems = []
    if z.shape != theta.shape:
        problems.append(f"shape {tuple(z.shape)} instead of theta's {tuple(theta.shape)}")
    if z.dtype != theta.dtype:
        problems.append(f"dtype {z.dtype} instead of theta's {theta.dtype}")
    if z.device != theta.device:
        problems.append(f"device {z.device} instead of theta's {theta.device}")
    if z.grad_fn is not None or z.requires_grad:
        problems.append(f"autograd history (grad_fn={type(z.grad_fn).__name__}); solvers must return detached "
                        f"tensors (run under torch.no_grad() or call .detach())")
    if problems:
        raise AssertionError(f"{name} broke the output contract: z has " + "; ".join(problems))
    if (z.is_floating_point() or z.is_complex()) and not bool(torch.isfinite(z).all()):
        num_bad = int((~torch.isfinite(z)).sum())
        raise AssertionError(f"{name} returned {num_bad} non-finite value(s) in z of shape {tuple(z.shape)}")
    if not torch.equal(theta_in.detach(), original):
        raise AssertionError(f"{name} modified theta in place")
    return z


def check_feasible(solver: Callable[..., Tensor], theta: Tensor, states: Tensor, *args: Any,
                   **kwargs: Any) -> Tensor:
    """Check that every instance of ``z = solver(theta, *args, **kwargs)`` is one of the feasible ``states``.

    ``states`` lists the feasible set of one instance as a ``[num_states, *event_shape]`` tensor (e.g.
    ``solver.enumerate_feasible(n)``); its event shape fixes the number of event dimensions of
    ``theta``. The comparison is exact. Returns ``z``.

    Example:
        >>> import torch
        >>> from discograd.solvers import Argmax
        >>> from discograd.testing import check_feasible
        >>> _ = check_feasible(Argmax(), torch.randn(3, 5), torch.eye(5))
    """
    event_dims = _event_dims(states)
    theta = theta.detach()
    batch_shape, event_shape = _split(theta, event_dims)
    if tuple(states.shape[1:]) != event_shape:
        raise ValueError(f"states must have shape [num_states, *{event_shape}] to match theta of shape "
                         f"{tuple(theta.shape)}; got {tuple(states.shape)}")
    z = _call(solver, theta, args, kwargs)
    if z.shape != theta.shape:
        raise AssertionError(f"{_name(solver)} returned z of shape {tuple(z.shape)} for theta of shape "
                             f"{tuple(theta.shape)}")
    z_flat = _flat(z.detach(), batch_shape, event_shape)
    states_flat = states.reshape(states.shape[0], -1).to(device=z.device, dtype=z.dtype)
    m = z_flat.shape[1]
    chunk = max(1, _CHUNK_ELEMENTS // max(1, states_flat.shape[0] * m))
    for start in range(0, z_flat.shape[0], chunk):
        block = z_flat[start:start + chunk]
        found = (block[:, None, :] == states_flat[None, :, :]).all(dim=-1).any(dim=-1)
        if not bool(found.all()):
            bad = start + int((~found).nonzero()[0])
            num_bad = int((~found).sum())
            index = _instance(bad, batch_shape)
            raise AssertionError(
                f"{_name(solver)} returned an infeasible z for instance {index} (at least {num_bad} of "
                f"{z_flat.shape[0]} instances are not among the {states_flat.shape[0]} feasible states):\n"
                f"theta = {theta[index]}\nz = {z[index]}"
            )
    return z


def check_optimal(solver: Callable[..., Tensor], theta: Tensor, states: Tensor, *args: Any,
                  atol: float = 1e-6, rtol: float = 1e-6, **kwargs: Any) -> Tensor:
    """Check that ``z = solver(theta, *args, **kwargs)`` attains ``max_{s in states} <theta, s>``.

    Objectives are computed in float64 and compared within ``atol + rtol * |max|``, so any maximiser
    passes when there are ties. ``states`` is ``[num_states, *event_shape]`` as for
    :func:`check_feasible`. Optimality does not imply feasibility: run both. Returns ``z``.

    Example:
        >>> import torch
        >>> from discograd.solvers import TopK
        >>> from discograd.testing import check_optimal
        >>> solver = TopK(2)
        >>> _ = check_optimal(solver, torch.randn(3, 5), solver.enumerate_feasible(5))
    """
    event_dims = _event_dims(states)
    theta = theta.detach()
    batch_shape, event_shape = _split(theta, event_dims)
    if tuple(states.shape[1:]) != event_shape:
        raise ValueError(f"states must have shape [num_states, *{event_shape}] to match theta of shape "
                         f"{tuple(theta.shape)}; got {tuple(states.shape)}")
    z = _call(solver, theta, args, kwargs)
    if z.shape != theta.shape:
        raise AssertionError(f"{_name(solver)} returned z of shape {tuple(z.shape)} for theta of shape "
                             f"{tuple(theta.shape)}")
    theta64 = _flat(theta, batch_shape, event_shape).to(torch.float64)
    z64 = _flat(z.detach(), batch_shape, event_shape).to(device=theta.device, dtype=torch.float64)
    states64 = states.reshape(states.shape[0], -1).to(device=theta.device, dtype=torch.float64)
    objective = (theta64 * z64).sum(dim=-1)
    best = (theta64 @ states64.T).amax(dim=-1)
    gap = (objective - best).abs()
    tolerance = atol + rtol * best.abs()
    failed = gap > tolerance
    if bool(failed.any()):
        bad = int(failed.nonzero()[0])
        index = _instance(bad, batch_shape)
        raise AssertionError(
            f"{_name(solver)} is not optimal for instance {index} ({int(failed.sum())} of {objective.numel()} "
            f"instances fail): <theta, z> = {float(objective[bad]):.10g} but the best feasible state "
            f"reaches {float(best[bad]):.10g}\ntheta = {theta[index]}\nz = {z[index]}"
        )
    return z


def check_batch_equals_loop(solver: Callable[..., Tensor], theta: Tensor, *args: Any,
                            event_dims: int | None = None, **kwargs: Any) -> Tensor:
    """Check that solving a batch at once equals solving each instance alone (exact equality).

    The instance ``theta[i]`` is solved with no batch dimension at all. ``event_dims`` defaults to
    ``solver.event_dims`` (1 for a plain function). ``args`` and ``kwargs`` are passed unchanged to
    every call, so they must not hold per-instance values. Returns the batched ``z``.

    Example:
        >>> import torch
        >>> from discograd.solvers import TopK
        >>> from discograd.testing import check_batch_equals_loop
        >>> _ = check_batch_equals_loop(TopK(2), torch.randn(2, 3, 5))
    """
    if event_dims is None:
        event_dims = event_dims_of(solver)
    else:
        event_dims = check_int(event_dims, "event_dims", minimum=0)
    theta = theta.detach()
    batch_shape, _ = _split(theta, event_dims)
    z = _call(solver, theta, args, kwargs)
    if z.shape != theta.shape:
        raise AssertionError(f"{_name(solver)} returned z of shape {tuple(z.shape)} for theta of shape "
                             f"{tuple(theta.shape)}")
    for flat_index in range(math.prod(batch_shape)):
        index = _instance(flat_index, batch_shape)
        alone = _call(solver, theta[index].clone(), args, kwargs)
        if alone.shape != z[index].shape or not torch.equal(alone, z[index]):
            raise AssertionError(
                f"{_name(solver)} gives a different z for instance {index} when it is solved in a batch of shape "
                f"{batch_shape} than when it is solved alone:\ntheta = {theta[index]}\n"
                f"z (batch) = {z[index]}\nz (alone) = {alone}"
            )
    return z


def check_deterministic(solver: Callable[..., Tensor], theta: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    """Check that solving the same ``theta`` twice (the second time on a copy) gives the same ``z``.

    Run it on ``theta`` with ties (e.g. small integer values): the contract asks solvers to break ties
    deterministically. Returns ``z``.

    Example:
        >>> import torch
        >>> from discograd.solvers import TopK
        >>> from discograd.testing import check_deterministic
        >>> _ = check_deterministic(TopK(2), torch.zeros(3, 5))  # all tied
    """
    theta = theta.detach()
    first = _call(solver, theta, args, kwargs)
    second = _call(solver, theta.clone(), args, kwargs)
    if first.shape != second.shape or not torch.equal(first, second):
        raise AssertionError(
            f"{_name(solver)} is not deterministic: two calls on the same theta of shape {tuple(theta.shape)} "
            f"returned different z (break ties by a fixed rule, e.g. the lowest index wins)\n"
            f"theta = {theta}\nfirst z = {first}\nsecond z = {second}"
        )
    return first


def check_tie_rule(solver: Callable[..., Tensor], theta: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    """Check that the solver follows its documented tie rule: ``z`` equals ``solver.reference(theta, ...)``, a
    slow per-instance implementation of the rule the solver documents (e.g. "the lowest index wins"), on
    every instance. Meant for ``theta`` with many ties (small integers). Returns ``z``.

    Example:
        >>> import torch
        >>> from discograd.solvers import TopK
        >>> from discograd.testing import check_tie_rule
        >>> check_tie_rule(TopK(2), torch.tensor([[1.0, 1.0, 1.0]]))
        tensor([[1., 1., 0.]])
    """
    reference = getattr(solver, "reference", None)
    if not callable(reference):
        raise TypeError(f"{_name(solver)} has no reference(theta) method that spells out its tie rule")
    z = _call(solver, theta, args, kwargs)
    expected = reference(theta, *args, **kwargs)
    event_dims = event_dims_of(solver)
    batch_shape, event_shape = _split(theta, event_dims)
    differ = (_flat(z, batch_shape, event_shape) != _flat(expected.to(z.dtype), batch_shape, event_shape)).any(-1)
    if bool(differ.any()):
        first = int(differ.nonzero()[0, 0])
        raise AssertionError(f"{_name(solver)} breaks its documented tie rule on instance "
                             f"{_instance(first, batch_shape)}: returned {z.reshape(-1, *event_shape)[first].tolist()}, "
                             f"the rule gives {expected.reshape(-1, *event_shape)[first].tolist()}")
    return z


@dataclasses.dataclass(frozen=True)
class SolverCheckReport:
    """What :func:`check_solver` ran (every listed check passed)."""

    #: names of the checks that ran, e.g. ``("output_contract", "feasible", "optimal", ...)``
    checks: tuple[str, ...]
    #: random ``theta`` draws, half of them integer-valued (with ties)
    num_trials: int
    #: instances checked per draw (the product of the batch shape)
    num_instances: int
    #: size of the feasible set compared against, ``None`` when it was unavailable
    num_states: int | None
    #: checks that could not run, with the reason (also reported as a warning)
    skipped: tuple[str, ...] = ()


def check_solver(solver: Callable[..., Tensor], event_shape: int | Sequence[int], states: Tensor | None = None, *,
                 batch_shape: Sequence[int] = (4, 3), num_trials: int = 10,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None, solver_args: Sequence[Any] = (),
                 solver_kwargs: dict[str, Any] | None = None) -> SolverCheckReport:
    """Run every check of this module on random ``theta`` of shape ``[*batch_shape, *event_shape]``.

    Even trials draw ``theta`` from a standard normal; odd trials draw small integers in ``[-2, 2]``,
    which creates many ties (optimality then accepts any maximiser, and determinism is checked). A solver
    that is exact only for some scores says so with ``solver.theta_domain``: ``"non_positive"`` (scores
    ``θ = −cost <= 0``, e.g. Dijkstra) makes the draws ``−|θ|``; ``"any"`` (the default) leaves them. Each
    trial runs :func:`check_output_contract`, :func:`check_feasible`, :func:`check_optimal`,
    :func:`check_batch_equals_loop` and :func:`check_deterministic`, and, on the integer draws of a solver
    with a ``reference`` method, :func:`check_tie_rule`, calling ``solver(theta, *solver_args, **solver_kwargs)``.

    ``states`` (``[num_states, *event_shape]``) defaults to ``solver.enumerate_feasible(*event_shape,
    dtype=dtype, device=device)``; if the solver cannot enumerate its feasible set (a plain function, or
    ``NotImplementedError``), feasibility and optimality are skipped: the report lists them in ``skipped``
    and a ``UserWarning`` says so (pass ``states`` to run them).
    Randomness comes from ``generator`` (default: a fresh CPU generator seeded with 0; ``theta`` is drawn
    on the generator's device, then moved to ``device``); global RNG state is not touched.

    Example:
        >>> from discograd.solvers import TopK
        >>> from discograd.testing import check_solver
        >>> check_solver(TopK(3), 6).checks
        ('output_contract', 'feasible', 'optimal', 'batch_equals_loop', 'deterministic', 'tie_rule')
    """
    event_shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
    event_shape = tuple(check_int(size, "event_shape", minimum=0) for size in event_shape)
    batch_shape = tuple(check_int(size, "batch_shape", minimum=0) for size in batch_shape)
    num_trials = check_int(num_trials, "num_trials", minimum=1)
    generator = check_generator(generator)
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype; got {dtype}")
    args = tuple(solver_args)
    kwargs = dict(solver_kwargs or {})
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    if states is None:
        enumerate_feasible = getattr(solver, "enumerate_feasible", None)
        if enumerate_feasible is not None:
            try:
                states = enumerate_feasible(*event_shape, dtype=dtype, device=device)
            except NotImplementedError:
                states = None
    if states is not None and tuple(states.shape[1:]) != event_shape:
        raise ValueError(f"states must have shape [num_states, *{event_shape}]; got {tuple(states.shape)}")

    domain = getattr(solver, "theta_domain", "any")
    if domain not in ("any", "non_positive"):
        raise ValueError(f"solver.theta_domain must be 'any' or 'non_positive'; got {domain!r}")
    tie_rule = callable(getattr(solver, "reference", None))
    shape = batch_shape + event_shape
    checks = ["output_contract"]
    skipped: list[str] = []
    if states is not None:
        checks += ["feasible", "optimal"]
    else:
        skipped += ["feasible", "optimal"]
        warnings.warn(f"check_solver skipped the feasibility and optimality checks of {_name(solver)}: it has no "
                      "enumerate_feasible(...) and no states were given; pass states=[num_states, *event_shape] "
                      "(e.g. discograd.exact.ksubset_states(n, k)) to run them", UserWarning, stacklevel=2)
    checks += ["batch_equals_loop", "deterministic"]
    if tie_rule:
        checks += ["tie_rule"]
    for trial in range(num_trials):
        # drawn on the generator's device, then moved
        if trial % 2 == 0:
            theta = torch.randn(shape, generator=generator, dtype=dtype, device=generator.device)
        else:
            theta = torch.randint(-2, 3, shape, generator=generator, device=generator.device).to(dtype)
        if domain == "non_positive":
            theta = -theta.abs()
        theta = theta.to(device) if device is not None else theta
        check_output_contract(solver, theta, *args, **kwargs)
        if states is not None:
            check_feasible(solver, theta, states, *args, **kwargs)
            check_optimal(solver, theta, states, *args, **kwargs)
        check_batch_equals_loop(solver, theta, *args, event_dims=len(event_shape), **kwargs)
        check_deterministic(solver, theta, *args, **kwargs)
        if tie_rule and trial % 2 == 1:
            check_tie_rule(solver, theta, *args, **kwargs)
    return SolverCheckReport(
        checks=tuple(checks),
        num_trials=num_trials,
        num_instances=math.prod(batch_shape),
        num_states=None if states is None else int(states.shape[0]),
        skipped=tuple(skipped),
    )
