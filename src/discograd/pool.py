r"""Solution pools and solution caching: PyEPO's ``solve_ratio`` for any estimator.

Mulamba, Mandi, Diligenti, Lombardi, Bucarey, Guns, "Contrastive Losses and Solution Caching for
Predict-and-Optimize", IJCAI 2021 (arXiv:2011.05354), Section 4: keep the distinct feasible solutions seen
so far in a pool :math:`S`, call the real solver on only a fraction of the training steps, and answer the
others with the best pooled solution

.. math::

    \hat z(\theta) = \arg\max_{w \in S} \langle \theta, w \rangle ,

an inner approximation of the feasible set that becomes exact once the pool holds the optimum.

- :class:`SolutionPool`: the pool, an ``nn.Module`` whose buffer (kept in ``state_dict``, so a checkpoint
  keeps the pool) holds the distinct solutions, ``[N, *event_shape]``; :meth:`SolutionPool.best` answers a
  whole batch with one matrix product.
- :class:`CachedSolver`: wraps any solver; on each call it solves with probability ``solve_ratio`` (adding
  the solutions to the pool) and otherwise answers from the pool. It follows the solver contract of
  :mod:`discograd.solvers.base` (maximise ``<θ, z>``, ``theta``'s shape, dtype and device, ``event_dims``),
  so every estimator and loss of discograd accepts it in place of the solver.

The pool losses built on it (NCE, CMAP, learning to rank) live in :mod:`discograd.losses.contrastive` and
:mod:`discograd.losses.ranking`.

**PyEPO's rule** (pyepo 2.2.7, ``pyepo/func/utils.py``, ``_solve_or_cache``; ``pyepo/func/abcmodule.py``,
``optModule._refresh_solution_pool``): one uniform number per solver call,
``if self._branch_rng.uniform() <= solve_ratio``: the *whole batch* is solved and its solutions join the
pool, else the whole batch is answered from the pool (``_cache_in_pass``: ``argmin_w ĉᵀw`` over the pool for
minimisation). The pool starts as ``torch.unique(dataset.sols, dim=0)``, the training set's optimal
solutions (``pyepo/func/runtime.py``, ``init_solution_pool``), and a new solution joins it unless it lies
within the L1 distance ``min(1e-4 · d, 0.1)`` of a pooled one (``_update_solution_pool``,
``solution_pool_tolerance``). This module's defaults reproduce all three; ``mode="instance"`` is an
alternative (each instance solved independently with probability ``solve_ratio``, the same expected
number of solver calls with less variance per batch). PyEPO minimises ``ĉᵀw`` with ``ĉ`` the predicted cost;
discograd maximises ``<θ, w>``: take ``θ = −ĉ`` (for PyEPO's ``EPO.MAXIMIZE`` models ``θ = ĉ``); the pooled
answers are then the same solutions.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ._validation import (
    check_finite,
    check_generator,
    check_int,
    check_non_negative,
    check_theta,
)
from .estimators._batching import PerInstance, solve_samples
from .solvers.base import event_dims_of

__all__ = ["MODES", "CachedSolver", "SolutionPool", "default_tolerance"]

#: how a :class:`CachedSolver` decides what to solve: PyEPO's one draw per call, or one draw per instance
MODES = ("batch", "instance")

#: the largest (rows × pooled solutions) block one distance or score computation materialises at once
_CHUNK_ELEMENTS = 1 << 24


def default_tolerance(num_entries: int) -> float:
    """PyEPO's deduplication tolerance for solutions with ``num_entries`` entries: the L1 distance
    ``min(1e-4 · num_entries, 0.1)`` (``pyepo/func/_common.py``, ``solution_pool_tolerance``).

    Example:
        >>> default_tolerance(40), default_tolerance(5000)
        (0.004, 0.1)
    """
    return min(1e-4 * num_entries, 0.1)


def check_solve_ratio(value: object, name: str = "solve_ratio") -> float:
    """A probability: a real number in ``[0, 1]``; returned as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in [0, 1]; got {type(value).__name__} {value!r}")
    v = float(value)
    if not 0.0 <= v <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must lie in [0, 1] (the probability of calling the real solver); got {value!r}")
    return v


def _check_event_shape(event_shape: object) -> tuple[int, ...]:
    if isinstance(event_shape, numbers.Integral) and not isinstance(event_shape, bool):
        event_shape = (event_shape,)
    if isinstance(event_shape, torch.Size):
        event_shape = tuple(event_shape)
    if not isinstance(event_shape, Sequence) or isinstance(event_shape, str):
        raise TypeError(f"event_shape must be an int or a sequence of ints; got {type(event_shape).__name__}")
    return tuple(check_int(n, "event_shape entries", minimum=1) for n in event_shape)


def _draw(solve_ratio: float, generator: torch.Generator | None, size: int | None = None) -> Tensor:
    """``size`` (or one, for ``None``) Bernoulli(``solve_ratio``) decisions ``u < solve_ratio``, ``u ~ U[0, 1)``,
    drawn on the generator's device in float64 (so ``solve_ratio = 0`` never and ``1`` always solves)."""
    device = generator.device if generator is not None else torch.device("cpu")
    shape = () if size is None else (size,)
    return torch.rand(shape, generator=generator, device=device, dtype=torch.float64) < solve_ratio


def _solve(solver: Callable[..., Tensor], theta: Tensor, args: tuple, kwargs: dict, event_dims: int) -> Tensor:
    """``solver(theta)`` without autograd, with the output checked (shape, device, finite; cast to theta's dtype)."""
    return solve_samples(solver, theta.detach().unsqueeze(0), args, kwargs, num_samples=None, event_dims=event_dims)[0]


def _refresh_pool(pool: SolutionPool, solver: Callable[..., Tensor], theta: Tensor, solve_ratio: float,
                  generator: torch.Generator | None, args: tuple, kwargs: dict) -> bool:
    """PyEPO's ``_refresh_solution_pool``: with probability ``solve_ratio`` solve the whole batch ``MAP(theta)``
    and add the solutions to ``pool``. Returns whether it solved."""
    if not bool(_draw(solve_ratio, generator)):
        return False
    pool.add(_solve(solver, theta, args, kwargs, len(pool.event_shape)))
    return True


class SolutionPool(torch.nn.Module):
    r"""The distinct solutions seen so far, ``[N, *event_shape]``, kept in the module's state.

    Args:
        event_shape: the shape of one solution (``int`` for vectors), the ``event_dims`` trailing dimensions
            of ``theta``.
        solutions: optional initial solutions ``[*batch, *event_shape]``, typically the training set's optimal
            solutions, as PyEPO's pool starts from ``dataset.sols``.
        max_size: optional cap on ``N``. When an :meth:`add` would exceed it, the **oldest** solutions are
            dropped (first in, first out). ``None`` (default, as PyEPO): no cap.
        tolerance: two solutions whose L1 distance is ``<= tolerance`` count as the same one. ``None``
            (default) is PyEPO's :func:`default_tolerance` ``min(1e-4 · d, 0.1)`` with ``d`` the number of
            entries of a solution; ``0`` keeps every distinct value.
        dtype, device: of the buffer (default: ``solutions``' floating dtype, else torch's default dtype;
            ``solutions``' device). The buffer follows ``module.to(...)``.

    Deduplication (:meth:`add`): the batch is reduced to its distinct rows (``torch.unique``); a row is dropped
    when it lies within ``tolerance`` of an earlier row of the batch (in ``torch.unique``'s lexicographic
    order) or of a pooled solution; the rest are appended in that order. For 0/1 solutions this is exactly
    PyEPO's ``_update_solution_pool``, and the pool holds the same rows in the same order.

    :meth:`best` answers ``argmax_{w in pool} <θ, w>`` for every instance with one matrix product
    ``[B, d] × [d, N]`` (split into blocks of about ``2**24`` scores for huge batches); ties go to the
    earliest pooled solution (``torch.argmax``). The pool ignores the solver's extra arguments: it assumes
    every instance has the same feasible set, as PyEPO's models do.

    Example:
        >>> import torch
        >>> pool = SolutionPool(3, torch.tensor([[1.0, 0, 0], [0, 1, 0], [1.0, 0, 0]]))
        >>> len(pool), pool.add(torch.tensor([[0.0, 0, 1], [0, 1, 0]])), len(pool)
        (2, 1, 3)
        >>> pool.best(torch.tensor([[0.5, -1.0, 2.0], [3.0, 1.0, 0.0]]))
        tensor([[0., 0., 1.],
                [1., 0., 0.]])
    """

    def __init__(self, event_shape: int | Sequence[int], solutions: Tensor | None = None, *,
                 max_size: int | None = None, tolerance: float | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.event_shape = _check_event_shape(event_shape)
        self.num_entries = math.prod(self.event_shape)
        self.max_size = None if max_size is None else check_int(max_size, "max_size", minimum=1)
        self.tolerance = (default_tolerance(self.num_entries) if tolerance is None
                          else check_non_negative(tolerance, "tolerance"))
        if solutions is not None and not isinstance(solutions, Tensor):
            raise TypeError(f"solutions must be a torch.Tensor or None; got {type(solutions).__name__}")
        if dtype is None:
            dtype = (solutions.dtype if solutions is not None and solutions.is_floating_point()
                     else torch.get_default_dtype())
        elif not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point torch.dtype; got {dtype!r}")
        if device is None and solutions is not None:
            device = solutions.device
        self.register_buffer("_solutions", torch.empty(0, *self.event_shape, dtype=dtype, device=device))
        if solutions is not None:
            self.add(solutions)

    @classmethod
    def from_solutions(cls, solutions: Tensor, event_dims: int = 1, **options: Any) -> SolutionPool:
        """A pool started from ``solutions`` (``[*batch, *event]``), with the event shape read from its last
        ``event_dims`` dimensions; ``options`` as in the constructor.

        Example:
            >>> import torch
            >>> len(SolutionPool.from_solutions(torch.eye(3).repeat(2, 1)))
            3
        """
        if not isinstance(solutions, Tensor):
            raise TypeError(f"solutions must be a torch.Tensor; got {type(solutions).__name__}")
        event_dims = check_int(event_dims, "event_dims", minimum=1)
        if solutions.dim() < event_dims:
            raise ValueError(f"solutions must have at least event_dims = {event_dims} dimensions; got shape "
                             f"{tuple(solutions.shape)}")
        return cls(tuple(solutions.shape[solutions.dim() - event_dims:]), solutions, **options)

    # ------------------------------------------------------------------ contents
    @property
    def solutions(self) -> Tensor:
        """The pooled solutions, ``[N, *event_shape]``, oldest first (the buffer itself: do not modify it)."""
        return self._solutions

    def __len__(self) -> int:
        return int(self._solutions.shape[0])

    def clear(self) -> None:
        """Empty the pool (keeps dtype and device)."""
        self._solutions = self._solutions[:0].clone()

    def check_event_shape(self, x: Tensor, name: str) -> None:
        """Raise ``ValueError`` unless ``x`` is ``[*batch, *event_shape]``."""
        k = len(self.event_shape)
        if x.dim() < k or tuple(x.shape[x.dim() - k:]) != self.event_shape:
            raise ValueError(f"{name} must have shape [*batch, *event_shape] with the pool's event_shape "
                             f"{self.event_shape}; got {tuple(x.shape)}")

    def add(self, z: Tensor) -> int:
        """Add the distinct new solutions of ``z`` (``[*batch, *event_shape]``, any real dtype); return how many
        joined the pool."""
        if not isinstance(z, Tensor):
            raise TypeError(f"z must be a torch.Tensor; got {type(z).__name__}")
        if z.is_complex():
            raise TypeError(f"z must be real; got dtype {z.dtype}")
        self.check_event_shape(z, "z")
        check_finite(z, "z")
        buffer = self._solutions
        rows = z.detach().reshape(-1, self.num_entries).to(device=buffer.device, dtype=buffer.dtype)
        if rows.shape[0] == 0:
            return 0
        rows = torch.unique(rows, dim=0)
        if self.tolerance > 0 and rows.shape[0] > 1:
            rows = rows[~_close_to_earlier(rows, self.tolerance)]
        pooled = buffer.reshape(-1, self.num_entries)
        if pooled.shape[0] > 0:
            rows = rows[~_close_to_any(rows, pooled, self.tolerance)]
        if rows.shape[0] == 0:
            return 0
        pooled = torch.cat((pooled, rows), dim=0)
        if self.max_size is not None and pooled.shape[0] > self.max_size:
            pooled = pooled[pooled.shape[0] - self.max_size:]
        self._solutions = pooled.reshape(-1, *self.event_shape).contiguous()
        return int(rows.shape[0])

    # ------------------------------------------------------------------ queries
    def objectives(self, theta: Tensor) -> Tensor:
        r"""``<θ, w_n>`` for every pooled solution, ``[*batch, N]`` (differentiable in ``theta``; the pool is
        cast to ``theta``'s dtype and device)."""
        check_theta(theta, "theta", min_dim=len(self.event_shape))
        self.check_event_shape(theta, "theta")
        batch = theta.shape[:theta.dim() - len(self.event_shape)]
        pool = self._solutions.reshape(-1, self.num_entries).to(device=theta.device, dtype=theta.dtype)
        return (theta.reshape(-1, self.num_entries) @ pool.T).reshape(*batch, pool.shape[0])

    def best_index(self, theta: Tensor) -> Tensor:
        """Index in :attr:`solutions` of ``argmax_{w in pool} <θ, w>`` per instance, ``[*batch]`` (int64; ties
        to the earliest solution). Raises ``ValueError`` if the pool is empty."""
        check_theta(theta, "theta", min_dim=len(self.event_shape))
        self.check_event_shape(theta, "theta")
        self._check_not_empty()
        batch = theta.shape[:theta.dim() - len(self.event_shape)]
        pool = self._solutions.reshape(-1, self.num_entries).to(device=theta.device, dtype=theta.dtype)
        flat = theta.detach().reshape(-1, self.num_entries)
        step = max(1, _CHUNK_ELEMENTS // pool.shape[0])
        with torch.no_grad():
            index = torch.cat([(flat[s:s + step] @ pool.T).argmax(dim=1) for s in range(0, flat.shape[0], step)]
                              ) if flat.shape[0] > 0 else flat.new_zeros(0, dtype=torch.long)
        return index.reshape(batch)

    def best(self, theta: Tensor) -> Tensor:
        """The best pooled solution ``argmax_{w in pool} <θ, w>`` per instance: ``theta``'s shape, dtype and
        device, no autograd. Raises ``ValueError`` if the pool is empty."""
        index = self.best_index(theta).reshape(-1).to(self._solutions.device)
        return self._solutions[index].to(device=theta.device, dtype=theta.dtype).reshape(theta.shape)

    def _check_not_empty(self) -> None:
        if len(self) == 0:
            raise ValueError("the solution pool is empty: start it from the training set's optimal solutions "
                             "(SolutionPool(event_shape, solutions=...)) or add solutions first (pool.add(z), or "
                             "solve_ratio > 0 so that some calls solve)")

    # ------------------------------------------------------------------ state
    def _load_from_state_dict(self, state_dict: dict, prefix: str, local_metadata: dict, strict: bool,
                              missing_keys: list, unexpected_keys: list, error_msgs: list) -> None:
        # the pool's size is part of its state: resize the buffer to the checkpoint's before torch copies into it
        key = prefix + "_solutions"
        if key in state_dict:
            saved = state_dict[key]
            if not isinstance(saved, Tensor) or tuple(saved.shape[1:]) != self.event_shape:
                error_msgs.append(f"{key}: the checkpoint's pool has shape {tuple(getattr(saved, 'shape', ()))}; this "
                                  f"pool's solutions have event_shape {self.event_shape}")
                return
            self._solutions = torch.empty(saved.shape, dtype=self._solutions.dtype, device=self._solutions.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        return (f"event_shape={self.event_shape}, size={len(self)}, max_size={self.max_size}, "
                f"tolerance={self.tolerance:g}")


def _close_to_earlier(rows: Tensor, tolerance: float) -> Tensor:
    """``[U]`` bool: row ``i`` lies within ``tolerance`` (L1) of some row ``j < i``."""
    u = rows.shape[0]
    out = torch.zeros(u, dtype=torch.bool, device=rows.device)
    step = max(1, _CHUNK_ELEMENTS // u)
    for s in range(0, u, step):
        e = min(u, s + step)
        close = torch.cdist(rows[s:e], rows[:e], p=1.0) <= tolerance
        earlier = (torch.arange(e, device=rows.device).unsqueeze(0)
                   < torch.arange(s, e, device=rows.device).unsqueeze(1))
        out[s:e] = (close & earlier).any(dim=1)
    return out


def _close_to_any(rows: Tensor, pooled: Tensor, tolerance: float) -> Tensor:
    """``[U]`` bool: row ``i`` lies within ``tolerance`` (L1) of some pooled row."""
    step = max(1, _CHUNK_ELEMENTS // pooled.shape[0])
    return torch.cat([(torch.cdist(rows[s:s + step], pooled, p=1.0) <= tolerance).any(dim=1)
                      for s in range(0, rows.shape[0], step)])


class CachedSolver(torch.nn.Module):
    r"""A solver that calls the real solver only on a fraction of the calls and answers the rest from a pool.

    ``cached(theta, *args, **kwargs)``, in training mode:

    - ``mode="batch"`` (default, **PyEPO's rule**, ``pyepo/func/utils.py``, ``_solve_or_cache``): one draw
      ``u ~ U[0, 1)`` per call; if ``u < solve_ratio`` the whole batch is solved, ``z = solver(theta)``, and
      ``z`` joins the pool; otherwise ``z = pool.best(theta)`` for the whole batch. (PyEPO tests
      ``u <= solve_ratio``: different only on the probability-zero event ``u == solve_ratio``; here
      ``solve_ratio = 0`` never and ``1`` always solves.)
    - ``mode="instance"``: each instance is solved independently with probability ``solve_ratio`` (its
      solution joins the pool first), the others get ``pool.best``: the same expected fraction of solver
      calls, with binomial instead of all-or-nothing counts per batch. The solver then sees a sub-batch
      ``[m, *event]``, so tensor arguments (which could be per instance) are refused: use ``mode="batch"``.

    In evaluation mode (``module.eval()``) with ``exact_in_eval=True`` (default) every call is solved exactly
    and the pool is left unchanged, like PyEPO, whose metrics (``pyepo.metric.regret``) call the real solver
    and never the cached loss modules; ``exact_in_eval=False`` caches in evaluation too.

    It follows the solver contract (maximise ``<θ, z>``; ``z`` with ``theta``'s shape, dtype and device, no
    autograd) and carries the solver's ``event_dims``, so it goes wherever a solver goes:
    ``discograd.imle(CachedSolver(...))``, ``blackbox``, ``perturbed``, ``FenchelYoungLoss``,
    ``spo_plus_loss``... Each solver call of an estimator (forward, and backward for I-MLE / blackbox, as in
    PyEPO's DBB) is one independent draw. Perturbed copies ``[S * B, ...]`` are answered by the best pooled
    solution of each perturbed ``θ``. The pool ignores the extra solver arguments: it assumes one feasible set
    for every instance. Counters ``num_solved`` / ``num_cached`` count the instances answered each way.

    Args:
        solver: any solver ``solver(theta, *args, **kwargs)`` (:mod:`discograd.solvers`).
        pool: the :class:`SolutionPool` (a submodule: saved in this module's ``state_dict``); its
            ``event_shape`` must have ``event_dims`` dimensions.
        solve_ratio: probability in ``[0, 1]`` of calling the real solver (PyEPO's ``solve_ratio``).
        mode: ``"batch"`` or ``"instance"``, see above.
        generator: ``torch.Generator`` for the draws (reproducible runs); ``None`` uses torch's default one.
        exact_in_eval: solve exactly in evaluation mode (default ``True``).

    Example:
        >>> import torch, discograd
        >>> from discograd.pool import CachedSolver, SolutionPool
        >>> solver = discograd.TopK(2)
        >>> pool = SolutionPool(4, solver.enumerate_feasible(4))   # all 6 two-subsets of 4 items
        >>> cached = CachedSolver(solver, pool, solve_ratio=0.0)     # never solves: pool only
        >>> theta = torch.tensor([[0.1, 2.0, -1.0, 3.0]])
        >>> bool((cached(theta) == solver(theta)).all()), cached.num_solved, cached.num_cached
        (True, 0, 1)
        >>> layer = discograd.blackbox(cached, step_size=1.0)        # any estimator takes it
        >>> layer(theta).tolist()
        [[0.0, 1.0, 0.0, 1.0]]
    """

    def __init__(self, solver: Callable[..., Tensor], pool: SolutionPool, solve_ratio: float, *,
                 mode: str = "batch", generator: torch.Generator | None = None, exact_in_eval: bool = True) -> None:
        super().__init__()
        if not callable(solver):
            raise TypeError(f"solver must be callable as solver(theta, *args, **kwargs); got {type(solver).__name__}")
        if not isinstance(pool, SolutionPool):
            raise TypeError(f"pool must be a discograd.pool.SolutionPool; got {type(pool).__name__}")
        self.event_dims = event_dims_of(solver)
        if len(pool.event_shape) != self.event_dims:
            raise ValueError(f"pool.event_shape {pool.event_shape} must have solver.event_dims = {self.event_dims} "
                             "dimensions (one solution per instance)")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
        if not isinstance(exact_in_eval, bool):
            raise TypeError(f"exact_in_eval must be a bool; got {type(exact_in_eval).__name__}")
        self.solver = solver
        self.pool = pool
        self.solve_ratio = check_solve_ratio(solve_ratio)
        self.mode = mode
        self.generator = check_generator(generator)
        self.exact_in_eval = exact_in_eval
        #: instances answered by the real solver / from the pool since construction (or the last reset_counters)
        self.num_solved = 0
        self.num_cached = 0

    def reset_counters(self) -> None:
        """Set ``num_solved`` and ``num_cached`` back to zero."""
        self.num_solved = 0
        self.num_cached = 0

    def forward(self, theta: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        check_theta(theta, "theta", min_dim=max(1, self.event_dims))
        self.pool.check_event_shape(theta, "theta")
        theta = theta.detach()
        num_instances = math.prod(theta.shape[:theta.dim() - self.event_dims])
        if self.exact_in_eval and not self.training:
            return _solve(self.solver, theta, args, kwargs, self.event_dims)
        if self.mode == "batch":
            if bool(_draw(self.solve_ratio, self.generator)):
                z = _solve(self.solver, theta, args, kwargs, self.event_dims)
                self.pool.add(z)
                self.num_solved += num_instances
                return z
            z = self.pool.best(theta)
            self.num_cached += num_instances
            return z
        tensors = [type(a).__name__ for a in (*args, *kwargs.values()) if isinstance(a, (Tensor, PerInstance))]
        if tensors:
            raise TypeError("CachedSolver(mode='instance') solves a random sub-batch, so it cannot pass tensor solver "
                            f"arguments (they may be per instance); got {', '.join(tensors)}: use mode='batch'")
        flat = theta.reshape(num_instances, *self.pool.event_shape)
        solve = _draw(self.solve_ratio, self.generator, num_instances).to(theta.device)
        z = torch.empty_like(flat, memory_format=torch.contiguous_format)
        num_solved = int(solve.sum())
        if num_solved > 0:
            solved = _solve(self.solver, flat[solve], args, kwargs, self.event_dims)
            self.pool.add(solved)
            z[solve] = solved
        if num_solved < num_instances:
            z[~solve] = self.pool.best(flat[~solve])
        self.num_solved += num_solved
        self.num_cached += num_instances - num_solved
        return z.reshape(theta.shape)

    def extra_repr(self) -> str:
        solver = "" if isinstance(self.solver, torch.nn.Module) else f"solver={self.solver!r}, "
        return (f"{solver}solve_ratio={self.solve_ratio}, mode={self.mode!r}, "
                f"exact_in_eval={self.exact_in_eval}")
