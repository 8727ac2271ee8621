"""SpanningTree: the documented tie rule (Kruskal), optimality against enumeration and networkx, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import discograd
from discograd.solvers.spanning_tree import SpanningTree
from discograd.testing import (
    check_batch_equals_loop,
    check_deterministic,
    check_feasible,
    check_optimal,
    check_output_contract,
    check_solver,
)

nx = pytest.importorskip("networkx")

PROPERTY = settings(max_examples=60, deadline=None)


# ---------------------------------------------------------------------------------------------------------
# references and strategies


def reference_tree(theta: torch.Tensor) -> torch.Tensor:
    """The documented rule, independently: Kruskal's algorithm over edges (i < j) sorted stably by
    decreasing score theta[i, j] + theta[j, i], with a plain union-find."""
    scores = theta.detach().to(torch.float64).cpu().numpy()
    n = scores.shape[-1]
    flat = scores.reshape(-1, n, n)
    z = np.zeros_like(flat)
    edges = [(i, j) for i in range(n) for j in range(i + 1, n)]
    for b, matrix in enumerate(flat):
        weight = matrix + matrix.T
        order = sorted(edges, key=lambda edge: -weight[edge])  # sorted() is stable: row-major among ties
        root = list(range(n))

        def find(v):
            while root[v] != v:
                v = root[v]
            return v

        for i, j in order:
            a, c = find(i), find(j)
            if a != c:
                root[a] = c
                z[b, i, j] = z[b, j, i] = 1.0
    return torch.from_numpy(z.reshape(scores.shape)).to(theta.dtype)


def networkx_objective(theta: torch.Tensor) -> np.ndarray:
    """Weight of networkx's maximum spanning tree with edge weights theta[i, j] + theta[j, i]."""
    scores = theta.detach().to(torch.float64).cpu().numpy()
    n = scores.shape[-1]
    flat = scores.reshape(-1, n, n)
    best = np.empty(flat.shape[0])
    for b, matrix in enumerate(flat):
        weight = matrix + matrix.T
        graph = nx.Graph()
        graph.add_nodes_from(range(n))
        graph.add_weighted_edges_from((i, j, weight[i, j]) for i in range(n) for j in range(i + 1, n))
        best[b] = nx.maximum_spanning_tree(graph).size(weight="weight")
    return best


def assert_is_spanning_tree(z: torch.Tensor) -> None:
    n = z.shape[-1]
    for adjacency in z.reshape(-1, n, n):
        assert torch.equal(adjacency, adjacency.T) and bool((adjacency.diagonal() == 0).all())
        assert int(adjacency.sum()) == 2 * (n - 1)
        graph = nx.from_numpy_array(adjacency.numpy())
        assert nx.is_tree(graph)


@st.composite
def thetas(draw, max_n: int = 6, min_n: int = 1, ties: bool | None = None, symmetric: bool | None = None):
    """theta of shape [*batch, n, n] in float64: small integers (heavy ties) or continuous, symmetric or not."""
    n = draw(st.integers(min_n, max_n))
    batch_shape = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if ties is None:
        ties = draw(st.booleans())
    if symmetric is None:
        symmetric = draw(st.booleans())
    shape = batch_shape + (n, n)
    if ties:
        high = draw(st.integers(1, 3))
        theta = torch.randint(-high, high + 1, shape, generator=generator).to(torch.float64)
    else:
        theta = torch.randn(shape, generator=generator, dtype=torch.float64)
    return theta + theta.transpose(-1, -2) if symmetric else theta


# ---------------------------------------------------------------------------------------------------------
# the rule, optimality and feasibility


@PROPERTY
@given(thetas(max_n=12))
def test_matches_kruskal_with_documented_tie_rule(theta):
    assert torch.equal(SpanningTree()(theta), reference_tree(theta))


@PROPERTY
@given(thetas(max_n=5))
def test_feasible_and_optimal_against_enumeration(theta):
    solver = SpanningTree()
    states = solver.enumerate_feasible(theta.shape[-1], dtype=theta.dtype)
    check_feasible(solver, theta, states)
    check_optimal(solver, theta, states, atol=1e-9)


@PROPERTY
@given(thetas(min_n=6, max_n=40))
def test_optimal_objective_equals_networkx(theta):
    z = SpanningTree()(theta)
    objective = (theta * z).sum((-2, -1)).reshape(-1).numpy()
    np.testing.assert_allclose(objective, networkx_objective(theta), rtol=1e-12, atol=1e-9)


def test_larger_instances_against_networkx(generator):
    theta = torch.rand(4, 80, 80, generator=generator, dtype=torch.float64)
    z = SpanningTree()(theta)
    assert_is_spanning_tree(z)
    np.testing.assert_allclose((theta * z).sum((-2, -1)).numpy(), networkx_objective(theta), rtol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_check_solver(n):
    report = check_solver(SpanningTree(), (n, n))
    assert report.num_states == max(1, n ** (n - 2))


def test_documented_examples():
    theta = torch.tensor([[0.0, 3.0, 1.0, 0.0], [3.0, 0.0, 2.0, 0.0], [1.0, 2.0, 0.0, 5.0], [0.0, 0.0, 5.0, 0.0]])
    expected = torch.zeros(4, 4)
    for i, j in [(0, 1), (1, 2), (2, 3)]:
        expected[i, j] = expected[j, i] = 1
    assert torch.equal(SpanningTree()(theta), expected)
    assert SpanningTree()(torch.zeros(3, 3)).tolist() == [[0, 1, 1], [1, 0, 0], [1, 0, 0]]
    # the minimum spanning tree of a cost matrix: theta = -cost
    assert torch.equal(SpanningTree()(-theta), reference_tree(-theta))


def test_uses_both_triangles_and_ignores_the_diagonal(generator):
    upper = torch.randn(3, 6, 6, generator=generator).triu(1)
    lower = torch.randn(3, 6, 6, generator=generator).tril(-1)
    symmetric = (upper + lower + (upper + lower).transpose(-1, -2)) / 2
    z = SpanningTree()(upper + lower)
    assert torch.equal(z, SpanningTree()(symmetric))
    assert torch.equal(SpanningTree()(upper + lower + torch.diag_embed(torch.randn(3, 6) * 100)), z)


# ---------------------------------------------------------------------------------------------------------
# the batch contract


@PROPERTY
@given(thetas(max_n=7))
def test_batch_equals_loop_and_deterministic(theta):
    check_batch_equals_loop(SpanningTree(), theta)
    check_deterministic(SpanningTree(), theta)


def test_result_independent_of_threads(generator):
    theta = torch.randint(-1, 2, (1200, 12, 12), generator=generator).to(torch.float32)
    theta[::2] += torch.randn(600, 12, 12, generator=generator)
    single = SpanningTree(num_threads=1)(theta)
    for num_threads in (2, 5):
        assert torch.equal(SpanningTree(num_threads=num_threads)(theta), single)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtype_shape_and_contract(dtype, generator):
    theta = torch.randn(2, 3, 6, 6, generator=generator).to(dtype)
    z = check_output_contract(SpanningTree(), theta)
    assert z.dtype == dtype and torch.equal(z, reference_tree(theta))


def test_no_batch_non_contiguous_and_empty(generator):
    theta = torch.randn(7, 7, generator=generator)
    assert_is_spanning_tree(SpanningTree()(theta))
    base = torch.randn(7, 7, 3, generator=generator)
    view = base.permute(2, 0, 1)
    assert not view.is_contiguous()
    assert torch.equal(SpanningTree()(view), SpanningTree()(view.contiguous()))
    assert SpanningTree()(torch.randn(0, 4, 4)).shape == (0, 4, 4)
    assert torch.equal(SpanningTree()(torch.randn(2, 1, 1)), torch.zeros(2, 1, 1))
    assert SpanningTree()(torch.randn(2, 0, 0)).shape == (2, 0, 0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_in_cuda_out(dtype, generator):
    theta = torch.randn(5, 9, 9, generator=generator, dtype=dtype)
    z = SpanningTree()(theta.cuda())
    assert z.device.type == "cuda" and z.dtype == dtype
    assert torch.equal(z.cpu(), SpanningTree()(theta))


# ---------------------------------------------------------------------------------------------------------
# invariances (continuous theta for relabelling: no ties)


@PROPERTY
@given(thetas(max_n=9), st.floats(0.01, 100.0), st.integers(-5, 5))
def test_invariant_to_positive_scale_and_shift(theta, scale, shift):
    # every tree has n - 1 edges, so a constant shift adds the same amount to every objective
    z = SpanningTree()(theta)
    assert torch.equal(SpanningTree()(theta * 4.0), z)  # exact in floating point: ties stay ties
    if not bool((theta == theta.round()).all()):  # continuous: no ties that rounding could break
        assert torch.equal(SpanningTree()(theta * scale), z)
    assert torch.equal(SpanningTree()(theta + shift), z)


@PROPERTY
@given(thetas(max_n=9, ties=False), st.data())
def test_relabelling_equivariant(theta, data):
    perm = torch.tensor(data.draw(st.permutations(range(theta.shape[-1]))))
    z = SpanningTree()(theta)
    assert torch.equal(SpanningTree()(theta[..., perm, :][..., :, perm]), z[..., perm, :][..., :, perm])


# ---------------------------------------------------------------------------------------------------------
# enumerate_feasible


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_enumerate_feasible_lists_every_tree_once(n):
    states = SpanningTree().enumerate_feasible(n, dtype=torch.float64)
    count = max(1, n ** (n - 2))  # Cayley's formula
    assert states.shape == (count, n, n)
    assert len({tuple(state.flatten().tolist()) for state in states}) == count
    if n > 1:
        assert_is_spanning_tree(states)


def test_enumerate_feasible_limits():
    assert SpanningTree().enumerate_feasible(3).dtype == torch.float32
    with pytest.raises(ValueError, match=r"at most 10\*\*6 states; the n\^\(n-2\) = 4782969 spanning trees of n = 9"):
        SpanningTree().enumerate_feasible(9)
    with pytest.raises(ValueError, match="n must be >= 1; got 0"):
        SpanningTree().enumerate_feasible(0)
    with pytest.raises(ValueError, match=r"event shape of SpanningTree is square \(n, n\); got \(3, 4\)"):
        SpanningTree().enumerate_feasible(3, 4)
    assert torch.equal(SpanningTree().enumerate_feasible(4, 4), SpanningTree().enumerate_feasible(4))


# ---------------------------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize(
    ("theta", "error", "pattern"),
    [
        (torch.randn(3, 4), ValueError, r"theta must be square in its last two dimensions.*got shape \(3, 4\)"),
        (torch.randn(5), ValueError, r"theta must have at least 2 dimension\(s\)"),
        (torch.full((3, 3), float("nan")), ValueError, "theta must be finite; got 9 NaN"),
        (torch.ones(3, 3, dtype=torch.int32), TypeError, "theta must have a floating-point dtype"),
    ],
)
def test_bad_theta(theta, error, pattern):
    with pytest.raises(error, match=pattern):
        SpanningTree()(theta)


def test_repr_and_num_threads():
    assert repr(SpanningTree()) == "SpanningTree()"
    assert repr(SpanningTree(num_threads=3)) == "SpanningTree(num_threads=3)"
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        SpanningTree(num_threads=0)


# ---------------------------------------------------------------------------------------------------------
# learning through the solver with I-MLE


def test_learn_edge_scores_from_observed_trees():
    """A linear model of (symmetric) pair features, trained with Hamming loss on observed maximum spanning
    trees, with Sum-of-Gamma noise matched to the 2(n - 1) ones of every tree.

    Measured: 95-97.5% of held-out trees on 6 nodes exactly right after 60 Adam steps (data seeds 0-4),
    from under 2% at initialisation, and cosine(w, w_true) > 0.999; asserted: 80% and 0.98.
    """
    generator = torch.Generator().manual_seed(0)
    n, d = 6, 4
    w_true = torch.randn(d, generator=generator)
    x_train = torch.randn(100, n, n, d, generator=generator)
    x_test = torch.randn(200, n, n, d, generator=generator)
    x_train, x_test = x_train + x_train.transpose(1, 2), x_test + x_test.transpose(1, 2)
    solver = SpanningTree()
    z_train, z_test = solver(x_train @ w_true), solver(x_test @ w_true)

    def exact_rate(w):
        return (solver(x_test @ w) == z_test).flatten(1).all(1).float().mean().item()

    w = torch.zeros(d, requires_grad=True)
    assert exact_rate(w.detach()) < 0.02
    layer = discograd.imle(solver, noise=discograd.SumOfGamma(k=2 * (n - 1)),
                           target=discograd.PerturbedTarget(step_size=1.0), num_samples=5,
                           generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.Adam([w], lr=0.1)
    for _ in range(60):
        optimizer.zero_grad()
        z = layer(x_train @ w)  # [5, 100, n, n]
        ((z - z_train) ** 2).sum().backward()
        optimizer.step()
    with torch.no_grad():
        exact = exact_rate(w)
        cosine = torch.nn.functional.cosine_similarity(w, w_true, dim=0).item()
    assert exact >= 0.8, exact
    assert cosine >= 0.98, cosine
