"""MultiKnapsack: the documented tie rule against brute force, optimality against MILP (HiGHS) and PyEPO (Gurobi
and a pure-Python PyEPO model), feasibility properties, weights and capacities shared or per instance, the
rounding slack, validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import discograd
from discograd.solvers import MILP
from discograd.solvers.multi_knapsack import MultiKnapsack
from discograd.testing import (
    check_batch_equals_loop,
    check_deterministic,
    check_feasible,
    check_optimal,
    check_output_contract,
    check_solver,
)

PROPERTY = settings(max_examples=60, deadline=None)


# ---------------------------------------------------------------------------------------------------------
# references and strategies


def limits_of(capacity: np.ndarray, tolerance: float = 1e-9) -> np.ndarray:
    """The documented feasibility rule: load <= capacity + tolerance * max(1, capacity)."""
    return capacity + tolerance * np.maximum(1.0, capacity)


def brute_force(theta: np.ndarray, weights: np.ndarray, capacity: np.ndarray, tolerance: float = 1e-9) -> np.ndarray:
    """The documented rule by enumeration of all 2^n subsets: among optimal subsets that take no item with
    theta <= 0, the lexicographically largest indicator (z_0, z_1, ...)."""
    n = theta.shape[0]
    subsets = np.array(list(itertools.product((1, 0), repeat=n)), dtype=np.int64).reshape(2**n, n)  # lex. descending
    feasible = (subsets @ weights.T <= limits_of(capacity, tolerance)).all(axis=1)
    allowed = feasible & ~((subsets == 1) & (theta <= 0)).any(axis=1)
    candidates = subsets[allowed]
    return candidates[int(np.argmax(candidates @ theta))]  # the first maximum: lexicographically largest


def pyepo_weights(rng: np.random.Generator, dim: int, n: int) -> np.ndarray:
    """Weights drawn like pyepo.data.knapsack.genData: choice(range(300, 800)) / 100."""
    return rng.choice(np.arange(300, 800), size=(dim, n)) / 100


@st.composite
def instances(draw, max_n: int = 9, per_instance: bool | None = None, ties: bool | None = None):
    """(theta [B, n] float64, weights [d, n] or [B, d, n], capacity [d] or [B, d])."""
    n = draw(st.integers(0, max_n))
    dim = draw(st.integers(1, 3))
    batch = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if ties is None:
        ties = draw(st.booleans())
    if per_instance is None:
        per_instance = draw(st.booleans())
    theta = rng.integers(-2, 4, (batch, n)).astype(np.float64) if ties else rng.normal(size=(batch, n))
    shape = (batch, dim, n) if per_instance else (dim, n)
    if draw(st.booleans()):  # PyEPO's decimal weights: many exact sums
        weights = rng.choice(np.arange(300, 800), size=shape) / 100
        weights[rng.random(shape) < 0.1] = 0.0
    else:
        weights = rng.exponential(size=shape)
    total = weights.sum(axis=-1)
    capacity = np.round(rng.uniform(0.0, 1.0, total.shape) * total, 2)  # some capacities hit sums exactly
    return torch.from_numpy(theta), torch.from_numpy(weights), torch.from_numpy(capacity)


def per_row(weights: torch.Tensor, capacity: torch.Tensor, batch: int):
    dim, n = weights.shape[-2:]
    w = weights.expand(batch, dim, n).numpy()
    c = capacity.expand(batch, dim).numpy()
    return w, c


def check_maximal(z: np.ndarray, theta: np.ndarray, weights: np.ndarray, capacity: np.ndarray) -> None:
    """z is feasible, takes no item with theta <= 0, and no positive item left out fits in the residual."""
    limit = limits_of(capacity)
    load = weights @ z
    assert (load <= limit).all(), (load, limit)
    assert not (z[theta <= 0] == 1).any()
    for i in np.flatnonzero((z == 0) & (theta > 0)):
        assert (load + weights[:, i] > limit).any(), f"item {i} fits and has a positive value"


# ---------------------------------------------------------------------------------------------------------
# the rule, optimality and feasibility


@PROPERTY
@given(instances())
def test_matches_brute_force_rule(case):
    theta, weights, capacity = case
    z = MultiKnapsack()(theta, weights, capacity)
    w, c = per_row(weights, capacity, theta.shape[0])
    for b in range(theta.shape[0]):
        reference = brute_force(theta[b].numpy(), w[b], c[b])
        np.testing.assert_array_equal(z[b].numpy(), reference)  # continuous theta: unique optimum (a.s.)


@PROPERTY
@given(instances(max_n=12, per_instance=False))
def test_feasible_and_optimal_against_enumeration(case):
    theta, weights, capacity = case
    solver = MultiKnapsack(weights, capacity)
    states = solver.enumerate_feasible(theta.shape[-1], dtype=theta.dtype)
    check_feasible(solver, theta, states)
    check_optimal(solver, theta, states, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(20, 60), st.integers(1, 5))
def test_feasible_and_maximal_on_larger_instances(seed, n, dim):
    """Feasibility, no non-positive item, and no positive item that still fits (an optimum is maximal)."""
    rng = np.random.default_rng(seed)
    weights = pyepo_weights(rng, dim, n)
    capacity = rng.uniform(0.1, 0.6, dim) * weights.sum(axis=1)
    theta = rng.normal(1.0, 1.0, (3, n))
    z = MultiKnapsack(weights, capacity)(torch.from_numpy(theta)).numpy()
    for b in range(3):
        check_maximal(z[b], theta[b], weights, capacity)


def test_pyepo_sized_instances_follow_the_rule_against_brute_force():
    """PyEPO's 2-D knapsack notebook size (16 items, weights from genData's law, capacity 20 per row) with
    PyEPO-like integer values (many tied optima): the documented rule, against all 2^16 subsets."""
    rng = np.random.default_rng(135)
    weights = pyepo_weights(rng, 2, 16)
    theta = np.ceil(rng.uniform(0.0, 12.0, (40, 16)))
    subsets = np.array(list(itertools.product((1, 0), repeat=16)), dtype=np.float64)  # lex. descending
    feasible = subsets[(subsets @ weights.T <= limits_of(np.full(2, 20.0))).all(axis=1)]
    allowed = (feasible[:, None, :] * (theta <= 0)[None]).sum(-1) == 0  # [F, 40]: no item with theta <= 0
    objectives = np.where(allowed, feasible @ theta.T, -np.inf)
    reference = feasible[np.argmax(objectives, axis=0)]  # the first maximum: lexicographically largest
    z = MultiKnapsack(weights, [20.0, 20.0])(torch.from_numpy(theta)).numpy()
    np.testing.assert_array_equal(z, reference)


@pytest.mark.parametrize(("num_items", "seed"), [(16, 135), (32, 7), (50, 1)])
def test_optimal_objective_equals_milp_on_pyepo_instances(num_items, seed):
    """PyEPO's 2-D knapsack (weights from genData's law, capacity 20 per row) against MILP (HiGHS, whose
    default relative gap is 1e-4): integer values, then the same values plus continuous noise (a unique
    optimum, almost surely: the same solution wherever HiGHS reached the optimum)."""
    rng = np.random.default_rng(seed)
    weights = pyepo_weights(rng, 2, num_items)
    values = np.ceil(rng.uniform(1.0, 25.0, (30, num_items)))
    milp = MILP(A_ub=weights, b_ub=[20.0, 20.0])
    solver = MultiKnapsack(weights, [20.0, 20.0])
    for theta, exact in ((values, True), (values + rng.uniform(0.0, 1.0, values.shape), False)):
        theta = torch.from_numpy(theta)
        z, reference = solver(theta), milp(theta)
        assert bool((torch.from_numpy(weights) @ z.T <= 20.0 + 1e-9).all())
        ours, theirs = (z * theta).sum(-1), (reference * theta).sum(-1)
        if exact:  # integer objectives below 1e4: HiGHS's gap leaves it no room
            torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-9)
        else:
            assert bool((ours >= theirs - 1e-9).all()) and bool((ours <= theirs * (1 + 1e-4) + 1e-9).all())
            same = (ours - theirs).abs() <= 1e-9
            assert int(same.sum()) >= 25
            assert torch.equal(z[same], reference[same])


def test_optimal_objective_equals_pyepo_gurobi():
    """PyEPO's own benchmark model: pyepo.data.knapsack.genData (16 items, 2 rows, deg 6, noise 0.5) and
    pyepo.model.grb.knapsackModel(weights, [20, 20]); runs only where gurobipy is installed."""
    pytest.importorskip("gurobipy")
    pyepo = pytest.importorskip("pyepo")
    from pyepo.model.grb import knapsackModel

    weights, _, costs = pyepo.data.knapsack.genData(60, 5, 16, dim=2, deg=6, noise_width=0.5, seed=135)
    model = knapsackModel(weights, [20.0, 20.0])
    z = MultiKnapsack(weights, [20.0, 20.0])(torch.from_numpy(costs).double()).numpy()
    for b in range(costs.shape[0]):
        model.setObj(costs[b])
        solution, objective = model.solve()
        assert z[b] @ costs[b] == pytest.approx(objective, abs=1e-6)
        assert np.asarray(solution) @ costs[b] == pytest.approx(z[b] @ costs[b], abs=1e-6)


def test_matches_a_pure_python_pyepo_model_on_pyepo_data():
    """PyEPO's data pipeline with a PyEPO model solving by enumeration (no solver needed, so it runs in CI):
    genData's weights and values, knapsackBase's conventions (weights [dim, n], maximisation), optDataset's
    labels; our solutions are optimal for them and equal them when the optimum is unique."""
    pyepo = pytest.importorskip("pyepo")
    from pyepo.data.dataset import optDataset
    from pyepo.model.bases import knapsackBase

    class EnumerationKnapsack(knapsackBase):
        def _getModel(self):
            n = self.weights.shape[1]
            self._subsets = np.array(list(itertools.product((0, 1), repeat=n)), dtype=np.float64).reshape(-1, n)
            self._feasible = self._subsets[(self._subsets @ self.weights.T <= self.capacity + 1e-9).all(axis=1)]
            return None, list(range(n))

        def setObj(self, c):
            self._c = np.asarray(c, dtype=np.float64)

        def solve(self):
            objectives = self._feasible @ self._c
            best = int(np.argmax(objectives))
            return self._feasible[best], float(objectives[best])

    weights, x, costs = pyepo.data.knapsack.genData(50, 5, 12, dim=2, deg=4, noise_width=0.5, seed=3)
    capacity = [12.0, 12.0]
    dataset = optDataset(EnumerationKnapsack(weights, capacity), x, costs)
    z = MultiKnapsack(weights, capacity)(torch.from_numpy(costs).double())
    objectives = (z * dataset.costs.double()).sum(-1)
    torch.testing.assert_close(objectives, dataset.objs.double().squeeze(-1), rtol=0, atol=1e-4)
    # unique optima: equal solutions
    states = MultiKnapsack(weights, capacity).enumerate_feasible(12, dtype=torch.float64)
    values = torch.from_numpy(costs).double() @ states.T
    top2 = values.topk(2, dim=-1).values
    unique = top2[:, 0] > top2[:, 1]
    assert int(unique.sum()) >= 10
    assert torch.equal(z[unique], dataset.sols.double()[unique])


@pytest.mark.parametrize("n", [1, 4, 7])
def test_check_solver(n):
    weights = torch.stack([torch.arange(n) % 3 + 1.5, torch.arange(n).flip(0) % 2 + 0.25]).double()
    solver = MultiKnapsack(weights, capacity=[float(n), 1.0 + n / 3])
    report = check_solver(solver, n)
    assert report.num_states == solver.enumerate_feasible(n).shape[0]


def test_documented_examples():
    weights = torch.tensor([[3.5, 4.0, 2.25, 5.0], [1.0, 6.0, 3.0, 2.5]])
    solver = MultiKnapsack(weights, capacity=[8.0, 6.0])
    assert solver(torch.tensor([4.0, 5.0, 3.0, 4.5])).tolist() == [0, 0, 1, 1]
    z = solver(torch.tensor([[1.0, 1.0, 1.0, 1.0], [-1.0, 2.0, 0.0, 1.0]]))
    assert z.tolist() == [[1, 0, 1, 0], [0, 1, 0, 0]]


def test_ties_zero_and_negative_values_and_special_items():
    solver = MultiKnapsack()
    weights = torch.tensor([[0.0, 0.0, 0.0, 4.0, 4.0, 9.0], [0.0, 1.0, 0.0, 1.0, 1.0, 0.5]])
    theta = torch.tensor([3.0, 0.0, -1.0, 2.0, 5.0, 7.0])
    # a weight-0 item is taken iff its value is positive; zero and negative values never; item 5 never fits
    assert solver(theta, weights, [0.0, 0.0]).tolist() == [1, 0, 0, 0, 0, 0]
    assert solver(theta, weights, [4.0, 5.0]).tolist() == [1, 0, 0, 0, 1, 0]
    assert solver(theta, weights, [8.0, 1.5]).tolist() == [1, 0, 0, 0, 1, 0]
    assert solver(theta, weights, [8.0, 2.0]).tolist() == [1, 0, 0, 1, 1, 0]
    # capacity above the total weight: every positive item
    assert solver(theta, weights, 1e9).tolist() == [1, 0, 0, 1, 1, 1]
    # all negative (theta = -cost with positive costs): nothing
    assert solver(-theta.abs() - 1, weights, 1e9).tolist() == [0] * 6
    # all tied: the lower-index items win
    assert solver(torch.ones(5), torch.ones(2, 5), [2.0, 3.0]).tolist() == [1, 1, 0, 0, 0]
    assert solver(torch.ones(5), torch.tensor([[1.0, 2.0, 1.0, 1.0, 1.0]]), 2).tolist() == [1, 0, 1, 0, 0]


def test_ties_with_pyepo_integer_values_match_the_rule():
    """PyEPO's values are integers (ceil): many tied optima; the rule decides, against brute force."""
    rng = np.random.default_rng(5)
    weights = pyepo_weights(rng, 2, 12)
    theta = np.ceil(rng.uniform(0.0, 4.0, (50, 12)))
    z = MultiKnapsack(weights, [20.0, 20.0])(torch.from_numpy(theta)).numpy()
    for b in range(50):
        np.testing.assert_array_equal(z[b], brute_force(theta[b], weights, np.full(2, 20.0)))


def test_rounding_slack():
    # 0.1 + 0.2 = 0.30000000000000004 > 0.3 in float64: the slack accepts the exact decimal sum
    theta = torch.tensor([1.0, 1.0])
    assert MultiKnapsack([[0.1, 0.2]], [0.3])(theta).tolist() == [1, 1]
    assert MultiKnapsack([[0.1, 0.2]], [0.3], tolerance=0.0)(theta).tolist() == [1, 0]
    assert MultiKnapsack([[0.1, 0.2]], [0.3], tolerance=0.0).enumerate_feasible(2).tolist() == [[0, 0], [0, 1], [1, 0]]
    assert MultiKnapsack([[0.1, 0.2]], [0.3]).enumerate_feasible(2).shape == (4, 2)
    # the slack is relative: 1e-9 * max(1, capacity), not more
    assert MultiKnapsack([[1.0, 1.0]], [2.0 - 3e-9])(theta).tolist() == [1, 0]
    assert MultiKnapsack([[1.0, 1.0]], [2.0 - 1e-9])(theta).tolist() == [1, 1]


def test_one_row_equals_the_integer_knapsack(generator):
    theta = torch.randint(-3, 6, (200, 14), generator=generator).double()
    weights = torch.randint(0, 7, (14,), generator=generator)
    z = MultiKnapsack(weights.double(), float(17))(theta)
    assert torch.equal(z, discograd.solvers.Knapsack(weights, 17)(theta))
    assert torch.equal(MultiKnapsack(weights, 17)(theta), z)  # integer weights and capacity accepted


# ---------------------------------------------------------------------------------------------------------
# weights and capacity: construction, per call, per instance


def test_per_instance_equals_loop(generator):
    theta = torch.randn(4, 3, 9, generator=generator, dtype=torch.float64)
    weights = torch.rand(4, 3, 2, 9, generator=generator, dtype=torch.float64) * 5
    capacity = torch.rand(4, 3, 2, generator=generator, dtype=torch.float64) * 15
    z = MultiKnapsack()(theta, weights, capacity)
    for i, j in itertools.product(range(4), range(3)):
        assert torch.equal(MultiKnapsack(weights[i, j], capacity[i, j])(theta[i, j]), z[i, j])
    # broadcasting: weights [3, 2, 9] over the leading batch dimension, capacity [4, 1, 2]; shared capacity
    z = MultiKnapsack()(theta, weights[0], capacity[:, :1])
    for i, j in itertools.product(range(4), range(3)):
        assert torch.equal(MultiKnapsack(weights[0, j], capacity[i, 0])(theta[i, j]), z[i, j])
    z = MultiKnapsack()(theta, weights, capacity[0, 0])
    for i, j in itertools.product(range(4), range(3)):
        assert torch.equal(MultiKnapsack(weights[i, j], capacity[0, 0])(theta[i, j]), z[i, j])


def test_per_call_arguments_win_and_missing_ones_raise(generator):
    theta = torch.randn(5, 6, generator=generator)
    weights = torch.rand(2, 6, generator=generator) * 4
    solver = MultiKnapsack(weights, [3.0, 3.0])
    assert torch.equal(solver(theta, capacity=[8.0, 6.0]), MultiKnapsack(weights, [8.0, 6.0])(theta))
    assert torch.equal(solver(theta, capacity=5.0), MultiKnapsack(weights, [5.0, 5.0])(theta))
    ones = np.ones((2, 6))
    assert torch.equal(solver(theta, ones), MultiKnapsack(ones, [3.0, 3.0])(theta))
    with pytest.raises(TypeError, match=r"weights must be given, either at construction \(MultiKnapsack\(weights, "):
        MultiKnapsack(capacity=3.0)(theta)
    with pytest.raises(TypeError, match="capacity must be given"):
        MultiKnapsack(weights)(theta)


def test_per_instance_weights_inside_imle(generator):
    theta = torch.randn(4, 7, generator=generator, requires_grad=True)
    weights = torch.rand(4, 2, 7, generator=generator) * 5
    capacity = torch.rand(4, 2, generator=generator) * 10 + 3
    layer = discograd.imle(MultiKnapsack(), num_samples=3, generator=torch.Generator().manual_seed(0))
    z = layer(theta, weights=discograd.per_instance(weights), capacity=discograd.per_instance(capacity))
    assert z.shape == (3, 4, 7)
    assert bool((torch.einsum("bdn,sbn->sbd", weights, z) <= capacity + 1e-6).all())
    z.sum().backward()
    assert theta.grad is not None and theta.grad.shape == (4, 7)


# ---------------------------------------------------------------------------------------------------------
# the batch contract


@PROPERTY
@given(instances(max_n=10, per_instance=False))
def test_batch_equals_loop_and_deterministic(case):
    theta, weights, capacity = case
    solver = MultiKnapsack(weights, capacity)
    check_batch_equals_loop(solver, theta)
    check_deterministic(solver, theta)


def test_result_independent_of_threads(generator):
    rng = np.random.default_rng(0)
    weights = pyepo_weights(rng, 2, 32)
    theta = torch.randint(1, 20, (800, 32), generator=generator).double()
    theta[::2] += torch.rand(400, 32, generator=generator, dtype=torch.float64)
    one = MultiKnapsack(weights, [20.0, 20.0], num_threads=1)(theta)
    assert torch.equal(MultiKnapsack(weights, [20.0, 20.0], num_threads=3)(theta), one)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_output_contract(dtype, generator):
    theta = torch.randn(3, 5, 8, generator=generator).to(dtype)
    solver = MultiKnapsack(torch.stack([torch.arange(8) % 4, torch.arange(8) % 3]).double() + 0.5, [6.0, 5.0])
    z = check_output_contract(solver, theta)
    assert z.dtype == dtype and torch.equal(z.to(torch.float64), solver(theta.to(torch.float64)))


def test_no_batch_non_contiguous_and_empty(generator):
    base = torch.randn(6, 4, generator=generator)
    solver = MultiKnapsack([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]], [7.0])
    view = base.T
    assert torch.equal(solver(view), solver(view.contiguous()))
    assert solver(torch.randn(0, 6)).shape == (0, 6)
    assert MultiKnapsack(torch.zeros(2, 0), [3.0, 1.0])(torch.randn(4, 0)).shape == (4, 0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_in_cuda_out(generator):
    theta = torch.randn(5, 12, generator=generator)
    weights = torch.rand(5, 2, 12, generator=generator) * 4
    z = MultiKnapsack()(theta.cuda(), weights.cuda(), torch.full((2,), 9.0).cuda())
    assert z.device.type == "cuda" and z.dtype == theta.dtype
    assert torch.equal(z.cpu(), MultiKnapsack()(theta, weights, [9.0, 9.0]))


# ---------------------------------------------------------------------------------------------------------
# invariances (continuous theta for permutations: no ties)


@PROPERTY
@given(instances(max_n=10), st.floats(0.01, 100.0))
def test_invariant_to_positive_scale(case, scale):
    theta, weights, capacity = case
    z = MultiKnapsack()(theta, weights, capacity)
    assert torch.equal(MultiKnapsack()(theta * 4.0, weights, capacity), z)  # exact: ties stay ties
    if not bool((theta == theta.round()).all()):
        assert torch.equal(MultiKnapsack()(theta * scale, weights, capacity), z)


@PROPERTY
@given(instances(max_n=10, per_instance=False, ties=False), st.data())
def test_permutation_equivariant(case, data):
    theta, weights, capacity = case
    perm = torch.tensor(data.draw(st.permutations(range(theta.shape[-1]))), dtype=torch.int64)
    z = MultiKnapsack(weights, capacity)(theta)
    assert torch.equal(MultiKnapsack(weights[:, perm], capacity)(theta[..., perm]), z[..., perm])


# ---------------------------------------------------------------------------------------------------------
# enumerate_feasible, the node limit


def test_enumerate_feasible():
    states = MultiKnapsack([[1.0, 2.0, 3.0], [3.0, 1.0, 1.0]], [3.0, 3.0]).enumerate_feasible(3, dtype=torch.float64)
    assert states.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]]
    assert MultiKnapsack().enumerate_feasible(2, weights=[5.0, 5.0], capacity=4.0).tolist() == [[0, 0]]
    assert MultiKnapsack(torch.zeros(1, 0), [0.0]).enumerate_feasible(0).shape == (1, 0)
    with pytest.raises(ValueError, match=r"weights must have n = 4 entries in its last dimension"):
        MultiKnapsack([[1.0, 2.0, 3.0]], [3.0]).enumerate_feasible(4)
    with pytest.raises(ValueError, match=r"weights must be shared, \[d, n\] or \[n\], to enumerate subsets"):
        MultiKnapsack(torch.ones(2, 1, 2), [3.0]).enumerate_feasible(2)
    with pytest.raises(ValueError, match=r"capacity must be shared, a number or \[d\], to enumerate subsets"):
        MultiKnapsack(torch.ones(1, 2), torch.ones(2, 1)).enumerate_feasible(2)
    with pytest.raises(ValueError, match=r"at most 2\*\*20 subsets; n = 21"):
        MultiKnapsack(torch.ones(1, 21), [3.0]).enumerate_feasible(21)
    with pytest.raises(TypeError, match="weights must be given, either at construction or to enumerate_feasible"):
        MultiKnapsack().enumerate_feasible(2, capacity=3.0)


def test_node_limit_raises_and_counts():
    """Values strongly correlated with the weights: the hard case of branch and bound."""
    rng = np.random.default_rng(0)
    weights = rng.uniform(1.0, 10.0, (2, 30))
    capacity = weights.sum(1) / 2
    theta = torch.from_numpy(weights.mean(0) + 2.0 + rng.uniform(0.0, 0.01, 30))
    solver = MultiKnapsack(weights, capacity)
    z = solver(theta)
    assert solver.last_num_nodes > 1000
    with pytest.raises(ValueError, match=r"needed more than max_nodes = 1000 nodes for instance 0 of the batch \(index "
                                         r"\(\) in the batch shape \(\), n = 30 items\)"):
        MultiKnapsack(weights, capacity, max_nodes=1000)(theta)
    check_maximal(z.numpy(), theta.numpy(), weights, capacity)
    ours, theirs = float(z @ theta), float(MILP(A_ub=weights, b_ub=capacity)(theta) @ theta)
    assert theirs - 1e-9 <= ours <= theirs * (1 + 1e-4)  # HiGHS's default relative gap is 1e-4


# ---------------------------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize(
    ("weights", "capacity", "error", "pattern"),
    [
        (torch.tensor([[1.0, -2.0, 3.0]]), [3.0], ValueError,
         r"weights must be >= 0; got a minimum of -2.0 in a tensor of shape \(1, 3\)"),
        (torch.tensor([[1.0, float("nan"), 3.0]]), [3.0], ValueError,
         r"weights must be finite; got 1 NaN and 0 infinite values in a tensor of shape \(1, 3\)"),
        (np.array([[1.0, np.inf, 3.0]]), [3.0], ValueError, "weights must be finite; got 0 NaN and 1 infinite"),
        (torch.tensor([[True, False, True]]), [3.0], TypeError, "weights must be a tensor of real numbers; got dtype"),
        ([["a", "b", "c"]], [3.0], TypeError, "weights must be real numbers"),
        (torch.tensor([1.0, 2.0, 3.0 + 1j]), [3.0], TypeError, "weights must be a tensor of real numbers"),
        (torch.tensor(3.0), [3.0], ValueError, "weights must have at least one dimension"),
        (torch.zeros(0, 3), [3.0], ValueError, r"weights must have at least one resource row \(d >= 1\)"),
        (torch.ones(2, 2), [3.0, 3.0], ValueError,
         r"weights must have n = 3 entries in its last dimension.*got shape \(2, 2\)"),
        (torch.ones(5, 2, 3), [3.0, 3.0], ValueError,
         r"weights given per instance .* broadcastable to \[\*theta.shape\[:-1\], d, n\] = \[2, 2, 3\]"),
        (torch.ones(2, 3), [3.0, -1.0], ValueError, "capacity must be >= 0; got a minimum of -1.0"),
        (torch.ones(2, 3), [3.0, float("nan")], ValueError, "capacity must be finite; got 1 NaN"),
        (torch.ones(2, 3), [3.0, 3.0, 3.0], ValueError,
         r"capacity must have d = 2 entries in its last dimension \(one per row of weights\)"),
        (torch.ones(2, 3), torch.ones(3, 2), ValueError,
         r"capacity given per instance .* broadcastable to \[\*theta.shape\[:-1\], d\] = \[2, 2\]"),
        (torch.ones(2, 3), "big", TypeError, "capacity must be real numbers"),
    ],
)
def test_bad_weights_and_capacity(weights, capacity, error, pattern):
    with pytest.raises(error, match=pattern):
        MultiKnapsack()(torch.zeros(2, 3), weights, capacity)


def test_bad_theta_and_construction_checks():
    solver = MultiKnapsack(torch.ones(2, 3), [1.0, 1.0])
    with pytest.raises(ValueError, match=r"theta must be finite; got 1 NaN"):
        solver(torch.tensor([1.0, float("nan"), 0.0]))
    with pytest.raises(TypeError, match="theta must have a floating-point dtype"):
        solver(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="weights must be >= 0"):
        MultiKnapsack([[-1.0]], [1.0])
    with pytest.raises(ValueError, match=r"tolerance must be a finite number >= 0; got -1"):
        MultiKnapsack(tolerance=-1)
    with pytest.raises(ValueError, match="max_nodes must be >= 1"):
        MultiKnapsack(max_nodes=0)
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        MultiKnapsack(num_threads=0)


def test_repr():
    assert repr(MultiKnapsack()) == "MultiKnapsack()"
    assert repr(MultiKnapsack(torch.ones(2, 3), [1.0, 2.0], num_threads=2)) == (
        "MultiKnapsack(weights=<tensor of shape (2, 3)>, capacity=[1.0, 2.0], num_threads=2)")
    assert repr(MultiKnapsack(tolerance=0.0, max_nodes=5)) == "MultiKnapsack(tolerance=0.0, max_nodes=5)"


def test_pickle(generator):
    import pickle

    solver = MultiKnapsack(torch.rand(2, 7, generator=generator) * 3, [4.0, 5.0])
    theta = torch.randn(6, 7, generator=generator)
    assert torch.equal(pickle.loads(pickle.dumps(solver))(theta), solver(theta))
