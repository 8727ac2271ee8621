"""A user-given mixed-integer linear programme, solved per instance with HiGHS (persistent highspy models,
or scipy.optimize.milp)."""

from __future__ import annotations

import contextlib
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._optional import require
from .._validation import check_int, check_positive
from .base import Solver

__all__ = ["MILP"]

#: batches smaller than this are solved in the calling thread (a thread pool does not pay for them)
PARALLEL_MIN_BATCH = 4

#: enumerate_feasible lists at most this many points of the integer box (2**16: all 0/1 vectors of n = 16)
MAX_ENUMERATED_STATES = 2**16

#: absolute tolerance of enumerate_feasible's constraint check (HiGHS's default mip_feasibility_tolerance)
FEASIBILITY_TOLERANCE = 1e-6


#: ``backend`` values: ``"auto"`` is highspy when it is installed, else scipy
BACKENDS = ("auto", "highspy", "scipy")

_banner_lock = threading.Lock()
_banner_shown = False


def _highspy():
    try:
        import highspy
    except ImportError:
        return None
    return highspy


def _new_highs(highspy: Any) -> Any:
    """A silent ``highspy.Highs()``. HiGHS writes its banner straight to file descriptor 1 when the first
    model of a process is built, before any option can be set: that one construction runs with fd 1 sent
    to /dev/null."""
    global _banner_shown
    with _banner_lock:
        if _banner_shown:
            model = highspy.Highs()
        else:
            with _stdout_silenced():
                model = highspy.Highs()
            _banner_shown = True
    model.setOptionValue("output_flag", False)
    # one HiGHS thread per model: the batch is already spread over discograd's worker threads, and HiGHS's
    # own parallel scheduler, on top of them, made each solve 2.5x slower on a busy 2-core machine
    model.setOptionValue("threads", 1)
    return model


def _run_highs(highspy: Any, model: Any) -> tuple[int, str]:
    """``model.run()``; returns scipy.optimize.milp's status code (0 optimal, 1 time or iteration limit,
    2 infeasible, 3 unbounded, 4 other), so that errors read the same with both backends, and HiGHS's
    model status as text."""
    if model.run() == highspy.HighsStatus.kError and model.getModelStatus() == highspy.HighsModelStatus.kNotset:
        # HiGHS's scheduler is process-wide: another user of highspy in this process started it
        # with more threads, which a threads=1 model refuses; restart it and solve again
        highspy.Highs.resetGlobalScheduler(True)
        model.run()
    status = model.getModelStatus()
    kinds = highspy.HighsModelStatus
    code = {kinds.kOptimal: 0, kinds.kTimeLimit: 1, kinds.kIterationLimit: 1, kinds.kInfeasible: 2,
            kinds.kUnbounded: 3, kinds.kUnboundedOrInfeasible: 2}.get(status, 4)
    return code, model.modelStatusToString(status)


@contextlib.contextmanager
def _stdout_silenced():
    import sys

    try:
        sys.stdout.flush()
        fd = sys.stdout.fileno() if hasattr(sys.stdout, "fileno") else 1
    except (OSError, ValueError, AttributeError):
        fd = 1
    try:
        saved = os.dup(fd)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            try:
                yield
            finally:
                os.dup2(saved, fd)
    finally:
        os.close(saved)


def _scipy_optimize():
    return require("scipy.optimize", extra="solvers", purpose="MILP (HiGHS through scipy.optimize.milp)")


class MILP(Solver):
    r"""Maximiser of a mixed-integer linear programme, solved with HiGHS through :func:`scipy.optimize.milp`:

    .. math::

        z = \arg\max_{z \in \mathbb{R}^n} \langle \theta, z \rangle \quad\text{subject to}\quad
        A_{ub} z \le b_{ub},\quad A_{eq} z = b_{eq},\quad lo \le z \le hi,\quad
        z_i \in \mathbb{Z} \text{ for every } i \text{ with } \mathrm{integrality}_i = 1.

    The default ``bounds=(0, 1)`` with ``integrality=1`` makes every variable binary. A problem stated as
    cost minimisation takes ``theta = -cost``.

    Args:
        A_ub, b_ub: inequality constraints, ``A_ub`` ``[m_ub, n]`` and ``b_ub`` ``[m_ub]``. ``A_ub`` may be a
            numpy array, a torch tensor, a nested list or a ``scipy.sparse`` matrix or array. ``b_ub`` may be
            left ``None`` at construction and given per call instead (see below).
        A_eq, b_eq: equality constraints, ``A_eq`` ``[m_eq, n]`` and ``b_eq`` ``[m_eq]``, likewise.
        bounds: ``(lo, hi)``, where ``lo`` and ``hi`` are each a scalar (shared by every variable), an
            ``[n]`` array or ``None`` (no bound: ``-inf`` / ``+inf``); or an array of shape ``[n, 2]`` whose row
            ``i`` is ``(lo_i, hi_i)`` (the convention of :func:`scipy.optimize.linprog`); or a
            :class:`scipy.optimize.Bounds`. A Python list or tuple of length 2 is always read as
            ``(lo, hi)``; per-variable pairs for ``n = 2`` must come as an array of shape ``[2, 2]``.
            Every ``lo <= hi``.
        integrality: ``1`` for an integer variable, ``0`` for a continuous one (scipy's convention), as
            one int for every variable or an ``[n]`` array.
        num_workers: threads that solve the instances of a batch: ``None`` for the number of CPUs this
            process may use (capped at the batch size), ``1`` for the calling thread only.
        backend: ``"highspy"``: one persistent HiGHS model per worker thread, built once, whose objective
            (and per-call right-hand sides) are changed per instance before it is re-solved (no model is
            rebuilt per instance); ``"scipy"``: a fresh :func:`scipy.optimize.milp` call per instance;
            ``"auto"`` (default): highspy when installed (it comes with the ``solvers`` extra), else scipy.
            Both run HiGHS with its default options.
        time_limit: seconds HiGHS may spend on one instance, ``None`` for no limit. An instance stopped by
            the limit returns the best feasible solution found so far, **which need not be optimal**;
            one stopped before finding any raises ``ValueError``.

    The number of variables ``n`` comes from the constraints (or from array-valued ``bounds`` /
    ``integrality``); ``theta``'s last dimension must equal it. With no constraint and only scalar bounds
    and integrality, ``n`` is taken from ``theta``.

    Shapes: ``theta`` is ``[*batch, n]`` (any number of batch dimensions, including none); ``z`` has
    ``theta``'s shape, dtype and device (a CUDA ``theta`` is copied to the CPU for HiGHS and ``z`` copied
    back). Every instance of the batch shares the constraints, except per-call right-hand sides:
    ``solver(theta, b_ub=..., b_eq=...)`` takes an array or tensor broadcastable to ``[*batch, m_ub]``
    (resp. ``[*batch, m_eq]``), which replaces the constructor's value, e.g. one budget per instance.
    Inside :func:`discograd.imle` with ``num_samples``, wrap it with :func:`discograd.per_instance`.

    Values: integer variables are rounded to exact integers (HiGHS returns values such as
    ``0.9999999``); continuous variables are returned as HiGHS computed them, in ``theta``'s dtype.

    Ties: when several ``z`` reach the optimum, HiGHS returns one of them. For a fixed input the choice is
    deterministic (the same ``theta`` and constraints give the same ``z``, whatever the batch layout or
    ``num_workers``), but which maximiser it picks is **not specified** and may change with the scipy /
    HiGHS version or with a change of the input that preserves the optimum (scaling ``theta``, reordering
    the variables or the constraints). Break ties in ``theta`` yourself if you need a rule.

    Errors: an infeasible or unbounded instance, or one stopped by ``time_limit`` without a feasible
    solution, raises ``ValueError`` naming the instance (its flat index and its index in the batch shape)
    and HiGHS's status and message. When several instances fail, the one with the lowest flat index is
    reported, with the number of failures.

    Parallelism: the instances of a batch are independent HiGHS runs. HiGHS releases the GIL while it
    solves (measured with scipy 1.17: four threads, each in a 1 s time-limited solve, finish in 1.0 s of
    wall time), so a thread pool created per call runs them in parallel, without the start-up (2 s or
    more with ``spawn``; ``fork`` is unsafe in a process using threads) and pickling costs of a process
    pool, which measured no faster than threads even when warm. With ``num_workers=None``, batches
    smaller than ``PARALLEL_MIN_BATCH = 4`` are solved in the calling thread. The results do not depend
    on the number of threads.

    Cost: one HiGHS run per instance, a few milliseconds for small problems (``n = 20`` with a few
    constraints: about 5 ms), so this solver suits problems that no specialised solver covers. The
    constraint matrix is assembled once, at construction, in a sparse format; with the highspy backend
    the whole HiGHS model is built once per worker thread and each HiGHS model runs on one thread (the
    batch is parallel across discograd's workers). On PyEPO's 2-D knapsack (16 items) that backend took
    17 ms per solve against 30 ms for scipy's (``benchmarks/bench_milp.py``, interleaved, medians, on 2
    busy cores at load 3): most of the time is HiGHS's branch and bound itself, not the model set-up.
    HiGHS's start-up banner is silenced. HiGHS inside scipy (1.12, in scipy 1.17) occasionally writes a
    diagnostic line ``HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();`` straight
    to the process's stdout; it is harmless and does not change the result.

    Example:
        >>> import torch
        >>> from discograd.solvers import MILP
        >>> # choose at most 2 of 4 items with weights 3, 2, 2, 1 under a budget of 4
        >>> solver = MILP(A_ub=[[1, 1, 1, 1], [3, 2, 2, 1]], b_ub=[2, 4])
        >>> theta = torch.tensor([[5.0, 4.0, 3.0, 1.0], [4.0, -1.0, 2.0, 3.0]])
        >>> solver(theta)
        tensor([[0., 1., 1., 0.],
                [1., 0., 0., 1.]])
        >>> solver(theta, b_ub=torch.tensor([[2, 4], [2, 2]]))  # a budget per instance
        tensor([[0., 1., 1., 0.],
                [0., 0., 0., 1.]])
        >>> solver.enumerate_feasible().shape  # the 9 feasible 0/1 vectors
        torch.Size([9, 4])
    """

    event_dims = 1

    def __init__(self, A_ub: Any = None, b_ub: Any = None, A_eq: Any = None, b_eq: Any = None,
                 bounds: Any = (0, 1), integrality: Any = 1, *, num_workers: int | None = None,
                 time_limit: float | None = None, backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
        if backend == "highspy" and _highspy() is None:
            raise ImportError("MILP(backend='highspy') needs highspy: pip install highspy (or discograd[solvers])")
        self.backend = backend if backend != "auto" else ("highspy" if _highspy() is not None else "scipy")
        self._models: dict[tuple[int, int], Any] = {}  # (process id, thread id) -> persistent highspy model
        self._changed_rows: set[int] = set()  # models whose row bounds a per-call right-hand side replaced
        optimize = _scipy_optimize()
        sparse = require("scipy.sparse", extra="solvers", purpose="MILP's constraint matrices")
        A_ub, n_ub = _matrix(A_ub, "A_ub", sparse)
        A_eq, n_eq = _matrix(A_eq, "A_eq", sparse)
        if n_ub is not None and n_eq is not None and n_ub != n_eq:
            raise ValueError(
                f"A_ub and A_eq must have the same number of columns n (one per variable); got A_ub of shape "
                f"{A_ub.shape} and A_eq of shape {A_eq.shape}"
            )
        n = n_ub if n_ub is not None else n_eq
        self.b_ub = _rhs(b_ub, "b_ub", A_ub, "A_ub")
        self.b_eq = _rhs(b_eq, "b_eq", A_eq, "A_eq")
        self.integrality, n = _integrality(integrality, n)
        self.lower, self.upper, n = _bounds(bounds, n, optimize)
        if n is not None and n < 1:
            raise ValueError("the problem must have at least one variable (n >= 1); got n = 0")
        self.n = n
        self.num_ub = 0 if A_ub is None else A_ub.shape[0]
        self.num_eq = 0 if A_eq is None else A_eq.shape[0]
        self.A_ub = A_ub
        self.A_eq = A_eq
        self.num_workers = None if num_workers is None else check_int(num_workers, "num_workers", minimum=1)
        self.time_limit = None if time_limit is None else check_positive(time_limit, "time_limit")

        # built once: one sparse matrix [A_ub; A_eq] and, when both right-hand sides are known, its constraint
        blocks = [a for a in (A_ub, A_eq) if a is not None]
        self._A = None if not blocks else sparse.vstack(blocks, format="csc")
        self._constraint = None
        if self._A is not None and (A_ub is None or self.b_ub is not None) and (A_eq is None or self.b_eq is not None):
            lower, upper = self._row_bounds(self.b_ub, self.b_eq)
            self._constraint = optimize.LinearConstraint(self._A, lower, upper)
        self._bounds_object = optimize.Bounds(self.lower, self.upper)
        self._options = None if self.time_limit is None else {"time_limit": self.time_limit}

    # ------------------------------------------------------------------------------------------------------
    # solving

    def solve(self, theta: Tensor, b_ub: Any = None, b_eq: Any = None) -> Tensor:
        n = theta.shape[-1]
        if self.n is not None and n != self.n:
            raise ValueError(
                f"theta's last dimension must be the number of variables n = {self.n} of this MILP; got theta of "
                f"shape {tuple(theta.shape)}"
            )
        if n == 0:
            raise ValueError(f"theta must have a non-empty last dimension (n >= 1); got shape {tuple(theta.shape)}")
        batch_shape = tuple(theta.shape[:-1])
        num_instances = math.prod(batch_shape)
        rhs_ub = self._call_rhs(b_ub, "b_ub", self.b_ub, self.A_ub, "A_ub", batch_shape)
        rhs_eq = self._call_rhs(b_eq, "b_eq", self.b_eq, self.A_eq, "A_eq", batch_shape)
        if num_instances == 0:
            return torch.zeros_like(theta, memory_format=torch.contiguous_format)
        # milp minimises: the cost is -theta
        cost = np.negative(theta.detach().to(device="cpu", dtype=torch.float64).reshape(num_instances, n).numpy())
        per_call = b_ub is not None or b_eq is not None
        if per_call:  # one row-bound vector per instance
            def per_instance(rhs: np.ndarray | None, m: int) -> np.ndarray | None:
                return None if rhs is None else np.broadcast_to(rhs, batch_shape + (m,)).reshape(num_instances, m)

            lower, upper = self._row_bounds(per_instance(rhs_ub, self.num_ub), per_instance(rhs_eq, self.num_eq))

        optimize = _scipy_optimize()
        integrality = np.broadcast_to(self.integrality, (n,))

        def run_highspy(i: int):
            model = self._highs_model(n)
            model.changeColsCost(n, self._col_index, cost[i])
            if per_call:
                model.changeRowsBounds(len(self._row_index), self._row_index, lower[i], upper[i])
                self._changed_rows.add(id(model))
            elif id(model) in self._changed_rows:  # back to the constructor's right-hand sides
                row_lower, row_upper = self._row_bounds(self.b_ub, self.b_eq)
                model.changeRowsBounds(len(self._row_index), self._row_index, row_lower, row_upper)
                self._changed_rows.discard(id(model))
            code, message = _run_highs(self._highs, model)
            if code == 0 or (code == 1 and model.getInfo().primal_solution_status == 2):
                return np.array(model.getSolution().col_value), code, message
            return None, code, message

        def run(i: int):
            if per_call:
                constraints = optimize.LinearConstraint(self._A, lower[i], upper[i])
            else:
                constraints = self._constraint
            result = optimize.milp(cost[i], integrality=integrality, bounds=self._bounds_object,
                                   constraints=constraints, options=self._options)
            return result.x, result.status, result.message

        workers = self._workers(num_instances)
        solve_one = run_highspy if self.backend == "highspy" else run
        if workers == 1:
            results = [solve_one(i) for i in range(num_instances)]
        elif self.backend == "highspy":  # a lasting pool, so that each worker thread keeps its model
            from ._compiled import thread_pool

            results = list(thread_pool(workers).map(solve_one, range(num_instances)))
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="discograd-milp") as pool:
                results = list(pool.map(solve_one, range(num_instances)))

        failed = [i for i, (x, _, _) in enumerate(results) if x is None]
        if failed:
            first = failed[0]
            _, status, message = results[first]
            index = tuple(int(j) for j in np.unravel_index(first, batch_shape)) if batch_shape else ()
            others = f" ({len(failed)} of {num_instances} instances failed)" if len(failed) > 1 else ""
            raise ValueError(
                f"MILP instance {first} of the batch (index {index} in the batch shape {batch_shape}) has no "
                f"solution{others}: {'HiGHS' if self.backend == 'highspy' else 'scipy.optimize.milp'} status "
                f"{status}: {message}"
            )
        z = np.stack([x for x, _, _ in results])
        is_integer = integrality.astype(bool)
        if is_integer.any():
            z[:, is_integer] = np.round(z[:, is_integer])
        z += 0.0  # -0.0 -> 0.0
        return torch.from_numpy(z).to(device=theta.device, dtype=theta.dtype).reshape(theta.shape)

    @property
    def _highs(self) -> Any:
        return _highspy()

    def _highs_model(self, n: int) -> Any:
        """This thread's persistent HiGHS model of the problem (objective zero until set per instance)."""
        key = (os.getpid(), threading.get_ident())
        model = self._models.get(key)
        if model is not None and model.getNumCol() == n:
            return model
        highspy = self._highs
        model = _new_highs(highspy)
        if self.time_limit is not None:
            model.setOptionValue("time_limit", float(self.time_limit))
        lp = highspy.HighsLp()
        lp.num_col_ = n
        lp.col_cost_ = np.zeros(n)
        lp.col_lower_ = np.broadcast_to(self.lower, (n,)).astype(np.float64)
        lp.col_upper_ = np.broadcast_to(self.upper, (n,)).astype(np.float64)
        num_rows = self.num_ub + self.num_eq
        lp.num_row_ = num_rows
        if num_rows:
            if self.A_ub is not None and self.b_ub is None or self.A_eq is not None and self.b_eq is None:
                row_lower, row_upper = np.full(num_rows, -np.inf), np.full(num_rows, np.inf)  # set per call
            else:
                row_lower, row_upper = self._row_bounds(self.b_ub, self.b_eq)
            lp.row_lower_ = np.asarray(row_lower, dtype=np.float64)
            lp.row_upper_ = np.asarray(row_upper, dtype=np.float64)
            A = self._A.tocsc()
            lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
            lp.a_matrix_.start_ = A.indptr.astype(np.int32)
            lp.a_matrix_.index_ = A.indices.astype(np.int32)
            lp.a_matrix_.value_ = A.data.astype(np.float64)
        kinds = np.broadcast_to(self.integrality, (n,))
        lp.integrality_ = [highspy.HighsVarType.kInteger if v else highspy.HighsVarType.kContinuous for v in kinds]
        model.passModel(lp)
        self._col_index = np.arange(n, dtype=np.int32)
        self._row_index = np.arange(num_rows, dtype=np.int32)
        self._models[key] = model
        return model

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_models"], state["_changed_rows"] = {}, set()  # HiGHS models stay in their process
        return state

    def _workers(self, num_instances: int) -> int:
        if self.num_workers is not None:
            workers = self.num_workers
        else:
            workers = _available_cpus()
            if num_instances < PARALLEL_MIN_BATCH:
                workers = 1
        return max(1, min(workers, num_instances))

    def _row_bounds(self, b_ub: np.ndarray | None, b_eq: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the rows of ``[A_ub; A_eq]`` (``[..., m_ub + m_eq]``)."""
        lowers, uppers = [], []
        if self.A_ub is not None:
            lowers.append(np.full_like(b_ub, -np.inf))
            uppers.append(b_ub)
        if self.A_eq is not None:
            lowers.append(b_eq)
            uppers.append(b_eq)
        return np.concatenate(lowers, axis=-1), np.concatenate(uppers, axis=-1)

    def _call_rhs(self, value: Any, name: str, default: np.ndarray | None, A: Any, A_name: str,
                  batch_shape: tuple[int, ...]) -> np.ndarray | None:
        """A per-call right-hand side broadcast to ``[*batch, m]``, or the constructor's ``[m]``."""
        if value is None:
            if A is not None and default is None:
                raise TypeError(
                    f"{name} must be given, either at construction (MILP({A_name}=..., {name}=...)) or per call "
                    f"(solver(theta, {name}=...))"
                )
            return default
        if A is None:
            raise ValueError(f"{name} was given per call but this MILP has no {A_name}")
        m = A.shape[0]
        array = _to_numpy(value, name)
        if array.ndim < 1 or array.shape[-1] != m:
            raise ValueError(
                f"{name} given per call must have shape [*batch, {m}] (its last dimension is the number of rows "
                f"of {A_name}, of shape {A.shape}); got shape {array.shape}"
            )
        try:
            array = np.broadcast_to(array, batch_shape + (m,))
        except ValueError:
            raise ValueError(
                f"{name} given per call must be broadcastable to [*batch, {m}] = {list(batch_shape + (m,))} for "
                f"theta's batch shape {batch_shape}; got shape {array.shape}"
            ) from None
        _check_finite_array(array, name)
        return array

    # ------------------------------------------------------------------------------------------------------
    # enumeration

    def enumerate_feasible(self, n: int | None = None, *, dtype: torch.dtype = torch.float32,
                           device: torch.device | str | None = None) -> Tensor:
        """All feasible ``z`` of a pure-integer problem with finite bounds, as a ``[num_states, n]`` tensor.

        For the default binary problem these are the 0/1 vectors that satisfy the constraints (for
        ``n <= 16``); more generally, the integer points of the box ``[lo, hi]`` (at most ``2**16`` of
        them) that satisfy the constraints with the constructor's ``b_ub`` / ``b_eq``, within an absolute
        tolerance of ``1e-6`` (HiGHS's default feasibility tolerance). Rows are in lexicographic order,
        the first variable varying slowest. ``n`` defaults to the problem's number of variables and must
        equal it when both are known. Raises ``NotImplementedError`` when a variable is continuous or
        unbounded, ``ValueError`` when the box has more than ``2**16`` points.
        """
        if n is None:
            n = self.n
        if n is None:
            raise TypeError("n must be given: this MILP takes its number of variables from theta")
        n = check_int(n, "n", minimum=1)
        if self.n is not None and n != self.n:
            raise ValueError(f"n must be the number of variables of this MILP, {self.n}; got {n}")
        if (self.A_ub is not None and self.b_ub is None) or (self.A_eq is not None and self.b_eq is None):
            raise TypeError("enumerate_feasible needs the right-hand sides b_ub / b_eq given at construction")
        integrality = np.broadcast_to(self.integrality, (n,))
        if not integrality.all():
            raise NotImplementedError(
                "enumerate_feasible lists pure-integer problems only; this MILP has continuous variables"
            )
        lower = np.ceil(np.broadcast_to(self.lower, (n,)) - FEASIBILITY_TOLERANCE)
        upper = np.floor(np.broadcast_to(self.upper, (n,)) + FEASIBILITY_TOLERANCE)
        if not (np.isfinite(lower).all() and np.isfinite(upper).all()):
            raise NotImplementedError("enumerate_feasible needs finite bounds on every variable")
        sizes = np.maximum(upper - lower + 1, 0)
        num_points = math.prod(int(s) for s in sizes)
        if num_points > MAX_ENUMERATED_STATES:
            raise ValueError(
                f"enumerate_feasible lists at most 2**16 = {MAX_ENUMERATED_STATES} integer points; the box of this "
                f"MILP has {num_points} (n = {n})"
            )
        grids = np.meshgrid(*[np.arange(lo, hi + 1) for lo, hi in zip(lower, upper)], indexing="ij")
        points = np.stack([g.reshape(-1) for g in grids], axis=-1).reshape(num_points, n)
        keep = np.ones(num_points, dtype=bool)
        if self.A_ub is not None:
            keep &= (np.asarray(self.A_ub @ points.T).T <= self.b_ub + FEASIBILITY_TOLERANCE).all(axis=-1)
        if self.A_eq is not None:
            keep &= (np.abs(np.asarray(self.A_eq @ points.T).T - self.b_eq) <= FEASIBILITY_TOLERANCE).all(axis=-1)
        return torch.from_numpy(points[keep] + 0.0).to(dtype=dtype, device=device)

    def __repr__(self) -> str:
        values = self.integrality.tolist()
        if len(values) == 1:
            integrality_text = str(values[0])
        elif len(values) <= 10:
            integrality_text = str(values)
        else:
            integrality_text = f"<{sum(values)} of {len(values)} integer>"
        return (
            f"MILP(n={self.n}, num_ub={self.num_ub}, num_eq={self.num_eq}, integrality={integrality_text}, "
            f"num_workers={self.num_workers}, time_limit={self.time_limit})"
        )


# ---------------------------------------------------------------------------------------------------------
# argument parsing


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _to_numpy(value: Any, name: str) -> np.ndarray:
    if isinstance(value, Tensor):
        if value.layout != torch.strided:  # a torch sparse (COO / CSR / ...) tensor
            value = value.to_dense()
        value = value.detach().to("cpu").numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of real numbers; got {type(value).__name__}: {exc}") from None
    return array


def _check_finite_array(array: np.ndarray, name: str) -> None:
    finite = np.isfinite(array)
    if not finite.all():
        num_nan = int(np.isnan(array).sum())
        num_inf = int(array.size - finite.sum()) - num_nan
        raise ValueError(
            f"{name} must be finite; got {num_nan} NaN and {num_inf} infinite values in an array of shape {array.shape}"
        )


def _matrix(value: Any, name: str, sparse: Any) -> tuple[Any, int | None]:
    """A constraint matrix as a float64 CSR matrix (or None) and its number of columns."""
    if value is None:
        return None, None
    if sparse.issparse(value):
        if len(value.shape) != 2:
            raise ValueError(f"{name} must be a 2-D matrix [num_constraints, n]; got shape {tuple(value.shape)}")
        matrix = sparse.csr_array(value, dtype=np.float64)
        _check_finite_array(matrix.data, name)
    else:
        array = _to_numpy(value, name)
        if array.ndim != 2:
            raise ValueError(f"{name} must be a 2-D matrix [num_constraints, n]; got shape {array.shape}")
        _check_finite_array(array, name)
        matrix = sparse.csr_array(array)
    if matrix.shape[1] < 1:
        raise ValueError(f"{name} must have at least one column (one per variable); got shape {tuple(matrix.shape)}")
    return matrix, int(matrix.shape[1])


def _rhs(value: Any, name: str, A: Any, A_name: str) -> np.ndarray | None:
    """A right-hand side ``[m]`` matching the rows of ``A`` (``None`` when it comes per call)."""
    if value is None:
        return None
    if A is None:
        raise ValueError(f"{name} was given without {A_name}")
    array = _to_numpy(value, name)
    m = A.shape[0]
    if array.shape != (m,):
        raise ValueError(
            f"{name} must have shape [{m}] (one value per row of {A_name}, of shape {tuple(A.shape)}); "
            f"got shape {array.shape}"
        )
    _check_finite_array(array, name)
    return array


def _integrality(value: Any, n: int | None) -> tuple[np.ndarray, int | None]:
    """``integrality`` as a uint8 array ``[1]`` (shared) or ``[n]``."""
    if isinstance(value, Tensor):
        value = value.detach().to("cpu").numpy()
    array = np.asarray(value)
    if array.dtype == bool or array.ndim > 1 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(
            f"integrality must be 0 or 1 (for every variable) or an [n] array of them; got "
            f"{type(value).__name__} of shape {array.shape} and dtype {array.dtype}"
        )
    if array.ndim == 0:
        array = array.reshape(1)
    else:
        if n is not None and array.shape[0] != n:
            raise ValueError(
                f"integrality must have shape [n] = [{n}] to match the constraints; got shape {array.shape}"
            )
        n = array.shape[0]
    if not np.isin(array, (0, 1)).all():
        raise ValueError(
            f"integrality must contain only 0 (continuous) and 1 (integer); got values {np.unique(array).tolist()}"
        )
    return array.astype(np.uint8), n


def _bound_side(value: Any, name: str, default: float) -> np.ndarray:
    if value is None:
        return np.asarray([default])
    if isinstance(value, Tensor):
        value = value.detach().to("cpu").numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, an [n] array or None; got {type(value).__name__}") from None
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a number, an [n] array or None; got shape {array.shape}")
    return array


def _bounds(value: Any, n: int | None, optimize: Any) -> tuple[np.ndarray, np.ndarray, int | None]:
    """``bounds`` as two float64 arrays, each ``[1]`` (shared) or ``[n]``."""
    if isinstance(value, optimize.Bounds):
        lower, upper = _bound_side(value.lb, "bounds.lb", -np.inf), _bound_side(value.ub, "bounds.ub", np.inf)
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        if all(isinstance(v, (list, tuple)) and len(v) == 2 for v in value):
            raise ValueError(
                "bounds is ambiguous: a list of two pairs reads either as (lo, hi) arrays or as per-variable "
                "(lo_i, hi_i) rows; pass an array of shape [2, 2] for rows or scipy.optimize.Bounds(lo, hi) for arrays"
            )
        lower, upper = _bound_side(value[0], "bounds[0] (lo)", -np.inf), _bound_side(value[1], "bounds[1] (hi)", np.inf)
    else:
        if isinstance(value, Tensor):
            value = value.detach().to("cpu").numpy()
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"bounds must be a pair (lo, hi), an [n, 2] array or scipy.optimize.Bounds; got {type(value).__name__}"
            ) from None
        if array.ndim != 2 or array.shape[1] != 2:
            raise ValueError(
                f"bounds must be a pair (lo, hi) of scalars or [n] arrays, an [n, 2] array or "
                f"scipy.optimize.Bounds; got an array of shape {array.shape}"
            )
        lower, upper = array[:, 0], array[:, 1]
    for side, name in ((lower, "lo"), (upper, "hi")):
        if side.shape[0] != 1:
            if n is not None and side.shape[0] != n:
                raise ValueError(
                    f"bounds ({name}) must have one value per variable, n = {n}; got shape {side.shape}"
                )
            n = side.shape[0]
        if np.isnan(side).any():
            raise ValueError(f"bounds ({name}) must not contain NaN (use None or ±inf for no bound)")
    if np.isposinf(lower).any() or np.isneginf(upper).any():
        raise ValueError("bounds must have lo < +inf and hi > -inf for every variable")
    bad = np.broadcast_to(lower > upper, np.broadcast_shapes(lower.shape, upper.shape))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        lo = float(np.broadcast_to(lower, bad.shape)[i])
        hi = float(np.broadcast_to(upper, bad.shape)[i])
        where = "" if bad.shape == (1,) else f" for variable {i}"
        raise ValueError(f"bounds must satisfy lo <= hi{where}; got lo = {lo}, hi = {hi}")
    return lower, upper, n
