"""discograd.pto: PyEPO's generators bit for bit, PyEPO's arc / edge orders, OptDataset's labels against
brute force, networkx and PyEPO's optDataset, and the regret against hand-computed cases and
pyepo.metric.regret.

The comparisons with PyEPO run wherever pyepo is installed (a test dependency: it installs without any
solver). Where it has no solver, PyEPO's own optDataset and regret are driven by pure-Python ``optModel``
subclasses that solve by enumeration; with gurobipy installed (never in CI), PyEPO's Gurobi models are used
as well.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from discograd.metrics import normalized_regret
from discograd.pto import (
    PYEPO_EPS,
    OptDataset,
    batch_regret,
    complete_graph_edges,
    dataset_regret,
    grid_graph,
    knapsack_data,
    scores_from_costs,
    shortest_path_data,
    tsp_data,
)
from discograd.solvers import MILP, ShortestPath, TopK

nx = pytest.importorskip("networkx")


def path_solver(h: int, w: int) -> ShortestPath:
    return ShortestPath(h * w, grid_graph(h, w), 0, h * w - 1)


# ---------------------------------------------------------------------------------------------------------
# independent references


def monotone_paths(h: int, w: int, edges: np.ndarray) -> np.ndarray:
    """Every top-left -> bottom-right path of the right/down grid as arc indicators ``[C(h+w-2, h-1), E]``,
    built from the moves (which of the h + w - 2 steps go down), not from any solver."""
    index = {(int(a), int(b)): e for e, (a, b) in enumerate(edges)}
    steps = h + w - 2
    rows = []
    for downs in itertools.combinations(range(steps), h - 1):
        z = np.zeros(len(edges))
        node = 0
        for step in range(steps):
            nxt = node + w if step in downs else node + 1
            z[index[(node, nxt)]] = 1
            node = nxt
        assert node == h * w - 1
        rows.append(z)
    return np.array(rows)


def knapsack_states(num_items: int) -> np.ndarray:
    return np.array(list(itertools.product((0.0, 1.0), repeat=num_items)))


def brute_force_knapsack(values: np.ndarray, weights: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """The optimal value of every row of ``values`` by enumerating all 2**m item sets."""
    states = knapsack_states(values.shape[1])
    feasible = states[(states @ weights.T <= capacity + 1e-9).all(axis=1)]
    return (values.astype(np.float64) @ feasible.T).max(axis=1)


def brute_force_tour_costs(costs: np.ndarray, num_nodes: int, edges: np.ndarray) -> np.ndarray:
    """The cost of the best tour for every row of ``costs`` (edge ``e`` = ``edges[e]``), over all tours."""
    index = {(int(a), int(b)): e for e, (a, b) in enumerate(edges)}
    tours = []
    for perm in itertools.permutations(range(1, num_nodes)):
        if perm[0] > perm[-1]:
            continue  # each tour once (not also reversed)
        cycle = (0, *perm, 0)
        tours.append([index[(min(a, b), max(a, b))] for a, b in itertools.pairwise(cycle)])
    tours = np.array(tours)
    return costs.astype(np.float64)[:, tours].sum(axis=2).min(axis=1)


def networkx_path_cost(arcs, cost: np.ndarray, num_nodes: int) -> float:
    graph = nx.DiGraph()
    graph.add_nodes_from(range(num_nodes))
    for (a, b), weight in zip(arcs, cost):
        graph.add_edge(int(a), int(b), weight=float(weight))
    return float(nx.shortest_path_length(graph, 0, num_nodes - 1, weight="weight"))


# ---------------------------------------------------------------------------------------------------------
# pure-Python PyEPO models (so that PyEPO's optDataset and regret run without a solver)


def pyepo_enumeration_models():
    pytest.importorskip("pyepo")
    from pyepo.model.bases import knapsackBase, shortestPathBase

    class EnumShortestPath(shortestPathBase):
        """PyEPO's grid shortest path, solved by listing every monotone path of PyEPO's own arcs."""

        def _getModel(self):
            h, w = self.grid
            self._paths = monotone_paths(h, w, np.array(self.arcs))
            return None, None

        def setObj(self, c):
            self._cost = np.asarray(c, dtype=np.float64)

        def solve(self):
            values = self._paths @ self._cost
            best = int(np.argmin(values))
            return self._paths[best].copy(), float(values[best])

    class EnumKnapsack(knapsackBase):
        """PyEPO's multi-dimensional knapsack, solved by enumerating all item sets."""

        def _getModel(self):
            states = knapsack_states(self.weights.shape[1])
            self._states = states[(states @ self.weights.T <= self.capacity + 1e-9).all(axis=1)]
            return None, None

        def setObj(self, c):
            self._value = np.asarray(c, dtype=np.float64)

        def solve(self):
            values = self._states @ self._value
            best = int(np.argmax(values))
            return self._states[best].copy(), float(values[best])

    return EnumShortestPath, EnumKnapsack


# ---------------------------------------------------------------------------------------------------------
# generators: bit-identical to PyEPO


SHORTEST_PATH_ARGS = [
    {"num_data": 1000, "num_features": 5, "grid": (5, 5), "deg": 4, "noise_width": 0.5, "seed": 135},
    {"num_data": 7, "num_features": 3, "grid": (2, 6), "deg": 1, "noise_width": 0, "seed": 0},
    {"num_data": 50, "num_features": 10, "grid": (3, 4), "deg": 6, "noise_width": 0.25, "seed": 7},
    {"num_data": 20, "num_features": 1, "grid": (1, 2), "deg": 2, "noise_width": 1.5, "seed": 2**32 - 1},
    {"num_data": 30, "num_features": 4, "grid": (4, 1), "deg": 3, "noise_width": np.float32(0.1), "seed": np.int64(11)},
]
KNAPSACK_ARGS = [
    {"num_data": 1000, "num_features": 5, "num_items": 32, "dim": 2, "deg": 4, "noise_width": 0.5, "seed": 135},
    {"num_data": 7, "num_features": 3, "num_items": 5, "dim": 1, "deg": 1, "noise_width": 0, "seed": 1},
    {"num_data": 40, "num_features": 6, "num_items": 10, "dim": 3, "deg": 6, "noise_width": 0.1, "seed": 42},
]
TSP_ARGS = [
    {"num_data": 100, "num_features": 10, "num_nodes": 20, "deg": 4, "noise_width": 0.5, "seed": 135},
    {"num_data": 5, "num_features": 3, "num_nodes": 3, "deg": 1, "noise_width": 0, "seed": 2},
    {"num_data": 30, "num_features": 2, "num_nodes": 7, "deg": 2, "noise_width": 0.3, "seed": 9},
]


def assert_bit_identical(ours: tuple, theirs: tuple) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()  # every bit, NaN-free


@pytest.mark.parametrize("kwargs", SHORTEST_PATH_ARGS)
def test_shortest_path_data_is_pyepos(kwargs):
    pyepo_sp = pytest.importorskip("pyepo.data.shortestpath")
    assert_bit_identical(shortest_path_data(**kwargs), pyepo_sp.genData(**kwargs))
    # positional arguments in PyEPO's order give the same
    assert_bit_identical(shortest_path_data(*kwargs.values()), pyepo_sp.genData(*kwargs.values()))


@pytest.mark.parametrize("kwargs", KNAPSACK_ARGS)
def test_knapsack_data_is_pyepos(kwargs):
    pyepo_ks = pytest.importorskip("pyepo.data.knapsack")
    assert_bit_identical(knapsack_data(**kwargs), pyepo_ks.genData(**kwargs))
    assert_bit_identical(knapsack_data(*kwargs.values()), pyepo_ks.genData(*kwargs.values()))


@pytest.mark.parametrize("kwargs", TSP_ARGS)
def test_tsp_data_is_pyepos(kwargs):
    pyepo_tsp = pytest.importorskip("pyepo.data.tsp")
    assert_bit_identical(tsp_data(**kwargs), pyepo_tsp.genData(**kwargs))
    assert_bit_identical(tsp_data(*kwargs.values()), pyepo_tsp.genData(*kwargs.values()))


def test_default_arguments_are_pyepos():
    pytest.importorskip("pyepo")
    from pyepo.data import knapsack, shortestpath, tsp

    assert_bit_identical(shortest_path_data(10, 5, (5, 5)), shortestpath.genData(10, 5, (5, 5)))
    assert_bit_identical(knapsack_data(10, 5, 8), knapsack.genData(10, 5, 8))
    assert_bit_identical(tsp_data(10, 5, 6), tsp.genData(10, 5, 6))


def test_generators_are_deterministic_and_seeded():
    a, b = shortest_path_data(5, 3, (3, 3), seed=1), shortest_path_data(5, 3, (3, 3), seed=1)
    assert_bit_identical(a, b)
    assert not np.array_equal(a[1], shortest_path_data(5, 3, (3, 3), seed=2)[1])


def test_shortest_path_law_mean():
    """deg = 1 and no noise: c = ((Bx)_j / sqrt(p) + 4) / 3.5 with E[(Bx)_j] = 0, so E[c] = 4 / 3.5; the mean
    over the 40 arcs of an instance is compared over 4000 independent instances, within 4 standard errors."""
    _, c = shortest_path_data(4000, 5, (5, 5), deg=1, noise_width=0, seed=3)
    per_instance = c.astype(np.float64).mean(axis=1)
    standard_error = per_instance.std(ddof=1) / math.sqrt(len(per_instance))
    assert abs(per_instance.mean() - 4 / 3.5) < 4 * standard_error


def test_knapsack_law():
    weights, x, c = knapsack_data(500, 4, 12, dim=3, deg=2, noise_width=0.2, seed=5)
    assert weights.shape == (3, 12) and weights.dtype == np.float64
    cents = weights * 100
    assert np.allclose(cents, np.round(cents)) and weights.min() >= 3.0 and weights.max() <= 7.99
    assert x.dtype == np.float64 and c.dtype == np.float32
    assert np.array_equal(c, np.ceil(c)) and c.min() >= 1


# ---------------------------------------------------------------------------------------------------------
# graphs: PyEPO's arc and edge orders


@pytest.mark.parametrize("shape", [(5, 5), (1, 2), (2, 1), (1, 5), (4, 1), (2, 3), (6, 3), (3, 7)])
def test_grid_graph_is_pyepos_arc_list(shape):
    pytest.importorskip("pyepo")
    from pyepo.model.bases import shortestPathBase
    from pyepo.model.utils import _get_grid_arcs

    edges = grid_graph(*shape)
    assert edges.dtype == np.int64 and edges.shape == ((shape[0] - 1) * shape[1] + (shape[1] - 1) * shape[0], 2)
    assert edges.tolist() == [list(arc) for arc in _get_grid_arcs(shape)]

    class ArcsOnly(shortestPathBase):  # PyEPO's model base, no solver: its .arcs list
        def _getModel(self):
            return None, None

        def setObj(self, c):
            pass

        def solve(self):
            pass

    assert edges.tolist() == [list(arc) for arc in ArcsOnly(shape).arcs]


def test_grid_graph_matches_pyepo_costs_column_for_column():
    """For PyEPO's cost vectors, our ShortestPath on grid_graph reaches the networkx optimum on PyEPO's arcs
    (and the optimum over all monotone paths); a permuted arc list does not."""
    pytest.importorskip("pyepo")
    from pyepo.model.utils import _get_grid_arcs

    h, w = 4, 5
    arcs = _get_grid_arcs((h, w))
    _, c = shortest_path_data(40, 3, (h, w), deg=3, noise_width=0.5, seed=8)
    z = path_solver(h, w)(-torch.from_numpy(c).double()).numpy()
    ours = (z * c).sum(axis=1)
    reference = np.array([networkx_path_cost(arcs, row, h * w) for row in c])
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours, (c.astype(np.float64) @ monotone_paths(h, w, grid_graph(h, w)).T).min(axis=1),
                               rtol=1e-12)
    # the test can fail: the same costs on arcs listed in another order give other optima
    shuffled = np.random.default_rng(0).permutation(len(arcs))
    wrong = np.array([networkx_path_cost([arcs[i] for i in shuffled], row, h * w) for row in c])
    assert not np.allclose(wrong, reference)


def test_grid_graph_structure():
    edges = grid_graph(3, 4)
    tails, heads = edges[:, 0], edges[:, 1]
    steps = heads - tails
    assert set(steps.tolist()) == {1, 4}
    assert ((steps == 1) <= (tails % 4 != 3)).all()  # no rightward arc leaves the last column
    assert len({tuple(e) for e in edges.tolist()}) == len(edges) == 17
    assert path_solver(3, 4).is_dag


def test_complete_graph_edges_is_pyepos_tsp_order():
    pytest.importorskip("pyepo")
    from pyepo.model.bases import tspABBase

    class EdgesOnly(tspABBase):
        def _getModel(self):
            return None, None

        def setObj(self, c):
            pass

        def solve(self):
            pass

    for n in (3, 5, 20):
        edges = complete_graph_edges(n)
        assert edges.dtype == np.int64 and edges.shape == (n * (n - 1) // 2, 2)
        assert edges.tolist() == [list(e) for e in EdgesOnly(n).edges]
        a, b = edges[:, 0], edges[:, 1]
        assert np.array_equal(a * n - a * (a + 1) // 2 + b - a - 1, np.arange(len(edges)))  # the documented index
    assert complete_graph_edges(2).tolist() == [[0, 1]]


def test_tsp_costs_line_up_with_edges():
    """Column e of tsp_data's c holds |u_a - u_b| + feature cost for edges[e] = (a, b): recomputed here from
    the same draws with distances taken pair by pair in complete_graph_edges' order (no pdist)."""
    n_nodes, p, seed = 6, 3, 17
    x, c = tsp_data(25, p, n_nodes, deg=2, noise_width=0.3, seed=seed)
    edges = complete_graph_edges(n_nodes)
    rnd = np.random.RandomState(seed)
    coords = np.concatenate((rnd.uniform(-2, 2, (n_nodes // 2, 2)), rnd.normal(0, 1, (n_nodes - n_nodes // 2, 2))))
    B = rnd.binomial(1, 0.5, (len(edges), p)) * rnd.uniform(-2, 2, (len(edges), p))
    x_again = rnd.normal(0, 1, (25, p))
    noise = rnd.uniform(0.7, 1.3, (25, len(edges)))
    assert np.array_equal(x, x_again)
    distance = np.array([math.dist(coords[a], coords[b]) for a, b in edges])
    expected = distance + (x @ B.T / math.sqrt(p) + 3) ** 2 / 3 * noise
    np.testing.assert_allclose(c, expected, atol=6e-5, rtol=1e-6)  # 4 decimals, then float32
    shuffled = np.random.default_rng(1).permutation(len(edges))
    assert not np.allclose(c, expected[:, shuffled], atol=1e-3)


def test_tsp_with_pyepo_gurobi_matches_brute_force_in_our_edge_order():
    pytest.importorskip("gurobipy")
    from pyepo.model.grb import tspDFJModel

    n_nodes = 6
    _, c = tsp_data(4, 4, n_nodes, deg=2, noise_width=0.5, seed=3)
    model = tspDFJModel(n_nodes)
    model._model.Params.OutputFlag = 0
    objectives = []
    for row in c:
        model.setObj(row)
        _, objective = model.solve()
        objectives.append(objective)
    reference = brute_force_tour_costs(c, n_nodes, complete_graph_edges(n_nodes))
    np.testing.assert_allclose(objectives, reference, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# OptDataset


def test_opt_dataset_shortest_path_labels_are_optimal():
    h, w = 5, 5
    x, c = shortest_path_data(200, 5, (h, w), deg=4, noise_width=0.5, seed=135)
    data = OptDataset(path_solver(h, w), x, c, sense="min")
    assert len(data) == 200
    assert [t.dtype for t in (data.feats, data.costs, data.sols, data.objs)] == [torch.float32] * 4
    assert data.feats.shape == (200, 5) and data.costs.shape == data.sols.shape == (200, 40)
    assert data.objs.shape == (200, 1)
    assert torch.equal(data.feats, torch.from_numpy(x).float()) and torch.equal(data.costs, torch.from_numpy(c))
    paths = monotone_paths(h, w, grid_graph(h, w))
    # every label is one of the paths, and its cost is the minimum over all paths
    matches = (data.sols.double().numpy()[:, None, :] == paths[None]).all(axis=2)
    assert (matches.sum(axis=1) == 1).all()
    best = (c.astype(np.float64) @ paths.T).min(axis=1)
    np.testing.assert_allclose(data.objs[:, 0].numpy(), best, rtol=1e-6)
    arcs = grid_graph(h, w)
    for i in range(0, 200, 40):
        assert math.isclose(float(data.objs[i, 0]), networkx_path_cost(arcs, c[i], h * w), rel_tol=1e-6)
    # items in PyEPO's order (x, c, w, z)
    item = data[3]
    assert [tuple(t.shape) for t in item] == [(5,), (40,), (40,), (1,)]
    assert torch.equal(item[0], data.feats[3]) and torch.equal(item[2], data.sols[3])
    xb, _cb, _wb, zb = next(iter(DataLoader(data, batch_size=16)))
    assert xb.shape == (16, 5) and zb.shape == (16, 1)


def test_opt_dataset_knapsack_with_milp_matches_brute_force():
    weights, x, c = knapsack_data(60, 4, 8, dim=2, deg=2, noise_width=0.5, seed=4)
    capacity = np.array([14.0, 12.0])
    data = OptDataset(MILP(A_ub=weights, b_ub=capacity), x, c, sense="max")
    np.testing.assert_allclose(data.objs[:, 0].numpy(), brute_force_knapsack(c, weights, capacity), rtol=1e-6)
    sols = data.sols.double().numpy()
    assert np.isin(sols, (0, 1)).all() and (sols @ weights.T <= capacity + 1e-9).all()
    np.testing.assert_allclose((sols * c).sum(axis=1), data.objs[:, 0].numpy(), rtol=1e-6)
    # the sense matters: "min" would choose nothing (all values are positive)
    assert float(OptDataset(MILP(A_ub=weights, b_ub=capacity), x, c, sense="min").objs.abs().max()) == 0.0


def test_opt_dataset_calls_the_solver_once_on_the_signed_costs():
    calls = []

    def solver(theta):
        calls.append(theta.clone())
        return TopK(1)(theta)

    costs = torch.tensor([[3.0, 1.0, 2.0], [0.5, 4.0, 1.0]])
    data = OptDataset(solver, torch.zeros(2, 1), costs, sense="min")
    assert len(calls) == 1 and calls[0].dtype == torch.float64 and torch.equal(calls[0], -costs.double())
    assert data.sols.tolist() == [[0, 1, 0], [1, 0, 0]] and data.objs[:, 0].tolist() == [1.0, 0.5]
    data = OptDataset(solver, torch.zeros(2, 1), costs, sense="max")
    assert torch.equal(calls[1], costs.double())
    assert data.sols.tolist() == [[1, 0, 0], [0, 1, 0]] and data.objs[:, 0].tolist() == [3.0, 4.0]
    assert torch.equal(scores_from_costs(costs, "min"), -costs) and torch.equal(scores_from_costs(costs, "max"), costs)


def test_opt_dataset_keeps_feature_shapes_and_accepts_lists():
    feats = np.arange(24, dtype=np.int64).reshape(2, 3, 4)  # image-like features, integers
    data = OptDataset(TopK(1), feats, [[1.0, 2.0], [5.0, 4.0]], sense="max")
    assert data.feats.shape == (2, 3, 4) and data.feats.dtype == torch.float32
    assert data[1][0].shape == (3, 4) and data.objs[:, 0].tolist() == [2.0, 5.0]


def test_opt_dataset_equals_pyepos_optdataset():
    """PyEPO's optDataset, labelled by a pure-Python PyEPO model (enumeration), gives the same items."""
    EnumShortestPath, EnumKnapsack = pyepo_enumeration_models()
    from pyepo.data.dataset import optDataset

    x, c = shortest_path_data(60, 5, (3, 4), deg=2, noise_width=0.5, seed=21)
    theirs = optDataset(EnumShortestPath((3, 4)), x, c)
    ours = OptDataset(path_solver(3, 4), x, c, sense="min")
    assert torch.equal(ours.feats, theirs.feats) and torch.equal(ours.costs, theirs.costs)
    assert torch.equal(ours.sols, theirs.sols)  # continuous costs: a unique optimum
    torch.testing.assert_close(ours.objs, theirs.objs, rtol=1e-6, atol=0)
    for a, b in zip(ours[7], theirs[7]):
        assert a.shape == b.shape

    weights, x, c = knapsack_data(40, 4, 7, dim=2, deg=1, noise_width=0.5, seed=22)
    capacity = [11.0, 13.0]
    theirs = optDataset(EnumKnapsack(weights, capacity), x, c)
    ours = OptDataset(MILP(A_ub=weights, b_ub=capacity), x, c, sense="max")
    torch.testing.assert_close(ours.objs, theirs.objs, rtol=1e-6, atol=0)  # integer values: ties, compare values


def test_opt_dataset_equals_pyepos_gurobi_labels():
    pytest.importorskip("gurobipy")
    from pyepo.data.dataset import optDataset
    from pyepo.model.grb import knapsackModel, shortestPathModel

    x, c = shortest_path_data(100, 5, (5, 5), deg=4, noise_width=0.5, seed=135)
    theirs = optDataset(shortestPathModel((5, 5)), x, c)
    ours = OptDataset(path_solver(5, 5), x, c, sense="min")
    assert torch.equal(ours.sols, theirs.sols)
    torch.testing.assert_close(ours.objs, theirs.objs, rtol=1e-6, atol=0)

    weights, x, c = knapsack_data(100, 5, 16, dim=2, deg=4, noise_width=0.5, seed=135)
    capacity = [20.0, 20.0]
    theirs = optDataset(knapsackModel(weights, capacity), x, c)
    ours = OptDataset(MILP(A_ub=weights, b_ub=capacity), x, c, sense="max")
    torch.testing.assert_close(ours.objs, theirs.objs, rtol=1e-6, atol=0)


def test_opt_dataset_empty():
    data = OptDataset(path_solver(2, 2), np.zeros((0, 3)), np.zeros((0, 4)), sense="min")
    assert len(data) == 0 and data.sols.shape == (0, 4) and data.objs.shape == (0, 1)


# ---------------------------------------------------------------------------------------------------------
# regret


def test_batch_regret_hand_computed_min():
    # choose the cheapest of 3 items; true costs and optima by hand
    true_costs = torch.tensor([[1.0, 2.0, 4.0], [3.0, 1.0, 2.0], [5.0, 6.0, 2.0]])
    true_objs = torch.tensor([[1.0], [1.0], [2.0]])
    # predictions choose items 2 (cost 4), 1 (cost 1, optimal) and 0 (cost 5)
    pred = torch.tensor([[9.0, 9.0, 0.0], [2.0, 1.0, 3.0], [0.0, 1.0, 1.0]])
    regrets = batch_regret(pred, true_costs, true_objs, TopK(1), sense="min", reduction="none")
    assert regrets.dtype == torch.float64 and regrets.tolist() == [3.0, 0.0, 3.0]
    assert float(batch_regret(pred, true_costs, true_objs, TopK(1), sense="min")) == pytest.approx(
        6.0 / (4.0 + PYEPO_EPS), rel=1e-15)
    assert float(batch_regret(pred, true_costs, true_objs, TopK(1), sense="min", reduction="sum")) == 6.0
    assert float(batch_regret(pred, true_costs, true_objs, TopK(1), sense="min", reduction="mean")) == 2.0
    # the ratio of sums is not the mean of discograd.metrics.normalized_regret (3/1, 0/1, 3/2 -> 1.5)
    theta = -true_costs
    per_instance = normalized_regret(theta, TopK(1)(-pred), TopK(1)(theta))
    assert per_instance.tolist() == [3.0, 0.0, 1.5] and float(per_instance.mean()) == 1.5


def test_batch_regret_hand_computed_max():
    # knapsack-like: pick the most valuable item; regret = optimum - value obtained
    values = torch.tensor([[4.0, 7.0], [2.0, 1.0]])
    optima = torch.tensor([7.0, 2.0])
    pred = torch.tensor([[1.0, 0.0], [5.0, 1.0]])  # picks items 0 (value 4) and 0 (value 2)
    assert batch_regret(pred, values, optima, TopK(1), sense="max", reduction="none").tolist() == [3.0, 0.0]
    assert float(batch_regret(pred, values, optima, TopK(1), sense="max")) == pytest.approx(3.0 / (9.0 + PYEPO_EPS), rel=1e-15)
    # the same predictions read as costs choose the other items
    assert batch_regret(pred, values, optima, TopK(1), sense="min", reduction="none").tolist() == [0.0, -1.0]


def test_batch_regret_of_true_costs_is_zero_and_of_negated_costs_is_positive():
    x, c = shortest_path_data(300, 5, (5, 5), deg=4, noise_width=0.5, seed=1)
    solver = path_solver(5, 5)
    data = OptDataset(solver, x, c, sense="min")
    assert float(batch_regret(data.costs, data.costs, data.objs, solver, sense="min")) == 0.0
    worst = batch_regret(-data.costs, data.costs, data.objs, solver, sense="min", reduction="none")
    assert (worst >= 0).all() and float(worst.min()) > 0
    # on a float64 optimum nothing is rounded
    objs64 = (data.costs.double() * data.sols.double()).sum(dim=1)
    assert float(batch_regret(data.costs, data.costs, objs64, solver, sense="min").abs()) < 1e-12


def linear_model(num_features: int, num_costs: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # a fixed, hand-set model: weights from a local generator
    model = torch.nn.Linear(num_features, num_costs)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.weight.copy_(torch.randn(num_costs, num_features, generator=g))
        model.bias.copy_(torch.rand(num_costs, generator=g) + 1)
    return model


def test_dataset_regret_accumulates_a_ratio_of_sums_over_batches():
    x, c = shortest_path_data(50, 4, (3, 3), deg=2, noise_width=0.5, seed=5)
    solver = path_solver(3, 3)
    data = OptDataset(solver, x, c, sense="min")
    model = linear_model(4, 12, seed=0)
    loader = DataLoader(data, batch_size=16)  # batches of 16, 16, 16, 2
    with torch.no_grad():
        pred = model(data.feats)
    z = solver(-pred.double())
    regrets = (z * data.costs.double()).sum(dim=1).float().double() - data.objs[:, 0].double()
    expected = float(regrets.sum() / (data.objs.double().abs().sum() + PYEPO_EPS))
    assert dataset_regret(model, loader, solver, sense="min") == pytest.approx(expected, rel=1e-12)
    per_batch = [float(batch_regret(model(xb).detach(), cb, zb, solver, sense="min")) for xb, cb, _, zb in loader]
    assert not math.isclose(float(np.mean(per_batch)), expected, rel_tol=1e-3)  # not a mean of batch values
    none = dataset_regret(model, loader, solver, sense="min", reduction="none")
    assert isinstance(none, torch.Tensor) and none.shape == (50,)
    torch.testing.assert_close(none, regrets, rtol=0, atol=1e-12)
    assert dataset_regret(model, loader, solver, sense="min", reduction="sum") == pytest.approx(float(regrets.sum()))
    assert dataset_regret(model, loader, solver, sense="min", reduction="mean") == pytest.approx(float(regrets.mean()))
    # a plain callable works too
    assert dataset_regret(lambda xb: model(xb), loader, solver, sense="min") == pytest.approx(expected, rel=1e-12)


def test_dataset_regret_evaluates_in_eval_mode_and_restores_the_mode():
    modes = []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 4)
            self.dropout = torch.nn.Dropout(0.9)

        def forward(self, x):
            modes.append((self.training, torch.is_grad_enabled()))
            return self.dropout(self.linear(x))

    data = OptDataset(path_solver(2, 2), torch.randn(10, 3, generator=torch.Generator().manual_seed(0)),
                      torch.rand(10, 4, generator=torch.Generator().manual_seed(1)) + 0.1, sense="min")
    loader = DataLoader(data, batch_size=4)
    model = Recorder().train()
    first = dataset_regret(model, loader, path_solver(2, 2), sense="min")
    assert modes == [(False, False)] * 3 and model.training
    assert dataset_regret(model, loader, path_solver(2, 2), sense="min") == first  # dropout off: deterministic
    model.eval()
    dataset_regret(model, loader, path_solver(2, 2), sense="min")
    assert not model.training


def test_dataset_regret_of_an_empty_loader():
    assert dataset_regret(torch.nn.Identity(), [], TopK(1), sense="min") == 0.0
    assert dataset_regret(torch.nn.Identity(), [], TopK(1), sense="min", reduction="mean") == 0.0
    assert dataset_regret(torch.nn.Identity(), [], TopK(1), sense="min", reduction="none").shape == (0,)


@pytest.mark.parametrize("reduction", ["normalized", "sum", "mean", "none"])
def test_dataset_regret_equals_pyepos_regret(reduction):
    """pyepo.metric.regret(model, optmodel, loader) with pure-Python PyEPO models (enumeration)."""
    EnumShortestPath, EnumKnapsack = pyepo_enumeration_models()
    import pyepo.metric

    x, c = shortest_path_data(80, 5, (3, 4), deg=4, noise_width=0.5, seed=31)
    solver = path_solver(3, 4)
    loader = DataLoader(OptDataset(solver, x, c, sense="min"), batch_size=32)
    model = linear_model(5, 17, seed=1)
    theirs = pyepo.metric.regret(model, EnumShortestPath((3, 4)), loader, reduction=reduction)
    ours = dataset_regret(model, loader, solver, sense="min", reduction=reduction)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=2e-6, atol=1e-6)
    assert reduction == "none" or ours > 0

    weights, x, c = knapsack_data(60, 5, 7, dim=2, deg=2, noise_width=0.5, seed=32)
    capacity = [12.0, 12.0]
    milp = MILP(A_ub=weights, b_ub=capacity)
    loader = DataLoader(OptDataset(milp, x, c, sense="max"), batch_size=25)
    model = linear_model(5, 7, seed=2)
    theirs = pyepo.metric.regret(model, EnumKnapsack(weights, capacity), loader, reduction=reduction)
    ours = dataset_regret(model, loader, milp, sense="max", reduction=reduction)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=2e-6, atol=1e-5)


def test_dataset_regret_equals_pyepos_regret_with_gurobi():
    pytest.importorskip("gurobipy")
    import pyepo.metric
    from pyepo.data.dataset import optDataset
    from pyepo.model.grb import knapsackModel, shortestPathModel

    x, c = shortest_path_data(100, 5, (5, 5), deg=4, noise_width=0.5, seed=135)
    optmodel = shortestPathModel((5, 5))
    loader = DataLoader(optDataset(optmodel, x, c), batch_size=32)  # PyEPO's data set, our regret
    model = linear_model(5, 40, seed=3)
    ours = dataset_regret(model, loader, path_solver(5, 5), sense="min")
    assert ours == pytest.approx(pyepo.metric.regret(model, optmodel, loader), rel=2e-6)

    weights, x, c = knapsack_data(100, 5, 16, dim=2, deg=4, noise_width=0.5, seed=135)
    optmodel = knapsackModel(weights, [20.0, 20.0])
    loader = DataLoader(optDataset(optmodel, x, c), batch_size=32)
    model = linear_model(5, 16, seed=4)
    ours = dataset_regret(model, loader, MILP(A_ub=weights, b_ub=[20.0, 20.0]), sense="max")
    assert ours == pytest.approx(pyepo.metric.regret(model, optmodel, loader), rel=2e-6)


# ---------------------------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize("deg", [0, -1, 1.5, 2.0, True, "2", np.int64(2)])
def test_bad_degree_raises_value_error_like_pyepo(deg):
    for call in (lambda: shortest_path_data(5, 3, (3, 3), deg=deg), lambda: knapsack_data(5, 3, 4, deg=deg),
                 lambda: tsp_data(5, 3, 4, deg=deg)):
        with pytest.raises(ValueError, match="deg must be a positive integer"):
            call()


@pytest.mark.parametrize("noise_width", [-0.1, float("nan"), float("inf"), True, "0.5", None])
def test_bad_noise_width_raises_value_error_like_pyepo(noise_width):
    with pytest.raises(ValueError, match="noise_width must be a finite real number >= 0"):
        shortest_path_data(5, 3, (3, 3), noise_width=noise_width)
    with pytest.raises(ValueError, match="noise_width"):
        knapsack_data(5, 3, 4, noise_width=noise_width)
    with pytest.raises(ValueError, match="noise_width"):
        tsp_data(5, 3, 4, noise_width=noise_width)


def test_pyepo_raises_too_on_our_rejected_degree_and_noise():
    pyepo_sp = pytest.importorskip("pyepo.data.shortestpath")
    for kwargs in ({"deg": 0}, {"deg": 1.5}, {"noise_width": -1.0}, {"noise_width": float("nan")}):
        with pytest.raises(ValueError):
            pyepo_sp.genData(5, 3, (3, 3), **kwargs)


@pytest.mark.parametrize("call, error, match", [
    (lambda: shortest_path_data(0, 3, (3, 3)), ValueError, "num_data must be >= 1"),
    (lambda: shortest_path_data(5, 0, (3, 3)), ValueError, "num_features must be >= 1"),
    (lambda: shortest_path_data(5.0, 3, (3, 3)), TypeError, "num_data must be an integer"),
    (lambda: shortest_path_data(5, 3, (1, 1)), ValueError, "at least two nodes"),
    (lambda: shortest_path_data(5, 3, (0, 4)), ValueError, r"grid\[0\] \(rows\) must be >= 1"),
    (lambda: shortest_path_data(5, 3, (3, 3, 3)), ValueError, "pair"),
    (lambda: shortest_path_data(5, 3, 5), TypeError, "grid must be a pair"),
    (lambda: shortest_path_data(5, 3, (3, 2.5)), TypeError, "columns"),
    (lambda: shortest_path_data(5, 3, (3, 3), seed=-1), ValueError, "seed must be >= 0"),
    (lambda: shortest_path_data(5, 3, (3, 3), seed=2**32), ValueError, "seed must be an integer in"),
    (lambda: knapsack_data(5, 3, 0), ValueError, "num_items must be >= 1"),
    (lambda: knapsack_data(5, 3, 4, dim=0), ValueError, "dim must be >= 1"),
    (lambda: tsp_data(5, 3, 2), ValueError, "num_nodes must be >= 3"),
    (lambda: grid_graph(1, 1), ValueError, "at least two nodes"),
    (lambda: grid_graph(0, 3), ValueError, "h must be >= 1"),
    (lambda: grid_graph(2, 2.0), TypeError, "w must be an integer"),
    (lambda: complete_graph_edges(1), ValueError, "num_nodes must be >= 2"),
])
def test_bad_sizes_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_opt_dataset_bad_inputs_raise():
    solver = path_solver(2, 2)
    feats, costs = np.zeros((3, 2)), np.ones((3, 4))
    with pytest.raises(TypeError, match="sense"):
        OptDataset(solver, feats, costs)  # no default sense
    with pytest.raises(ValueError, match="sense must be 'min'"):
        OptDataset(solver, feats, costs, sense="minimize")
    with pytest.raises(ValueError, match=r"costs must have shape \[N, d\]"):
        OptDataset(solver, feats, np.ones(4), sense="min")
    with pytest.raises(ValueError, match="same number of instances"):
        OptDataset(solver, np.zeros((2, 2)), costs, sense="min")
    bad = costs.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="costs must be finite; got 1 NaN"):
        OptDataset(solver, feats, bad, sense="min")
    bad_feats = feats.copy()
    bad_feats[0, 0] = np.inf
    with pytest.raises(ValueError, match="feats must be finite; got 0 NaN and 1 infinite"):
        OptDataset(solver, bad_feats, costs, sense="min")
    with pytest.raises(TypeError, match="feats must hold real numbers"):
        OptDataset(solver, np.array([["a", "b"]] * 3), costs, sense="min")
    with pytest.raises(TypeError, match="costs must hold real numbers"):
        OptDataset(solver, feats, torch.ones(3, 4, dtype=torch.bool), sense="min")
    with pytest.raises(ValueError, match="E = 4"):  # the solver's own check: 5 costs for 4 arcs
        OptDataset(solver, feats, np.ones((3, 5)), sense="min")
    with pytest.raises(ValueError, match="the solver must return a tensor of its input's shape"):
        OptDataset(lambda theta: theta[:, :2], feats, costs, sense="min")
    with pytest.raises(TypeError, match="solver must return a tensor"):
        OptDataset(lambda theta: theta.numpy(), feats, costs, sense="min")
    with pytest.raises(ValueError, match="the solver's output must be finite"):
        OptDataset(lambda theta: theta * np.nan, feats, costs, sense="min")
    with pytest.raises(TypeError, match="solver must be callable"):
        OptDataset("dijkstra", feats, costs, sense="min")
    with pytest.raises(ValueError, match="d >= 1"):
        OptDataset(solver, feats, np.ones((3, 0)), sense="min")


def test_regret_bad_inputs_raise():
    costs, objs = torch.ones(2, 3), torch.ones(2)
    solver = TopK(1)
    with pytest.raises(ValueError, match="sense must be"):
        batch_regret(costs, costs, objs, solver, sense="maximise")
    with pytest.raises(TypeError, match="sense"):
        batch_regret(costs, costs, objs, solver)
    with pytest.raises(ValueError, match="reduction must be one of"):
        batch_regret(costs, costs, objs, solver, sense="min", reduction="normalised")
    with pytest.raises(ValueError, match="same shape"):
        batch_regret(costs, torch.ones(2, 4), objs, solver, sense="min")
    with pytest.raises(ValueError, match=r"pred_costs must have shape \[B, d\]"):
        batch_regret(torch.ones(3), torch.ones(3), objs, solver, sense="min")
    with pytest.raises(ValueError, match=r"true_objs must have shape \[B\] or \[B, 1\] with B = 2"):
        batch_regret(costs, costs, torch.ones(3), solver, sense="min")
    with pytest.raises(ValueError, match="pred_costs must be finite; got 2 NaN"):
        batch_regret(torch.tensor([[1.0, float("nan"), 0.0]] * 2), costs, objs, solver, sense="min")
    with pytest.raises(ValueError, match="true_objs must be finite"):
        batch_regret(costs, costs, torch.tensor([1.0, float("inf")]), solver, sense="min")
    with pytest.raises(TypeError, match="pred_costs must be a torch.Tensor"):
        batch_regret(np.ones((2, 3)), costs, objs, solver, sense="min")

    loader = [(torch.zeros(2, 5), costs, costs, objs[:, None])]
    with pytest.raises(ValueError, match=r"model output \(batch 0\) and true_costs must have the same shape"):
        dataset_regret(torch.nn.Linear(5, 4), loader, solver, sense="min")
    with pytest.raises(ValueError, match=r"model output \(batch 0\) must be finite"):
        dataset_regret(lambda x: torch.full((2, 3), float("nan")), loader, solver, sense="min")
    with pytest.raises(ValueError, match="batch 0 is tuple of length 3"):
        dataset_regret(torch.nn.Linear(5, 3), [(torch.zeros(2, 5), costs, costs)], solver, sense="min")
    with pytest.raises(TypeError, match="model must be"):
        dataset_regret("linear", loader, solver, sense="min")
    model = torch.nn.Linear(5, 3).train()
    with pytest.raises(ValueError):
        dataset_regret(model, [(torch.zeros(2, 5), costs, costs, torch.ones(3))], solver, sense="min")
    assert model.training  # restored after an error too


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_dataset_regret_with_a_model_on_cuda_equals_the_cpu_value():
    x, c = shortest_path_data(64, 5, (4, 4), deg=2, noise_width=0.5, seed=6)
    solver = path_solver(4, 4)
    loader = DataLoader(OptDataset(solver, x, c, sense="min"), batch_size=16)
    model = linear_model(5, 24, seed=5)
    on_cpu = dataset_regret(model, loader, solver, sense="min")
    assert dataset_regret(model.cuda(), loader, solver, sense="min") == pytest.approx(on_cpu, rel=1e-6)
    assert next(model.parameters()).device.type == "cuda"
