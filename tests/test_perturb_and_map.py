"""Perturb-and-MAP sampling distributions against the exact exponential family (chi-square, TV)."""

import math

import pytest
import torch
from scipy import stats

from discograd import Argmax, Gumbel, SumOfGamma, TopK
from discograd.exact import enumeration_log_probs, ksubset_states


def state_frequencies(z, states):
    """Counts of each enumerated state among the rows of z ``[N, n]``."""
    weights = 2.0 ** torch.arange(states.shape[-1], dtype=torch.float64)
    codes = (states.to(torch.float64) @ weights).long()
    index = torch.full((int(weights.sum().item()) + 1,), -1, dtype=torch.long)
    index[codes] = torch.arange(len(codes))
    sample_codes = index[(z.to(torch.float64) @ weights).long()]
    assert (sample_codes >= 0).all(), "a sample is not a feasible state"
    return torch.bincount(sample_codes, minlength=len(codes)).to(torch.float64)


@pytest.mark.parametrize("noise_scale", [0.5, 1.0, 2.0])
def test_gumbel_argmax_frequencies_are_softmax(noise_scale, generator):
    """Gumbel-max: E[onehot(argmax(θ + σ ε))] = softmax(θ/σ); chi-square goodness of fit."""
    n, N = 6, 60_000
    theta = torch.randn(n, generator=generator, dtype=torch.float64)
    eps = Gumbel(scale=noise_scale).sample((N, n), generator=generator, dtype=torch.float64)
    counts = Argmax()(theta + eps).sum(0)
    expected = torch.softmax(theta / noise_scale, 0) * N
    assert stats.chisquare(counts.numpy(), expected.numpy()).pvalue > 1e-3


def test_sum_of_gamma_with_k_1_samples_the_categorical_exactly(generator):
    """SoG(1, τ) with many terms is Gumbel(0, τ): TopK(1) perturb-and-MAP samples softmax(θ/τ)."""
    n, N = 5, 60_000
    theta = torch.randn(n, generator=generator, dtype=torch.float64)
    eps = SumOfGamma(1, temperature=1.0, num_terms=1000).sample((N, n), generator=generator, dtype=torch.float64)
    counts = TopK(1)(theta + eps).sum(0)
    expected = torch.softmax(theta, 0) * N
    assert stats.chisquare(counts.numpy(), expected.numpy()).pvalue > 1e-3


def test_topk_sum_of_gamma_against_the_exact_k_subset_distribution(generator):
    """TopK(10, 5) perturbed with SoG(5, 1) vs the exact p(z; θ) over the 252 states.

    Theorem 1 makes <z, ε> Gumbel(0, 1) for every single z, but the perturbations of overlapping subsets
    are correlated, so perturb-and-MAP is not p: it is *colder*. Measured (seed 1234): total variation
    ≈ 0.6 to p at temperature 1, ≈ 0.1 to p at temperature 0.25; per-coordinate Gumbel(0, 1) noise
    gives ≈ 0.1-0.2 at temperature 1. The test pins these orderings (each with a margin of many
    standard errors: the TV estimate's s.e. is ≈ sqrt(C/N) ≈ 0.03 at most here), not the exact values.
    """
    n, k, N = 10, 5, 100_000
    states = ksubset_states(n, k, dtype=torch.float64)
    theta = torch.randn(n, generator=generator, dtype=torch.float64)

    def tv(noise, temperature):
        eps = noise.sample((N, n), generator=generator, dtype=torch.float64)
        q = state_frequencies(TopK(k)(theta + eps), states) / N
        p = enumeration_log_probs(states, theta, temperature=temperature).exp()
        return 0.5 * (q - p).abs().sum().item()

    sog_at_1 = tv(SumOfGamma(k), 1.0)
    sog_at_quarter = tv(SumOfGamma(k), 0.25)
    gumbel_at_1 = tv(Gumbel(), 1.0)
    assert sog_at_quarter < sog_at_1 - 0.2
    assert gumbel_at_1 < sog_at_1 - 0.2
    # identical orderings of the modes: the most likely state under both is the top-k of θ
    eps = SumOfGamma(k).sample((N, n), generator=generator, dtype=torch.float64)
    q = state_frequencies(TopK(k)(theta + eps), states)
    assert torch.equal(states[q.argmax()], TopK(k)(theta))
    assert math.isfinite(sog_at_1)
