"""TSP: optimality against brute force over all tours (n = 3..7) and a Held-Karp dynamic programme (n = 10..12),
tour validity, PyEPO's edge order and models (Gurobi's DFJ where installed, a pure-Python PyEPO model always),
the batch contract, backends, errors, and a printed 20-node timing."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
import torch

import discograd
from discograd.solvers import TSP
from discograd.testing import (
    check_batch_equals_loop,
    check_deterministic,
    check_output_contract,
    check_solver,
)

# ---------------------------------------------------------------------------------------------------------
# references, independent of the solver


def cost_matrix(edge_costs: np.ndarray, n: int) -> np.ndarray:
    """[n, n] symmetric matrix from the costs of the edges in itertools.combinations order."""
    matrix = np.zeros((n, n))
    for value, (a, b) in zip(edge_costs, itertools.combinations(range(n), 2)):
        matrix[a, b] = matrix[b, a] = value
    return matrix


def brute_force_min_cost(edge_costs: np.ndarray, n: int) -> tuple[float, int, np.ndarray]:
    """The cheapest tour cost over all (n-1)! orders of the nodes after 0, how many tours reach it (each cycle
    counted once) and the edge indicator of the first cheapest order."""
    matrix = cost_matrix(edge_costs, n)
    orders = [(0, *order) for order in itertools.permutations(range(1, n))]
    costs = np.array([sum(matrix[cycle[i], cycle[(i + 1) % n]] for i in range(n)) for cycle in orders])
    best = costs.min()
    cycle = orders[int(np.argmin(costs))]
    edges = list(itertools.combinations(range(n), 2))
    indicator = np.zeros(len(edges))
    for i in range(n):
        indicator[edges.index(tuple(sorted((cycle[i], cycle[(i + 1) % n]))))] = 1
    return float(best), int(np.isclose(costs, best, rtol=0, atol=1e-9).sum()) // 2, indicator  # both directions


def held_karp(matrix: np.ndarray) -> float:
    """Held & Karp's dynamic programme (1962): best[S, j] = cheapest path from node 0 through the nodes of S
    (a subset of 1..n-1, as a bit mask) ending at j in S. O(n^2 2^n)."""
    n = matrix.shape[0]
    size = 1 << (n - 1)
    best = np.full((size, n - 1), np.inf)
    for j in range(n - 1):
        best[1 << j, j] = matrix[0, j + 1]
    inner = matrix[1:, 1:]
    for mask in range(1, size):
        row = best[mask]
        if not np.isfinite(row).any():
            continue
        # extend by every node k not in mask: best[mask | k, k] = min_j best[mask, j] + c(j, k)
        extended = (row[:, None] + inner).min(axis=0)  # [n - 1]: via the best last node j
        for k in range(n - 1):
            if not mask >> k & 1:
                target = mask | 1 << k
                best[target, k] = min(best[target, k], extended[k])
    return float((best[size - 1] + matrix[0, 1:]).min())


def assert_tour(z: np.ndarray, n: int) -> None:
    """Degree 2 at every node and one connected component (union-find)."""
    edges = np.array(list(itertools.combinations(range(n), 2)))
    chosen = edges[z == 1]
    assert set(np.unique(z)) <= {0, 1}
    assert len(chosen) == n
    np.testing.assert_array_equal(np.bincount(chosen.reshape(-1), minlength=n), np.full(n, 2))
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in chosen:
        parent[find(a)] = find(b)
    assert len({find(i) for i in range(n)}) == 1


def num_edges(n: int) -> int:
    return n * (n - 1) // 2


# ---------------------------------------------------------------------------------------------------------
# optimality and validity


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
def test_optimal_against_brute_force(n, generator):
    cost = torch.rand(12, num_edges(n), generator=generator, dtype=torch.float64) * 10
    cost[6:] = cost[6:].round()  # integer costs: tied optima
    z = TSP(n)(-cost).numpy()
    for b in range(12):
        assert_tour(z[b], n)
        best, count, indicator = brute_force_min_cost(cost[b].numpy(), n)
        assert z[b] @ cost[b].numpy() == pytest.approx(best, abs=1e-9)
        if count == 1:  # a unique optimum: the same tour
            np.testing.assert_array_equal(z[b], indicator)


@pytest.mark.parametrize("n", [10, 11, 12])
def test_optimal_against_held_karp(n, generator):
    cost = torch.rand(3, num_edges(n), generator=generator, dtype=torch.float64) * 10
    z = TSP(n)(-cost).numpy()
    for b in range(3):
        assert_tour(z[b], n)
        assert z[b] @ cost[b].numpy() == pytest.approx(held_karp(cost_matrix(cost[b].numpy(), n)), abs=1e-9)


def test_held_karp_reference_is_right():
    """The DP itself against brute force (so the test above rests on a checked reference)."""
    rng = np.random.default_rng(1)
    for n in (4, 5, 6, 7):
        costs = rng.uniform(0, 10, num_edges(n))
        assert held_karp(cost_matrix(costs, n)) == pytest.approx(brute_force_min_cost(costs, n)[0], abs=1e-9)
    assert held_karp(cost_matrix(np.arange(num_edges(5), dtype=np.float64), 5)) == 22.0  # 0-2-1-3-4-0: 1 + 4 + 5 + 9 + 3


def test_euclidean_tours_are_valid_and_not_worse_than_2opt(generator):
    """Euclidean instances of 8..16 nodes: valid tours, no improving 2-opt move."""
    for n in (8, 12, 16):
        points = torch.rand(4, n, 2, generator=generator, dtype=torch.float64)
        a, b = np.triu_indices(n, k=1)
        cost = (points[:, a] - points[:, b]).norm(dim=-1)
        solver = TSP(n)
        z = solver(-cost)
        for i in range(4):
            assert_tour(z[i].numpy(), n)
            tour = solver.tours(z[i]).tolist()
            matrix = cost_matrix(cost[i].numpy(), n)
            for p, q in itertools.combinations(range(n), 2):  # reverse tour[p+1..q]: never cheaper
                if q - p < 2 or (p == 0 and q == n - 1):
                    continue
                u, v, x, y = tour[p], tour[p + 1], tour[q], tour[(q + 1) % n]
                assert matrix[u, x] + matrix[v, y] >= matrix[u, v] + matrix[x, y] - 1e-9


@pytest.mark.parametrize("n", [3, 5, 6])
def test_check_solver(n):
    solver = TSP(n)
    report = check_solver(solver, num_edges(n), num_trials=4)
    assert report.num_states == math.factorial(n - 1) // 2


# ---------------------------------------------------------------------------------------------------------
# PyEPO


def test_edge_order_is_pyepos():
    pytest.importorskip("pyepo")
    from pyepo.model.bases import tspABBase

    class Edges(tspABBase):
        def _getModel(self):
            return None, None

        def setObj(self, c):
            pass

        def solve(self):
            pass

    for n in (3, 5, 20):
        assert TSP(n).edges.tolist() == [list(e) for e in Edges(n).edges]
        assert TSP(n).edges.tolist() == [list(e) for e in itertools.combinations(range(n), 2)]


def test_matches_a_pure_python_pyepo_model_on_pyepo_data():
    """PyEPO's TSP data (genData, 7 nodes) and dataset pipeline with a PyEPO TSP model solving by enumeration
    (no solver needed, so it runs in CI): our tours have the labels' objective."""
    pyepo = pytest.importorskip("pyepo")
    from pyepo.data.dataset import optDataset
    from pyepo.model.bases import tspABBase

    class EnumerationTSP(tspABBase):
        def _getModel(self):
            self._tours = TSP(self.num_nodes).enumerate_feasible(dtype=torch.float64).numpy()
            return None, list(range(len(self.edges)))

        def setObj(self, c):
            self._c = np.asarray(c, dtype=np.float64)

        def solve(self):
            costs = self._tours @ self._c
            best = int(np.argmin(costs))
            return self._tours[best], float(costs[best])

    x, c = pyepo.data.tsp.genData(40, 5, 7, deg=4, noise_width=0.5, seed=135)
    dataset = optDataset(EnumerationTSP(7), x, c)
    z = TSP(7)(-torch.from_numpy(c).double())
    torch.testing.assert_close((z * dataset.costs.double()).sum(-1), dataset.objs.double().squeeze(-1),
                               rtol=0, atol=1e-4)


def test_matches_pyepo_gurobi_dfj_at_20_nodes():
    """PyEPO's 20-node benchmark with its Gurobi DFJ model (default MIPGap 1e-4; ours runs with gap 0);
    runs only where gurobipy is installed."""
    pytest.importorskip("gurobipy")
    pyepo = pytest.importorskip("pyepo")
    from pyepo.model.grb import tspDFJModel

    _, c = pyepo.data.tsp.genData(8, 5, 20, deg=4, noise_width=0.5, seed=135)
    model = tspDFJModel(20)
    z = TSP(20)(-torch.from_numpy(c).double()).numpy()
    for b in range(len(c)):
        assert_tour(z[b], 20)
        model.setObj(c[b])
        _, objective = model.solve()
        ours = float(z[b] @ c[b].astype(np.float64))
        assert objective * (1 - 1e-4) - 1e-6 <= ours <= objective + 1e-6


def test_time_per_20_node_instance_is_printed(capsys):
    """A measurement, not an assertion (single run, shared machine)."""
    pyepo = pytest.importorskip("pyepo")
    _, c = pyepo.data.tsp.genData(16, 5, 20, deg=4, noise_width=0.5, seed=7)
    solver = TSP(20, num_workers=1)
    theta = -torch.from_numpy(c).double()
    solver(theta[:1])  # warm-up: builds the thread's HiGHS model
    start = time.perf_counter()
    z = solver(theta)
    elapsed = (time.perf_counter() - start) / len(c)
    for b in range(len(c)):
        assert_tour(z[b].numpy(), 20)
    with capsys.disabled():
        print(f"\nTSP(20): {1e3 * elapsed:.1f} ms per PyEPO instance on one thread (single run, shared machine; "
              f"at most {solver.last_num_rounds} rounds of cuts)")


# ---------------------------------------------------------------------------------------------------------
# the batch contract, backends


def test_batch_equals_loop_deterministic_and_independent_of_workers(generator):
    n = 8
    theta = torch.randint(-2, 3, (3, 4, num_edges(n)), generator=generator).to(torch.float64)  # many tied tours
    solver = TSP(n)
    z = check_batch_equals_loop(solver, theta)
    check_deterministic(solver, theta)
    assert torch.equal(TSP(n, num_workers=1)(theta), z)
    assert torch.equal(TSP(n, num_workers=3)(theta), z)
    assert torch.equal(TSP(n)(theta.flip(0)).flip(0), z)  # another order of the instances


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_output_contract(dtype, generator):
    theta = torch.randn(2, 3, num_edges(6), generator=generator).to(dtype)
    z = check_output_contract(TSP(6), theta)
    assert z.dtype == dtype


def test_no_batch_non_contiguous_and_empty(generator):
    solver = TSP(5)
    base = torch.randn(num_edges(5), 3, generator=generator)
    assert torch.equal(solver(base.T), solver(base.T.contiguous()))
    assert solver(torch.randn(num_edges(5), generator=generator)).shape == (10,)
    assert solver(torch.randn(0, 10)).shape == (0, 10)
    assert solver.tours(torch.zeros(0, 10)).shape == (0, 5)


def test_scipy_backend_agrees(generator):
    pytest.importorskip("highspy")
    cost = torch.rand(5, num_edges(9), generator=generator, dtype=torch.float64)
    highs = TSP(9, backend="highspy")(-cost)
    scipy_z = TSP(9, backend="scipy")(-cost)
    torch.testing.assert_close((highs * cost).sum(-1), (scipy_z * cost).sum(-1), rtol=0, atol=1e-9)
    for b in range(5):
        assert_tour(scipy_z[b].numpy(), 9)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_in_cuda_out(generator):
    theta = torch.randn(3, num_edges(6), generator=generator)
    z = TSP(6)(theta.cuda())
    assert z.device.type == "cuda" and torch.equal(z.cpu(), TSP(6)(theta))


def test_inside_imle(generator):
    theta = torch.randn(4, num_edges(6), generator=generator, requires_grad=True)
    layer = discograd.imle(TSP(6), num_samples=2, generator=torch.Generator().manual_seed(0))
    z = layer(theta)
    assert z.shape == (2, 4, 15) and bool((z.sum(-1) == 6).all())
    (z * torch.randn(15, generator=generator)).sum().backward()
    assert theta.grad is not None and bool(torch.isfinite(theta.grad).all())


# ---------------------------------------------------------------------------------------------------------
# tours and enumerate_feasible


def test_tours():
    solver = TSP(5)
    # the cycle 0-2-4-1-3-0
    z = torch.zeros(10)
    for a, b in [(0, 2), (2, 4), (1, 4), (1, 3), (0, 3)]:
        z[int(solver.edge_index(np.array(a), np.array(b)))] = 1
    assert solver.tours(z).tolist() == [0, 2, 4, 1, 3]
    assert solver.tours(z.expand(2, 3, 10)).shape == (2, 3, 5)
    two_cycles = TSP(6)
    z6 = torch.zeros(15)
    for a, b in [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5)]:
        z6[int(two_cycles.edge_index(np.array(a), np.array(b)))] = 1
    with pytest.raises(ValueError, match=r"z\[0\] \(flattened batch\) is not a single tour through the N = 6 nodes"):
        two_cycles.tours(z6)
    with pytest.raises(ValueError, match=r"must be the 0/1 indicator of N = 5 edges forming a tour"):
        solver.tours(torch.ones(10))
    with pytest.raises(ValueError, match=r"z must be a tensor of shape \[\*batch, E\] with E = 10"):
        solver.tours(torch.ones(9))


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
def test_enumerate_feasible(n):
    states = TSP(n).enumerate_feasible(dtype=torch.float64)
    assert states.shape == (math.factorial(n - 1) // 2, num_edges(n))
    assert len({tuple(row.tolist()) for row in states}) == states.shape[0]  # distinct
    for row in states.numpy():
        assert_tour(row, n)
    assert TSP(n).enumerate_feasible(num_edges(n)).dtype == torch.float32


def test_enumerate_feasible_limits():
    assert TSP(9).enumerate_feasible().shape == (20160, 36)
    with pytest.raises(ValueError, match=r"at most 9 nodes .*got num_nodes = 10"):
        TSP(10).enumerate_feasible()
    with pytest.raises(ValueError, match=r"num_edges must equal the number of edges of the complete graph on 4 nodes, "
                                         r"6; got 5"):
        TSP(4).enumerate_feasible(5)


# ---------------------------------------------------------------------------------------------------------
# bad inputs


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_nodes must be >= 3; got 2"):
        TSP(2)
    with pytest.raises(TypeError, match="num_nodes must be an integer"):
        TSP(4.0)
    with pytest.raises(ValueError, match="backend must be one of"):
        TSP(4, backend="gurobi")
    with pytest.raises(ValueError, match="max_rounds must be >= 1"):
        TSP(4, max_rounds=0)
    with pytest.raises(ValueError, match="num_workers must be >= 1"):
        TSP(4, num_workers=0)
    with pytest.raises(ValueError, match="time_limit must be a finite number > 0"):
        TSP(4, time_limit=-1.0)
    solver = TSP(5)
    with pytest.raises(ValueError, match=r"theta must have shape \[\*batch, E\] with E = N \(N - 1\) / 2 = 10 .*N = 5 "
                                         r"nodes\); got shape \(3, 9\)"):
        solver(torch.zeros(3, 9))
    with pytest.raises(ValueError, match="theta must be finite; got 1 NaN"):
        solver(torch.tensor([float("nan")] + [0.0] * 9))
    with pytest.raises(TypeError, match="theta must have a floating-point dtype"):
        solver(torch.zeros(10, dtype=torch.int64))


def test_max_rounds_raises_naming_the_instance():
    # two cheap triangles: the degree-constrained MILP returns them, a cut is needed
    solver = TSP(6, max_rounds=1)
    cost = torch.full((15,), 10.0)
    for a, b in [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5)]:
        cost[int(solver.edge_index(np.array(a), np.array(b)))] = 1.0
    cycle = torch.full((15,), 10.0)  # a cheap Hamiltonian cycle: the first solve is already a tour
    for a in range(6):
        cycle[int(solver.edge_index(np.array(a), np.array((a + 1) % 6)))] = 1.0
    with pytest.raises(ValueError, match=r"TSP instance 1 of the batch \(index \(1,\) in the batch shape \(2,\)\) has "
                                         r"no tour after 1 rounds of cuts: more than max_rounds = 1"):
        solver(torch.stack([-cycle, -cost]))
    assert float(solver(-cycle) @ cycle) == 6.0 and solver.last_num_rounds == 1
    z = TSP(6)(-cost)
    assert_tour(z.numpy(), 6)
    assert float(z @ cost) == 1.0 * 4 + 10.0 * 2  # two triangle edges dropped, two bridges of cost 10


def test_repr():
    assert repr(TSP(5, backend="scipy", num_workers=2)) == (
        "TSP(num_nodes=5, num_workers=2, time_limit=None, backend='scipy')")


def test_pickle_and_deepcopy(generator):
    import copy
    import pickle

    solver = TSP(6)
    theta = torch.randn(5, 15, generator=generator)
    z = solver(theta)  # builds this thread's HiGHS model, which must not travel
    assert torch.equal(pickle.loads(pickle.dumps(solver))(theta), z)
    assert torch.equal(copy.deepcopy(solver)(theta), z)
