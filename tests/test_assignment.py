"""LinearAssignment: optimality against enumeration and scipy, the batch contract, invariances, learning.

Also covers the runtime shared by the compiled solvers (thread pool, fork safety).
"""

from __future__ import annotations

import os
import signal
import sys
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import discograd
from discograd.solvers.assignment import LinearAssignment
from discograd.testing import (
    check_batch_equals_loop,
    check_deterministic,
    check_feasible,
    check_optimal,
    check_output_contract,
    check_solver,
)

scipy_optimize = pytest.importorskip("scipy.optimize")

PROPERTY = settings(max_examples=60, deadline=None)


# ---------------------------------------------------------------------------------------------------------
# references and strategies


def scipy_objective(theta: torch.Tensor) -> np.ndarray:
    """Optimal objective of every instance by scipy.optimize.linear_sum_assignment(maximize=True)."""
    values = theta.detach().to(torch.float64).cpu().numpy()
    flat = values.reshape(-1, *values.shape[-2:])
    best = np.empty(flat.shape[0])
    for b, matrix in enumerate(flat):
        rows, cols = scipy_optimize.linear_sum_assignment(matrix, maximize=True)
        best[b] = matrix[rows, cols].sum()
    return best


def assert_is_assignment(z: torch.Tensor) -> None:
    n, m = z.shape[-2:]
    assert bool(((z == 0) | (z == 1)).all())
    assert bool((z.sum(-1) <= 1).all()) and bool((z.sum(-2) <= 1).all())
    assert bool((z.sum((-2, -1)) == min(n, m)).all())


@st.composite
def thetas(draw, max_n: int = 4, min_n: int = 1, max_batch: int = 3, ties: bool | None = None):
    """theta of shape [*batch, n, m] in float64: small integers (heavy ties) or continuous values."""
    n = draw(st.integers(min_n, max_n))
    m = draw(st.integers(min_n, max_n))
    batch_shape = tuple(draw(st.lists(st.integers(1, max_batch), max_size=2)))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if ties is None:
        ties = draw(st.booleans())
    shape = batch_shape + (n, m)
    if ties:
        high = draw(st.integers(1, 3))
        return torch.randint(-high, high + 1, shape, generator=generator).to(torch.float64)
    return torch.randn(shape, generator=generator, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------------------
# optimality and feasibility


@PROPERTY
@given(thetas(max_n=5))
def test_feasible_and_optimal_against_enumeration(theta):
    solver = LinearAssignment()
    states = solver.enumerate_feasible(*theta.shape[-2:], dtype=theta.dtype)
    check_feasible(solver, theta, states)
    check_optimal(solver, theta, states, atol=1e-9)


@PROPERTY
@given(thetas(max_n=30, max_batch=4))
def test_optimal_objective_equals_scipy(theta):
    z = LinearAssignment()(theta)
    assert_is_assignment(z)
    objective = (theta * z).sum((-2, -1)).reshape(-1).numpy()
    np.testing.assert_allclose(objective, scipy_objective(theta), rtol=0, atol=1e-9)


@pytest.mark.parametrize("shape", [(20, 50, 50), (10, 20, 45), (10, 45, 20), (3, 100, 100), (8, 1, 30), (8, 30, 1)])
def test_larger_instances_against_scipy(shape, generator):
    theta = torch.randn(shape, generator=generator, dtype=torch.float64) * 10
    z = LinearAssignment()(theta)
    assert_is_assignment(z)
    np.testing.assert_allclose((theta * z).sum((-2, -1)).numpy(), scipy_objective(theta), rtol=1e-12, atol=1e-9)


def test_integer_scores_with_many_ties_against_scipy(generator):
    theta = torch.randint(0, 3, (200, 12, 12), generator=generator).to(torch.float64)
    z = LinearAssignment()(theta)
    assert_is_assignment(z)
    np.testing.assert_array_equal((theta * z).sum((-2, -1)).numpy(), scipy_objective(theta))


@pytest.mark.parametrize("event_shape", [(3, 3), (2, 4), (4, 2), (1, 3)])
def test_check_solver(event_shape):
    report = check_solver(LinearAssignment(), event_shape)
    assert report.checks == ("output_contract", "feasible", "optimal", "batch_equals_loop", "deterministic")


def test_documented_examples():
    theta = torch.tensor([[1.0, 5.0, 0.0], [4.0, 6.0, 0.0]])
    assert LinearAssignment()(theta).tolist() == [[0, 1, 0], [1, 0, 0]]
    assert LinearAssignment()(theta.T).tolist() == [[0, 1], [1, 0], [0, 0]]
    cost = torch.tensor([[1.0, 2.0], [2.0, 4.0]])  # minimum cost 2 + 2
    assert LinearAssignment()(-cost).tolist() == [[0, 1], [1, 0]]


# ---------------------------------------------------------------------------------------------------------
# the batch contract


@PROPERTY
@given(thetas(max_n=6))
def test_batch_equals_loop_and_deterministic(theta):
    check_batch_equals_loop(LinearAssignment(), theta)
    check_deterministic(LinearAssignment(), theta)


def test_result_independent_of_threads(generator):
    # 3000 instances of 10 x 10: enough work for several chunks
    theta = torch.randint(-2, 3, (3000, 10, 10), generator=generator).to(torch.float32)
    theta[::2] += torch.randn(1500, 10, 10, generator=generator)
    single = LinearAssignment(num_threads=1)(theta)
    for num_threads in (2, 3, 7):
        assert torch.equal(LinearAssignment(num_threads=num_threads)(theta), single)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtype_shape_and_contract(dtype, generator):
    theta = torch.randn(2, 3, 4, 5, generator=generator).to(dtype)
    z = check_output_contract(LinearAssignment(), theta)
    assert z.dtype == dtype and z.shape == theta.shape
    # the same values in float64 give the same z
    assert torch.equal(z.to(torch.float64), LinearAssignment()(theta.to(torch.float64)))


def test_no_batch_dimension_non_contiguous_and_empty(generator):
    theta = torch.randn(6, 4, generator=generator)
    z = LinearAssignment()(theta)
    assert z.shape == (6, 4) and bool((z.sum(0) == 1).all())
    base = torch.randn(4, 5, 5, generator=generator)
    view = base.transpose(-1, -2)
    assert not view.is_contiguous()
    assert torch.equal(LinearAssignment()(view), LinearAssignment()(view.contiguous()))
    assert LinearAssignment()(torch.randn(0, 3, 3)).shape == (0, 3, 3)
    assert torch.equal(LinearAssignment()(torch.randn(2, 0, 3)), torch.zeros(2, 0, 3))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_in_cuda_out(dtype, generator):
    theta = torch.randn(5, 6, 7, generator=generator, dtype=dtype)
    z = LinearAssignment()(theta.cuda())
    assert z.device.type == "cuda" and z.dtype == dtype
    assert torch.equal(z.cpu(), LinearAssignment()(theta))


# ---------------------------------------------------------------------------------------------------------
# invariances (continuous theta: no ties, so z must not change at all)


@PROPERTY
@given(thetas(max_n=7, ties=False), st.floats(0.01, 100.0), st.integers(-5, 5))
def test_invariant_to_positive_scale_and_shift(theta, scale, shift):
    # every feasible z has min(n, m) ones, so a constant shift adds the same amount to every objective
    z = LinearAssignment()(theta)
    assert torch.equal(LinearAssignment()(theta * scale), z)
    assert torch.equal(LinearAssignment()(theta + shift), z)


@PROPERTY
@given(thetas(max_n=7, ties=False), st.data())
def test_invariant_to_row_shifts_on_the_smaller_side(theta, data):
    n, m = theta.shape[-2:]
    z = LinearAssignment()(theta)
    shifts = torch.tensor(data.draw(st.lists(st.integers(-4, 4), min_size=max(n, m), max_size=max(n, m))),
                          dtype=theta.dtype)
    if n <= m:  # every row is matched exactly once
        assert torch.equal(LinearAssignment()(theta + shifts[:n, None]), z)
    if n >= m:  # every column is matched exactly once
        assert torch.equal(LinearAssignment()(theta + shifts[None, :m]), z)


@PROPERTY
@given(thetas(max_n=7, ties=False), st.data())
def test_permutation_equivariant(theta, data):
    n, m = theta.shape[-2:]
    rows = torch.tensor(data.draw(st.permutations(range(n))))
    cols = torch.tensor(data.draw(st.permutations(range(m))))
    z = LinearAssignment()(theta)
    permuted = LinearAssignment()(theta[..., rows, :][..., :, cols])
    assert torch.equal(permuted, z[..., rows, :][..., :, cols])


# ---------------------------------------------------------------------------------------------------------
# enumerate_feasible


@pytest.mark.parametrize(("n", "m", "count"), [(3, 3, 6), (2, 4, 12), (4, 2, 12), (1, 1, 1), (0, 3, 1), (5, 5, 120)])
def test_enumerate_feasible(n, m, count):
    states = LinearAssignment().enumerate_feasible(n, m, dtype=torch.float64)
    assert states.shape == (count, n, m)
    assert len({tuple(state.flatten().tolist()) for state in states}) == count
    assert_is_assignment(states)


def test_enumerate_feasible_order_and_default_m():
    states = LinearAssignment().enumerate_feasible(3)
    # rows follow itertools.permutations(range(3), 3): (0, 1, 2), (0, 2, 1), (1, 0, 2), ...
    assert torch.equal(states[0], torch.eye(3)) and torch.equal(states[1], torch.eye(3)[[0, 2, 1]])
    assert states.dtype == torch.float32


def test_enumerate_feasible_limit():
    with pytest.raises(ValueError, match=r"at most 10\*\*6 states.*n=10 rows to m=10 columns"):
        LinearAssignment().enumerate_feasible(10)
    with pytest.raises(ValueError, match="n must be >= 0"):
        LinearAssignment().enumerate_feasible(-1)


# ---------------------------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize(
    ("theta", "error", "pattern"),
    [
        (torch.randn(4), ValueError, r"theta must have at least 2 dimension\(s\).*got shape \(4,\)"),
        (torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), ValueError, "theta must be finite; got 1 NaN"),
        (torch.tensor([[0.0, float("inf")], [1.0, 2.0]]), ValueError, "theta must be finite; got 0 NaN and 1 infinite"),
        (torch.ones(3, 3, dtype=torch.int64), TypeError, "theta must have a floating-point dtype"),
        ([[1.0, 2.0]], TypeError, "theta must be a torch.Tensor"),
    ],
)
def test_bad_theta(theta, error, pattern):
    with pytest.raises(error, match=pattern):
        LinearAssignment()(theta)


def test_bad_num_threads():
    with pytest.raises(ValueError, match="num_threads must be >= 1; got 0"):
        LinearAssignment(num_threads=0)
    with pytest.raises(TypeError, match="num_threads must be an integer"):
        LinearAssignment(num_threads=2.0)


def test_repr():
    assert repr(LinearAssignment()) == "LinearAssignment()"
    assert repr(LinearAssignment(num_threads=2)) == "LinearAssignment(num_threads=2)"


# ---------------------------------------------------------------------------------------------------------
# the shared runtime of the compiled solvers


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs os.fork")
def test_thread_pool_survives_fork(generator):
    """A forked child (e.g. a DataLoader worker) gets a fresh pool instead of deadlocking on the parent's."""
    theta = torch.randn(3000, 10, 10, generator=generator)
    expected = LinearAssignment(num_threads=2)(theta)  # creates the parent's pool
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python >= 3.12 warns about fork with threads
        pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            signal.alarm(30)
            # as in a DataLoader worker: torch's own OpenMP pool is not fork-safe, so one torch thread
            torch.set_num_threads(1)
            code = 0 if torch.equal(LinearAssignment(num_threads=2)(theta), expected) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child status {status}"


# ---------------------------------------------------------------------------------------------------------
# learning through the solver with I-MLE


def test_learn_matching_scores_from_observed_matchings():
    """A linear model of pair features, trained with Hamming loss on observed optimal matchings.

    Measured: 95-98.5% exact matchings on held-out instances after 60 Adam steps (data seeds 0-4), from
    under 2% at initialisation, and cosine(w, w_true) > 0.999; asserted: 80% and 0.98.
    """
    generator = torch.Generator().manual_seed(0)
    n, d = 5, 4
    w_true = torch.randn(d, generator=generator)
    x_train = torch.randn(100, n, n, d, generator=generator)
    x_test = torch.randn(200, n, n, d, generator=generator)
    solver = LinearAssignment()
    z_train, z_test = solver(x_train @ w_true), solver(x_test @ w_true)

    def exact_rate(w):
        return (solver(x_test @ w) == z_test).flatten(1).all(1).float().mean().item()

    w = torch.zeros(d, requires_grad=True)
    assert exact_rate(w.detach()) < 0.02
    layer = discograd.imle(solver, noise=discograd.Gumbel(), target=discograd.PerturbedTarget(step_size=1.0),
                           num_samples=5, generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.Adam([w], lr=0.1)
    for _ in range(60):
        optimizer.zero_grad()
        z = layer(x_train @ w)  # [5, 100, n, n]
        ((z - z_train) ** 2).sum().backward()  # Hamming loss, summed over samples and instances
        optimizer.step()
    with torch.no_grad():
        cosine = torch.nn.functional.cosine_similarity(w, w_true, dim=0).item()
        exact = exact_rate(w)
    assert exact >= 0.8, exact
    assert cosine >= 0.98, cosine
