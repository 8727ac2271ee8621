"""Tests of discograd.exact: the k-subset dynamic programmes against enumeration, and enumeration
against direct formulas. Every reference is exact; statistical tests use fixed seeds and tolerances
derived from standard errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from discograd.exact import (
    MAX_ENUMERATED_STATES,
    enumeration_expectation,
    enumeration_log_probs,
    enumeration_marginals,
    enumeration_sample,
    ksubset_states,
    topk_log_partition,
    topk_log_prob,
    topk_marginals,
    topk_sample,
)

F64 = torch.float64
BATCH_SHAPES = [(), (3,), (2, 3)]
TEMPERATURES = [0.3, 1.0, 2.5]


def _ks(n: int) -> list[int]:
    """Subset sizes to test for n items: 0, 1, n - 1, n and one in the middle."""
    return sorted({0, min(1, n), max(n - 1, 0), n, n // 2})


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _theta(shape: tuple[int, ...], seed: int, scale: float = 1.5, dtype: torch.dtype = F64) -> torch.Tensor:
    return (scale * torch.randn(shape, generator=_generator(seed), dtype=F64)).to(dtype)


def _brute_force(theta: torch.Tensor, k: int, temperature: float):
    """log Z, μ and Cov(z) by summing over all k-subsets with direct formulas (float64)."""
    n = theta.shape[-1]
    states = torch.tensor(
        [[1.0 if i in c else 0.0 for i in range(n)] for c in itertools.combinations(range(n), k)], dtype=F64
    )
    scores = theta.to(F64) @ states.T / temperature  # [*batch, C]
    log_z = torch.logsumexp(scores, dim=-1)
    probs = torch.exp(scores - log_z[..., None])
    mu = probs @ states
    second = torch.einsum("...c,ci,cj->...ij", probs, states, states)
    cov = second - mu[..., :, None] * mu[..., None, :]
    return log_z, mu, cov, states, probs


# ----------------------------------------------------------------------------------------------------
# k-subset DP against brute force
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_shape", BATCH_SHAPES)
@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_topk_log_partition_and_marginals_match_brute_force(n, batch_shape):
    theta = _theta((*batch_shape, n), seed=n)
    for k in _ks(n):
        for temperature in TEMPERATURES:
            log_z_ref, mu_ref, _, _, _ = _brute_force(theta, k, temperature)
            log_z = topk_log_partition(theta, k, temperature)
            mu = topk_marginals(theta, k, temperature)
            assert log_z.shape == batch_shape and mu.shape == theta.shape
            torch.testing.assert_close(log_z, log_z_ref, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(mu, mu_ref, rtol=1e-10, atol=1e-12)
            assert bool(((mu >= 0) & (mu <= 1)).all())
            torch.testing.assert_close(mu.sum(-1), torch.full(batch_shape, float(k), dtype=F64))


def test_topk_marginals_with_exact_ties_and_large_scores_match_brute_force():
    # ties (the sort order among equal scores is arbitrary) and |theta| ~ 1e4 with near ties
    theta = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [1.0, 1.0, -1.0, 1.0, -1.0, 2.0, 2.0, 0.0],
            [1e4, 1e4 + 0.5, -1e4, 1e4 - 0.25, -1e4 + 1.0, 3.0, 1e4, -1e4 - 2.0],
        ],
        dtype=F64,
    )
    for k in range(theta.shape[-1] + 1):
        log_z_ref, mu_ref, cov_ref, _, _ = _brute_force(theta, k, 1.0)
        torch.testing.assert_close(topk_log_partition(theta, k), log_z_ref, rtol=1e-13, atol=1e-9)
        torch.testing.assert_close(topk_marginals(theta, k), mu_ref, rtol=1e-10, atol=1e-12)
        jac = torch.autograd.functional.jacobian(lambda t: topk_marginals(t, k).sum(0), theta[:2])
        # jac[i, b, j]: instances are independent, so keep the diagonal blocks
        jac = torch.stack([jac[:, b, :] for b in range(2)])
        torch.testing.assert_close(jac, cov_ref[:2], rtol=1e-9, atol=1e-12)


@st.composite
def _problems(draw):
    n = draw(st.integers(1, 8))
    k = draw(st.integers(0, n))
    # a small pool of values makes exact ties likely; the wide floats cover |theta| up to 1e4
    pool = draw(st.lists(st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False), min_size=1, max_size=3))
    values = draw(st.lists(st.one_of(st.sampled_from(pool), st.floats(-3.0, 3.0)), min_size=n, max_size=n))
    temperature = draw(st.sampled_from([0.05, 1.0, 20.0]))
    return torch.tensor(values, dtype=F64), k, temperature


@settings(max_examples=60, deadline=None, derandomize=True)
@given(_problems())
def test_topk_dp_matches_brute_force_property(problem):
    theta, k, temperature = problem
    log_z_ref, mu_ref, _, _, _ = _brute_force(theta, k, temperature)
    torch.testing.assert_close(topk_log_partition(theta, k, temperature), log_z_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(topk_marginals(theta, k, temperature), mu_ref, rtol=1e-9, atol=1e-11)
    z = topk_sample(theta, k, temperature, num_samples=4, generator=_generator(0))
    assert torch.equal(z.sum(-1), torch.full((4,), float(k), dtype=F64))


def test_topk_marginals_are_permutation_equivariant():
    theta = _theta((4, 9), seed=3)
    perm = torch.randperm(9, generator=_generator(4))
    mu = topk_marginals(theta, 4, 0.7)
    torch.testing.assert_close(topk_marginals(theta[..., perm], 4, 0.7), mu[..., perm], rtol=1e-12, atol=1e-13)
    # adding a constant to every score changes nothing (the shift invariance the DP relies on)
    torch.testing.assert_close(topk_marginals(theta + 123.0, 4, 0.7), mu, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n", [1, 3])
def test_topk_edge_cases_k0_and_kn(n):
    theta = _theta((2, n), seed=7).requires_grad_()
    mu0, mun = topk_marginals(theta, 0), topk_marginals(theta, n, 2.0)
    assert torch.equal(mu0, torch.zeros_like(theta)) and torch.equal(mun, torch.ones_like(theta))
    torch.testing.assert_close(topk_log_partition(theta, 0), torch.zeros(2, dtype=F64))
    torch.testing.assert_close(topk_log_partition(theta, n, 2.0), theta.sum(-1) / 2.0)
    # still part of the autograd graph: the Jacobian is zero, the log-partition gradient is μ / τ
    (jvp,) = torch.autograd.grad(mun, theta, torch.randn(2, n, dtype=F64))
    assert torch.equal(jvp, torch.zeros_like(theta))
    (grad,) = torch.autograd.grad(topk_log_partition(theta, n, 2.0).sum(), theta)
    torch.testing.assert_close(grad, torch.full_like(theta, 0.5))
    for k in (0, n):
        z = topk_sample(theta, k, num_samples=3, generator=_generator(0))
        assert z.shape == (3, 2, n) and torch.equal(z.sum(-1), torch.full((3, 2), float(k), dtype=F64))
        torch.testing.assert_close(topk_log_prob(z, theta, k), torch.zeros(3, 2, dtype=F64))


def test_topk_empty_batch():
    theta = torch.zeros(0, 5)
    assert topk_marginals(theta, 2).shape == (0, 5)
    assert topk_log_partition(theta, 2).shape == (0,)
    assert topk_sample(theta, 2, num_samples=3).shape == (3, 0, 5)


def test_topk_low_precision_dtypes_are_computed_in_float32():
    theta = _theta((3, 10), seed=5, scale=3.0)
    for dtype in (torch.float16, torch.bfloat16):
        mu = topk_marginals(theta.to(dtype), 4)
        assert mu.dtype == dtype
        mu_ref = topk_marginals(theta.to(dtype).to(F64), 4)
        torch.testing.assert_close(mu.to(F64), mu_ref, rtol=0.0, atol=float(torch.finfo(dtype).eps))


# ----------------------------------------------------------------------------------------------------
# derivatives
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 4])
def test_topk_gradcheck(k):
    theta = _theta((2, 5), seed=11).requires_grad_()
    for temperature in (0.5, 1.0):
        assert torch.autograd.gradcheck(lambda t: topk_marginals(t, k, temperature), (theta,))
        assert torch.autograd.gradcheck(lambda t: topk_log_partition(t, k, temperature), (theta,))
    assert torch.autograd.gradgradcheck(lambda t: topk_log_partition(t, k, 0.5), (theta,))


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_topk_jacobian_is_covariance_over_temperature(temperature):
    n, k = 7, 3
    theta = _theta((n,), seed=13)
    _, mu_ref, cov_ref, _, _ = _brute_force(theta, k, temperature)
    jac = torch.autograd.functional.jacobian(lambda t: topk_marginals(t, k, temperature), theta)
    torch.testing.assert_close(jac, cov_ref / temperature, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(jac, jac.T, rtol=1e-9, atol=1e-12)
    # and the gradient of log Z is μ / τ
    theta = theta.clone().requires_grad_()
    (grad,) = torch.autograd.grad(topk_log_partition(theta, k, temperature), theta)
    torch.testing.assert_close(grad, mu_ref / temperature, rtol=1e-10, atol=1e-12)
    # a batched vector-Jacobian product is the exact J v
    v = torch.randn(n, dtype=F64, generator=_generator(1))
    (jvp,) = torch.autograd.grad(topk_marginals(theta, k, temperature), theta, v)
    torch.testing.assert_close(jvp, cov_ref @ v / temperature, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------------------------------
# stability: |theta| ~ 1e4, n = 1000, float32 against float64
# ----------------------------------------------------------------------------------------------------


def _stress_theta(kind: str, n: int, seed: int) -> torch.Tensor:
    g = _generator(seed)
    if kind == "spread":  # uniform on [-1e4, 1e4]
        return (torch.rand(n, generator=g, dtype=F64) * 2 - 1) * 1e4
    if kind == "two_clusters":  # ±1e4 with near ties inside each cluster
        sign = torch.where(torch.rand(n, generator=g, dtype=F64) < 0.5, 1.0, -1.0)
        return sign * 1e4 + torch.randn(n, generator=g, dtype=F64)
    if kind == "near_ties":  # all around 1e4: large magnitude, O(1) differences
        return 1e4 + torch.randn(n, generator=g, dtype=F64)
    raise ValueError(kind)


STRESS_KINDS = ("spread", "two_clusters", "near_ties")


def test_topk_float32_matches_float64_at_large_scores():
    # one instance of each kind in a batch: [3, 1000], the same float32-representable values in both dtypes
    n = 1000
    theta64 = torch.stack([_stress_theta(kind, n, seed=21 + i) for i, kind in enumerate(STRESS_KINDS)])
    theta64 = theta64.to(torch.float32).to(F64)
    v = torch.randn(3, n, generator=_generator(22), dtype=F64)
    eps32 = torch.finfo(torch.float32).eps
    for k in (1, 300, 500, 999):
        results = {}
        for dtype in (torch.float32, F64):
            theta = theta64.to(dtype).requires_grad_()
            mu = topk_marginals(theta, k)
            (jvp,) = torch.autograd.grad(mu, theta, v.to(dtype))
            log_z = topk_log_partition(theta, k)
            (grad,) = torch.autograd.grad(log_z.sum(), theta)
            for t in (mu, jvp, log_z, grad):
                assert bool(torch.isfinite(t).all())
            assert bool(((mu >= 0) & (mu <= 1)).all())
            results[dtype] = [t.detach().to(F64) for t in (mu, jvp, log_z, grad)]
        mu32, jvp32, log_z32, grad32 = results[torch.float32]
        mu64, jvp64, log_z64, grad64 = results[F64]
        # float64 is self-consistent: Σμ = k and ∇ log Z = μ
        torch.testing.assert_close(mu64.sum(-1), torch.full((3,), float(k), dtype=F64), rtol=0, atol=1e-9)
        torch.testing.assert_close(grad64, mu64, rtol=0, atol=1e-12)
        # float32: marginals to 1e-4 absolute (measured <= 2e-5); the JVP likewise relative to its size;
        # log Z to the float32 rounding of Σ|θ| (its MAP part is a float32 sum of up to 999 scores)
        assert (mu32 - mu64).abs().max().item() < 1e-4
        assert (grad32 - mu64).abs().max().item() < 1e-4
        assert (jvp32 - jvp64).abs().max().item() < 1e-3 * max(1.0, jvp64.abs().max().item())
        assert bool(((log_z32 - log_z64).abs() < 10 * eps32 * theta64.abs().sum(-1)).all())


def test_topk_float64_at_large_scores_matches_brute_force():
    g = _generator(31)
    base = torch.where(torch.rand(2, 12, generator=g, dtype=F64) < 0.5, 1e4, -1e4)
    theta = base + torch.randn(2, 12, generator=g, dtype=F64)
    for k in (1, 5, 6, 11):
        for temperature in (0.1, 1.0):
            log_z_ref, mu_ref, _, _, _ = _brute_force(theta, k, temperature)
            torch.testing.assert_close(topk_log_partition(theta, k, temperature), log_z_ref, rtol=1e-14, atol=0)
            torch.testing.assert_close(topk_marginals(theta, k, temperature), mu_ref, rtol=1e-9, atol=1e-12)


def test_topk_tiny_temperature_stays_finite():
    theta = _stress_theta("spread", 200, seed=41).to(torch.float32).requires_grad_()
    mu = topk_marginals(theta, 50, temperature=1e-3)
    (jvp,) = torch.autograd.grad(mu, theta, torch.ones_like(mu))
    assert bool(torch.isfinite(mu).all()) and bool(torch.isfinite(jvp).all())
    # essentially the top-k indicator
    top = torch.zeros(200).scatter(0, theta.detach().topk(50).indices, 1.0)
    assert (mu.detach() - top).abs().max().item() < 1e-6


# ----------------------------------------------------------------------------------------------------
# sampling
# ----------------------------------------------------------------------------------------------------


def _state_index(z: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """The row of ``states`` equal to each sample (samples and states are 0/1 along the last dim)."""
    weights = 2 ** torch.arange(states.shape[-1], dtype=torch.long)
    codes = (states.long() * weights).sum(-1)
    order = torch.argsort(codes)
    sample_codes = (z.long() * weights).sum(-1)
    position = torch.searchsorted(codes[order], sample_codes)
    assert torch.equal(codes[order][position], sample_codes), "a sample is not a listed state"
    return order[position]


def test_topk_sample_chi_square_against_exact_distribution():
    n, k, temperature, num = 6, 3, 0.8, 20_000
    theta = _theta((n,), seed=51)
    _, _, _, states, probs = _brute_force(theta, k, temperature)
    z = topk_sample(theta, k, temperature, num_samples=num, generator=_generator(52))
    counts = torch.bincount(_state_index(z, states), minlength=states.shape[0]).to(F64)
    result = stats.chisquare(counts.numpy(), (num * probs).numpy())
    assert result.pvalue > 1e-3, result


def test_topk_sample_marginal_means_within_standard_errors():
    n, k, num = 10, 4, 4_000
    theta = _theta((2, 3, n), seed=61, dtype=torch.float32)
    z = topk_sample(theta, k, 1.3, num_samples=num, generator=_generator(62))
    assert z.shape == (num, 2, 3, n) and z.dtype == torch.float32
    assert bool(((z == 0) | (z == 1)).all()) and torch.equal(z.sum(-1), torch.full((num, 2, 3), float(k)))
    mu = topk_marginals(theta.to(F64), k, 1.3)
    standard_error = (mu * (1 - mu) / num).sqrt()
    assert bool(((z.to(F64).mean(0) - mu).abs() <= 4 * standard_error + 1e-12).all())


def test_topk_sample_shapes_and_reproducibility():
    theta = _theta((3, 8), seed=71)
    z = topk_sample(theta, 3, generator=_generator(1))
    assert z.shape == (3, 8) and z.dtype == F64 and torch.equal(z.sum(-1), torch.full((3,), 3.0, dtype=F64))
    a = topk_sample(theta, 3, num_samples=50, generator=_generator(5))
    b = topk_sample(theta, 3, num_samples=50, generator=_generator(5))
    c = topk_sample(theta, 3, num_samples=50, generator=_generator(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # never touches the global generator
    state = torch.random.get_rng_state()
    topk_sample(theta, 3, num_samples=5, generator=_generator(0))
    assert torch.equal(state, torch.random.get_rng_state())


def test_topk_sample_at_large_scores_has_k_ones():
    theta = _stress_theta("two_clusters", 1000, seed=81).to(torch.float32)
    z = topk_sample(theta, 700, num_samples=4, generator=_generator(82))
    assert torch.equal(z.sum(-1), torch.full((4,), 700.0))
    # the 500-odd scores near +1e4 are always in: only the near-tied -1e4 cluster is random
    assert bool((z[:, theta > 0] == 1).all())


# ----------------------------------------------------------------------------------------------------
# log-probabilities
# ----------------------------------------------------------------------------------------------------


def test_topk_log_prob_matches_enumeration_and_broadcasts():
    n, k, temperature = 6, 2, 0.6
    theta = _theta((3, n), seed=91)
    states = ksubset_states(n, k, dtype=F64)
    log_probs = enumeration_log_probs(states, theta, temperature)  # [3, C]
    got = topk_log_prob(states[:, None, :], theta, k, temperature)  # [C, 3]
    torch.testing.assert_close(got.T, log_probs, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.exp().sum(0), torch.ones(3, dtype=F64))
    # the score function: ∇_θ log p(z; θ) = (z - μ) / τ
    theta = theta.clone().requires_grad_()
    z = states[[0, 5, 9]]
    (grad,) = torch.autograd.grad(topk_log_prob(z, theta, k, temperature).sum(), theta)
    torch.testing.assert_close(grad, (z - topk_marginals(theta.detach(), k, temperature)) / temperature)


def test_topk_log_prob_at_large_scores_is_accurate_in_float32():
    theta = _stress_theta("two_clusters", 1000, seed=95).to(torch.float32)
    z = topk_sample(theta, 600, num_samples=3, generator=_generator(96))
    lp32 = topk_log_prob(z, theta, 600)
    lp64 = topk_log_prob(z.to(F64), theta.to(F64), 600)
    assert bool((lp32 <= 0).all()) and bool(torch.isfinite(lp32).all())
    assert (lp32.to(F64) - lp64).abs().max().item() < 1e-2


# ----------------------------------------------------------------------------------------------------
# enumeration
# ----------------------------------------------------------------------------------------------------


def test_ksubset_states_order_and_counts():
    for n in range(0, 7):
        for k in range(n + 1):
            states = ksubset_states(n, k, dtype=F64)
            expected = [[1.0 if i in c else 0.0 for i in range(n)] for c in itertools.combinations(range(n), k)]
            assert states.shape == (math.comb(n, k), n)
            assert states.tolist() == expected
    assert ksubset_states(4, 2, dtype=torch.int64).dtype == torch.int64
    with pytest.raises(ValueError, match=r"C\(n, k\) = C\(30, 15\)"):
        ksubset_states(30, 15)
    assert math.comb(30, 15) > MAX_ENUMERATED_STATES


def _grid_states() -> torch.Tensor:
    """A multi-dimensional event: 2x3 grids with exactly one 1 per row (9 states of shape [2, 3])."""
    eye = torch.eye(3, dtype=F64)
    return torch.stack([torch.stack([eye[a], eye[b]]) for a in range(3) for b in range(3)])


@pytest.mark.parametrize("batch_shape", BATCH_SHAPES)
def test_enumeration_functions_match_direct_formulas(batch_shape):
    states = _grid_states()  # [9, 2, 3]
    theta = _theta((*batch_shape, 2, 3), seed=101)
    temperature = 0.7
    flat_theta = theta.reshape(-1, 6)
    flat_states = states.reshape(9, 6)
    scores = torch.stack([torch.stack([(s * t).sum() for s in flat_states]) for t in flat_theta]) / temperature
    probs = scores.exp() / scores.exp().sum(-1, keepdim=True)
    log_probs = enumeration_log_probs(states, theta, temperature)
    assert log_probs.shape == (*batch_shape, 9)
    torch.testing.assert_close(log_probs.reshape(-1, 9), probs.log())
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(batch_shape, dtype=F64))
    mu = enumeration_marginals(states, theta, temperature)
    assert mu.shape == theta.shape
    torch.testing.assert_close(mu.reshape(-1, 6), probs @ flat_states)
    # rows of the grid are independent categoricals: μ is a softmax per row
    torch.testing.assert_close(mu, torch.softmax(theta / temperature, dim=-1))
    values = torch.randn(9, dtype=F64, generator=_generator(102))
    expectation = enumeration_expectation(states, theta, values, temperature)
    assert expectation.shape == batch_shape
    torch.testing.assert_close(expectation.reshape(-1), probs @ values)
    batched_values = torch.randn((*batch_shape, 9), dtype=F64, generator=_generator(103))
    torch.testing.assert_close(
        enumeration_expectation(states, theta, batched_values, temperature).reshape(-1),
        (probs * batched_values.reshape(-1, 9)).sum(-1),
    )


def test_enumeration_gradients_are_exact():
    n, k, temperature = 6, 3, 0.9
    states = ksubset_states(n, k, dtype=F64)
    theta = _theta((2, n), seed=111).requires_grad_()
    b = torch.rand(n, dtype=F64, generator=_generator(112))
    loss = ((states - b) ** 2).sum(-1)  # L(z) on every state
    probs = enumeration_log_probs(states, theta.detach(), temperature).exp()
    mu = probs @ states
    # ∇_θ E_p[L] = Σ_z p(z) L(z) (z - μ) / τ = Cov(z, L(z)) / τ
    expected = ((probs * loss)[..., None] * (states - mu[:, None, :])).sum(-2) / temperature
    (grad,) = torch.autograd.grad(enumeration_expectation(states, theta, loss, temperature).sum(), theta)
    torch.testing.assert_close(grad, expected)
    # the Jacobian of the marginals is Cov(z) / τ and agrees with the DP
    _, _, cov_ref, _, _ = _brute_force(theta.detach()[0], k, temperature)
    jac = torch.autograd.functional.jacobian(lambda t: enumeration_marginals(states, t, temperature), theta[0])
    torch.testing.assert_close(jac, cov_ref / temperature)
    assert torch.autograd.gradcheck(lambda t: enumeration_marginals(states, t, temperature), (theta,))
    torch.testing.assert_close(
        enumeration_marginals(states, theta, temperature), topk_marginals(theta, k, temperature)
    )


def test_enumeration_sample_chi_square_and_reproducibility():
    states = _grid_states()
    theta = _theta((2, 3), seed=121)
    num = 20_000
    z = enumeration_sample(states, theta, 1.2, num_samples=num, generator=_generator(122))
    assert z.shape == (num, 2, 3) and z.dtype == F64
    probs = enumeration_log_probs(states, theta, 1.2).exp()
    counts = torch.bincount(_state_index(z.reshape(num, 6), states.reshape(9, 6)), minlength=9).to(F64)
    result = stats.chisquare(counts.numpy(), (num * probs).numpy())
    assert result.pvalue > 1e-3, result
    batched = _theta((4, 2, 3), seed=123)
    a = enumeration_sample(states, batched, num_samples=7, generator=_generator(9))
    assert a.shape == (7, 4, 2, 3)
    assert torch.equal(a, enumeration_sample(states, batched, num_samples=7, generator=_generator(9)))
    assert enumeration_sample(states, batched, generator=_generator(9)).shape == (4, 2, 3)


# ----------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------


def test_topk_bad_inputs_name_the_argument():
    theta = torch.randn(5)
    for fn in (topk_log_partition, topk_marginals, topk_sample):
        with pytest.raises(TypeError, match="theta"):
            fn(torch.arange(5), 2)
        with pytest.raises(TypeError, match="theta"):
            fn([0.0, 1.0], 1)
        with pytest.raises(ValueError, match="theta"):
            fn(torch.tensor(1.0), 0)
        with pytest.raises(ValueError, match="theta must be finite"):
            fn(torch.tensor([0.0, float("nan"), 1.0]), 1)
        with pytest.raises(ValueError, match="k must satisfy"):
            fn(theta, 6)
        with pytest.raises(ValueError, match="k must satisfy"):
            fn(theta, -1)
        with pytest.raises(TypeError, match="k must be an integer"):
            fn(theta, 2.0)
        for bad in (0.0, -1.0, float("inf")):
            with pytest.raises(ValueError, match="temperature"):
                fn(theta, 2, bad)
    with pytest.raises(ValueError, match="num_samples"):
        topk_sample(theta, 2, num_samples=0)
    with pytest.raises(TypeError, match="generator"):
        topk_sample(theta, 2, generator=0)
    with pytest.raises(ValueError, match="z must have exactly k = 2 ones"):
        topk_log_prob(torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0]), theta, 2)
    with pytest.raises(ValueError, match="z must hold only 0/1"):
        topk_log_prob(torch.tensor([2.0, 0.0, 0.0, 0.0, 0.0]), theta, 2)
    with pytest.raises(ValueError, match="z must have the same last dimension"):
        topk_log_prob(torch.tensor([1.0, 1.0, 0.0]), theta, 2)


def test_enumeration_bad_inputs_name_the_argument():
    states = ksubset_states(4, 2)
    with pytest.raises(ValueError, match=r"states.*\(4,\).*theta of shape \(2, 5\)"):
        enumeration_marginals(states, torch.randn(2, 5))
    with pytest.raises(ValueError, match="states must hold only 0/1"):
        enumeration_marginals(2 * states, torch.randn(4))
    with pytest.raises(ValueError, match="states must have shape"):
        enumeration_log_probs(torch.ones(4), torch.randn(4))
    with pytest.raises(TypeError, match="theta"):
        enumeration_log_probs(states, torch.ones(4, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        enumeration_log_probs(states, torch.randn(4), 0.0)
    with pytest.raises(ValueError, match="values must have shape"):
        enumeration_expectation(states, torch.randn(4), torch.randn(5))
    with pytest.raises(ValueError, match="values of shape"):
        enumeration_expectation(states, torch.randn(3, 4), torch.randn(2, 6))
    with pytest.raises(ValueError, match="num_samples"):
        enumeration_sample(states, torch.randn(4), num_samples=0)
    with pytest.raises(TypeError, match="n must be an integer"):
        ksubset_states(4.0, 2)
    with pytest.raises(ValueError, match="k must satisfy"):
        ksubset_states(4, 5)
