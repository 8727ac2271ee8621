"""Noise distributions against their exact laws (KS tests, moments within standard errors)."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from discograd.noise import Gumbel, Normal, SumOfGamma, standard_gumbel

EULER_GAMMA = 0.5772156649015329
NOISES = [Gumbel(), Gumbel(scale=0.5), Normal(), Normal(scale=2.0), SumOfGamma(k=3), SumOfGamma(k=5, temperature=2.0),
          SumOfGamma(k=5, temperature=2.0, method="table")]


def sog_sum_cdf(x, num_terms, temperature):
    """CDF of the sum of k i.i.d. SoG(k, τ, s) draws: τ (Σ_{i≤s} E_i / i − log s), and Σ_{i≤s} E_i / i is
    the maximum of s i.i.d. Exp(1) (Rényi), so P(sum ≤ x) = (1 − exp(−(x/τ + log s)))^s."""
    y = x / temperature + math.log(num_terms)
    return np.where(y > 0, (1.0 - np.exp(-np.maximum(y, 0.0))) ** num_terms, 0.0)


@pytest.mark.parametrize("noise", NOISES, ids=repr)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_sample_shape_dtype_finite(noise, dtype, generator):
    eps = noise.sample((3, 4, 5), generator=generator, dtype=dtype)
    assert eps.shape == (3, 4, 5) and eps.dtype == dtype and eps.device.type == "cpu"
    assert torch.isfinite(eps).all()


@pytest.mark.parametrize("noise", NOISES, ids=repr)
def test_generator_reproducible(noise):
    a = noise.sample((1000,), generator=torch.Generator().manual_seed(7))
    b = noise.sample((1000,), generator=torch.Generator().manual_seed(7))
    c = noise.sample((1000,), generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("noise", NOISES, ids=repr)
def test_default_dtype_and_empty(noise):
    assert noise.sample((2,)).dtype == torch.get_default_dtype()
    assert noise.sample((0, 3)).shape == (0, 3)


def test_gumbel_matches_law(generator):
    x = Gumbel(scale=0.7).sample((50_000,), generator=generator, dtype=torch.float64).numpy()
    assert stats.kstest(x, stats.gumbel_r(scale=0.7).cdf).pvalue > 1e-3
    n = x.size
    assert abs(x.mean() - 0.7 * EULER_GAMMA) < 4 * 0.7 * math.pi / math.sqrt(6 * n)


def test_gumbel_extremes_finite():
    # uniforms at 0 are clamped: the smallest possible draw is finite
    eps = standard_gumbel((1_000_000,), generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    assert torch.isfinite(eps).all()


def test_normal_matches_law(generator):
    x = Normal(scale=2.0).sample((50_000,), generator=generator, dtype=torch.float64).numpy()
    assert stats.kstest(x, stats.norm(scale=2.0).cdf).pvalue > 1e-3


@pytest.mark.parametrize("k,temperature", [(1, 1.0), (5, 1.0), (10, 0.5)])
def test_sum_of_gamma_single_draw_moments(k, temperature, generator):
    """One draw: mean (τ/κ)(H_s − log s), variance (τ²/κ) Σ 1/i² — with the scale κ/i (not a rate)."""
    s = 10
    x = SumOfGamma(k, temperature, num_terms=s).sample((200_000,), generator=generator, dtype=torch.float64)
    harmonic = sum(1.0 / i for i in range(1, s + 1))
    mean = temperature / k * (harmonic - math.log(s))
    var = temperature**2 / k * sum(1.0 / i**2 for i in range(1, s + 1))
    n = x.numel()
    assert abs(x.mean().item() - mean) < 4 * math.sqrt(var / n)
    # the variance's standard error from the sample fourth moment
    centred = x - x.mean()
    se_var = math.sqrt(((centred**4).mean().item() - var**2) / n)
    assert abs(x.var().item() - var) < 4 * se_var


@pytest.mark.parametrize("k", [2, 5])
@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_sum_of_k_draws_is_the_truncated_gumbel(k, temperature, generator):
    """Σ of k i.i.d. SoG(k, τ, s) draws has the exact law τ (max of s Exp(1) − log s)."""
    s = 10
    x = SumOfGamma(k, temperature, num_terms=s).sample((k, 40_000), generator=generator, dtype=torch.float64).sum(0)
    result = stats.kstest(x.numpy(), lambda v: sog_sum_cdf(v, s, temperature))
    assert result.pvalue > 1e-3


@pytest.mark.parametrize("k", [1, 4])
def test_sum_of_k_draws_tends_to_gumbel(k, generator):
    """Theorem 1: with many terms the sum of k draws is Gumbel(0, τ): KS, mean and variance within SE."""
    temperature = 2.0
    x = SumOfGamma(k, temperature, num_terms=2000).sample((k, 20_000), generator=generator, dtype=torch.float64).sum(0)
    x = x.numpy()
    assert stats.kstest(x, stats.gumbel_r(scale=temperature).cdf).pvalue > 1e-3
    n = x.size
    sd = temperature * math.pi / math.sqrt(6)
    assert abs(x.mean() - temperature * EULER_GAMMA) < 4 * sd / math.sqrt(n)
    # Var(sample variance)/σ⁴ ≈ (2 + excess kurtosis)/n, and the Gumbel's excess kurtosis is 12/5
    assert abs(x.var() / sd**2 - 1.0) < 4 * math.sqrt(4.4 / n)


def test_sum_of_gamma_independent_of_thread_count():
    noise = SumOfGamma(k=5)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = noise.sample((3, 70_000), generator=torch.Generator().manual_seed(3))
        torch.set_num_threads(2)
        b = noise.sample((3, 70_000), generator=torch.Generator().manual_seed(3))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(a, b)


def test_sum_of_gamma_blocks_are_independent(generator):
    """Adjacent 65,536-entry blocks come from different streams: no repeated values across blocks."""
    x = SumOfGamma(k=2).sample((1 << 17,), generator=generator, dtype=torch.float64)
    first, second = x[: 1 << 16], x[1 << 16 :]
    assert not torch.equal(first, second)
    assert abs(np.corrcoef(first.numpy(), second.numpy())[0, 1]) < 4 / math.sqrt(1 << 16)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: SumOfGamma(k=0), "k must be >= 1"),
        (lambda: SumOfGamma(k=2.5), "k must be an integer"),
        (lambda: SumOfGamma(k=3, temperature=0.0), "temperature"),
        (lambda: SumOfGamma(k=3, num_terms=0), "num_terms"),
        (lambda: Gumbel(scale=-1.0), "scale"),
        (lambda: Normal(scale=float("nan")), "scale"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize("noise", NOISES, ids=repr)
def test_bad_sample_arguments(noise):
    with pytest.raises(TypeError, match="generator"):
        noise.sample((2,), generator=123)
    with pytest.raises(TypeError, match="dtype"):
        noise.sample((2,), dtype=torch.int64)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("noise", NOISES, ids=repr)
def test_cuda_samples_on_device(noise):
    g = torch.Generator(device="cuda").manual_seed(0)
    eps = noise.sample((4, 1000), generator=g, device="cuda", dtype=torch.float64)
    assert eps.device.type == "cuda" and eps.dtype == torch.float64 and torch.isfinite(eps).all()
