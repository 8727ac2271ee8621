r"""Minimum-cost paths in a directed graph with costs on the edges."""

from __future__ import annotations

import heapq

import numpy as np
import torch
from torch import Tensor

from .._validation import check_int, check_non_negative
from .base import Solver
from .grid_shortest_path import (
    check_costs_at_least,
    check_negative_costs,
    from_mask,
    load_kernels,
    to_float64_rows,
)

__all__ = ["ShortestPath"]

#: enumerate_feasible lists simple paths only in graphs with at most this many nodes
MAX_ENUMERATED_NODES = 16
#: ... and refuses to list more paths than this
MAX_ENUMERATED_STATES = 10**6


class ShortestPath(Solver):
    r"""Edge indicator of a minimum-cost ``source -> target`` path in a fixed directed graph.

    The graph has nodes ``0 .. num_nodes - 1`` and the directed edges ``edges[e] = (tail, head)``
    (parallel edges and self-loops allowed). Edge ``e`` costs ``c_e = -θ_e``: like every solver in
    discograd this one maximises ``<θ, z>``, so a cost-minimisation problem takes ``theta = -cost``.
    ``z`` is the 0/1 indicator of the edges of a cheapest simple path :math:`P^*`:

    .. math::

        z = \mathbb{1}_{P^*}, \qquad P^* \in \arg\min_{P:\ \text{source} \to \text{target}} \sum_{e \in P} c_e
        = \arg\max_P \langle \theta, \mathbb{1}_P \rangle .

    With ``source == target`` the path is empty and ``z = 0``.

    Shapes: ``theta`` is ``[*batch, E]`` with ``E = len(edges)`` (any number of batch dimensions,
    including none; finite); ``z`` has ``theta``'s shape, dtype and device.

    Two algorithms, chosen once in ``__init__`` (``solver.is_dag`` says which):

    - **DAG** (no directed cycle among the nodes reachable from ``source``): one relaxation pass in
      topological order. Exact for costs of **any sign**, so ``negative_costs`` and ``min_cost`` are not
      used and ``last_num_clamped`` stays 0.
    - **Otherwise Dijkstra**, exact for costs ``>= 0`` (with negative costs and cycles the cheapest
      simple path is NP-hard). Costs below ``min_cost`` follow ``negative_costs``: ``"clamp"`` (default)
      raises them to ``min_cost`` and records how many in ``solver.last_num_clamped``; ``"raise"``
      raises ``ValueError``.

    Ties: Dijkstra's heap is ordered by ``(distance, node)``; out-edges are scanned in increasing edge
    index (for both algorithms); the DAG pass visits nodes in the topological order that settles the
    smallest available node first; a node's incoming path edge changes only on a strictly smaller
    distance. The result is a fixed function of one instance's scores: the same for every batch
    layout, thread count and device.

    The target must be reachable from the source (checked in ``__init__``, since it does not depend
    on the costs). Speed: compiled numba kernels (``cache=True``) over a CSR adjacency built once, the
    batch split over ``num_threads`` threads (default ``torch.get_num_threads()``).

    Args:
        num_nodes: the number of nodes, ``>= 1``.
        edges: ``[E, 2]`` integer array, tensor or sequence of ``(tail, head)`` pairs.
        source, target: node indices.
        negative_costs: ``"clamp"`` or ``"raise"`` (graphs with cycles only).
        min_cost: the smallest edge cost allowed by Dijkstra, ``>= 0``.
        num_threads: threads over the batch; ``None`` uses ``torch.get_num_threads()``.

    Example:
        >>> import torch
        >>> from discograd.solvers import ShortestPath
        >>> edges = [(0, 1), (1, 3), (0, 2), (2, 3), (0, 3)]
        >>> solver = ShortestPath(4, edges, source=0, target=3)
        >>> solver.is_dag
        True
        >>> cost = torch.tensor([[1.0, 1.0, 2.0, 2.0, 3.0],
        ...                      [1.0, -5.0, 2.0, 2.0, 3.0]])
        >>> solver(-cost)
        tensor([[1., 1., 0., 0., 0.],
                [1., 1., 0., 0., 0.]])
    """

    event_dims = 1

    def __init__(self, num_nodes: int, edges: object, source: int, target: int, negative_costs: str = "clamp",
                 min_cost: float = 0.0, num_threads: int | None = None) -> None:
        self.num_nodes = check_int(num_nodes, "num_nodes", minimum=1)
        #: the ``[E, 2]`` int64 array of ``(tail, head)`` pairs (read-only)
        self.edges = _check_edges(edges, self.num_nodes)
        self.edges.flags.writeable = False
        self.source = _check_node(source, "source", self.num_nodes)
        self.target = _check_node(target, "target", self.num_nodes)
        self.negative_costs = check_negative_costs(negative_costs)
        self.min_cost = check_non_negative(min_cost, "min_cost")
        self.num_threads = None if num_threads is None else check_int(num_threads, "num_threads", minimum=1)
        tails, heads = self.edges[:, 0], self.edges[:, 1]
        # CSR adjacency: out-edges of each node in increasing edge index
        order = np.argsort(tails, kind="stable")
        self._indptr = np.zeros(self.num_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(tails, minlength=self.num_nodes), out=self._indptr[1:])
        self._heads = np.ascontiguousarray(heads[order])
        self._edge_ids = np.ascontiguousarray(order.astype(np.int64))
        self._tails = np.ascontiguousarray(tails)
        reachable = self._reachable_from_source()
        if not reachable[self.target]:
            raise ValueError(
                f"target {self.target} is not reachable from source {self.source} in the graph with "
                f"{self.num_nodes} nodes and {len(self.edges)} edges; every path problem would be infeasible"
            )
        self._order = self._topological_order(reachable)
        #: whether the DAG algorithm is used (no directed cycle reachable from the source)
        self.is_dag = self._order is not None
        #: scores the solver is exact for (:func:`discograd.testing.check_solver` draws these): any sign on a
        #: DAG, ``θ = −cost <= 0`` for Dijkstra
        self.theta_domain = "any" if self.is_dag else "non_positive"
        #: number of edge costs raised to ``min_cost`` in the last call
        self.last_num_clamped = 0

    @property
    def num_edges(self) -> int:
        return int(self.edges.shape[0])

    def solve(self, theta: Tensor) -> Tensor:
        if theta.shape[-1] != self.num_edges:
            raise ValueError(
                f"theta must have shape [*batch, E] with E = {self.num_edges} (one score per edge); "
                f"got shape {tuple(theta.shape)}"
            )
        rows, batch_size = to_float64_rows(theta, self.num_edges)
        if not self.is_dag and self.negative_costs == "raise":
            check_costs_at_least(rows, self.min_cost, "ShortestPath")
        out = np.empty(rows.shape, dtype=np.uint8)
        status = np.zeros(batch_size, dtype=np.int64)
        if batch_size > 0:
            kernels = load_kernels("ShortestPath")
            if self.is_dag:
                kernel = kernels.dag_range
                args = (rows, self._order, self._indptr, self._heads, self._edge_ids, self._tails,
                        self.source, self.target, out, status)
            else:
                kernel = kernels.graph_range
                args = (rows, self._indptr, self._heads, self._edge_ids, self._tails, self.source, self.target,
                        self.min_cost, out, status)
            kernels.solve_batch(kernel, batch_size, args, work_per_instance=self.num_nodes + self.num_edges,
                                threads=self.num_threads)
        if bool((status < 0).any()):  # cannot happen: reachability was checked in __init__
            bad = int(np.flatnonzero(status < 0)[0])
            index = tuple(int(i) for i in np.unravel_index(bad, theta.shape[:-1]))
            raise ValueError(f"target {self.target} was not reached from source {self.source} for batch index {index}")
        self.last_num_clamped = int(status.sum())
        return from_mask(out, theta)

    @staticmethod
    def path_cost(z: Tensor, costs: Tensor) -> Tensor:
        """The cost of the path ``z``: ``(z * costs).sum(-1)``, shape ``[*batch]``."""
        return (z * costs).sum(dim=-1)

    def enumerate_feasible(self, num_edges: int | None = None, *, dtype: torch.dtype = torch.float32,
                           device: torch.device | str | None = None) -> Tensor:
        """All simple ``source -> target`` paths as edge indicators ``[num_paths, E]``.

        Rows follow a depth-first search from ``source`` over out-edges in increasing edge index;
        parallel edges give distinct paths. ``num_edges``, if given, must equal ``E``. Only for tiny
        graphs: raises ``ValueError`` above 16 nodes or 10**6 paths.
        """
        if num_edges is not None and check_int(num_edges, "num_edges") != self.num_edges:
            raise ValueError(
                f"num_edges must equal the number of edges of the graph, {self.num_edges}; got {num_edges}"
            )
        if self.num_nodes > MAX_ENUMERATED_NODES:
            raise ValueError(
                f"enumerate_feasible lists the paths of graphs with at most {MAX_ENUMERATED_NODES} nodes; "
                f"got num_nodes = {self.num_nodes}"
            )
        paths: list[tuple[int, ...]] = []
        path: list[int] = []
        on_path = {self.source}

        def extend(node: int) -> None:
            if node == self.target:
                if len(paths) >= MAX_ENUMERATED_STATES:
                    raise ValueError(f"enumerate_feasible lists at most {MAX_ENUMERATED_STATES} paths")
                paths.append(tuple(path))
                return
            for slot in range(self._indptr[node], self._indptr[node + 1]):
                head = int(self._heads[slot])
                if head not in on_path:
                    path.append(int(self._edge_ids[slot]))
                    on_path.add(head)
                    extend(head)
                    on_path.remove(head)
                    path.pop()

        extend(self.source)
        states = torch.zeros(len(paths), self.num_edges, dtype=dtype, device=device)
        for row, edge_list in enumerate(paths):
            states[row, list(edge_list)] = 1
        return states

    def _reachable_from_source(self) -> np.ndarray:
        reachable = np.zeros(self.num_nodes, dtype=bool)
        reachable[self.source] = True
        stack = [self.source]
        while stack:
            node = stack.pop()
            for head in self._heads[self._indptr[node]:self._indptr[node + 1]]:
                if not reachable[head]:
                    reachable[head] = True
                    stack.append(int(head))
        return reachable

    def _topological_order(self, reachable: np.ndarray) -> np.ndarray | None:
        """Kahn's algorithm on the nodes reachable from the source (smallest ready node first), or
        ``None`` if they contain a directed cycle."""
        keep = reachable[self._tails]
        in_degree = np.bincount(self.edges[keep, 1], minlength=self.num_nodes)
        ready = [self.source] if in_degree[self.source] == 0 else []
        order = []
        while ready:
            node = heapq.heappop(ready)
            order.append(node)
            for head in self._heads[self._indptr[node]:self._indptr[node + 1]]:
                in_degree[head] -= 1
                if in_degree[head] == 0:
                    heapq.heappush(ready, int(head))
        if len(order) < int(reachable.sum()):
            return None
        return np.array(order, dtype=np.int64)

    def __repr__(self) -> str:
        return (f"ShortestPath(num_nodes={self.num_nodes}, num_edges={self.num_edges}, source={self.source}, "
                f"target={self.target}, negative_costs={self.negative_costs!r}, min_cost={self.min_cost})")


def _check_node(value: object, name: str, num_nodes: int) -> int:
    node = check_int(value, name)
    if not 0 <= node < num_nodes:
        raise ValueError(f"{name} must be a node index in [0, num_nodes) = [0, {num_nodes}); got {node}")
    return node


def _check_edges(edges: object, num_nodes: int) -> np.ndarray:
    if isinstance(edges, Tensor):
        edges = edges.detach().cpu().numpy()
    array = np.asarray(edges)
    if array.size == 0:
        array = array.reshape(0, 2).astype(np.int64)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"edges must hold integers (tail, head); got dtype {array.dtype}")
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"edges must have shape [E, 2] (one (tail, head) pair per row); got shape {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= num_nodes):
        raise ValueError(
            f"edges must hold node indices in [0, num_nodes) = [0, {num_nodes}); got values in "
            f"[{array.min()}, {array.max()}]"
        )
    return np.array(array, dtype=np.int64, order="C", copy=True)  # our own copy: the caller's array stays theirs
