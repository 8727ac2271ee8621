"""Solver benchmarks: solves per second of discograd's batched MAP oracles against the per-instance
solvers a user would otherwise call (a pure-Python heapq Dijkstra, scipy, networkx), and the latency of
a solver's first call in a fresh process with the numba cache warm.

Every ratio compares two medians of the same run: the candidates of one row are timed interleaved
(A B, B A, ...), with a warm-up call each and a garbage collection before every call, outside the
timed region. A slow baseline is timed on a subset of the batch and its rate converted to solves per
second. Every candidate takes ``theta`` as a float32 torch tensor and returns the indicator ``z`` as a
tensor (the baselines convert once per call and loop over instances). Outside the timed region each row
checks that every candidate reaches the same optimum.

Threads: the timing process runs with ``torch.set_num_threads(1)``; discograd's compiled solvers are
timed with ``num_threads=1`` (the per-instance baselines are single-threaded), and separately with
``num_threads=2`` for the thread speed-up. ``MILP`` is timed with ``num_workers=1`` and its default.

1. ``grid_shortest_path``: ``GridShortestPath()`` (8 neighbours) on ``[S=10, B=70, K, K]`` = 700
   instances, K in {12, 18, 24, 30}, vs ``_reference_grid_dijkstra`` (pure-Python heapq, the kind of
   solver research code ships) and vs ``scipy.sparse.csgraph.dijkstra`` per instance on the 8-neighbour
   graph whose edge ``u -> v`` weighs the cost of ``v`` (plus the source's cost). Targets: >= 50x the
   heapq reference at K = 12 and K = 30 on one thread; 2 threads >= 1.6x one thread (near-linear).
2. ``linear_assignment`` (n = 10, batch 700; n = 50, batch 70) vs a loop over
   ``scipy.optimize.linear_sum_assignment(maximize=True)``; ``spanning_tree`` (n = 10, batch 700; n = 30,
   batch 70) vs a loop over ``networkx.maximum_spanning_tree`` of the complete graph and a loop over
   ``scipy.sparse.csgraph.minimum_spanning_tree`` of -w; ``knapsack`` (n = 50, capacity 100 and 1000,
   batch 700) vs a loop over ``scipy.optimize.milp``. Target: no slower than the loops (ratio >= 1).
3. ``ranking`` (n = 100 and 1000, batch 700) vs a loop over ``numpy.argsort`` (and one batched argsort);
   ``shortest_path`` (random digraph, 1000 nodes, about 5000 edges, with cycles: Dijkstra; batch 700) vs
   a loop over ``scipy.sparse.csgraph.dijkstra``; ``milp`` (batch 64, n = 20, a knapsack and a cardinality row)
   ``num_workers=1`` vs the default, and ``num_workers=1`` vs a bare loop over ``scipy.optimize.milp``.
4. ``first_call``: seconds from ``import discograd`` through the first call of each solver with
   compiled code (the numba solvers, and MILP, which imports scipy.optimize), in a fresh subprocess per
   solver, after one warm-up subprocess (none in ``--quick``: this process has filled the cache anyway).
   Target: the first call (after the import) < 2 s; the import itself (mostly torch) is reported too.

Usage::

    python benchmarks/bench_solvers.py            # full run: 2 minutes on 2 busy CPU cores (load 2-4)
    python benchmarks/bench_solvers.py --quick    # every measurement once at tiny sizes, < 20 s (CI)
    python benchmarks/bench_solvers.py --out PATH # default benchmarks/results/solvers.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402  (the benchmarks folder is not a package)

from discograd.solvers import (  # noqa: E402
    MILP,
    GridShortestPath,
    Knapsack,
    LinearAssignment,
    Ranking,
    ShortestPath,
    SpanningTree,
)
from discograd.solvers.grid_shortest_path import _MOVES, _reference_grid_dijkstra  # noqa: E402

CPU = torch.device("cpu")
GRID_SPEEDUP_TARGET = 50.0  # ours (1 thread) / heapq reference, at least, at K = 12 and K = 30
GRID_SPEEDUP_TARGET_SIZES = (12, 30)
THREAD_SPEEDUP_TARGET = 1.6  # 2 threads / 1 thread, at least ("near-linear": 80 % of 2x)
LOOP_RATIO_TARGET = 1.0  # ours (1 thread) / per-instance loop, at least
FIRST_CALL_TARGET_S = 2.0


@dataclass(frozen=True)
class Config:
    grid_sizes: tuple[int, ...]  # K
    grid_samples: int  # S
    grid_batch: int  # B
    grid_reference_instances: int  # heapq reference timed on this many instances
    grid_scipy_instances: int
    assignment: tuple[tuple[int, int], ...]  # (n, batch)
    spanning_tree: tuple[tuple[int, int], ...]  # (n, batch)
    networkx_instances: int
    knapsack_n: int
    knapsack_capacities: tuple[int, ...]
    knapsack_batch: int
    knapsack_milp_instances: int
    ranking: tuple[tuple[int, int], ...]  # (n, batch)
    graph_nodes: int
    graph_out_degree: int
    graph_batch: int
    graph_scipy_instances: int
    milp_batch: int
    milp_n: int
    first_call_solvers: tuple[str, ...]
    first_call_repeats: int
    first_call_warmup: bool  # one warm-up subprocess first (this process has filled the cache already anyway)
    warmup: int
    repeats: int
    slow_repeats: int  # for the rows whose baseline is scipy.optimize.milp (tens of ms per instance)
    quick: bool


FULL = Config(
    grid_sizes=(12, 18, 24, 30), grid_samples=10, grid_batch=70, grid_reference_instances=50,
    grid_scipy_instances=100,
    assignment=((10, 700), (50, 70)),
    spanning_tree=((10, 700), (30, 70)), networkx_instances=100,
    knapsack_n=50, knapsack_capacities=(100, 1000), knapsack_batch=700, knapsack_milp_instances=30,
    ranking=((100, 700), (1000, 700)),
    graph_nodes=1000, graph_out_degree=4, graph_batch=700, graph_scipy_instances=100,
    milp_batch=64, milp_n=20,
    first_call_solvers=("GridShortestPath", "ShortestPath", "LinearAssignment", "SpanningTree", "Knapsack", "MILP"),
    first_call_repeats=3, first_call_warmup=True,
    warmup=1, repeats=9, slow_repeats=5, quick=False,
)
QUICK = Config(
    grid_sizes=(12,), grid_samples=2, grid_batch=5, grid_reference_instances=3, grid_scipy_instances=3,
    assignment=((10, 20),),
    spanning_tree=((10, 20),), networkx_instances=3,
    knapsack_n=20, knapsack_capacities=(100,), knapsack_batch=10, knapsack_milp_instances=3,
    ranking=((100, 20),),
    graph_nodes=100, graph_out_degree=4, graph_batch=10, graph_scipy_instances=3,
    milp_batch=4, milp_n=8,
    first_call_solvers=("GridShortestPath",),
    first_call_repeats=1, first_call_warmup=False,
    warmup=1, repeats=1, slow_repeats=1, quick=True,
)


# -- timing rows -------------------------------------------------------------------------------------------
Candidate = tuple[Callable[[], Any], int]  # (call, number of instances it solves)
MULTI_THREADED = {"ours_2_threads", "num_workers_default"}  # candidates whose CPU time is not their wall time


def timed_row(config: Config, params: dict[str, Any], candidates: dict[str, Candidate],
              ratios: dict[str, tuple[str, str]], agree: bool, *, slow: bool = False) -> dict[str, Any]:
    """Time ``candidates`` interleaved and express each as solves per second.

    ``ratios[name] = (a, b)`` is the rate of ``a`` over the rate of ``b`` (> 1: ``a`` is faster), from
    wall-clock medians. Each call's process CPU time (``time.process_time``, all threads of this process)
    is recorded too; ``cpu_ratios`` gives the same ratios from CPU-time medians for the pairs of
    single-threaded candidates, a cross-check that other processes on a shared machine do not move.
    """
    repeats = config.slow_repeats if slow else config.repeats
    times, cpu = _common.time_interleaved({name: call for name, (call, _) in candidates.items()},
                                          repeats=repeats, warmup=config.warmup, device=CPU)
    measured = {}
    for name, (_, count) in candidates.items():
        median_s = _common.median(times[name])
        cpu_times = cpu[name]
        cpu_median_s = max(_common.median(cpu_times), 1e-9)
        measured[name] = {"instances": count, "median_s": median_s, "solves_per_s": count / median_s,
                          "times_s": times[name], "cpu_median_s": cpu_median_s,
                          "cpu_solves_per_s": count / cpu_median_s, "cpu_times_s": cpu_times}
    row = dict(params)
    row["repeats"] = repeats
    row["candidates"] = measured
    row["ratios"] = {name: measured[a]["solves_per_s"] / measured[b]["solves_per_s"] for name, (a, b) in ratios.items()}
    row["cpu_ratios"] = {
        name: measured[a]["cpu_solves_per_s"] / measured[b]["cpu_solves_per_s"] for name, (a, b) in ratios.items()
        if not (MULTI_THREADED & {a, b})
    }
    row["agree"] = bool(agree)
    return row


def rate(row: dict[str, Any], name: str) -> float:
    return row["candidates"][name]["solves_per_s"]


# -- 1. GridShortestPath --------------------------------------------------------------------------------------
def grid_graph(k: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR structure (indptr, heads) of the 8-neighbour grid digraph on ``k * k`` row-major cells."""
    heads_of = []
    for cell in range(k * k):
        r, c = divmod(cell, k)
        heads_of.append([(r + dr) * k + c + dc for dr, dc in _MOVES[8] if 0 <= r + dr < k and 0 <= c + dc < k])
    indptr = np.zeros(k * k + 1, dtype=np.int32)
    np.cumsum([len(h) for h in heads_of], out=indptr[1:])
    return indptr, np.array([h for hs in heads_of for h in hs], dtype=np.int32)


def scipy_grid_paths(theta: torch.Tensor, count: int, indptr: np.ndarray, heads: np.ndarray) -> torch.Tensor:
    """Per instance: scipy's Dijkstra from cell 0 on edge weights = cost of the head cell, then the path
    to the last cell read from the predecessors."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    k = theta.shape[-1]
    costs = np.negative(theta.reshape(-1, k * k)[:count].numpy().astype(np.float64))
    z = np.zeros((count, k * k))
    target = k * k - 1
    for b in range(count):
        graph = csr_matrix((costs[b][heads], heads, indptr), shape=(k * k, k * k))
        _, pred = dijkstra(graph, directed=True, indices=0, return_predecessors=True)
        cell = target
        z[b, cell] = 1.0
        while cell != 0:
            cell = pred[cell]
            z[b, cell] = 1.0
    return torch.from_numpy(z)


def reference_grid_paths(theta: torch.Tensor, count: int) -> torch.Tensor:
    k = theta.shape[-1]
    costs = np.negative(theta.reshape(-1, k, k)[:count].numpy().astype(np.float64))
    return torch.from_numpy(np.stack([_reference_grid_dijkstra(costs[b]) for b in range(count)]))


def bench_grid(config: Config, rng: np.random.Generator) -> dict[str, Any]:
    rows = []
    for k in config.grid_sizes:
        shape = (config.grid_samples, config.grid_batch, k, k)
        theta = torch.from_numpy(-rng.uniform(0.5, 10.0, size=shape)).float()  # costs in [0.5, 10)
        num = config.grid_samples * config.grid_batch
        n_ref, n_scipy = min(config.grid_reference_instances, num), min(config.grid_scipy_instances, num)
        one, two = GridShortestPath(num_threads=1), GridShortestPath(num_threads=2)
        indptr, heads = grid_graph(k)
        z = one(theta).reshape(num, k, k)
        costs = -theta.reshape(num, k, k).double()
        z_ref = reference_grid_paths(theta, n_ref)
        z_scipy = scipy_grid_paths(theta, n_scipy, indptr, heads).reshape(n_scipy, k, k)
        agree = (torch.equal(two(theta).reshape(num, k, k), z) and torch.equal(z_ref, z[:n_ref].double())
                 and torch.allclose((z_scipy * costs[:n_scipy]).sum((1, 2)),
                                    (z[:n_scipy] * costs[:n_scipy]).sum((1, 2))))
        rows.append(timed_row(
            config, {"K": k, "shape": list(shape), "instances": num},
            {
                "ours_1_thread": (partial(one, theta), num),
                "ours_2_threads": (partial(two, theta), num),
                "heapq_reference": (partial(reference_grid_paths, theta, n_ref), n_ref),
                "scipy_dijkstra_loop": (partial(scipy_grid_paths, theta, n_scipy, indptr, heads), n_scipy),
            },
            {"ours_vs_heapq": ("ours_1_thread", "heapq_reference"),
             "ours_vs_scipy": ("ours_1_thread", "scipy_dijkstra_loop"),
             "threads_2_vs_1": ("ours_2_threads", "ours_1_thread")},
            agree,
        ))
    for r in rows:  # work added by the 2-thread split, which other processes on the machine do not move
        c = r["candidates"]
        r["two_threads_cpu_over_one"] = c["ours_2_threads"]["cpu_median_s"] / c["ours_1_thread"]["cpu_median_s"]
    target_rows = [r for r in rows if r["K"] in GRID_SPEEDUP_TARGET_SIZES] or rows
    min_heapq = min(r["ratios"]["ours_vs_heapq"] for r in target_rows)
    min_heapq_cpu = min(r["cpu_ratios"]["ours_vs_heapq"] for r in target_rows)
    min_threads = min(r["ratios"]["threads_2_vs_1"] for r in rows)
    return {
        "description": (
            "GridShortestPath(neighbourhood=8) on [S, B, K, K] costs uniform in [0.5, 10), source (0,0), target "
            "(K-1,K-1); heapq_reference: discograd.solvers.grid_shortest_path._reference_grid_dijkstra per "
            "instance (pure Python); scipy_dijkstra_loop: scipy.sparse.csgraph.dijkstra per instance on the "
            "8-neighbour digraph, edge weight = cost of the head cell (no early stop at the target), path read "
            "from the predecessors; the baselines are timed on the first `instances` of the batch"
        ),
        "target_min_speedup_vs_heapq": GRID_SPEEDUP_TARGET,
        "target_sizes": [r["K"] for r in target_rows],
        "min_speedup_vs_heapq": min_heapq,
        "min_speedup_vs_heapq_cpu_time": min_heapq_cpu,
        "target_met": min_heapq >= GRID_SPEEDUP_TARGET,
        "target_min_thread_speedup": THREAD_SPEEDUP_TARGET,
        "min_thread_speedup": min_threads,
        "thread_target_met": min_threads >= THREAD_SPEEDUP_TARGET,
        "max_two_threads_cpu_over_one": max(r["two_threads_cpu_over_one"] for r in rows),
        "rows": rows,
    }


# -- 2. LinearAssignment, SpanningTree, Knapsack -----------------------------------------------------------
def scipy_assignment_loop(theta: torch.Tensor) -> torch.Tensor:
    from scipy.optimize import linear_sum_assignment

    scores = theta.numpy().astype(np.float64)
    z = np.zeros_like(scores)
    for b in range(scores.shape[0]):
        rows, cols = linear_sum_assignment(scores[b], maximize=True)
        z[b, rows, cols] = 1.0
    return torch.from_numpy(z)


def bench_assignment(config: Config, rng: np.random.Generator) -> dict[str, Any]:
    rows = []
    for n, batch in config.assignment:
        theta = torch.from_numpy(rng.standard_normal((batch, n, n))).float()
        one, two = LinearAssignment(num_threads=1), LinearAssignment(num_threads=2)
        z, z_scipy = one(theta).double(), scipy_assignment_loop(theta)
        scores = theta.double()
        agree = torch.allclose((z * scores).sum((1, 2)), (z_scipy * scores).sum((1, 2)))
        rows.append(timed_row(
            config, {"n": n, "batch": batch},
            {"ours_1_thread": (partial(one, theta), batch), "ours_2_threads": (partial(two, theta), batch),
             "scipy_loop": (partial(scipy_assignment_loop, theta), batch)},
            {"ours_vs_scipy_loop": ("ours_1_thread", "scipy_loop"),
             "threads_2_vs_1": ("ours_2_threads", "ours_1_thread")},
            agree,
        ))
    return _loop_section(rows, ("ours_vs_scipy_loop",), (
        "LinearAssignment on [batch, n, n] standard normal scores vs a loop over "
        "scipy.optimize.linear_sum_assignment(maximize=True), z built from its (row, col) indices"
    ))


def edge_weights(theta: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper-triangle edge list (i, j) and scores theta[i, j] + theta[j, i], ``[batch, n(n-1)/2]``."""
    scores = theta.numpy().astype(np.float64)
    iu, ju = np.triu_indices(scores.shape[-1], 1)
    return iu, ju, scores[:, iu, ju] + scores[:, ju, iu]


def networkx_tree_loop(theta: torch.Tensor, count: int) -> torch.Tensor:
    import networkx as nx

    n = theta.shape[-1]
    iu, ju, w = edge_weights(theta[:count])
    iu_list, ju_list = iu.tolist(), ju.tolist()
    z = np.zeros((count, n, n))
    for b in range(count):
        graph = nx.Graph()
        graph.add_weighted_edges_from(zip(iu_list, ju_list, w[b].tolist(), strict=True))
        for i, j in nx.maximum_spanning_tree(graph).edges():
            z[b, i, j] = z[b, j, i] = 1.0
    return torch.from_numpy(z)


def scipy_tree_loop(theta: torch.Tensor) -> torch.Tensor:
    """scipy's minimum spanning tree of the upper triangle of -w (a dense input: 0 means no edge; the
    scores are continuous, so none is exactly 0)."""
    from scipy.sparse.csgraph import minimum_spanning_tree

    batch, n = theta.shape[0], theta.shape[-1]
    iu, ju, w = edge_weights(theta)
    dense = np.zeros((n, n))
    z = np.zeros((batch, n, n))
    for b in range(batch):
        dense[iu, ju] = -w[b]
        i, j = minimum_spanning_tree(dense).nonzero()
        z[b, i, j] = z[b, j, i] = 1.0
    return torch.from_numpy(z)


def bench_spanning_tree(config: Config, rng: np.random.Generator) -> dict[str, Any]:
    rows = []
    for n, batch in config.spanning_tree:
        theta = torch.from_numpy(rng.standard_normal((batch, n, n))).float()
        n_nx = min(config.networkx_instances, batch)
        one, two = SpanningTree(num_threads=1), SpanningTree(num_threads=2)
        z = one(theta).double()
        agree = torch.equal(z, scipy_tree_loop(theta)) and torch.equal(z[:n_nx], networkx_tree_loop(theta, n_nx))
        rows.append(timed_row(
            config, {"n": n, "batch": batch},
            {"ours_1_thread": (partial(one, theta), batch), "ours_2_threads": (partial(two, theta), batch),
             "networkx_loop": (partial(networkx_tree_loop, theta, n_nx), n_nx),
             "scipy_loop": (partial(scipy_tree_loop, theta), batch)},
            {"ours_vs_networkx_loop": ("ours_1_thread", "networkx_loop"),
             "ours_vs_scipy_loop": ("ours_1_thread", "scipy_loop"),
             "threads_2_vs_1": ("ours_2_threads", "ours_1_thread")},
            agree,
        ))
    return _loop_section(rows, ("ours_vs_networkx_loop", "ours_vs_scipy_loop"), (
        "SpanningTree on [batch, n, n] standard normal scores (edge score theta_ij + theta_ji) vs a loop over "
        "networkx.maximum_spanning_tree of the complete graph (built per instance; timed on the first "
        "`instances`) and a loop over scipy.sparse.csgraph.minimum_spanning_tree of the upper triangle of -w"
    ))


def milp_knapsack_loop(theta: torch.Tensor, count: int, weights: np.ndarray, capacity: int) -> torch.Tensor:
    from scipy.optimize import Bounds, LinearConstraint, milp

    n = theta.shape[-1]
    cost = np.negative(theta[:count].numpy().astype(np.float64))
    constraint = LinearConstraint(weights[None, :].astype(np.float64), -np.inf, capacity)
    bounds, integrality = Bounds(0, 1), np.ones(n)
    z = np.empty((count, n))
    for b in range(count):
        z[b] = np.round(milp(cost[b], integrality=integrality, bounds=bounds, constraints=constraint).x)
    return torch.from_numpy(z)


def bench_knapsack(config: Config, rng: np.random.Generator) -> dict[str, Any]:
    rows = []
    n, batch = config.knapsack_n, config.knapsack_batch
    for capacity in config.knapsack_capacities:
        weights = rng.integers(1, capacity // 10 + 1, size=n)  # about 5x the capacity in all
        theta = torch.from_numpy(rng.uniform(0.0, 1.0, size=(batch, n))).float()
        n_milp = min(config.knapsack_milp_instances, batch)
        one = Knapsack(torch.from_numpy(weights), capacity, num_threads=1)
        two = Knapsack(torch.from_numpy(weights), capacity, num_threads=2)
        z = one(theta).double()
        z_milp = milp_knapsack_loop(theta, n_milp, weights, capacity)
        values = theta.double()
        best, found = (z[:n_milp] * values[:n_milp]).sum(1), (z_milp * values[:n_milp]).sum(1)
        # HiGHS stops at a relative MIP gap of 1e-4 by default
        agree = bool(((z_milp.numpy() @ weights) <= capacity).all() and (found <= best + 1e-9).all()
                     and (found >= best * (1 - 1e-4) - 1e-9).all() and (z.numpy() @ weights <= capacity).all())
        rows.append(timed_row(
            config, {"n": n, "capacity": capacity, "batch": batch, "total_weight": int(weights.sum())},
            {"ours_1_thread": (partial(one, theta), batch), "ours_2_threads": (partial(two, theta), batch),
             "scipy_milp_loop": (partial(milp_knapsack_loop, theta, n_milp, weights, capacity), n_milp)},
            {"ours_vs_scipy_milp_loop": ("ours_1_thread", "scipy_milp_loop"),
             "threads_2_vs_1": ("ours_2_threads", "ours_1_thread")},
            agree, slow=True,
        ))
    return _loop_section(rows, ("ours_vs_scipy_milp_loop",), (
        "Knapsack (integer weights uniform in 1..capacity/10, shared; values uniform in [0, 1)) vs a loop over "
        "scipy.optimize.milp (HiGHS; one LinearConstraint built once), timed on the first `instances`; agree: "
        "HiGHS's value within its default relative gap 1e-4 of ours"
    ))


def _loop_section(rows: list[dict[str, Any]], ratio_names: tuple[str, ...], description: str) -> dict[str, Any]:
    worst = min(r["ratios"][name] for r in rows for name in ratio_names)
    return {
        "description": description,
        "target_min_ratio_vs_loops": LOOP_RATIO_TARGET,
        "min_ratio_vs_loops": worst,
        "min_ratio_vs_loops_cpu_time": min(r["cpu_ratios"][name] for r in rows for name in ratio_names),
        "target_met": worst >= LOOP_RATIO_TARGET,
        "rows": rows,
    }


# -- 3. Ranking, ShortestPath, MILP ------------------------------------------------------------------------
def numpy_ranking_loop(theta: torch.Tensor) -> torch.Tensor:
    scores = theta.numpy()
    n = scores.shape[-1]
    ranks = np.arange(n, 0, -1, dtype=scores.dtype)
    z = np.empty_like(scores)
    for b in range(scores.shape[0]):
        z[b, np.argsort(-scores[b], kind="stable")] = ranks
    return torch.from_numpy(z)


def numpy_ranking_batched(theta: torch.Tensor) -> torch.Tensor:
    scores = theta.numpy()
    n = scores.shape[-1]
    order = np.argsort(-scores, axis=-1, kind="stable")
    z = np.empty_like(scores)
    np.put_along_axis(z, order, np.arange(n, 0, -1, dtype=scores.dtype)[None, :], axis=-1)
    return torch.from_numpy(z)


def bench_ranking(config: Config, rng: np.random.Generator) -> dict[str, Any]:
    rows = []
    solver = Ranking()
    for n, batch in config.ranking:
        theta = torch.from_numpy(rng.standard_normal((batch, n))).float()
        z = solver(theta)
        agree = torch.equal(z, numpy_ranking_loop(theta)) and torch.equal(z, numpy_ranking_batched(theta))
        rows.append(timed_row(
            config, {"n": n, "batch": batch},
            {"ours": (partial(solver, theta), batch), "numpy_argsort_loop": (partial(numpy_ranking_loop, theta), batch),
             "numpy_argsort_batched": (partial(numpy_ranking_batched, theta), batch)},
            {"ours_vs_numpy_loop": ("ours", "numpy_argsort_loop"),
             "ours_vs_numpy_batched": ("ours", "numpy_argsort_batched")},
            agree,
        ))
    return {
        "description": (
            "Ranking() (torch.argsort, torch.set_num_threads(1)) on [batch, n] standard normal scores vs a loop "
            "of numpy.argsort(-theta_b, kind='stable') with the ranks scattered, and one batched numpy argsort"
        ),
        "rows": rows,
    }


def random_digraph(num_nodes: int, out_degree: int, rng: np.random.Generator) -> np.ndarray:
    """A ring ``i -> i + 1`` (so every node is reachable, and there are cycles) plus ``out_degree`` random
    out-edges per node; no self-loops, no parallel edges; sorted by (tail, head)."""
    tails = np.concatenate([np.arange(num_nodes), np.repeat(np.arange(num_nodes), out_degree)])
    heads = np.concatenate([(np.arange(num_nodes) + 1) % num_nodes,
                            rng.integers(0, num_nodes, size=num_nodes * out_degree)])
    edges = np.unique(np.stack([tails, heads], axis=1), axis=0)  # sorted, no duplicates
    return edges[edges[:, 0] != edges[:, 1]]


def scipy_path_loop(theta: torch.Tensor, count: int, edges: np.ndarray, num_nodes: int, source: int, target: int,
                    edge_id: dict[tuple[int, int], int]) -> torch.Tensor:
    """Per instance: scipy's Dijkstra on the CSR graph (edges sorted by tail, so the CSR data is the cost
    row itself), then the path's edges from the predecessors."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    indptr = np.zeros(num_nodes + 1, dtype=np.int32)
    np.cumsum(np.bincount(edges[:, 0], minlength=num_nodes), out=indptr[1:])
    heads = edges[:, 1].astype(np.int32)
    costs = np.negative(theta[:count].numpy().astype(np.float64))
    z = np.zeros((count, len(edges)))
    for b in range(count):
        graph = csr_matrix((costs[b], heads, indptr), shape=(num_nodes, num_nodes))
        _, pred = dijkstra(graph, directed=True, indices=source, return_predecessors=True)
        node = target
        while node != source:
            previous = int(pred[node])
            z[b, edge_id[previous, node]] = 1.0
            node = previous
    return torch.from_numpy(z)


def bench_shortest_path(config: Config, rng: np.random.Generator) -> dict[str, Any]:
    num_nodes, batch = config.graph_nodes, config.graph_batch
    edges = random_digraph(num_nodes, config.graph_out_degree, rng)
    source, target = 0, num_nodes // 2
    edge_id = {(int(t), int(h)): e for e, (t, h) in enumerate(edges)}
    theta = torch.from_numpy(-rng.uniform(0.5, 10.0, size=(batch, len(edges)))).float()
    n_scipy = min(config.graph_scipy_instances, batch)
    one = ShortestPath(num_nodes, edges, source, target, num_threads=1)
    two = ShortestPath(num_nodes, edges, source, target, num_threads=2)
    assert not one.is_dag
    z = one(theta).double()
    z_scipy = scipy_path_loop(theta, n_scipy, edges, num_nodes, source, target, edge_id)
    costs = -theta[:n_scipy].double()
    agree = (torch.allclose((z[:n_scipy] * costs).sum(1), (z_scipy * costs).sum(1))
             and torch.equal(two(theta).double(), z))
    row = timed_row(
        config, {"num_nodes": num_nodes, "num_edges": len(edges), "batch": batch},
        {"ours_1_thread": (partial(one, theta), batch), "ours_2_threads": (partial(two, theta), batch),
         "scipy_dijkstra_loop": (partial(scipy_path_loop, theta, n_scipy, edges, num_nodes, source, target, edge_id),
                                 n_scipy)},
        {"ours_vs_scipy_loop": ("ours_1_thread", "scipy_dijkstra_loop"),
         "threads_2_vs_1": ("ours_2_threads", "ours_1_thread")},
        agree,
    )
    return {
        "description": (
            "ShortestPath (Dijkstra: the graph has cycles) on a random digraph (ring + random out-edges, no "
            f"parallel edges), source {source}, target {target}, edge costs uniform in [0.5, 10), vs a loop over "
            "scipy.sparse.csgraph.dijkstra (CSR built per instance; no early stop at the target), path edges "
            "read from the predecessors; scipy timed on the first `instances`"
        ),
        "rows": [row],
    }


def scipy_milp_loop(theta: torch.Tensor, constraint: Any) -> torch.Tensor:
    from scipy.optimize import Bounds, milp

    cost = np.negative(theta.numpy().astype(np.float64))
    n = cost.shape[-1]
    bounds, integrality = Bounds(0, 1), np.ones(n)
    z = np.empty_like(cost)
    for b in range(cost.shape[0]):
        z[b] = np.round(milp(cost[b], integrality=integrality, bounds=bounds, constraints=constraint).x)
    return torch.from_numpy(z)


def bench_milp(config: Config, rng: np.random.Generator) -> dict[str, Any]:
    from scipy.optimize import LinearConstraint

    n, batch = config.milp_n, config.milp_batch
    # a knapsack row (weights 1..10, capacity a third of the total) and a cardinality row (at most n // 4)
    A = np.stack([rng.integers(1, 11, size=n), np.ones(n, dtype=np.int64)]).astype(np.float64)
    b = np.array([np.floor(A[0].sum() / 3), n // 4])
    theta = torch.from_numpy(rng.uniform(0.0, 1.0, size=(batch, n))).float()
    serial, default = MILP(A_ub=A, b_ub=b, num_workers=1), MILP(A_ub=A, b_ub=b)
    constraint = LinearConstraint(A, -np.inf, b)
    values = theta.double()
    z1, z_default, z_scipy = serial(theta).double(), default(theta).double(), scipy_milp_loop(theta, constraint)
    objective = [(z * values).sum(1) for z in (z1, z_default, z_scipy)]
    agree = all(torch.allclose(o, objective[0], rtol=1e-4) for o in objective)
    row = timed_row(
        config, {"n": n, "rows": len(A), "batch": batch, "default_num_workers": default._workers(batch)},
        {"num_workers_1": (partial(serial, theta), batch), "num_workers_default": (partial(default, theta), batch),
         "scipy_milp_loop": (partial(scipy_milp_loop, theta, constraint), batch)},
        {"default_vs_1_worker": ("num_workers_default", "num_workers_1"),
         "1_worker_vs_scipy_loop": ("num_workers_1", "scipy_milp_loop")},
        agree, slow=True,
    )
    return {
        "description": (
            "MILP (n binaries; rows: weights in 1..10 <= floor(total / 3), and sum(z) <= n // 4) with "
            "num_workers=1 vs the default "
            "(threads = available CPUs), and num_workers=1 vs a bare loop over scipy.optimize.milp (its overhead)"
        ),
        "rows": [row],
    }


# -- 4. first-call latency in fresh processes -----------------------------------------------------------------
FIRST_CALL_SETUP = {
    "GridShortestPath": "solver = GridShortestPath(num_threads=1); theta = -1 - torch.rand(10, 12, 12)",
    "ShortestPath": ("solver = ShortestPath(4, [(0, 1), (1, 2), (2, 0), (1, 3), (2, 3)], 0, 3, num_threads=1); "
                     "theta = -1 - torch.rand(10, 5)"),
    "LinearAssignment": "solver = LinearAssignment(num_threads=1); theta = torch.randn(10, 6, 6)",
    "SpanningTree": "solver = SpanningTree(num_threads=1); theta = torch.randn(10, 6, 6)",
    "Knapsack": "solver = Knapsack([3, 4, 2, 5, 1, 2], 7, num_threads=1); theta = torch.rand(10, 6)",
    "MILP": "solver = MILP(A_ub=[[3, 4, 2, 5, 1, 2]], b_ub=[7], num_workers=1); theta = torch.rand(10, 6)",
}

FIRST_CALL_CODE = """\
import time
t0 = time.perf_counter()
import discograd
t1 = time.perf_counter()
import json
import torch
from discograd.solvers import {name}
{setup}
t2 = time.perf_counter()
solver(theta)
t3 = time.perf_counter()
solver(theta)
t4 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "setup_s": t2 - t1, "call_s": t3 - t2, "first_call_s": t3 - t1,
                  "total_s": t3 - t0, "second_call_s": t4 - t3}}))
"""


def run_python(code: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=600,
                            cwd=_common.REPO_ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"first-call subprocess failed:\n{code}\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def bench_first_call(config: Config) -> dict[str, Any]:
    names = config.first_call_solvers
    warm_code = "import time\nt0 = time.perf_counter()\nimport json, torch\nfrom discograd.solvers import *\n"
    warm_code += "".join(f"{FIRST_CALL_SETUP[name]}\nsolver(theta)\n" for name in names)
    warm_code += "print(json.dumps({'total_s': time.perf_counter() - t0}))\n"
    # this process has called every solver by now, so numba's cache is filled; the warm-up subprocess
    # also loads what a fresh process reads from disk (skipped in --quick, to keep CI short)
    warmup_s = run_python(warm_code)["total_s"] if config.first_call_warmup else None
    raw: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(config.first_call_repeats):  # round robin: a change in load hits every solver
        for name in names:
            raw[name].append(run_python(FIRST_CALL_CODE.format(name=name, setup=FIRST_CALL_SETUP[name])))
    rows = []
    for name in names:
        row: dict[str, Any] = {"solver": name, "repeats": config.first_call_repeats}
        for key in ("import_s", "first_call_s", "total_s", "second_call_s"):
            row[key] = _common.median([r[key] for r in raw[name]])
        row["first_over_second_call"] = (row["first_call_s"] / max(row["second_call_s"], 1e-9))
        row["raw"] = raw[name]
        rows.append(row)
    worst_first = max(r["first_call_s"] for r in rows)
    worst_total = max(r["total_s"] for r in rows)
    return {
        "description": (
            "fresh `python -c` per solver after one warm-up subprocess that calls every solver (fills the numba "
            "cache; in --quick none: this process, which has called every solver, has filled it): import_s = "
            "`import discograd` (imports torch), first_call_s = from after that import through "
            "the solver's first call (construction, numba import and cache load), total_s = both; medians over "
            "round-robin repeats"
        ),
        "warmup_subprocess_s": warmup_s,
        "target_max_first_call_s": FIRST_CALL_TARGET_S,
        "max_first_call_s": worst_first,
        "target_met": worst_first < FIRST_CALL_TARGET_S,
        "max_total_s": worst_total,
        "total_under_target": worst_total < FIRST_CALL_TARGET_S,
        "rows": rows,
    }


# -- report --------------------------------------------------------------------------------------------------
def _rates(row: dict[str, Any], names: list[str]) -> list[Any]:
    return [rate(row, name) for name in names]


def print_report(results: dict[str, Any]) -> None:
    env = results["environment"]
    print(
        f"discograd solver benchmarks{' (quick)' if results['quick'] else ''}: torch {env['torch_version']}, "
        f"device {env['device']}, torch threads {env['num_threads']} of {env['cpu_count']} CPUs, git {env['git_sha']}, "
        f"load {env['load_average_1min']} (1 min) -> {results['load_average_1min_end']} at the end"
    )
    print("All rates are solves per second (medians); 'x' columns are ratios of rates measured in this run.")
    if results["quick"]:
        print("(quick mode: tiny sizes, one repeat each; it checks that the script runs, its ratios and verdicts "
              "mean nothing)")

    grid = results["grid_shortest_path"]
    print("\n1. GridShortestPath (8 neighbours), batch S x B = "
          f"{results['config']['grid_samples']} x {results['config']['grid_batch']}")
    print(_common.format_table(
        ["K", "ours 1 thr", "ours 2 thr", "heapq ref", "scipy loop", "x heapq", "(cpu)", "x scipy", "(cpu)",
         "2 vs 1 thr", "cpu 2/1", "agree"],
        [[r["K"], *_rates(r, ["ours_1_thread", "ours_2_threads", "heapq_reference", "scipy_dijkstra_loop"]),
          r["ratios"]["ours_vs_heapq"], r["cpu_ratios"]["ours_vs_heapq"], r["ratios"]["ours_vs_scipy"],
          r["cpu_ratios"]["ours_vs_scipy"], r["ratios"]["threads_2_vs_1"], r["two_threads_cpu_over_one"], r["agree"]]
         for r in grid["rows"]],
    ))
    print(f"   target: >= {GRID_SPEEDUP_TARGET:g}x heapq at K in {grid['target_sizes']} on one thread: worst "
          f"{grid['min_speedup_vs_heapq']:.1f}x -> {'met' if grid['target_met'] else 'MISSED'} (process CPU time: "
          f"{grid['min_speedup_vs_heapq_cpu_time']:.1f}x); 2 threads >= "
          f"{THREAD_SPEEDUP_TARGET}x: worst {grid['min_thread_speedup']:.2f}x -> "
          f"{'met' if grid['thread_target_met'] else 'MISSED'}")

    sections = [
        ("linear_assignment", "2a. LinearAssignment vs scipy linear_sum_assignment loop", ["n", "batch"],
         ["ours_1_thread", "ours_2_threads", "scipy_loop"], ["ours_vs_scipy_loop", "threads_2_vs_1"]),
        ("spanning_tree", "2b. SpanningTree vs networkx / scipy loops", ["n", "batch"],
         ["ours_1_thread", "ours_2_threads", "networkx_loop", "scipy_loop"],
         ["ours_vs_networkx_loop", "ours_vs_scipy_loop", "threads_2_vs_1"]),
        ("knapsack", "2c. Knapsack vs scipy.optimize.milp loop", ["n", "capacity", "batch"],
         ["ours_1_thread", "ours_2_threads", "scipy_milp_loop"], ["ours_vs_scipy_milp_loop", "threads_2_vs_1"]),
        ("ranking", "3a. Ranking vs numpy argsort", ["n", "batch"],
         ["ours", "numpy_argsort_loop", "numpy_argsort_batched"], ["ours_vs_numpy_loop", "ours_vs_numpy_batched"]),
        ("shortest_path", "3b. ShortestPath (general digraph, Dijkstra) vs scipy dijkstra loop",
         ["num_nodes", "num_edges", "batch"], ["ours_1_thread", "ours_2_threads", "scipy_dijkstra_loop"],
         ["ours_vs_scipy_loop", "threads_2_vs_1"]),
        ("milp", "3c. MILP (HiGHS) num_workers=1 vs default, and vs a bare scipy milp loop", ["n", "rows", "batch"],
         ["num_workers_1", "num_workers_default", "scipy_milp_loop"],
         ["default_vs_1_worker", "1_worker_vs_scipy_loop"]),
    ]
    for key, title, params, names, ratios in sections:
        section = results[key]
        print(f"\n{title}")
        print(_common.format_table(
            params + names + [f"x {name}" for name in ratios] + ["agree"],
            [[r[p] for p in params] + _rates(r, names) + [r["ratios"][name] for name in ratios] + [r["agree"]]
             for r in section["rows"]],
        ))
        if "target_met" in section:
            print(f"   target: no slower than the per-instance loops (ratio >= {LOOP_RATIO_TARGET:g}): worst "
                  f"{section['min_ratio_vs_loops']:.2f}x -> {'met' if section['target_met'] else 'MISSED'} "
                  f"(process CPU time: {section['min_ratio_vs_loops_cpu_time']:.2f}x)")

    first = results["first_call"]
    warmup = first["warmup_subprocess_s"]
    print(f"\n4. First call in a fresh process, numba cache warm (seconds; warm-up subprocess "
          f"{'skipped' if warmup is None else f'{warmup:.2f} s'})")
    print(_common.format_table(
        ["solver", "import discograd", "first call", "import + first call", "second call"],
        [[r["solver"], r["import_s"], r["first_call_s"], r["total_s"], r["second_call_s"]] for r in first["rows"]],
    ))
    print(f"   target: first call < {FIRST_CALL_TARGET_S:g} s: worst {first['max_first_call_s']:.2f} s -> "
          f"{'met' if first['target_met'] else 'MISSED'}; with the import: worst {first['max_total_s']:.2f} s "
          f"({'under' if first['total_under_target'] else 'OVER'} {FIRST_CALL_TARGET_S:g} s)")


def _fmt(value: float) -> str:
    """A rate or ratio for Markdown: 3 significant digits, thousands separated."""
    if value >= 100:
        return f"{value:,.0f}" if value < 1e4 else f"{float(f'{value:.3g}'):,.0f}"
    return f"{value:.3g}"


def _ratio(value: float) -> str:
    if value < 10:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def markdown_report(results: dict[str, Any]) -> str:
    """The results as Markdown tables (for benchmarks/SOLVERS.md)."""
    env = results["environment"]
    lines = [
        f"Run of {env['date'][:10]}: git `{env['git_sha']}`, torch {env['torch_version']}, {env['cpu_count']} CPUs, "
        f"`torch.set_num_threads(1)`, load average (1 min) {env['load_average_1min']:.2f} at the start and "
        f"{results['load_average_1min_end']:.2f} at the end{' (quick mode)' if results['quick'] else ''}. "
        "Solves per second are medians over interleaved repeats; \"wall\" ratios are of wall-clock medians, "
        "\"CPU\" ratios of this process's CPU-time medians (single-threaded candidates only).",
        "",
        "GridShortestPath, 8 neighbours, batch S x B = "
        f"{results['config']['grid_samples']} x {results['config']['grid_batch']}:",
        "",
        "| K | ours, 1 thread | ours, 2 threads | heapq reference | scipy Dijkstra loop | x heapq (wall / CPU) "
        "| x scipy (wall / CPU) | 2 threads / 1 | CPU time, 2 threads / 1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["grid_shortest_path"]["rows"]:
        c, w, u = r["candidates"], r["ratios"], r["cpu_ratios"]
        lines.append(
            f"| {r['K']} | {_fmt(c['ours_1_thread']['solves_per_s'])} | {_fmt(c['ours_2_threads']['solves_per_s'])} | "
            f"{_fmt(c['heapq_reference']['solves_per_s'])} | {_fmt(c['scipy_dijkstra_loop']['solves_per_s'])} | "
            f"{_ratio(w['ours_vs_heapq'])} / {_ratio(u['ours_vs_heapq'])} | {_ratio(w['ours_vs_scipy'])} / "
            f"{_ratio(u['ours_vs_scipy'])} | {_ratio(w['threads_2_vs_1'])} | "
            f"{_ratio(r['two_threads_cpu_over_one']) if 'two_threads_cpu_over_one' in r else '-'} |"
        )
    lines += [
        "",
        "Other solvers (ours on one thread unless said; baselines are per-instance loops):",
        "",
        "| solver | size | batch | ours, 1 thread | baseline | baseline | ours / baseline (wall / CPU) "
        "| 2 threads / 1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    other = [
        ("LinearAssignment", "linear_assignment", lambda r: f"n = {r['n']}", "ours_1_thread",
         [("scipy linear_sum_assignment", "scipy_loop", "ours_vs_scipy_loop")]),
        ("SpanningTree", "spanning_tree", lambda r: f"n = {r['n']}", "ours_1_thread",
         [("networkx maximum_spanning_tree", "networkx_loop", "ours_vs_networkx_loop"),
          ("scipy minimum_spanning_tree", "scipy_loop", "ours_vs_scipy_loop")]),
        ("Knapsack", "knapsack", lambda r: f"n = {r['n']}, capacity {r['capacity']}", "ours_1_thread",
         [("scipy.optimize.milp", "scipy_milp_loop", "ours_vs_scipy_milp_loop")]),
        ("ShortestPath", "shortest_path", lambda r: f"{r['num_nodes']} nodes, {r['num_edges']} edges", "ours_1_thread",
         [("scipy Dijkstra", "scipy_dijkstra_loop", "ours_vs_scipy_loop")]),
        ("Ranking", "ranking", lambda r: f"n = {r['n']}", "ours",
         [("numpy argsort", "numpy_argsort_loop", "ours_vs_numpy_loop"),
          ("numpy argsort, batched (one call)", "numpy_argsort_batched", "ours_vs_numpy_batched")]),
        ("MILP, num_workers=1", "milp", lambda r: f"n = {r['n']}, {r['rows']} rows", "num_workers_1",
         [("scipy.optimize.milp", "scipy_milp_loop", "1_worker_vs_scipy_loop")]),
    ]
    for label, key, size, ours, baselines in other:
        for r in results[key]["rows"]:
            c = r["candidates"]
            if "threads_2_vs_1" in r["ratios"]:
                threads = _ratio(r["ratios"]["threads_2_vs_1"])
            elif "default_vs_1_worker" in r["ratios"]:
                threads = f"{_ratio(r['ratios']['default_vs_1_worker'])} (default {r['default_num_workers']} workers)"
            else:
                threads = "-"
            for name, baseline, ratio in baselines:
                lines.append(
                    f"| {label} | {size(r)} | {r['batch']} | {_fmt(c[ours]['solves_per_s'])} | {name} | "
                    f"{_fmt(c[baseline]['solves_per_s'])} | {_ratio(r['ratios'][ratio])} / "
                    f"{_ratio(r['cpu_ratios'][ratio])} "
                    f"| {threads} |"
                )
    first = results["first_call"]
    if first is not None:
        lines += [
            "",
            f"First call in a fresh process, numba cache warm (seconds, median of {first['rows'][0]['repeats']}):",
            "",
            "| solver | `import discograd` | first call (after the import) | both | second call |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {r['solver']} | {r['import_s']:.2f} | {r['first_call_s']:.2f} | {r['total_s']:.2f} | "
                  f"{r['second_call_s'] * 1e3:.3g} ms |" for r in first["rows"]]
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for name, t in results["targets"].items():
        measured = f"{t['measured']:.3g}"
        if "measured_cpu_time" in t:
            measured += f" (CPU time: {t['measured_cpu_time']:.3g})"
        lines.append(f"| `{name}` >= {t['target']:g}{' s' if name == 'first_call_max_s' else ''} | {measured} | "
                     f"{'yes' if t['met'] else '**no**'} |".replace(">= 2 s", "< 2 s"))
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every measurement once at tiny sizes (CI; < 20 s)")
    parser.add_argument("--out", type=Path, default=_common.RESULTS_DIR / "solvers.json",
                        help="where to write the JSON results (default benchmarks/results/solvers.json)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the NumPy generator of the problems")
    parser.add_argument("--skip-first-call", action="store_true", help="leave out the fresh-subprocess latencies")
    parser.add_argument("--markdown", type=Path, help="also write the results as Markdown tables to this file")
    parser.add_argument("--markdown-from", type=Path, metavar="JSON",
                        help="print the Markdown tables of an earlier run's JSON and exit (nothing is measured)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown_from is not None:
        print(markdown_report(json.loads(args.markdown_from.read_text())), end="")
        return 0
    torch.set_num_threads(1)  # single-thread numbers: torch's own ops in the solvers' wrappers use one thread
    config = QUICK if args.quick else FULL
    rng = np.random.default_rng(args.seed)
    results: dict[str, Any] = {
        "benchmark": "solvers",
        "quick": config.quick,
        "environment": _common.environment(CPU),
        "torch_set_num_threads": 1,
        "config": asdict(config),
    }
    results["grid_shortest_path"] = bench_grid(config, rng)
    results["linear_assignment"] = bench_assignment(config, rng)
    results["spanning_tree"] = bench_spanning_tree(config, rng)
    results["knapsack"] = bench_knapsack(config, rng)
    results["ranking"] = bench_ranking(config, rng)
    results["shortest_path"] = bench_shortest_path(config, rng)
    results["milp"] = bench_milp(config, rng)
    results["first_call"] = None if args.skip_first_call else bench_first_call(config)
    try:
        results["load_average_1min_end"] = os.getloadavg()[0]
    except OSError:
        results["load_average_1min_end"] = None
    grid = results["grid_shortest_path"]
    targets: dict[str, dict[str, Any]] = {
        "grid_min_speedup_vs_heapq": {"target": GRID_SPEEDUP_TARGET, "sizes": grid["target_sizes"],
                                      "measured": grid["min_speedup_vs_heapq"],
                                      "measured_cpu_time": grid["min_speedup_vs_heapq_cpu_time"],
                                      "met": grid["target_met"]},
        "grid_min_thread_speedup": {"target": THREAD_SPEEDUP_TARGET, "measured": grid["min_thread_speedup"],
                                    "met": grid["thread_target_met"]},
    }
    for key in ("linear_assignment", "spanning_tree", "knapsack"):
        targets[f"{key}_min_ratio_vs_loops"] = {"target": LOOP_RATIO_TARGET,
                                                "measured": results[key]["min_ratio_vs_loops"],
                                                "measured_cpu_time": results[key]["min_ratio_vs_loops_cpu_time"],
                                                "met": results[key]["target_met"]}
    if results["first_call"] is not None:
        targets["first_call_max_s"] = {"target": FIRST_CALL_TARGET_S,
                                       "measured": results["first_call"]["max_first_call_s"],
                                       "met": results["first_call"]["target_met"]}
    sections = ("grid_shortest_path", "linear_assignment", "spanning_tree", "knapsack", "ranking", "shortest_path",
                "milp")
    results["all_agree"] = all(row["agree"] for key in sections for row in results[key]["rows"])
    results["targets"] = targets
    print_report(results)
    if not results["all_agree"]:
        print("\nWARNING: some candidates disagree on the optimum (see 'agree' in the tables)")
    _common.write_json(args.out, results)
    print(f"\nwrote {args.out}")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown_report(results))
        print(f"wrote {args.markdown}")
    return 0 if results["all_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
