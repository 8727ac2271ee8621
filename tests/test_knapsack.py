"""Knapsack: the documented tie rule and optimality against brute force, optimality against scipy's MILP,
weights and capacities shared or per instance, validation, learning."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import discograd
from discograd.solvers.knapsack import Knapsack
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


def brute_force(theta: np.ndarray, weights: np.ndarray, capacity: int) -> np.ndarray:
    """The documented rule by enumeration of all 2^n subsets: among optimal subsets that take no item with
    theta <= 0, the lexicographically largest indicator (z_0, z_1, ...). Exact for integer theta."""
    n = theta.shape[0]
    subsets = np.array(list(itertools.product((1, 0), repeat=n)), dtype=np.int64).reshape(2**n, n)  # lex. descending
    allowed = (subsets @ weights <= capacity) & ~((subsets == 1) & (theta <= 0)).any(axis=1)
    candidates = subsets[allowed]
    values = candidates @ theta
    return candidates[int(np.argmax(values))]  # argmax returns the first, i.e. lexicographically largest


@st.composite
def instances(draw, max_n: int = 8, per_instance: bool | None = None, ties: bool | None = None):
    """(theta [B, n] float64, weights [n] or [B, n] int64, capacity int or [B] int64)."""
    n = draw(st.integers(0, max_n))
    batch = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if ties is None:
        ties = draw(st.booleans())
    if per_instance is None:
        per_instance = draw(st.booleans())
    theta = rng.integers(-2, 4, (batch, n)).astype(np.float64) if ties else rng.normal(size=(batch, n))
    max_weight = draw(st.integers(0, 6))
    weights = rng.integers(0, max_weight + 1, (batch, n) if per_instance else (n,))
    capacity = rng.integers(0, 3 * max_weight + 2, batch) if per_instance else int(rng.integers(0, 3 * max_weight + 2))
    if not isinstance(capacity, int):
        capacity = torch.from_numpy(capacity)
    return torch.from_numpy(theta), torch.from_numpy(weights), capacity


def per_row(weights: torch.Tensor, capacity, batch: int):
    w = weights.expand(batch, weights.shape[-1]).numpy()
    c = np.broadcast_to(np.asarray(capacity), (batch,))
    return w, c


def milp_objective(theta: np.ndarray, weights: np.ndarray, capacity: int) -> float:
    optimize = pytest.importorskip("scipy.optimize")
    n = theta.shape[0]
    result = optimize.milp(-theta, integrality=np.ones(n), bounds=optimize.Bounds(0, 1),
                           constraints=optimize.LinearConstraint(weights[None].astype(np.float64), -np.inf, capacity),
                           options={"mip_rel_gap": 0.0})
    assert result.success, result.message
    return -float(result.fun)


# ---------------------------------------------------------------------------------------------------------
# the rule, optimality and feasibility


@PROPERTY
@given(instances(max_n=8))
def test_matches_brute_force_rule(case):
    theta, weights, capacity = case
    z = Knapsack()(theta, weights, capacity)
    w, c = per_row(weights, capacity, theta.shape[0])
    for b in range(theta.shape[0]):
        reference = brute_force(theta[b].numpy(), w[b], int(c[b]))
        if bool((theta[b] == theta[b].round()).all()):  # integer values: exact ties, the rule decides
            np.testing.assert_array_equal(z[b].numpy(), reference)
        assert z[b].numpy() @ w[b] <= c[b]
        assert bool((z[b][theta[b] <= 0] == 0).all())
        np.testing.assert_allclose(z[b].numpy() @ theta[b].numpy(), reference @ theta[b].numpy(), rtol=0, atol=1e-9)


@PROPERTY
@given(instances(max_n=12, per_instance=False))
def test_feasible_and_optimal_against_enumeration(case):
    theta, weights, capacity = case
    solver = Knapsack(weights, capacity)
    states = solver.enumerate_feasible(theta.shape[-1], dtype=theta.dtype)
    check_feasible(solver, theta, states)
    check_optimal(solver, theta, states, atol=1e-9)


@pytest.mark.parametrize(("n", "capacity", "max_weight"), [(20, 40, 10), (40, 100, 12), (60, 500, 40), (30, 0, 5)])
def test_optimal_objective_equals_milp(n, capacity, max_weight):
    rng = np.random.default_rng(n + capacity)
    theta = rng.normal(size=(6, n))
    weights = rng.integers(0, max_weight + 1, (6, n))
    z = Knapsack()(torch.from_numpy(theta), torch.from_numpy(weights), capacity).numpy()
    for b in range(6):
        assert z[b] @ weights[b] <= capacity
        best = milp_objective(theta[b], weights[b], capacity)
        np.testing.assert_allclose(z[b] @ theta[b], best, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("n", [1, 4, 7])
def test_check_solver(n):
    weights = torch.arange(n) % 3 + 1
    report = check_solver(Knapsack(weights, capacity=n), n)
    assert report.num_states == Knapsack(weights, n).enumerate_feasible(n).shape[0]


def test_documented_examples():
    solver = Knapsack(weights=[3, 4, 2, 5], capacity=7)
    assert solver(torch.tensor([4.0, 5.0, 3.0, -1.0])).tolist() == [1, 1, 0, 0]
    z = solver(torch.tensor([[2.0, 2.0, 2.0, 2.0], [1.0, 0.0, 2.0, 9.0]]), capacity=torch.tensor([5, 7]))
    assert z.tolist() == [[1, 0, 1, 0], [0, 0, 1, 1]]


def test_special_items_and_capacities():
    solver = Knapsack()
    theta = torch.tensor([3.0, 0.0, -1.0, 2.0, 5.0])
    weights = torch.tensor([0, 0, 0, 4, 4])
    # weight-0 items are taken iff their value is positive; zero and negative values never
    assert solver(theta, weights, 0).tolist() == [1, 0, 0, 0, 0]
    assert solver(theta, weights, 4).tolist() == [1, 0, 0, 0, 1]
    # capacity above the total weight: every positive item
    assert solver(theta, weights, 10**9).tolist() == [1, 0, 0, 1, 1]
    # minimisation of a cost: theta = -cost takes only the negative-cost items that fit
    assert solver(-theta, weights, 10).tolist() == [0, 0, 1, 0, 0]
    # all tied: the lower-index items win
    assert solver(torch.ones(5), torch.ones(5, dtype=torch.int64), 2).tolist() == [1, 1, 0, 0, 0]


# ---------------------------------------------------------------------------------------------------------
# weights and capacity: construction, per call, per instance


def test_per_instance_equals_loop(generator):
    theta = torch.randn(4, 3, 9, generator=generator, dtype=torch.float64)
    weights = torch.randint(0, 6, (4, 3, 9), generator=generator)
    capacity = torch.randint(0, 20, (4, 3), generator=generator)
    z = Knapsack()(theta, weights, capacity)
    for i, j in itertools.product(range(4), range(3)):
        assert torch.equal(Knapsack(weights[i, j], int(capacity[i, j]))(theta[i, j]), z[i, j])
    # broadcasting: weights [3, 9] over the leading batch dimension, capacity [4, 1]
    z = Knapsack()(theta, weights[0], capacity[:, :1])
    for i, j in itertools.product(range(4), range(3)):
        assert torch.equal(Knapsack(weights[0, j], int(capacity[i, 0]))(theta[i, j]), z[i, j])


def test_per_call_arguments_win_and_missing_ones_raise(generator):
    theta = torch.randn(5, 6, generator=generator)
    weights = torch.randint(1, 5, (6,), generator=generator)
    solver = Knapsack(weights, 3)
    assert torch.equal(solver(theta, capacity=8), Knapsack(weights, 8)(theta))
    ones = torch.ones(6, dtype=torch.int32)
    assert torch.equal(solver(theta, ones), Knapsack(ones.long(), 3)(theta))
    assert torch.equal(solver(theta, capacity=torch.tensor(8)), Knapsack(weights, 8)(theta))
    with pytest.raises(TypeError, match=r"weights must be given, either at construction \(Knapsack\(weights, capac"):
        Knapsack(capacity=3)(theta)
    with pytest.raises(TypeError, match="capacity must be given"):
        Knapsack(weights)(theta)


def test_per_instance_weights_inside_imle(generator):
    theta = torch.randn(4, 7, generator=generator, requires_grad=True)
    weights = torch.randint(1, 5, (4, 7), generator=generator)
    capacity = torch.randint(3, 10, (4,), generator=generator)
    layer = discograd.imle(Knapsack(), num_samples=3, generator=torch.Generator().manual_seed(0))
    z = layer(theta, weights=discograd.per_instance(weights), capacity=discograd.per_instance(capacity))
    assert z.shape == (3, 4, 7)
    assert bool(((z * weights).sum(-1) <= capacity).all())
    z.sum().backward()
    assert theta.grad is not None and theta.grad.shape == (4, 7)


# ---------------------------------------------------------------------------------------------------------
# the batch contract


@PROPERTY
@given(instances(max_n=10, per_instance=False))
def test_batch_equals_loop_and_deterministic(case):
    theta, weights, capacity = case
    solver = Knapsack(weights, capacity)
    check_batch_equals_loop(solver, theta)
    check_deterministic(solver, theta)


def test_result_independent_of_threads(generator):
    theta = torch.randint(-2, 5, (600, 40), generator=generator).to(torch.float32)
    theta[::2] += torch.rand(300, 40, generator=generator)
    weights = torch.randint(0, 30, (600, 40), generator=generator)
    capacity = torch.randint(0, 400, (600,), generator=generator)
    single = Knapsack(num_threads=1)(theta, weights, capacity)
    for num_threads in (2, 4):
        assert torch.equal(Knapsack(num_threads=num_threads)(theta, weights, capacity), single)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtype_shape_and_contract(dtype, generator):
    theta = torch.randn(2, 3, 8, generator=generator).to(dtype)
    solver = Knapsack(torch.arange(8) % 4, 6)
    z = check_output_contract(solver, theta)
    assert z.dtype == dtype and torch.equal(z.to(torch.float64), solver(theta.to(torch.float64)))


def test_no_batch_non_contiguous_and_empty(generator):
    base = torch.randn(6, 4, generator=generator)
    solver = Knapsack([1, 2, 3, 4, 5, 6], 7)
    view = base.T
    assert torch.equal(solver(view), solver(view.contiguous()))
    assert solver(torch.randn(0, 6)).shape == (0, 6)
    assert Knapsack([], 3)(torch.randn(4, 0)).shape == (4, 0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_in_cuda_out(dtype, generator):
    theta = torch.randn(5, 12, generator=generator, dtype=dtype)
    weights = torch.randint(0, 5, (5, 12), generator=generator)
    z = Knapsack()(theta.cuda(), weights.cuda(), torch.full((5,), 9).cuda())
    assert z.device.type == "cuda" and z.dtype == dtype
    assert torch.equal(z.cpu(), Knapsack()(theta, weights, 9))


# ---------------------------------------------------------------------------------------------------------
# invariances (continuous theta for permutations: no ties)


@PROPERTY
@given(instances(max_n=10), st.floats(0.01, 100.0))
def test_invariant_to_positive_scale(case, scale):
    theta, weights, capacity = case
    z = Knapsack()(theta, weights, capacity)
    assert torch.equal(Knapsack()(theta * 4.0, weights, capacity), z)  # exact: ties stay ties
    if not bool((theta == theta.round()).all()):
        assert torch.equal(Knapsack()(theta * scale, weights, capacity), z)


@PROPERTY
@given(instances(max_n=10, per_instance=False, ties=False), st.data())
def test_permutation_equivariant(case, data):
    theta, weights, capacity = case
    perm = torch.tensor(data.draw(st.permutations(range(theta.shape[-1]))), dtype=torch.int64)
    z = Knapsack(weights, capacity)(theta)
    assert torch.equal(Knapsack(weights[perm], capacity)(theta[..., perm]), z[..., perm])


# ---------------------------------------------------------------------------------------------------------
# enumerate_feasible


def test_enumerate_feasible():
    states = Knapsack([1, 2, 3], 3).enumerate_feasible(3, dtype=torch.float64)
    assert states.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [1, 1, 0]]
    assert Knapsack().enumerate_feasible(2, weights=[5, 5], capacity=torch.tensor(4)).tolist() == [[0, 0]]
    assert Knapsack([], 0).enumerate_feasible(0).shape == (1, 0)
    with pytest.raises(ValueError, match=r"weights must have shape \(4,\) to enumerate subsets of n = 4 items"):
        Knapsack([1, 2, 3], 3).enumerate_feasible(4)
    with pytest.raises(ValueError, match=r"capacity must be a single integer to enumerate subsets"):
        Knapsack([1, 2], torch.tensor([1, 2])).enumerate_feasible(2)
    with pytest.raises(ValueError, match=r"at most 2\*\*20 subsets; n = 21"):
        Knapsack([1] * 21, 3).enumerate_feasible(21)
    with pytest.raises(TypeError, match="weights must be given, either at construction or to enumerate_feasible"):
        Knapsack().enumerate_feasible(2, capacity=3)


# ---------------------------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize(
    ("weights", "capacity", "error", "pattern"),
    [
        (torch.tensor([1.0, 2.0, 3.0]), 3, TypeError,
         r"weights must be a tensor with an integer dtype.*got dtype torch.float32"),
        ([1.5, 2.0, 3.0], 3, TypeError, "weights must be integers"),
        (torch.tensor([True, False, True]), 3, TypeError, "weights must be a tensor with an integer dtype"),
        (torch.tensor([1, -2, 3]), 3, ValueError,
         r"weights must be >= 0; got a minimum of -2 in a tensor of shape \(3,\)"),
        (torch.tensor(3), 3, ValueError, "weights must have at least one dimension"),
        (torch.tensor([1, 2]), 3, ValueError,
         r"weights must have n = 3 entries in its last dimension.*got shape \(2,\)"),
        (torch.ones(5, 3, dtype=torch.int64), 3, ValueError,
         r"weights must be \[n\] or broadcastable to theta's shape \(2, 3\)"),
        (torch.tensor([1, 2, 3]), -1, ValueError, "capacity must be >= 0; got -1"),
        (torch.tensor([1, 2, 3]), 2.5, TypeError, "capacity must be an integer; got float"),
        (torch.tensor([1, 2, 3]), torch.tensor([1.0, 2.0]), TypeError,
         "capacity must be an integer or a tensor with an integer dtype"),
        (torch.tensor([1, 2, 3]), torch.tensor([1, -2]), ValueError, "capacity must be >= 0; got a minimum of -2"),
        (torch.tensor([1, 2, 3]), torch.tensor([1, 2, 3]), ValueError,
         r"capacity must be an int or a tensor broadcastable to the batch shape theta.shape\[:-1\] = \(2,\)"),
    ],
)
def test_bad_weights_and_capacity(weights, capacity, error, pattern):
    with pytest.raises(error, match=pattern):
        Knapsack()(torch.zeros(2, 3), weights, capacity)


def test_table_size_limit_and_construction_checks():
    with pytest.raises(ValueError, match=r"n \* \(capacity \+ 1\) = 3 \* 2001 table cells.*max_table_cells = 1000"):
        Knapsack([1000, 1000, 1000], 2000, max_table_cells=1000)(torch.ones(3))
    with pytest.raises(ValueError, match=r"= 3 \* 3001 table cells for one instance \(its capacity clipped"):
        Knapsack([1000, 1000, 1000], 5000, max_table_cells=1000)(torch.ones(3))
    # the capacity is clipped to the total weight of the positive items before the check
    assert Knapsack([1000, 1000, 1000], 5000, max_table_cells=1000)(-torch.ones(3)).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="max_table_cells must be >= 1"):
        Knapsack(max_table_cells=0)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        Knapsack([-1], 1)
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        Knapsack(num_threads=0)


def test_repr():
    assert repr(Knapsack()) == "Knapsack()"
    assert repr(Knapsack([1, 2], 3, num_threads=2)) == "Knapsack(weights=[1, 2], capacity=3, num_threads=2)"
    assert repr(Knapsack(torch.ones(20, dtype=torch.int64), torch.tensor([4]))) == (
        "Knapsack(weights=<tensor of shape (20,)>, capacity=<tensor of shape (1,)>)")


# ---------------------------------------------------------------------------------------------------------
# learning through the solver with I-MLE


def test_learn_item_values_from_observed_solutions():
    """A linear model of item features, trained with Hamming loss on observed optimal knapsacks; weights and
    capacities differ per instance (passed with discograd.per_instance).

    Measured: 87-97.5% of held-out knapsacks of 10 items exactly right after 60 Adam steps (data seeds
    0-4), from under 10% at initialisation, and cosine(w, w_true) > 0.996; asserted: 75% and 0.98.
    """
    generator = torch.Generator().manual_seed(0)
    n, d = 10, 4
    w_true = torch.randn(d, generator=generator)
    x_train, x_test = torch.randn(100, n, d, generator=generator), torch.randn(200, n, d, generator=generator)
    weights_train = torch.randint(1, 7, (100, n), generator=generator)
    weights_test = torch.randint(1, 7, (200, n), generator=generator)
    capacity_train = torch.randint(5, 20, (100,), generator=generator)
    capacity_test = torch.randint(5, 20, (200,), generator=generator)
    solver = Knapsack()
    z_train = solver(x_train @ w_true, weights_train, capacity_train)
    z_test = solver(x_test @ w_true, weights_test, capacity_test)

    def exact_rate(w):
        return (solver(x_test @ w, weights_test, capacity_test) == z_test).all(-1).float().mean().item()

    w = torch.zeros(d, requires_grad=True)
    assert exact_rate(w.detach()) < 0.1
    layer = discograd.imle(solver, noise=discograd.Gumbel(), target=discograd.PerturbedTarget(step_size=1.0),
                           num_samples=5, generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.Adam([w], lr=0.1)
    for _ in range(60):
        optimizer.zero_grad()
        z = layer(x_train @ w, discograd.per_instance(weights_train), discograd.per_instance(capacity_train))
        ((z - z_train) ** 2).sum().backward()
        optimizer.step()
    with torch.no_grad():
        exact = exact_rate(w)
        cosine = torch.nn.functional.cosine_similarity(w, w_true, dim=0).item()
    assert exact >= 0.75, exact
    assert cosine >= 0.98, cosine
