"""Tests of the built-in MAP oracles: Argmax and TopK."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from discograd.solvers import Argmax, Solver, SolverFn, TopK, event_dims_of

PROPERTY = settings(max_examples=150, deadline=None)


# ---------------------------------------------------------------------------------------------------------
# references and strategies


def reference_top_k(theta: torch.Tensor, k) -> torch.Tensor:
    """The documented rule, independently: the first k entries of a stable descending sort (numpy)."""
    values = theta.detach().to(torch.float64).cpu().numpy()
    n = values.shape[-1]
    flat = values.reshape(-1, n)
    k_flat = np.broadcast_to(np.asarray(k), values.shape[:-1]).reshape(-1)
    z = np.zeros_like(flat)
    for row in range(flat.shape[0]):
        order = np.argsort(-flat[row], kind="stable")
        z[row, order[: k_flat[row]]] = 1.0
    return torch.from_numpy(z.reshape(values.shape)).to(theta.dtype)


@st.composite
def thetas(draw, max_n: int = 8, min_n: int = 1, ties: bool | None = None):
    """theta of shape [*batch, n] in float64: small integers (heavy ties) or continuous values."""
    n = draw(st.integers(min_n, max_n))
    batch_shape = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    seed = draw(st.integers(0, 2**31 - 1))
    if ties is None:
        ties = draw(st.booleans())
    generator = torch.Generator().manual_seed(seed)
    shape = batch_shape + (n,)
    if ties:
        high = draw(st.integers(1, 3))
        return torch.randint(-high, high + 1, shape, generator=generator).to(torch.float64)
    return torch.randn(shape, generator=generator, dtype=torch.float64)


@st.composite
def theta_and_k(draw, **kwargs):
    theta = draw(thetas(**kwargs))
    return theta, draw(st.integers(0, theta.shape[-1]))


def loop_solve(solver, theta, *args):
    batch_shape = theta.shape[:-1]
    out = torch.empty_like(theta)
    for index in itertools.product(*map(range, batch_shape)):
        out[index] = solver(theta[index], *args)
    return out


# ---------------------------------------------------------------------------------------------------------
# property tests: TopK


@PROPERTY
@given(theta_and_k())
def test_topk_matches_stable_sort_rule(case):
    theta, k = case
    z = TopK(k)(theta)
    assert torch.equal(z, reference_top_k(theta, k))


@PROPERTY
@given(theta_and_k())
def test_topk_feasible(case):
    theta, k = case
    z = TopK()(theta, k)
    assert ((z == 0) | (z == 1)).all()
    assert (z.sum(-1) == k).all()


@PROPERTY
@given(theta_and_k())
def test_topk_optimal_against_enumeration(case):
    theta, k = case
    solver = TopK(k)
    states = solver.enumerate_feasible(theta.shape[-1], dtype=theta.dtype)
    objective = (solver(theta) * theta).sum(-1)
    best = (theta @ states.T).amax(-1)
    torch.testing.assert_close(objective, best, rtol=0, atol=1e-12)


@PROPERTY
@given(theta_and_k())
def test_topk_batch_equals_loop(case):
    theta, k = case
    solver = TopK(k)
    assert torch.equal(solver(theta), loop_solve(solver, theta))


@PROPERTY
@given(theta_and_k(ties=False), st.data())
def test_topk_permutation_equivariant(case, data):
    theta, k = case
    permutation = torch.tensor(data.draw(st.permutations(range(theta.shape[-1]))), dtype=torch.long)
    solver = TopK(k)
    assert torch.equal(solver(theta[..., permutation]), solver(theta)[..., permutation])


@PROPERTY
@given(theta_and_k(ties=True), st.sampled_from([0.25, 1.0, 2.0, 3.0, 1024.0]), st.integers(-5, 5))
def test_topk_invariant_to_positive_scale_and_shift(case, scale, shift):
    # integer-valued theta: the affine map is exact in float64, so even the tie structure is unchanged
    theta, k = case
    solver = TopK(k)
    assert torch.equal(solver(scale * theta + shift), solver(theta))


@PROPERTY
@given(thetas(), st.data())
def test_topk_per_instance_k(theta, data):
    n = theta.shape[-1]
    batch_shape = theta.shape[:-1]
    # any shape broadcastable to the batch shape: drop leading dims, set some to 1
    kept = data.draw(st.integers(0, len(batch_shape)))
    k_shape = tuple(data.draw(st.sampled_from([1, size])) for size in batch_shape[len(batch_shape) - kept:])
    k = torch.tensor(data.draw(st.lists(st.integers(0, n), min_size=math.prod(k_shape), max_size=math.prod(k_shape))),
                     dtype=torch.long).reshape(k_shape)
    z = TopK()(theta, k=k)
    assert torch.equal(z, reference_top_k(theta, k.numpy()))
    assert torch.equal(z.sum(-1), k.expand(batch_shape).to(z.dtype))


# ---------------------------------------------------------------------------------------------------------
# property tests: Argmax


@PROPERTY
@given(thetas())
def test_argmax_matches_lowest_index_rule(theta):
    z = Argmax()(theta)
    assert torch.equal(z, reference_top_k(theta, 1))
    assert torch.equal(z, TopK(1)(theta))


@PROPERTY
@given(thetas())
def test_argmax_feasible_and_optimal(theta):
    solver = Argmax()
    z = solver(theta)
    states = solver.enumerate_feasible(theta.shape[-1], dtype=theta.dtype)
    assert ((z == 0) | (z == 1)).all()
    assert (z.sum(-1) == 1).all()
    assert torch.equal((z * theta).sum(-1), (theta @ states.T).amax(-1))


@PROPERTY
@given(thetas())
def test_argmax_batch_equals_loop(theta):
    solver = Argmax()
    assert torch.equal(solver(theta), loop_solve(solver, theta))


@PROPERTY
@given(thetas(ties=False), st.data())
def test_argmax_permutation_equivariant(theta, data):
    permutation = torch.tensor(data.draw(st.permutations(range(theta.shape[-1]))), dtype=torch.long)
    solver = Argmax()
    assert torch.equal(solver(theta[..., permutation]), solver(theta)[..., permutation])


@PROPERTY
@given(thetas(ties=True), st.sampled_from([0.25, 1.0, 3.0, 1024.0]), st.integers(-5, 5))
def test_argmax_invariant_to_positive_scale_and_shift(theta, scale, shift):
    solver = Argmax()
    assert torch.equal(solver(scale * theta + shift), solver(theta))


# ---------------------------------------------------------------------------------------------------------
# examples: tie-breaking, shapes, dtypes, k handling


def test_documented_tie_breaking_examples():
    theta = torch.tensor([[0.5, 2.0, 1.0, 2.0], [1.0, 1.0, 1.0, 1.0], [3.0, 1.0, 3.0, 3.0]])
    assert TopK(2)(theta).tolist() == [[0, 1, 0, 1], [1, 1, 0, 0], [1, 0, 1, 0]]
    assert TopK(1)(theta).tolist() == [[0, 1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]]
    assert Argmax()(theta).tolist() == [[0, 1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]]


def test_topk_large_rows_mixing_tied_and_untied():
    # the hot path: one topk pass, then only the tied rows are resolved exactly
    generator = torch.Generator().manual_seed(0)
    theta = torch.randn(6, 5000, generator=generator)
    theta[1] = 0.0  # everything tied
    theta[3, 100:200] = theta[3].max() + 1.0  # 100 tied maxima, k = 7 of them
    theta[4, ::2] = 2.0  # half tied at the threshold
    for k in (1, 7, 1000, 4999):
        z = TopK(k)(theta)
        assert torch.equal(z, reference_top_k(theta, k))
    assert TopK(7)(theta)[3].nonzero().squeeze(-1).tolist() == list(range(100, 107))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("solver", [Argmax(), TopK(3)], ids=repr)
def test_dtype_and_shape_preserved(solver, dtype):
    generator = torch.Generator().manual_seed(1)
    # small integers are exact in every dtype, so the result must equal the float64 one (ties included)
    theta64 = torch.randint(-3, 4, (2, 3, 7), generator=generator).to(torch.float64)
    theta = theta64.to(dtype)
    z = solver(theta)
    assert z.shape == theta.shape and z.dtype == dtype and z.device == theta.device
    assert torch.equal(z.to(torch.float64), solver(theta64))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_topk_counts_exact_in_low_precision_for_long_rows(dtype):
    # 0/1 sums over 5000 entries are not exact in float16/bfloat16 arithmetic
    theta = torch.zeros(2, 5000, dtype=dtype)
    z = TopK(4097)(theta)
    assert torch.equal(z.to(torch.float64), reference_top_k(theta.double(), 4097))


@pytest.mark.parametrize("solver", [Argmax(), TopK(2)], ids=repr)
def test_one_dimensional_theta(solver):
    theta = torch.tensor([0.3, -1.0, 2.0, 0.5])
    z = solver(theta)
    assert z.shape == (4,)
    assert torch.equal(z, solver(theta[None])[0])


@pytest.mark.parametrize("solver", [Argmax(), TopK(2)], ids=repr)
def test_non_contiguous_and_empty_batch(solver):
    theta = torch.randn(5, 6, generator=torch.Generator().manual_seed(2))
    transposed = theta.T  # [6, 5], not contiguous
    assert torch.equal(solver(transposed), solver(transposed.contiguous()))
    empty = torch.empty(0, 3, 6)
    assert solver(empty).shape == (0, 3, 6)


@pytest.mark.parametrize("solver", [Argmax(), TopK(2)], ids=repr)
def test_no_autograd_and_theta_untouched(solver):
    theta = torch.randn(3, 5, requires_grad=True)
    before = theta.detach().clone()
    z = solver(theta)
    assert z.grad_fn is None and not z.requires_grad
    assert torch.equal(theta.detach(), before)


def test_topk_k_zero_and_k_n():
    theta = torch.randn(2, 5)
    assert torch.equal(TopK(0)(theta), torch.zeros(2, 5))
    assert torch.equal(TopK(5)(theta), torch.ones(2, 5))
    assert TopK(0)(torch.empty(3, 0)).shape == (3, 0)
    assert torch.equal(TopK()(theta, k=torch.tensor([0, 5])), torch.stack([torch.zeros(5), torch.ones(5)]))
    assert torch.equal(TopK()(theta, k=torch.zeros(2, dtype=torch.long)), torch.zeros(2, 5))


def test_topk_per_call_k_overrides_construction():
    theta = torch.randn(4, 6)
    solver = TopK(2)
    assert (solver(theta).sum(-1) == 2).all()
    assert (solver(theta, 3).sum(-1) == 3).all()
    assert (solver(theta, k=4).sum(-1) == 4).all()
    assert (solver(theta, k=np.int64(1)).sum(-1) == 1).all()
    assert (solver(theta, k=torch.tensor(5)).sum(-1) == 5).all()  # 0-dim tensor: one k for all
    assert solver.k == 2


def test_topk_per_instance_k_int32_and_broadcast():
    theta = torch.randn(2, 3, 6)
    k = torch.tensor([1, 4, 6], dtype=torch.int32)  # broadcast over the first batch dim
    z = TopK()(theta, k=k)
    assert torch.equal(z.sum(-1), k.expand(2, 3).to(z.dtype))
    assert torch.equal(z, reference_top_k(theta, k.numpy()))


def test_repr():
    assert repr(TopK(3)) == "TopK(k=3)"
    assert repr(TopK()) == "TopK(k=None)"
    assert repr(Argmax()) == "Argmax()"


def test_solver_types():
    for solver in (Argmax(), TopK(2)):
        assert isinstance(solver, Solver) and isinstance(solver, SolverFn)
        assert event_dims_of(solver) == 1
    assert event_dims_of(lambda theta: theta) == 1


# ---------------------------------------------------------------------------------------------------------
# enumerate_feasible


def test_topk_enumerate_feasible_lexicographic():
    states = TopK(2).enumerate_feasible(4, dtype=torch.float64)
    expected = [[1.0 if i in subset else 0.0 for i in range(4)] for subset in itertools.combinations(range(4), 2)]
    assert states.dtype == torch.float64
    assert states.tolist() == expected
    assert TopK(5).enumerate_feasible(10).shape == (252, 10)
    assert torch.equal(TopK(0).enumerate_feasible(3), torch.zeros(1, 3))
    assert torch.equal(TopK(3).enumerate_feasible(3), torch.ones(1, 3))
    assert TopK().enumerate_feasible(5, k=1).tolist() == torch.eye(5).tolist()


def test_topk_enumerate_feasible_limits():
    with pytest.raises(ValueError, match=r"at most 10\*\*6 states"):
        TopK(12).enumerate_feasible(25)
    with pytest.raises(TypeError, match="k must be given"):
        TopK().enumerate_feasible(5)
    with pytest.raises(ValueError, match="k must satisfy 0 <= k <= n = 3"):
        TopK(4).enumerate_feasible(3)


def test_argmax_enumerate_feasible():
    assert torch.equal(Argmax().enumerate_feasible(4, dtype=torch.float64), torch.eye(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="n must be >= 1"):
        Argmax().enumerate_feasible(0)


# ---------------------------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize("solver", [Argmax(), TopK(1)], ids=repr)
@pytest.mark.parametrize("bad, error, pattern", [
    (torch.tensor([1.0, float("nan"), 0.0]), ValueError, "theta must be finite; got 1 NaN"),
    (torch.tensor([1.0, float("inf")]), ValueError, "theta must be finite"),
    (torch.tensor(1.0), ValueError, "theta must have at least 1 dimension"),
    (torch.tensor([1, 2, 3]), TypeError, "theta must have a floating-point dtype"),
    ([1.0, 2.0], TypeError, "theta must be a torch.Tensor"),
], ids=["nan", "inf", "0-dim", "int-dtype", "list"])
def test_bad_theta(solver, bad, error, pattern):
    with pytest.raises(error, match=pattern):
        solver(bad)


def test_argmax_empty_last_dim():
    with pytest.raises(ValueError, match="theta must have a non-empty last dimension"):
        Argmax()(torch.empty(2, 0))


@pytest.mark.parametrize("k, error, pattern", [
    (6, ValueError, r"k must satisfy 0 <= k <= n = 5"),
    (-1, ValueError, r"k must satisfy 0 <= k <= n = 5"),
    (2.0, TypeError, "k must be an integer"),
    (True, TypeError, "k must be an integer"),
    ("2", TypeError, "k must be an integer"),
    (torch.tensor([1.0, 2.0]), TypeError, "k must be an integer or a tensor with an integer dtype"),
    (torch.tensor([True, False]), TypeError, "k must be an integer or a tensor with an integer dtype"),
    (torch.tensor([1, 6]), ValueError, r"k must satisfy 0 <= k <= n = 5 .* \[1, 6\]"),
    (torch.tensor([-1, 2]), ValueError, r"k must satisfy 0 <= k <= n = 5"),
    (torch.tensor([1, 2, 3]), ValueError, r"k must be an int or a tensor broadcastable to the batch shape"),
    (torch.ones(3, 2, dtype=torch.long), ValueError, r"broadcastable to the batch shape .*\(2,\)"),
    (torch.tensor(7), ValueError, r"k must satisfy 0 <= k <= n = 5"),
], ids=["k>n", "k<0", "float", "bool", "str", "float-tensor", "bool-tensor", "tensor>n", "tensor<0",
        "wrong-shape", "too-many-dims", "0-dim>n"])
def test_topk_bad_k(k, error, pattern):
    with pytest.raises(error, match=pattern):
        TopK()(torch.randn(2, 5), k=k)


def test_topk_missing_or_bad_construction_k():
    with pytest.raises(TypeError, match="k must be given"):
        TopK()(torch.randn(2, 5))
    with pytest.raises(ValueError, match="k must be >= 0"):
        TopK(-1)
    with pytest.raises(TypeError, match="k must be an integer"):
        TopK(1.5)


# ---------------------------------------------------------------------------------------------------------
# CUDA


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_cuda_matches_cpu(dtype):
    generator = torch.Generator().manual_seed(3)
    theta = torch.randint(-2, 3, (16, 50), generator=generator).to(dtype)  # heavy ties
    theta[::2] = torch.randn(8, 50, generator=generator).to(dtype)
    k = torch.randint(0, 51, (16,), generator=generator)
    for solver, args in [(Argmax(), ()), (TopK(7), ()), (TopK(), (k,))]:
        z = solver(theta.cuda(), *(a.cuda() for a in args))
        assert z.device.type == "cuda" and z.dtype == dtype
        assert torch.equal(z.cpu(), solver(theta, *args))
