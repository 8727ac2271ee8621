"""GridShortestPath and ShortestPath: brute force on tiny instances, scipy / networkx on larger ones, the
solver contract, the negative-cost policy, validation, and a small learning problem with I-MLE."""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import discograd
from discograd.noise import SumOfGamma
from discograd.solvers.grid_shortest_path import GridShortestPath, _reference_grid_dijkstra
from discograd.solvers.shortest_path import ShortestPath
from discograd.targets import PerturbedTarget
from discograd.testing import (
    check_batch_equals_loop,
    check_deterministic,
    check_feasible,
    check_optimal,
    check_output_contract,
    check_solver,
)

nx = pytest.importorskip("networkx")
csgraph = pytest.importorskip("scipy.sparse.csgraph")
scipy_sparse = pytest.importorskip("scipy.sparse")

PROPERTY = settings(max_examples=60, deadline=None)

MOVES = {
    4: ((-1, 0), (0, -1), (0, 1), (1, 0)),
    8: tuple((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)),
}


# ---------------------------------------------------------------------------------------------------------
# independent references and checks


def grid_graph(height: int, width: int, neighbourhood: int):
    """networkx graph of the grid: nodes (row, column), an edge per move."""
    graph = nx.Graph()
    graph.add_nodes_from(itertools.product(range(height), range(width)))
    for (r, c) in list(graph.nodes):
        for dr, dc in MOVES[neighbourhood]:
            if 0 <= r + dr < height and 0 <= c + dc < width:
                graph.add_edge((r, c), (r + dr, c + dc))
    return graph


def is_grid_path(z: np.ndarray, source, target, neighbourhood: int) -> bool:
    """Whether the cells set in ``z`` can be ordered as a simple path from source to target (DFS)."""
    height, width = z.shape
    source = (source[0] % height, source[1] % width)
    target = (target[0] % height, target[1] % width)
    cells = {tuple(cell) for cell in np.argwhere(z == 1)}
    if not np.isin(z, (0, 1)).all() or source not in cells or target not in cells:
        return False

    def extend(cell, seen):
        if cell == target:
            return len(seen) == len(cells)
        for dr, dc in MOVES[neighbourhood]:
            nxt = (cell[0] + dr, cell[1] + dc)
            if nxt in cells and nxt not in seen and extend(nxt, seen | {nxt}):
                return True
        return False

    return extend(source, {source})


def scipy_grid_cost(costs: np.ndarray, neighbourhood: int, source, target) -> float:
    """Optimal vertex-cost path cost by scipy.sparse.csgraph.dijkstra (edge u -> v weighs cost[v])."""
    height, width = costs.shape
    tails, heads = [], []
    for r, c in itertools.product(range(height), range(width)):
        for dr, dc in MOVES[neighbourhood]:
            if 0 <= r + dr < height and 0 <= c + dc < width:
                tails.append(r * width + c)
                heads.append((r + dr) * width + c + dc)
    heads = np.array(heads)
    weights = costs.ravel()[heads]
    matrix = scipy_sparse.csr_matrix((weights, (np.array(tails), heads)), shape=(height * width,) * 2)
    s = (source[0] % height) * width + source[1] % width
    t = (target[0] % height) * width + target[1] % width
    return float(csgraph.dijkstra(matrix, indices=s)[t] + costs.ravel()[s])


def is_edge_path(z: np.ndarray, edges: np.ndarray, source: int, target: int) -> bool:
    """Whether the edges set in ``z`` form one simple directed path from source to target."""
    chosen = [tuple(edges[e]) for e in np.flatnonzero(z == 1)]
    if not np.isin(z, (0, 1)).all():
        return False
    if source == target:
        return not chosen
    out_edge = {}
    for tail, head in chosen:
        if tail in out_edge:
            return False
        out_edge[tail] = head
    node, seen = source, {source}
    while node != target:
        if node not in out_edge:
            return False
        node = out_edge.pop(node)
        if node in seen:
            return False
        seen.add(node)
    return not out_edge


def random_digraph(rng: np.random.Generator, num_nodes: int, probability: float, dag: bool) -> np.ndarray:
    """Edges (no parallel edges) of a random digraph that contains the path 0 -> 1 -> ... -> n-1."""
    pairs = {(i, i + 1) for i in range(num_nodes - 1)}
    for i, j in itertools.product(range(num_nodes), repeat=2):
        if i != j and (j > i or not dag) and rng.random() < probability:
            pairs.add((i, j))
    edges = np.array(sorted(pairs), dtype=np.int64)
    return edges[rng.permutation(len(edges))]


@st.composite
def grid_cases(draw, max_cells: int = 9, ties: bool | None = None):
    """(solver, costs >= 0 of shape [*batch, H, W] in float64) on tiny grids."""
    height = draw(st.integers(1, 3))
    width = draw(st.integers(1, max(1, min(3, max_cells // height))))
    neighbourhood = draw(st.sampled_from([4, 8]))
    cell = st.tuples(st.integers(-height, height - 1), st.integers(-width, width - 1))
    source, target = draw(cell), draw(cell)
    batch_shape = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    shape = batch_shape + (height, width)
    if ties is None:
        ties = draw(st.booleans())
    if ties:
        costs = torch.randint(0, 4, shape, generator=generator).to(torch.float64)
    else:
        costs = torch.rand(shape, generator=generator, dtype=torch.float64) * 3
    return GridShortestPath(neighbourhood, source=source, target=target), costs


# ---------------------------------------------------------------------------------------------------------
# GridShortestPath: property tests against brute force


@PROPERTY
@given(grid_cases())
def test_grid_feasible_and_optimal_against_enumeration(case):
    solver, costs = case
    states = solver.enumerate_feasible(*costs.shape[-2:], dtype=torch.float64)
    theta = -costs
    z = check_feasible(solver, theta, states)
    check_optimal(solver, theta, states)
    for flat in z.reshape(-1, *costs.shape[-2:]).numpy():
        assert is_grid_path(flat, solver.source, solver.target, solver.neighbourhood)


@PROPERTY
@given(grid_cases(ties=True))
def test_grid_batch_equals_loop_and_deterministic(case):
    solver, costs = case
    check_output_contract(solver, -costs)
    check_batch_equals_loop(solver, -costs)
    check_deterministic(solver, -costs)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.sampled_from([4, 8]), st.integers(0, 2**31 - 1), st.booleans())
def test_grid_equals_reference_dijkstra_exactly(height, width, neighbourhood, seed, ties):
    """Same documented tie-breaking as the pure-Python reference: identical paths, ties included."""
    rng = np.random.default_rng(seed)
    costs = rng.integers(0, 3, (5, height, width)).astype(float) if ties else rng.random((5, height, width))
    source = (int(rng.integers(-height, height)), int(rng.integers(-width, width)))
    target = (int(rng.integers(-height, height)), int(rng.integers(-width, width)))
    z = GridShortestPath(neighbourhood, source=source, target=target)(torch.from_numpy(-costs)).numpy()
    expected = np.stack([_reference_grid_dijkstra(c, neighbourhood, source, target) for c in costs])
    np.testing.assert_array_equal(z, expected)


@pytest.mark.parametrize("neighbourhood", [4, 8])
@pytest.mark.parametrize("height, width", [(3, 3), (2, 5), (3, 4)])
def test_enumerate_feasible_matches_networkx_simple_paths(neighbourhood, height, width):
    solver = GridShortestPath(neighbourhood, source=(0, -1), target=(-1, 0))
    states = solver.enumerate_feasible(height, width, dtype=torch.float64)
    expected = set()
    for path in nx.all_simple_paths(grid_graph(height, width, neighbourhood), (0, width - 1), (height - 1, 0)):
        z = np.zeros((height, width))
        z[tuple(np.array(path).T)] = 1
        expected.add(z.tobytes())
    assert len(expected) == states.shape[0]  # each cell set once
    assert {s.numpy().tobytes() for s in states} == expected
    assert states.shape[1:] == (height, width) and states.dtype == torch.float64


def test_enumerate_feasible_known_counts_and_limit():
    assert GridShortestPath(4).enumerate_feasible(3, 3).shape == (11, 3, 3)  # 12 paths, 2 snakes share a cell set
    assert GridShortestPath(8).enumerate_feasible(3, 3).shape == (62, 3, 3)  # 235 paths
    assert GridShortestPath(8).enumerate_feasible(1, 1).tolist() == [[[1.0]]]
    with pytest.raises(ValueError, match="at most 12 cells"):
        GridShortestPath().enumerate_feasible(4, 4)


# ---------------------------------------------------------------------------------------------------------
# GridShortestPath: larger grids against scipy / networkx


@pytest.mark.parametrize("neighbourhood", [4, 8])
@pytest.mark.parametrize("size", [12, 30])
def test_grid_optimal_cost_against_scipy(size, neighbourhood):
    rng = np.random.default_rng(size + neighbourhood)
    costs = np.concatenate([rng.random((6, size, size)) + 0.01,
                            rng.integers(1, 4, (6, size, size)).astype(float),  # ties
                            np.exp(2 * rng.standard_normal((4, size, size)))])  # heavy tails
    source, target = (0, 0), (-1, -1)
    if size == 12:
        source, target = (3, -2), (-1, 4)
    solver = GridShortestPath(neighbourhood, source=source, target=target)
    z = solver(torch.from_numpy(-costs)).numpy()
    ours = (z * costs).sum((-2, -1))
    expected = [scipy_grid_cost(c, neighbourhood, source, target) for c in costs]
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    for flat, c in zip(z, costs):  # the reference's path (same tie rule)
        np.testing.assert_array_equal(flat, _reference_grid_dijkstra(c, neighbourhood, source, target))


def test_grid_signed_zeros_and_clamped_noise_match_reference():
    """theta = +0.0 gives the cost -0.0; perturbed-then-clamped costs have many exact zeros."""
    rng = np.random.default_rng(7)
    costs = np.maximum(0.0, rng.random((20, 16, 16)) - rng.gumbel(size=(20, 16, 16)))
    costs[:2] = 0.0
    theta = torch.from_numpy(-costs)
    theta[theta == 0] = 0.0  # +0.0 scores, -0.0 costs
    z = GridShortestPath()(theta).numpy()
    for flat, c in zip(z, costs):
        np.testing.assert_array_equal(flat, _reference_grid_dijkstra(c))
    assert z[0].sum() == 16  # all free: the diagonal comes first in the move order


def test_grid_zero_costs_against_networkx():
    """Many zero costs (what clamping creates): still an optimal simple path."""
    rng = np.random.default_rng(5)
    costs = np.where(rng.random((4, 15, 15)) < 0.5, 0.0, rng.random((4, 15, 15)))
    z = GridShortestPath(8)(torch.from_numpy(-costs)).numpy()
    graph = grid_graph(15, 15, 8).to_directed()
    for flat, c in zip(z, costs):
        nx.set_edge_attributes(graph, {(u, v): c[v] for u, v in graph.edges}, "weight")
        expected = nx.dijkstra_path_length(graph, (0, 0), (14, 14)) + c[0, 0]
        assert (flat * c).sum() == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert flat.sum() >= 15  # at least the 15 cells of the diagonal


# ---------------------------------------------------------------------------------------------------------
# GridShortestPath: invariances, the contract, threads


@pytest.mark.parametrize("scale", [0.25, 2.0, 1024.0])
def test_grid_invariant_to_power_of_two_scaling_exactly(scale):
    rng = np.random.default_rng(0)
    theta = -torch.from_numpy(np.concatenate([rng.random((20, 10, 10)), rng.integers(0, 3, (20, 10, 10))]))
    solver = GridShortestPath()
    assert torch.equal(solver(theta * scale), solver(theta))


@pytest.mark.parametrize("scale", [0.37, 3.0, 1e3])
def test_grid_optimal_cost_invariant_to_positive_scaling(scale):
    costs = torch.rand(30, 12, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    solver = GridShortestPath()
    cost = GridShortestPath.path_cost(solver(-costs), costs)
    scaled = GridShortestPath.path_cost(solver(-costs * scale), costs)
    torch.testing.assert_close(scaled, cost, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_grid_dtype_shape_kept(dtype):
    theta = -torch.rand(2, 3, 5, 4, generator=torch.Generator().manual_seed(0)).to(dtype)
    z = check_output_contract(GridShortestPath(), theta)
    assert z.dtype == dtype and z.shape == theta.shape and z.is_contiguous()
    assert torch.equal(z, GridShortestPath()(theta.to(torch.float64)).to(dtype))


def test_grid_no_batch_non_contiguous_empty_and_single_cell():
    solver = GridShortestPath()
    theta = -torch.rand(6, 7, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    transposed = theta.transpose(-1, -2)
    assert torch.equal(solver(transposed), solver(transposed.contiguous()))
    assert torch.equal(solver(theta[0]), solver(theta)[0])
    assert solver(torch.zeros(0, 3, 3)).shape == (0, 3, 3)
    assert solver(-torch.ones(1, 1)).tolist() == [[1.0]]
    assert GridShortestPath(source=(1, 1), target=(1, 1))(-torch.ones(3, 3)).sum() == 1


def test_grid_result_independent_of_threads():
    rng = np.random.default_rng(3)
    theta = -torch.from_numpy(rng.integers(0, 3, (257, 9, 11)).astype(float))  # heavy ties
    one = GridShortestPath(num_threads=1)(theta)
    assert torch.equal(GridShortestPath(num_threads=3)(theta), one)
    assert torch.equal(GridShortestPath(num_threads=8)(theta), one)


# ---------------------------------------------------------------------------------------------------------
# GridShortestPath: negative costs


def test_grid_clamp_counts_and_equals_explicit_clamp():
    theta = torch.randn(7, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for min_cost in (0.0, 0.5):
        solver = GridShortestPath(min_cost=min_cost)
        z = solver(theta)
        assert solver.last_num_clamped == int((-theta < min_cost).sum()) > 0
        assert isinstance(solver.last_num_clamped, int)
        assert torch.equal(z, GridShortestPath(min_cost=min_cost)(-(-theta).clamp(min=min_cost)))
    solver(-theta.abs() - 1.0)
    assert solver.last_num_clamped == 0


def test_grid_raise_on_negative_costs():
    theta = -torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(0)) - 0.1
    solver = GridShortestPath(negative_costs="raise", min_cost=0.1)
    theta[0, 1, 2] = 0.5
    theta[1, 0, 0] = -0.05  # cost 0.05 < min_cost
    with pytest.raises(ValueError, match=r"theta has 2 of 32 entries whose cost -theta is below min_cost=0.1"):
        solver(theta)
    ok = -torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(0)) - 0.1
    assert torch.equal(solver(ok), GridShortestPath(min_cost=0.1)(ok))


def test_grid_min_cost_prefers_fewer_cells_among_free_ones():
    theta = torch.zeros(5, 5)  # every path costs 0 without min_cost
    with pytest.warns(UserWarning, match="every cell of 1 of 1 instance"):
        z = GridShortestPath(min_cost=1.0)(theta)
    assert z.sum() == 5  # the diagonal


def test_grid_warns_once_when_whole_instances_are_clamped():
    """Costs passed where scores belong (theta = cost > 0): every cell clamped, z independent of theta."""
    import warnings

    cost = torch.rand(3, 4, 4) + 0.5
    solver = GridShortestPath()
    with pytest.warns(UserWarning, match=r"every cell of 2 of 3 instance\(s\) .* pass theta = -cost"):
        solver(torch.stack([cost[0], cost[1], -cost[2]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        solver(cost)  # once per solver object
        mixed = -cost.clone()
        mixed[:, 0, 0] = 1.0  # one clamped cell per instance: no warning
        GridShortestPath()(mixed)


# ---------------------------------------------------------------------------------------------------------
# GridShortestPath: validation


@pytest.mark.parametrize("kwargs, error, pattern", [
    (dict(neighbourhood=6), ValueError, "neighbourhood must be 4 or 8; got 6"),
    (dict(neighbourhood=8.0), TypeError, "neighbourhood must be an integer"),
    (dict(source=(0,)), TypeError, r"source must be a \(row, column\) pair of integers"),
    (dict(target=(0, 1.5)), TypeError, r"target must be a \(row, column\) pair of integers"),
    (dict(negative_costs="ignore"), ValueError, "negative_costs must be 'clamp' or 'raise'"),
    (dict(min_cost=-1.0), ValueError, "min_cost must be a finite number >= 0"),
    (dict(num_threads=0), ValueError, "num_threads must be >= 1"),
])
def test_grid_bad_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        GridShortestPath(**kwargs)


def test_grid_bad_theta_and_cells():
    solver = GridShortestPath()
    with pytest.raises(ValueError, match=r"theta must have at least 2 dimension"):
        solver(torch.zeros(4))
    with pytest.raises(ValueError, match="theta must be finite; got 1 NaN"):
        solver(torch.tensor([[0.0, float("nan")], [0.0, 0.0]]))
    with pytest.raises(TypeError, match="floating-point dtype"):
        solver(torch.zeros(3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"source must be a cell of the 3 x 3 grid .* got \(3, 0\)"):
        GridShortestPath(source=(3, 0))(torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"target must be a cell of the 2 x 4 grid .* got \(-3, -1\)"):
        GridShortestPath(target=(-3, -1))(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="source must be a cell of the 0 x 3 grid"):
        solver(torch.zeros(2, 0, 3))


def test_missing_numba_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)
    with pytest.raises(ImportError, match=r"GridShortestPath's Dijkstra kernel .*discograd\[solvers\]"):
        GridShortestPath()(torch.zeros(2, 2))


def test_repr_and_path_cost():
    assert repr(GridShortestPath()) == (
        "GridShortestPath(neighbourhood=8, source=(0, 0), target=(-1, -1), negative_costs='clamp', min_cost=0.0)"
    )
    z = torch.eye(3).expand(2, 3, 3)
    costs = torch.arange(9.0).reshape(3, 3)
    assert GridShortestPath.path_cost(z, costs).tolist() == [12.0, 12.0]


# ---------------------------------------------------------------------------------------------------------
# ShortestPath


@st.composite
def graph_cases(draw):
    """(solver, theta) on a random small digraph (parallel edges and self-loops allowed)."""
    num_nodes = draw(st.integers(1, 6))
    node = st.integers(0, num_nodes - 1)
    edges = draw(st.lists(st.tuples(node, node), min_size=0, max_size=14))
    source, target = draw(node), draw(node)
    edges = edges + [(source, target)]  # the target is reachable
    edges = draw(st.permutations(edges))
    batch_shape = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    solver = ShortestPath(num_nodes, edges, source, target)
    shape = batch_shape + (len(edges),)
    if solver.is_dag:  # any sign is exact
        theta = torch.randint(-3, 4, shape, generator=generator).to(torch.float64)
    else:
        theta = -torch.randint(0, 4, shape, generator=generator).to(torch.float64)
    if draw(st.booleans()):
        theta = theta + 0.1 * torch.rand(shape, generator=generator, dtype=torch.float64) * theta.sign()
    return solver, theta


@PROPERTY
@given(graph_cases())
def test_graph_feasible_optimal_batch_deterministic(case):
    solver, theta = case
    states = solver.enumerate_feasible(dtype=torch.float64)
    z = check_feasible(solver, theta, states)
    check_optimal(solver, theta, states)
    check_batch_equals_loop(solver, theta)
    check_deterministic(solver, theta)
    for flat in z.reshape(-1, solver.num_edges).numpy():
        assert is_edge_path(flat, solver.edges, solver.source, solver.target)


def test_graph_check_solver_on_a_dag():
    """On a DAG the solver is exact for scores of any sign, so check_solver's own draws apply."""
    edges = [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4), (0, 4), (1, 4)]
    solver = ShortestPath(5, edges, 0, 4)
    assert solver.is_dag
    report = check_solver(solver, len(edges), num_trials=6)
    assert report.num_states == solver.enumerate_feasible().shape[0] == 7


@pytest.mark.parametrize("dag", [True, False])
@pytest.mark.parametrize("num_nodes, probability", [(15, 0.3), (40, 0.1)])
def test_graph_optimal_cost_against_networkx(dag, num_nodes, probability):
    rng = np.random.default_rng(num_nodes + dag)
    edges = random_digraph(rng, num_nodes, probability, dag)
    source, target = 0, num_nodes - 1
    solver = ShortestPath(num_nodes, edges, source, target)
    assert solver.is_dag == dag
    # DAG: costs of any sign; with cycles: non-negative, with ties
    costs = rng.normal(size=(8, len(edges))) if dag else rng.integers(0, 4, (8, len(edges))).astype(float)
    z = solver(torch.from_numpy(-costs)).numpy()
    for flat, cost in zip(z, costs):
        assert is_edge_path(flat, edges, source, target)
        graph = nx.DiGraph()
        graph.add_weighted_edges_from((int(u), int(v), c) for (u, v), c in zip(edges, cost))
        expected = nx.bellman_ford_path_length(graph, source, target)
        assert (flat * cost).sum() == pytest.approx(expected, abs=1e-9)


def test_graph_dag_with_negative_costs_is_exact():
    # the cheapest path uses a negative edge and is longer than the direct one
    edges = [(0, 3), (0, 1), (1, 2), (2, 3)]
    solver = ShortestPath(4, edges, 0, 3)
    cost = torch.tensor([1.0, 2.0, -5.0, 1.0])
    assert solver(-cost).tolist() == [0.0, 1.0, 1.0, 1.0]
    assert solver.last_num_clamped == 0
    assert ShortestPath(4, edges, 0, 3, negative_costs="raise")(-cost).tolist() == [0.0, 1.0, 1.0, 1.0]


def test_graph_with_cycle_clamps_or_raises():
    edges = [(0, 1), (1, 0), (1, 2), (0, 2)]
    cost = torch.tensor([[1.0, -3.0, 1.0, 1.5], [1.0, 1.0, 1.0, 3.0]])
    solver = ShortestPath(3, edges, 0, 2)
    assert not solver.is_dag
    z = solver(-cost)
    assert solver.last_num_clamped == 1
    assert torch.equal(z, solver(-cost.clamp(min=0.0)))
    with pytest.raises(ValueError, match=r"theta has 1 of 8 entries .* ShortestPath\(negative_costs='raise'\)"):
        ShortestPath(3, edges, 0, 2, negative_costs="raise")(-cost)


def test_graph_cycle_not_reachable_from_source_still_dag():
    edges = [(0, 1), (1, 2), (3, 4), (4, 3), (3, 1)]
    assert ShortestPath(5, edges, 0, 2).is_dag
    assert not ShortestPath(5, edges, 3, 2).is_dag


def test_graph_parallel_edges_self_loops_and_trivial_path():
    edges = [(0, 1), (0, 1), (1, 1), (1, 2)]
    solver = ShortestPath(3, edges, 0, 2)
    assert not solver.is_dag  # the self-loop is a cycle
    assert solver(-torch.tensor([2.0, 1.0, 0.0, 1.0])).tolist() == [0.0, 1.0, 0.0, 1.0]
    assert solver(-torch.tensor([1.0, 1.0, 0.0, 1.0])).tolist() == [1.0, 0.0, 0.0, 1.0]  # lower edge index
    assert solver.enumerate_feasible().tolist() == [[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0]]
    same = ShortestPath(3, edges, 1, 1)
    assert same(torch.randn(2, 4)).tolist() == [[0.0] * 4] * 2
    assert same.enumerate_feasible().tolist() == [[0.0] * 4]
    assert ShortestPath(1, [], 0, 0)(torch.zeros(3, 0)).shape == (3, 0)


def test_graph_result_independent_of_threads_and_dtype_kept():
    rng = np.random.default_rng(0)
    edges = random_digraph(rng, 30, 0.2, dag=False)
    theta = -torch.from_numpy(rng.integers(0, 3, (300, len(edges))).astype(float))
    one = ShortestPath(30, edges, 0, 29, num_threads=1)(theta)
    assert torch.equal(ShortestPath(30, edges, 0, 29, num_threads=4)(theta), one)
    for dtype in (torch.float32, torch.bfloat16):
        z = check_output_contract(ShortestPath(30, torch.from_numpy(edges), 0, 29), theta.to(dtype))
        assert z.dtype == dtype


def test_graph_keeps_its_own_read_only_copy_of_the_edges():
    edges = np.array([[0, 1], [1, 2]])
    solver = ShortestPath(3, edges, 0, 2)
    edges[0, 0] = 2  # the caller's array stays writeable and the solver does not see the change
    assert solver.edges.tolist() == [[0, 1], [1, 2]] and not solver.edges.flags.writeable
    assert solver(torch.zeros(2)).tolist() == [1.0, 1.0]


def test_graph_unreachable_target():
    with pytest.raises(ValueError, match="target 2 is not reachable from source 0 in the graph with 3 nodes and 2 "):
        ShortestPath(3, [(0, 1), (2, 1)], 0, 2)


@pytest.mark.parametrize("args, error, pattern", [
    ((0, [(0, 0)], 0, 0), ValueError, "num_nodes must be >= 1"),
    ((3, [(0, 1, 2)], 0, 1), ValueError, r"edges must have shape \[E, 2\]"),
    ((3, [(0, 3)], 0, 1), ValueError, r"edges must hold node indices in \[0, num_nodes\) = \[0, 3\)"),
    ((3, [(0.0, 1.0)], 0, 1), TypeError, "edges must hold integers"),
    ((3, [(0, 1)], 0, 5), ValueError, r"target must be a node index in \[0, num_nodes\) = \[0, 3\); got 5"),
    ((3, [(0, 1)], -1, 1), ValueError, "source must be a node index"),
    ((3, [(0, 1)], 0, 1, "maybe"), ValueError, "negative_costs must be 'clamp' or 'raise'"),
])
def test_graph_bad_arguments(args, error, pattern):
    with pytest.raises(error, match=pattern):
        ShortestPath(*args)


def test_graph_bad_theta_and_enumeration_limits():
    solver = ShortestPath(3, [(0, 1), (1, 2)], 0, 2)
    with pytest.raises(ValueError, match=r"theta must have shape \[\*batch, E\] with E = 2"):
        solver(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="num_edges must equal the number of edges of the graph, 2; got 3"):
        solver.enumerate_feasible(3)
    big = ShortestPath(17, [(i, i + 1) for i in range(16)], 0, 16)
    with pytest.raises(ValueError, match="at most 16 nodes"):
        big.enumerate_feasible()
    assert "ShortestPath(num_nodes=3, num_edges=2, source=0, target=2" in repr(solver)


# ---------------------------------------------------------------------------------------------------------
# CUDA


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_in_cuda_out(dtype):
    theta = -torch.rand(6, 8, 8, generator=torch.Generator().manual_seed(0)).to(dtype)
    z = GridShortestPath()(theta.cuda())
    assert z.device.type == "cuda" and z.dtype == dtype
    assert torch.equal(z.cpu(), GridShortestPath()(theta))
    edges = [(0, 1), (1, 2), (0, 2)]
    theta = torch.randn(4, 3, generator=torch.Generator().manual_seed(1)).to(dtype)
    z = ShortestPath(3, edges, 0, 2)(theta.cuda())
    assert z.device.type == "cuda" and torch.equal(z.cpu(), ShortestPath(3, edges, 0, 2)(theta))


# ---------------------------------------------------------------------------------------------------------
# learning with I-MLE


def test_learn_grid_costs_from_observed_paths_with_imle():
    """Recover the costs of 6 x 6 grids from optimal paths: cost = 0.1 + x^3 @ w_true with random features
    x; the model is -softplus(x^3 @ w + b) (positive costs: if every cost were clamped to 0 the solver
    would ignore theta and the gradient would vanish), trained with I-MLE, Sum-of-Gamma noise (k = 6,
    the shortest path length) and the Hamming loss. Over 20 seeds the exact-match rate on held-out grids
    goes from <= 0.30 to >= 0.67 and the cost ratio from >= 1.15 to <= 1.013 in 300 steps."""
    generator = torch.Generator().manual_seed(0)
    size, num_features, n = 6, 4, 64
    x = torch.rand(2 * n, size, size, num_features, generator=generator, dtype=torch.float64) ** 3
    true_cost = 0.1 + x @ (5 * torch.rand(num_features, generator=generator, dtype=torch.float64))
    solver = GridShortestPath()
    paths = solver(-true_cost)
    w = torch.zeros(num_features, dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    layer = discograd.imle(solver, noise=SumOfGamma(k=size), target=PerturbedTarget(step_size=10.0),
                           generator=generator)
    optimizer = torch.optim.Adam([w, b], lr=0.2)

    def held_out_metrics():
        with torch.no_grad():
            z = solver(-torch.nn.functional.softplus(x[n:] @ w + b))
        exact = (z == paths[n:]).all(-1).all(-1).double().mean().item()
        ratio = (solver.path_cost(z, true_cost[n:]) / solver.path_cost(paths[n:], true_cost[n:])).mean().item()
        return exact, ratio

    exact_before, ratio_before = held_out_metrics()
    for _ in range(300):
        z = layer(-torch.nn.functional.softplus(x[:n] @ w + b))
        loss = (z * (1 - paths[:n]) + (1 - z) * paths[:n]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    exact_after, ratio_after = held_out_metrics()
    assert exact_before < 0.35 and ratio_before > 1.1
    assert exact_after >= 0.5, (exact_before, exact_after)
    assert ratio_after <= 1.03, (ratio_before, ratio_after)
