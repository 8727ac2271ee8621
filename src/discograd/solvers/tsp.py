r"""The symmetric travelling salesman problem on the complete graph: PyEPO's TSP, exactly, by a MILP with
lazily added subtour-elimination cuts on persistent HiGHS models."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validation import check_int
from ._compiled import thread_pool
from .base import Solver
from .grid_shortest_path import from_mask, to_float64_rows
from .milp import BACKENDS, MILP, _highspy, _run_highs, _scipy_optimize

__all__ = ["TSP"]

#: enumerate_feasible lists the tours of graphs with at most this many nodes ((9 - 1)! / 2 = 20160 tours)
MAX_ENUMERATED_NODES = 9
#: default bound on the rounds of cuts (MILP solves) for one instance
MAX_ROUNDS = 1000


class TSP(Solver):
    r"""Edge indicator of a maximum-score (minimum-cost) Hamiltonian cycle of the complete graph on
    ``num_nodes`` nodes:

    .. math::

        z = \arg\max_{z \in \{0, 1\}^{E}} \langle \theta, z \rangle \quad\text{subject to}\quad
        \sum_{e \ni v} z_e = 2 \ \ \forall v, \qquad
        \sum_{e \subseteq S} z_e \le |S| - 1 \ \ \forall S \subsetneq V,\ |S| \ge 2,

    the Dantzig-Fulkerson-Johnson formulation (Dantzig, Fulkerson & Johnson, 1954). Edges are the
    ``E = N (N - 1) / 2`` pairs ``(a, b)``, ``a < b``, in the order of
    ``itertools.combinations(range(N), 2)`` (``solver.edges``, ``[E, 2]``): PyEPO's edge order
    (``pyepo/model/bases.py``, ``tspABBase.edges``), so that PyEPO's cost vectors ``c``
    (``pyepo.data.tsp.genData``) line up column for column; edge ``(a, b)`` has index
    ``a N - a (a + 1) / 2 + b - a - 1``. Like every solver in discograd this one maximises ``<θ, z>``:
    a tour of minimum cost ``c`` is ``solver(-c)``, as ``pyepo.model.grb.tspDFJModel(N)`` computes it.

    Algorithm, as in PyEPO's ``tspDFJModel`` (``pyepo/model/grb/tsp.py``, lazy subtour elimination in a
    Gurobi callback), here with HiGHS and a loop instead of a callback: a MILP with the degree constraints
    only is solved; while its solution has several cycles, the subtour-elimination cut
    ``sum_{e ⊆ S} z_e <= |S| - 1`` of every cycle ``S`` (of the smaller one when there are two: the two
    cuts are then equivalent) is added and the MILP solved again. The final solution is a single tour,
    optimal for the full formulation. HiGHS runs with ``mip_rel_gap = 0``, so the tour is optimal up to
    HiGHS's absolute gap (``1e-6``) and feasibility tolerances, not within its default 0.01 % relative gap.

    The HiGHS machinery is :class:`~discograd.solvers.MILP`'s: one persistent model per worker thread
    (degree constraints built once), the objective changed per instance, one HiGHS thread per model, the
    batch spread over ``num_workers`` threads (``None``: the CPUs of this process, for batches of 4 or
    more). Each instance starts from the degree constraints alone: its cuts are deleted after it, so the
    result depends only on its own scores, not on the batch layout or the number of threads. Measured on
    a shared 2-core machine (single runs): about 10 ms per 20-node PyEPO instance on one thread, 2 rounds
    of cuts on average (PyEPO's Gurobi DFJ model: 2.6 ms).

    Ties: when several tours reach the optimum, HiGHS returns one of them; for a fixed input the choice is
    deterministic, but which tour is **not specified** (see :class:`~discograd.solvers.MILP`).

    Shapes: ``theta`` is ``[*batch, E]`` (any number of batch dimensions, including none; finite); ``z``
    has ``theta``'s shape, dtype and device (a CUDA ``theta`` is solved on the CPU). :meth:`tours` turns
    ``z`` into node orders.

    Errors: an instance whose MILP solve stops without an optimal solution (``time_limit``), or that needs
    more than ``max_rounds`` rounds of cuts, raises ``ValueError`` naming the instance.

    Example:
        >>> import torch
        >>> from discograd.solvers import TSP
        >>> solver = TSP(4)
        >>> solver.edges.tolist()
        [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
        >>> cost = torch.tensor([1.0, 5.0, 1.0, 1.0, 5.0, 1.0])  # the cheap edges form the cycle 0-1-2-3-0
        >>> z = solver(-cost)
        >>> z
        tensor([1., 0., 1., 1., 0., 1.])
        >>> solver.tours(z)
        tensor([0, 1, 2, 3])
        >>> solver.enumerate_feasible().shape  # the (4 - 1)! / 2 = 3 tours
        torch.Size([3, 6])

    Args:
        num_nodes: the number of nodes (cities) ``N >= 3``.
        num_workers: threads over a batch (``None``: the CPUs this process may use, capped at the batch
            size; batches under 4 instances run in the calling thread).
        time_limit: seconds HiGHS may spend on one MILP solve (``None``: no limit); a solve stopped by it
            raises ``ValueError``.
        max_rounds: the most MILP solves (rounds of cuts) allowed for one instance.
        backend: ``"highspy"`` (persistent models), ``"scipy"`` (a fresh :func:`scipy.optimize.milp` call
            per round, with the cuts found so far) or ``"auto"`` (highspy when installed).
    """

    event_dims = 1

    def __init__(self, num_nodes: int, *, num_workers: int | None = None, time_limit: float | None = None,
                 max_rounds: int = MAX_ROUNDS, backend: str = "auto") -> None:
        self.num_nodes = check_int(num_nodes, "num_nodes", minimum=3)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
        n = self.num_nodes
        #: the ``[E, 2]`` int64 array of edges ``(a, b)``, ``a < b``, in PyEPO's order (read-only)
        self.edges = np.array(list(itertools.combinations(range(n), 2)), dtype=np.int64).reshape(-1, 2)
        self.edges.flags.writeable = False
        m = self.num_edges
        incidence = np.zeros((n, m))
        incidence[self.edges[:, 0], np.arange(m)] = 1.0
        incidence[self.edges[:, 1], np.arange(m)] = 1.0
        # the degree constraints as a MILP: its persistent per-thread HiGHS models, validation and workers
        self._milp = MILP(A_eq=incidence, b_eq=np.full(n, 2.0), num_workers=num_workers, time_limit=time_limit,
                          backend=backend)
        self.backend = self._milp.backend
        self.num_workers = self._milp.num_workers
        self.time_limit = self._milp.time_limit
        self.max_rounds = check_int(max_rounds, "max_rounds", minimum=1)
        self._incidence = incidence
        #: the largest number of rounds of cuts (MILP solves) an instance of the last call needed
        self.last_num_rounds = 0

    @property
    def num_edges(self) -> int:
        return int(self.edges.shape[0])

    def edge_index(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Index of the edge ``{a, b}`` (``a != b``, either order), elementwise."""
        a, b = np.minimum(a, b), np.maximum(a, b)
        return a * self.num_nodes - a * (a + 1) // 2 + b - a - 1

    def solve(self, theta: Tensor) -> Tensor:
        m = self.num_edges
        if theta.shape[-1] != m:
            raise ValueError(
                f"theta must have shape [*batch, E] with E = N (N - 1) / 2 = {m} (one score per edge of the complete "
                f"graph on N = {self.num_nodes} nodes); got shape {tuple(theta.shape)}"
            )
        batch_shape = tuple(theta.shape[:-1])
        rows, num_instances = to_float64_rows(theta, m)
        take = np.zeros((num_instances, m), dtype=np.uint8)
        if num_instances == 0:
            self.last_num_rounds = 0
            return from_mask(take, theta)
        cost = np.negative(rows)  # HiGHS minimises

        solve_one = self._solve_highspy if self.backend == "highspy" else self._solve_scipy
        workers = self._milp._workers(num_instances)
        if workers == 1:
            results = [solve_one(cost[i]) for i in range(num_instances)]
        else:
            results = list(thread_pool(workers).map(solve_one, (cost[i] for i in range(num_instances))))
        failed = [i for i, (x, _, _) in enumerate(results) if x is None]
        if failed:
            first = failed[0]
            _, rounds, message = results[first]
            index = tuple(int(j) for j in np.unravel_index(first, batch_shape)) if batch_shape else ()
            others = f" ({len(failed)} of {num_instances} instances failed)" if len(failed) > 1 else ""
            raise ValueError(f"TSP instance {first} of the batch (index {index} in the batch shape {batch_shape}) "
                             f"has no tour after {rounds} rounds of cuts{others}: {message}")
        for i, (x, _, _) in enumerate(results):
            take[i] = x
        self.last_num_rounds = max(rounds for _, rounds, _ in results)
        return from_mask(take, theta)

    # ------------------------------------------------------------------------------------------------------
    # one instance

    def _subtour_cuts(self, x: np.ndarray) -> tuple[list[np.ndarray], list[int]] | None:
        """The cycles of the 2-regular solution ``x``: ``None`` for a single tour, else the cuts to add, as
        (edge indices of ``E(S)``, ``|S| - 1``) per cycle ``S``."""
        cycles = _cycles(self.edges[x == 1], self.num_nodes)
        if cycles is None:  # cannot happen: the degree constraints hold in every MILP solution
            raise RuntimeError(f"the MILP solution of a TSP on {self.num_nodes} nodes violates its degree constraints "
                               f"(node degrees {np.bincount(self.edges[x == 1].reshape(-1), minlength=self.num_nodes)})")
        if len(cycles) == 1:
            return None
        if len(cycles) == 2:  # the two cuts are equivalent under the degree constraints: the smaller one
            cycles = [min(cycles, key=len)]
        indices, bounds = [], []
        for cycle in cycles:
            a, b = np.triu_indices(len(cycle), k=1)
            indices.append(self.edge_index(cycle[a], cycle[b]).astype(np.int32))
            bounds.append(len(cycle) - 1)
        return indices, bounds

    def _solve_highspy(self, cost: np.ndarray) -> tuple[np.ndarray | None, int, str]:
        highspy = _highspy()
        m, n = self.num_edges, self.num_nodes
        model = self._milp._highs_model(m)
        model.setOptionValue("mip_rel_gap", 0.0)
        model.changeColsCost(m, self._milp._col_index, cost)
        try:
            for rounds in range(1, self.max_rounds + 1):
                code, message = _run_highs(highspy, model)
                if code != 0:
                    return None, rounds, f"HiGHS status {code}: {message}"
                x = np.round(np.asarray(model.getSolution().col_value)).astype(np.uint8)
                cuts = self._subtour_cuts(x)
                if cuts is None:
                    return x, rounds, "optimal"
                indices, bounds = cuts
                starts = np.cumsum([0] + [len(i) for i in indices[:-1]]).astype(np.int32)
                values = np.concatenate(indices)
                model.addRows(len(bounds), np.full(len(bounds), -np.inf), np.asarray(bounds, dtype=np.float64),
                              len(values), starts, values, np.ones(len(values)))
            return None, self.max_rounds, f"more than max_rounds = {self.max_rounds} rounds of cuts were needed"
        finally:
            extra = model.getNumRow() - n
            if extra > 0:  # back to the degree constraints: the next instance does not see these cuts
                model.deleteRows(extra, np.arange(n, n + extra, dtype=np.int32))

    def _solve_scipy(self, cost: np.ndarray) -> tuple[np.ndarray | None, int, str]:
        optimize = _scipy_optimize()
        sparse = _scipy_sparse()
        m = self.num_edges
        options: dict[str, Any] = {"mip_rel_gap": 0.0}
        if self.time_limit is not None:
            options["time_limit"] = self.time_limit
        degree = optimize.LinearConstraint(self._incidence, 2.0, 2.0)
        rows: list[np.ndarray] = []
        bounds: list[int] = []
        for rounds in range(1, self.max_rounds + 1):
            constraints = [degree]
            if rows:
                data = np.ones(sum(len(r) for r in rows))
                indptr = np.cumsum([0] + [len(r) for r in rows])
                cuts = sparse.csr_array((data, np.concatenate(rows), indptr), shape=(len(rows), m))
                constraints.append(optimize.LinearConstraint(cuts, -np.inf, np.asarray(bounds, dtype=np.float64)))
            result = optimize.milp(cost, integrality=np.ones(m), bounds=optimize.Bounds(0.0, 1.0),
                                   constraints=constraints, options=options)
            if result.status != 0:
                return None, rounds, f"scipy.optimize.milp status {result.status}: {result.message}"
            x = np.round(result.x).astype(np.uint8)
            found = self._subtour_cuts(x)
            if found is None:
                return x, rounds, "optimal"
            rows.extend(found[0])
            bounds.extend(found[1])
        return None, self.max_rounds, f"more than max_rounds = {self.max_rounds} rounds of cuts were needed"

    # ------------------------------------------------------------------------------------------------------
    # tours

    def tours(self, z: Tensor) -> Tensor:
        """Node orders of the tours ``z`` (``[*batch, E]`` 0/1): an int64 tensor ``[*batch, N]`` on ``z``'s
        device, starting at node 0 and going first to its lower-numbered neighbour. Raises ``ValueError``
        when a ``z`` is not a single Hamiltonian cycle."""
        m, n = self.num_edges, self.num_nodes
        if not isinstance(z, Tensor) or z.dim() < 1 or z.shape[-1] != m:
            raise ValueError(f"z must be a tensor of shape [*batch, E] with E = {m}; got "
                             f"{tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__}")
        flat = z.detach().to("cpu").reshape(-1, m).numpy()
        out = np.empty((flat.shape[0], n), dtype=np.int64)
        for i, row in enumerate(flat):
            if not np.isin(row, (0, 1)).all() or int(row.sum()) != n:
                raise ValueError(f"z[{i}] (flattened batch) must be the 0/1 indicator of N = {n} edges forming a tour")
            cycles = _cycles(self.edges[row == 1], n)
            if cycles is None or len(cycles) != 1:
                raise ValueError(f"z[{i}] (flattened batch) is not a single tour through the N = {n} nodes")
            cycle = cycles[0]
            if cycle[1] > cycle[-1]:
                cycle = np.concatenate([cycle[:1], cycle[1:][::-1]])
            out[i] = cycle
        return torch.from_numpy(out).reshape(*z.shape[:-1], n).to(z.device)

    def enumerate_feasible(self, num_edges: int | None = None, *, dtype: torch.dtype = torch.float32,
                           device: torch.device | str | None = None) -> Tensor:
        """All ``(N - 1)! / 2`` tours as edge indicators ``[num_tours, E]``.

        Tour ``0 -> p_1 -> ... -> p_{N-1} -> 0`` for every permutation ``p`` of ``1..N-1`` with
        ``p_1 < p_{N-1}`` (one direction per cycle), in the lexicographic order of ``p``. ``num_edges``,
        if given, must equal ``E``. Only for tiny graphs: raises ``ValueError`` above 9 nodes.
        """
        if num_edges is not None and check_int(num_edges, "num_edges") != self.num_edges:
            raise ValueError(f"num_edges must equal the number of edges of the complete graph on "
                             f"{self.num_nodes} nodes, {self.num_edges}; got {num_edges}")
        if self.num_nodes > MAX_ENUMERATED_NODES:
            raise ValueError(f"enumerate_feasible lists the tours of graphs with at most {MAX_ENUMERATED_NODES} nodes "
                             f"((9 - 1)! / 2 = 20160 tours); got num_nodes = {self.num_nodes}")
        perms = np.array([p for p in itertools.permutations(range(1, self.num_nodes)) if p[0] < p[-1]],
                         dtype=np.int64)
        cycles = np.concatenate([np.zeros((len(perms), 1), dtype=np.int64), perms], axis=1)
        heads = np.roll(cycles, -1, axis=1)
        states = np.zeros((len(perms), self.num_edges), dtype=np.uint8)
        states[np.arange(len(perms))[:, None], self.edge_index(cycles, heads)] = 1
        return torch.from_numpy(states).to(device=device, dtype=dtype)

    def __repr__(self) -> str:
        return (f"TSP(num_nodes={self.num_nodes}, num_workers={self.num_workers}, time_limit={self.time_limit}, "
                f"backend={self.backend!r})")


def _cycles(edges: np.ndarray, n: int) -> list[np.ndarray] | None:
    """The cycles (node sequences) of the graph on ``n`` nodes with the given ``[k, 2]`` edges, every node of
    degree 2; ``None`` if some node does not have degree 2."""
    neighbours = np.full((n, 2), -1, dtype=np.int64)
    degree = np.zeros(n, dtype=np.int64)
    for a, b in edges.tolist():
        if degree[a] >= 2 or degree[b] >= 2:
            return None
        neighbours[a, degree[a]] = b
        neighbours[b, degree[b]] = a
        degree[a] += 1
        degree[b] += 1
    if (degree != 2).any():
        return None
    seen = np.zeros(n, dtype=bool)
    cycles = []
    for start in range(n):
        if seen[start]:
            continue
        cycle = [start]
        seen[start] = True
        previous, node = start, int(neighbours[start, 0])
        while node != start:
            cycle.append(node)
            seen[node] = True
            first = int(neighbours[node, 0])
            previous, node = node, (first if first != previous else int(neighbours[node, 1]))
        cycles.append(np.asarray(cycle, dtype=np.int64))
    return cycles


def _scipy_sparse():
    from .._optional import require

    return require("scipy.sparse", extra="solvers", purpose="TSP's subtour cuts (scipy backend)")
