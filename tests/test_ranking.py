"""Ranking: the documented rank convention and tie rule, optimality against enumeration, invariances, learning."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import discograd
from discograd.solvers import TopK
from discograd.solvers.ranking import Ranking
from discograd.testing import (
    check_batch_equals_loop,
    check_deterministic,
    check_feasible,
    check_optimal,
    check_output_contract,
    check_solver,
)

PROPERTY = settings(max_examples=80, deadline=None)


# ---------------------------------------------------------------------------------------------------------
# references and strategies


def reference_ranking(theta: torch.Tensor, values=None) -> torch.Tensor:
    """The documented rule, independently in NumPy: the j-th entry of a stable descending sort of theta
    gets the j-th largest value."""
    scores = theta.detach().to(torch.float64).cpu().numpy()
    n = scores.shape[-1]
    if values is None:
        values = np.arange(1, n + 1, dtype=np.float64)
    values = np.broadcast_to(np.asarray(values, dtype=np.float64), scores.shape).reshape(-1, n)
    flat = scores.reshape(-1, n)
    z = np.empty_like(flat)
    for row in range(flat.shape[0]):
        order = np.argsort(-flat[row], kind="stable")
        z[row, order] = np.sort(values[row])[::-1]
    return torch.from_numpy(z.reshape(scores.shape)).to(theta.dtype)


@st.composite
def thetas(draw, max_n: int = 8, min_n: int = 1, ties: bool | None = None):
    """theta of shape [*batch, n] in float64: small integers (heavy ties) or continuous values."""
    n = draw(st.integers(min_n, max_n))
    batch_shape = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if ties is None:
        ties = draw(st.booleans())
    shape = batch_shape + (n,)
    if ties:
        high = draw(st.integers(1, 3))
        return torch.randint(-high, high + 1, shape, generator=generator).to(torch.float64)
    return torch.randn(shape, generator=generator, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------------------
# the rule, optimality and feasibility


@PROPERTY
@given(thetas(max_n=30))
def test_matches_documented_rule(theta):
    assert torch.equal(Ranking()(theta), reference_ranking(theta))


@PROPERTY
@given(thetas(max_n=6))
def test_feasible_and_optimal_against_enumeration(theta):
    solver = Ranking()
    states = solver.enumerate_feasible(theta.shape[-1], dtype=theta.dtype)
    check_feasible(solver, theta, states)
    check_optimal(solver, theta, states, atol=1e-9)


@PROPERTY
@given(thetas(max_n=6), st.data())
def test_custom_values_optimal_against_enumeration(theta, data):
    n = theta.shape[-1]
    values = data.draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))  # repeated values are allowed
    solver = Ranking(values=values)
    states = solver.enumerate_feasible(n, dtype=theta.dtype)
    check_feasible(solver, theta, states)
    check_optimal(solver, theta, states, atol=1e-9)
    assert torch.equal(solver(theta), reference_ranking(theta, values))


@PROPERTY
@given(thetas(max_n=12))
def test_top_k_consistency(theta):
    """With the shared tie rule, the entries ranked above n - k are exactly TopK(k)."""
    n = theta.shape[-1]
    z = Ranking()(theta)
    for k in range(n + 1):
        assert torch.equal((z > n - k).to(theta.dtype), TopK(k)(theta))


@PROPERTY
@given(thetas(max_n=6, ties=False))
def test_negated_scores_give_rank_one_is_best(theta):
    """Ranking()(-s) minimises <s, pi> over the permutations of (1, ..., n): blackbox-backprop's rk(s)."""
    n = theta.shape[-1]
    z = Ranking()(-theta)
    permutations = torch.tensor(list(itertools.permutations(range(1, n + 1))), dtype=theta.dtype)
    smallest = (theta.reshape(-1, n) @ permutations.T).amin(-1)
    torch.testing.assert_close((theta * z).sum(-1).reshape(-1), smallest, rtol=0, atol=1e-9)
    best_index = theta.argmax(-1, keepdim=True)
    assert bool((z.gather(-1, best_index) == 1).all())


def test_check_solver():
    assert Ranking().enumerate_feasible(5).shape == (120, 5)
    report = check_solver(Ranking(), 5)
    assert report.num_states == 120


def test_documented_examples():
    theta = torch.tensor([0.3, -1.0, 2.0, 0.3])
    assert Ranking()(theta).tolist() == [3, 1, 4, 2]
    assert Ranking()(-theta).tolist() == [3, 4, 1, 2]
    assert Ranking(values=[0.0, 0.0, 1.0, 10.0])(theta).tolist() == [1, 0, 10, 0]
    # reversing the values changes nothing: the feasible set is the same
    assert torch.equal(Ranking(values=[4, 3, 2, 1])(theta), Ranking()(theta))


# ---------------------------------------------------------------------------------------------------------
# values: per call, per instance


def test_values_per_call_and_per_instance(generator):
    theta = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    per_instance = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    z = Ranking()(theta, values=per_instance)
    assert torch.equal(z, reference_ranking(theta, per_instance))
    # the per-call values win over the construction ones
    assert torch.equal(Ranking(values=[1, 2, 3, 4, 5])(theta, per_instance), z)
    assert torch.equal(Ranking()(theta, torch.tensor([0.5, 1.5, 0.0, 2.0, 1.0])),
                       reference_ranking(theta, [0.5, 1.5, 0.0, 2.0, 1.0]))


def test_values_per_instance_inside_imle(generator):
    theta = torch.randn(4, 6, generator=generator, requires_grad=True)
    values = torch.randn(4, 6, generator=generator)
    layer = discograd.imle(Ranking(), num_samples=3, generator=torch.Generator().manual_seed(0))
    z = layer(theta, values=discograd.per_instance(values))
    assert z.shape == (3, 4, 6)
    sorted_values = values.sort(-1).values
    assert torch.equal(z.sort(-1).values, sorted_values.expand(3, 4, 6))


def test_enumerate_feasible_order_and_duplicates():
    states = Ranking().enumerate_feasible(3)
    assert states.tolist() == [list(p) for p in itertools.permutations([1.0, 2.0, 3.0])]
    repeated = Ranking(values=[0, 0, 1]).enumerate_feasible(3, dtype=torch.float64)
    assert repeated.tolist() == [[0, 0, 1], [0, 1, 0], [1, 0, 0]]
    assert Ranking().enumerate_feasible(0).shape == (1, 0)


# ---------------------------------------------------------------------------------------------------------
# the batch contract


@PROPERTY
@given(thetas(max_n=8))
def test_batch_equals_loop_and_deterministic(theta):
    check_batch_equals_loop(Ranking(), theta)
    check_deterministic(Ranking(), theta)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtype_shape_and_contract(dtype, generator):
    theta = torch.randn(2, 3, 7, generator=generator).to(dtype)
    z = check_output_contract(Ranking(), theta)
    assert z.dtype == dtype and torch.equal(z, reference_ranking(theta))


def test_no_batch_non_contiguous_and_empty(generator):
    base = torch.randn(6, 4, generator=generator)
    view = base.T
    assert torch.equal(Ranking()(view), Ranking()(view.contiguous()))
    assert Ranking()(torch.randn(0, 5)).shape == (0, 5)
    assert Ranking()(torch.randn(3, 0)).shape == (3, 0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_in_cuda_out(dtype, generator):
    theta = torch.randint(-2, 3, (5, 40), generator=generator).to(dtype)
    z = Ranking()(theta.cuda(), values=torch.arange(40.0).cuda())
    assert z.device.type == "cuda" and z.dtype == dtype
    assert torch.equal(z.cpu(), Ranking()(theta, values=torch.arange(40.0)))


# ---------------------------------------------------------------------------------------------------------
# invariances


@PROPERTY
@given(thetas(max_n=10), st.floats(0.01, 100.0), st.integers(-5, 5))
def test_invariant_to_positive_scale_shift_and_increasing_maps(theta, scale, shift):
    z = Ranking()(theta)
    assert torch.equal(Ranking()(theta * scale), z)
    assert torch.equal(Ranking()(theta + shift), z)
    assert torch.equal(Ranking()(theta**3), z)


@PROPERTY
@given(thetas(max_n=10, ties=False), st.data())
def test_permutation_equivariant(theta, data):
    perm = torch.tensor(data.draw(st.permutations(range(theta.shape[-1]))))
    assert torch.equal(Ranking()(theta[..., perm]), Ranking()(theta)[..., perm])


# ---------------------------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize(
    ("values", "theta_shape", "error", "pattern"),
    [
        ([1.0, 2.0], (3,), ValueError, r"values must have n = 3 entries in its last dimension.*got shape \(2,\)"),
        (torch.ones(2, 3), (4, 3), ValueError, r"values must be \[n\] or broadcastable to theta's shape \(4, 3\)"),
        (torch.ones(5, 3), (3,), ValueError, r"values must be \[n\] or broadcastable to theta's shape \(3,\)"),
        ([1.0, float("nan"), 2.0], (3,), ValueError, "values must be finite; got 1 NaN"),
        (torch.tensor([True, False, True]), (3,), TypeError, "values must have a real dtype"),
        (torch.tensor(2.0), (3,), ValueError, "values must have at least one dimension"),
        ("abc", (3,), TypeError, "values must be a tensor or a sequence of real numbers"),
    ],
)
def test_bad_values(values, theta_shape, error, pattern):
    with pytest.raises(error, match=pattern):
        Ranking()(torch.zeros(theta_shape), values=values)


def test_bad_theta_and_enumeration():
    with pytest.raises(ValueError, match=r"theta must have at least 1 dimension\(s\)"):
        Ranking()(torch.tensor(1.0))
    with pytest.raises(ValueError, match="theta must be finite"):
        Ranking()(torch.tensor([1.0, float("inf")]))
    with pytest.raises(ValueError, match=r"at most 10\*\*5 states; the n! = 362880 rankings of n = 9"):
        Ranking().enumerate_feasible(9)
    with pytest.raises(ValueError, match=r"values must have shape \(4,\) to enumerate rankings of n = 4"):
        Ranking(values=[1, 2, 3]).enumerate_feasible(4)


def test_repr():
    assert repr(Ranking()) == "Ranking()"
    assert repr(Ranking(values=[1, 2])) == "Ranking(values=[1.0, 2.0])"


# ---------------------------------------------------------------------------------------------------------
# learning through the solver with I-MLE


def test_learn_scores_from_observed_rankings():
    """A linear scoring model of item features, trained with a squared loss on observed rank vectors.

    Measured: 64-84% of held-out rankings of 8 items exactly right after 100 Adam steps (data seeds 0-4)
    and 98.4-99.4% of item pairs ordered correctly; asserted: 50% and 95%.
    """
    generator = torch.Generator().manual_seed(0)
    n, d = 8, 4
    w_true = torch.randn(d, generator=generator)
    x_train = torch.randn(100, n, d, generator=generator)
    x_test = torch.randn(200, n, d, generator=generator)
    solver = Ranking()
    z_train, z_test = solver(x_train @ w_true), solver(x_test @ w_true)

    w = torch.zeros(d, requires_grad=True)
    layer = discograd.imle(solver, noise=discograd.Gumbel(), target=discograd.PerturbedTarget(step_size=1.0),
                           num_samples=10, generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.Adam([w], lr=0.1)
    for _ in range(100):
        optimizer.zero_grad()
        z = layer(x_train @ w)  # [10, 100, n]
        ((z - z_train) ** 2).sum().backward()
        optimizer.step()
    with torch.no_grad():
        predicted = solver(x_test @ w)
        exact = (predicted == z_test).all(-1).float().mean().item()
        pairs_pred = torch.sign(predicted[:, :, None] - predicted[:, None, :])
        pairs_true = torch.sign(z_test[:, :, None] - z_test[:, None, :])
        pairwise = ((pairs_pred == pairs_true).float().sum() - 200 * n) / (200 * n * (n - 1))
    assert exact >= 0.5, exact
    assert pairwise.item() >= 0.95, pairwise.item()
