"""Sum-of-Gamma noise by inverse CDF (``SumOfGamma(method="table")``) against the exact law.

The exact CDF is the Moschopoulos series of ``discograd.noise._sog_quantiles``; it is itself checked
against the closed form at κ = 1 and against Monte Carlo of the Gamma sum. Kolmogorov-Smirnov tests run
in ``log X`` (``X = Σ_i G_i``): at large κ most of the mass of ``X`` lies below 1e-15, where
``ε = (X − log s)/κ`` rounds to ``−log s/κ`` in float64, so a KS test in ε would measure rounding.
"""

import math

import numpy as np
import pytest
import torch

from discograd.noise import SumOfGamma
from discograd.noise._sog_quantiles import (
    TABLE_LOGIT_RANGE,
    TABLE_NODES,
    quantile_table,
    sog_cdf,
    sog_log_cdf_sf,
)

KAPPAS = (1, 2, 5, 10, 144)
TERMS = (1, 10, 100)
N = 1_000_000


@pytest.mark.parametrize("s", TERMS)
def test_exact_cdf_matches_the_closed_form_at_kappa_1(s):
    """κ = 1: X = Σ_j Exp(rate j), F(x) = (1 − e^{−x})^s; log F to 1e-11 absolute, the survival function to 1e-9 relative."""
    x = np.array([1e-4, 0.01, 0.3, 1.0, 3.0, 8.0, 15.0, 25.0])
    log_f, log_sf = sog_log_cdf_sf(np.log(x), 1, s)
    exact_log_f = s * np.log1p(-np.exp(-x))
    exact_sf = -np.expm1(exact_log_f)
    np.testing.assert_allclose(log_f, exact_log_f, rtol=1e-10, atol=1e-11)  # F near 1: see sf
    np.testing.assert_allclose(np.exp(log_sf), exact_sf, rtol=1e-9)


@pytest.mark.parametrize("k, s", [(5, 10), (144, 10), (2, 100)])
def test_exact_cdf_matches_monte_carlo_of_the_gamma_sum(k, s):
    rng = np.random.default_rng(0)
    x = sum(rng.gamma(1.0 / k, k / j, size=200_000) for j in range(1, s + 1))
    probs = np.array([0.001, 0.05, 0.3, 0.5, 0.8, 0.99])
    F = sog_cdf(np.quantile(x, probs), k, s)
    se = np.sqrt(probs * (1 - probs) / len(x))
    assert np.all(np.abs(F - probs) < 5 * se + 1e-6), (F, probs)


@pytest.mark.parametrize("k", KAPPAS)
@pytest.mark.parametrize("s", TERMS)
def test_table_accuracy_at_nodes_and_between(k, s):
    """logit F at the table's nodes (and at the linear interpolation's midpoints) within 1e-4 of the
    target (measured: mostly a few 1e-6, up to 2.2e-5 at κ ≤ 10 and 5e-5 at κ = 144): CDF errors below 2.5e-5."""
    log_x = quantile_table(k, s)
    assert log_x.shape == (TABLE_NODES,) and np.all(np.diff(log_x) > 0)
    nodes = np.linspace(-TABLE_LOGIT_RANGE, TABLE_LOGIT_RANGE, TABLE_NODES)
    idx = np.arange(5, TABLE_NODES - 1, 157)
    for lx, t in ((log_x[idx], nodes[idx]), (0.5 * (log_x[idx] + log_x[idx + 1]), 0.5 * (nodes[idx] + nodes[idx + 1]))):
        log_f, log_sf = sog_log_cdf_sf(lx, k, s)
        err = np.max(np.abs(log_f - log_sf - t))
        assert err < (5e-5 if k <= 10 else 1e-4), err


@pytest.mark.parametrize("k", KAPPAS)
@pytest.mark.parametrize("s", TERMS)
def test_kolmogorov_smirnov_against_the_exact_cdf(k, s):
    """10⁶ draws of log X by the table; D over every 1000th order statistic (a lower bound of the KS
    statistic) below the 0.1 % critical value 1.95/√n."""
    noise = SumOfGamma(k, num_terms=s, method="table")
    u = torch.rand(N, generator=torch.Generator().manual_seed(k * 1000 + s), dtype=torch.float64)
    log_x = np.sort(noise._log_x(u).numpy())
    idx = np.arange(499, N, 1000)
    log_f, _ = sog_log_cdf_sf(log_x[idx], k, s)
    empirical = (idx + 1) / N
    D = np.max(np.maximum(np.abs(np.exp(log_f) - empirical), np.abs(np.exp(log_f) - idx / N)))
    assert D < 1.95 / math.sqrt(N), D


@pytest.mark.parametrize("k, s", [(1, 10), (5, 10), (10, 100), (144, 10)])
def test_far_tails_and_the_lower_edge(k, s):
    """Quantiles 1e-7 and 1 − 1e-7 against the exact CDF (relative 1e-4); at large κ the lower quantiles of
    X underflow and ε is −log s/κ, as in exact arithmetic rounded to float64."""
    noise = SumOfGamma(k, num_terms=s, method="table")
    u = torch.tensor([1e-7, 1 - 1e-7], dtype=torch.float64)
    log_x = noise._log_x(u).numpy()
    log_f, log_sf = sog_log_cdf_sf(log_x, k, s)
    assert abs(math.exp(log_f[0]) / 1e-7 - 1) < 1e-4
    assert abs(math.exp(log_sf[1]) / 1e-7 - 1) < 1e-4
    eps = noise._sample_table((1,), None, torch.device("cpu"), torch.float64)  # smoke: the full path
    assert torch.isfinite(eps).all()
    lower = (math.exp(log_x[0]) - math.log(s)) / k
    if k == 144:
        assert log_x[0] < -100  # X ~ 1e-44 or below: far under float64's resolution around log s
        assert lower == -math.log(s) / k
    # u = 0 (possible in float32) gives the lower edge exactly, not NaN
    zero = noise._log_x(torch.zeros(1, dtype=torch.float32))
    assert zero.item() == -math.inf
    assert (zero.exp() - math.log(s)).item() / k == pytest.approx(-math.log(s) / k)


@pytest.mark.parametrize("k, s", [(3, 10), (10, 10), (144, 1), (5, 100)])
def test_mean_and_variance_of_eps(k, s):
    """E ε = τ (H_s − log s)/κ, Var ε = τ² Σ_j 1/j² / κ, within 5 standard errors."""
    tau = 2.0
    x = SumOfGamma(k, tau, num_terms=s, method="table").sample(
        (N,), generator=torch.Generator().manual_seed(1), dtype=torch.float64).numpy()
    h = np.sum(1.0 / np.arange(1, s + 1))
    mean = tau * (h - math.log(s)) / k
    var = tau**2 * np.sum(1.0 / np.arange(1, s + 1) ** 2) / k
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / N)
    # the standard error of the sample variance: sqrt((μ4 − σ⁴)/n), μ4 estimated from the sample
    mu4 = np.mean((x - x.mean()) ** 4)
    assert abs(x.var() - var) < 5 * math.sqrt((mu4 - var**2) / N)


@pytest.mark.parametrize("k", [5, 10])
def test_two_sample_against_the_gamma_sum_sampler(k):
    from scipy.stats import ks_2samp

    a = SumOfGamma(k, method="table").sample((200_000,), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    b = SumOfGamma(k, method="gamma").sample((200_000,), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert ks_2samp(a.numpy(), b.numpy()).pvalue > 1e-3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes_and_determinism(dtype):
    noise = SumOfGamma(5, temperature=1.5, method="table")
    a = noise.sample((4, 1000), generator=torch.Generator().manual_seed(0), dtype=dtype)
    b = noise.sample((4, 1000), generator=torch.Generator().manual_seed(0), dtype=dtype)
    c = noise.sample((4, 1000), generator=torch.Generator().manual_seed(1), dtype=dtype)
    assert a.dtype == dtype and a.shape == (4, 1000) and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)
    expected = 1.5 * (np.sum(1.0 / np.arange(1, 11)) - math.log(10)) / 5
    assert abs(a.double().mean().item() - expected) < 0.05
    assert noise.sample((0,), dtype=dtype).shape == (0,)


def test_bad_method_and_repr():
    with pytest.raises(ValueError, match="method must be one of"):
        SumOfGamma(3, method="fft")
    assert "method='gamma'" in repr(SumOfGamma(3, method="gamma")) and "method" not in repr(SumOfGamma(3))


def test_slow_tables_are_cached_on_disk_and_a_corrupt_file_is_rebuilt(tmp_path, monkeypatch):
    from discograd.noise import _sog_quantiles as q

    monkeypatch.setenv("DISCOGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(q, "_cache", {})
    monkeypatch.setattr(q, "DISK_CACHE_SECONDS", 0.0)  # cache every table here
    table = q.quantile_table(7, 10)
    path = q._cache_file(7, 10)
    assert path.parent == tmp_path and path.exists()
    monkeypatch.setattr(q, "_cache", {})
    assert np.array_equal(q.quantile_table(7, 10), table)  # read back
    path.write_bytes(b"not a table")
    monkeypatch.setattr(q, "_cache", {})
    with pytest.warns(RuntimeWarning, match=r"cached Sum-of-Gamma quantile table .* is corrupt; rebuilding"):
        rebuilt = q.quantile_table(7, 10)
    assert np.array_equal(rebuilt, table) and np.array_equal(np.load(path), table)


def test_cpu_blocks_do_not_change_the_draws():
    """The CPU sampler transforms its uniforms block by block; the result equals the whole-tensor transform."""
    noise = SumOfGamma(6, temperature=0.5, num_terms=10, method="table")
    shape = (3, 50_001)  # several blocks and a ragged last one
    u = torch.rand(shape, generator=torch.Generator().manual_seed(4))
    expected = (noise._log_x(u).exp() - math.log(10)) * (0.5 / 6)
    drawn = noise.sample(shape, generator=torch.Generator().manual_seed(4))
    assert torch.equal(drawn, expected)
