"""KnownTarget (the Warcraft "μ-μ"): backward equals (1/λ) Σ_s [z_s − MAP(θ* + τ'ε_s)] on fixed noise,
does not depend on the upstream gradient's values, and validates target_theta."""

import pytest
import torch

import discograd
from discograd import KnownTarget, SumOfGamma, TopK
from helpers import FixedNoise


@pytest.mark.parametrize("temperatures", [(1.0, None), (0.5, 2.0), (1.0, 0.0)])
@pytest.mark.parametrize("num_samples", [None, 5])
def test_backward_equals_formula_on_fixed_noise(temperatures, num_samples, generator):
    temperature, target_temperature = temperatures
    S, B, n, k = (num_samples or 1), 4, 9, 3
    dtype = torch.float64
    theta = torch.randn(B, n, generator=generator, dtype=dtype)
    theta_star = torch.randn(B, n, generator=generator, dtype=dtype)
    eps = SumOfGamma(k).sample((S, B, n), generator=generator, dtype=dtype)
    solver = TopK(k)
    layer = discograd.imle(solver, noise=FixedNoise(eps), target=KnownTarget(step_size=0.7), num_samples=num_samples,
                           temperature=temperature, target_temperature=target_temperature)
    t = theta.clone().requires_grad_()
    z = layer(t, target_theta=theta_star)
    assert z.shape == ((S, B, n) if num_samples else (B, n))
    w = torch.randn(z.shape, generator=generator, dtype=dtype)
    (z * w).sum().backward()
    tt = temperature if target_temperature is None else target_temperature
    expected = torch.zeros_like(theta)
    for s in range(S):  # the formula, sample by sample
        expected += (solver(theta + temperature * eps[s]) - solver(theta_star + tt * eps[s])) / 0.7
    torch.testing.assert_close(t.grad, expected)
    assert t.grad.abs().sum() > 0  # the case is not trivial


def test_independent_of_the_upstream_gradient(generator):
    """Any non-zero-or-zero g, any scale: the same gradient (the same noise through a fixed generator seed)."""
    theta = torch.randn(3, 10, dtype=torch.float64, generator=generator)
    theta_star = torch.randn(3, 10, dtype=torch.float64, generator=generator)
    grads = []
    for scale in (1e-3, 1.0, -7.0, 0.0):
        t = theta.clone().requires_grad_()
        layer = discograd.imle(TopK(4), noise=SumOfGamma(4), target=KnownTarget(10.0), num_samples=3,
                               generator=torch.Generator().manual_seed(5))
        z = layer(t, target_theta=theta_star)
        (scale * z * torch.arange(10.0, dtype=torch.float64)).sum().backward()
        grads.append(t.grad)
    for g in grads[1:]:
        torch.testing.assert_close(g, grads[0])
    assert grads[0].abs().sum() > 0


def test_no_noise_is_map_difference_and_zero_at_the_target():
    theta = torch.tensor([[3.0, 2.0, 1.0, 0.0]], requires_grad=True)
    layer = discograd.imle(TopK(2), noise=None, target=KnownTarget(2.0))
    layer(theta, target_theta=theta.detach() * 2).sum().backward()  # same MAP: zero gradient
    assert torch.equal(theta.grad, torch.zeros(1, 4))


def test_target_theta_is_not_passed_to_the_solver():
    seen = {}

    def solver(theta, **kwargs):
        seen.update(kwargs)
        return TopK(1)(theta)

    layer = discograd.imle(solver, noise=None, target=KnownTarget())
    theta = torch.zeros(2, 3, requires_grad=True)
    layer(theta, target_theta=torch.ones(2, 3)).sum().backward()
    assert seen == {}


def test_validation():
    theta = torch.zeros(2, 5, requires_grad=True)
    layer = discograd.imle(TopK(2), noise=None, target=KnownTarget())
    with pytest.raises(ValueError, match="needs the target parameters.*target_theta="):
        layer(theta)
    with pytest.raises(ValueError, match=r"target_theta must have theta's shape \(2, 5\); got \(2, 4\)"):
        layer(theta, target_theta=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="target_theta must be finite; got 1 NaN"):
        layer(theta, target_theta=torch.tensor([[0.0, float("nan"), 0, 0, 0], [0.0] * 5]))
    with pytest.raises(TypeError, match="target_theta must be a torch.Tensor"):
        layer(theta, target_theta=[[0.0] * 5] * 2)
    with pytest.raises(TypeError, match="target_theta must have a floating-point dtype"):
        layer(theta, target_theta=torch.zeros(2, 5, dtype=torch.long))
    other = discograd.imle(TopK(2), noise=None)
    with pytest.raises(ValueError, match="target_theta is only used by targets with known parameters"):
        other(theta, target_theta=torch.zeros(2, 5))
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="step_size must be a finite number > 0"):
            KnownTarget(bad)


@pytest.mark.cuda
def test_device_mismatch():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    layer = discograd.imle(TopK(2), noise=None, target=KnownTarget())
    with pytest.raises(ValueError, match="target_theta must be on theta's device"):
        layer(torch.zeros(2, 5, device="cuda"), target_theta=torch.zeros(2, 5))
