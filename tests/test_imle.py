"""The I-MLE estimator: the backward against the paper's formula, against exact expectations, and its API."""

import math

import pytest
import torch

import discograd
from discograd import (
    AdaptiveTarget,
    Argmax,
    Gumbel,
    LabelTarget,
    PerturbedTarget,
    SumOfGamma,
    TopK,
)
from discograd.exact import topk_marginals
from helpers import FixedNoise


def reference_gradient(solver, theta, eps, grad_z, step_size, temperature, target_temperature, two_sided):
    """The paper's estimator, written out sample by sample with a Python loop."""
    total = torch.zeros_like(theta)
    for s in range(eps.shape[0]):
        g = grad_z[s]
        if two_sided:
            plus = solver(theta + step_size * g + target_temperature * eps[s])
            minus = solver(theta - step_size * g + target_temperature * eps[s])
            total += (plus - minus) / (2 * step_size)
        else:
            z = solver(theta + temperature * eps[s])
            minus = solver(theta - step_size * g + target_temperature * eps[s])
            total += (z - minus) / step_size
    return total


@pytest.mark.parametrize("two_sided", [False, True])
@pytest.mark.parametrize("temperatures", [(1.0, None), (0.5, 2.0), (1.0, 0.0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backward_equals_formula_on_fixed_noise(two_sided, temperatures, dtype, generator):
    temperature, target_temperature = temperatures
    S, B, n, k = 6, 4, 9, 3
    theta = torch.randn(B, n, generator=generator, dtype=dtype)
    eps = SumOfGamma(k).sample((S, B, n), generator=generator, dtype=dtype)
    w = torch.randn(S, B, n, generator=generator, dtype=dtype)
    solver = TopK(k)
    layer = discograd.imle(
        solver,
        noise=FixedNoise(eps),
        target=PerturbedTarget(step_size=0.7, two_sided=two_sided),
        num_samples=S,
        temperature=temperature,
        target_temperature=target_temperature,
    )
    t = theta.clone().requires_grad_()
    z = layer(t)
    assert z.shape == (S, B, n) and z.dtype == dtype
    assert torch.equal(z, solver(theta + temperature * eps))
    (z * w).sum().backward()
    tt = temperature if target_temperature is None else target_temperature
    expected = reference_gradient(solver, theta, eps, w, 0.7, temperature, tt, two_sided)
    torch.testing.assert_close(t.grad, expected)


def test_scale_by_step_size_false_drops_one_over_lambda(generator):
    theta = torch.randn(5, 8, generator=generator, dtype=torch.float64)
    eps = Gumbel().sample((3, 5, 8), generator=generator, dtype=torch.float64)
    w = torch.randn(3, 5, 8, generator=generator, dtype=torch.float64)
    grads = []
    for scale in (True, False):
        layer = discograd.imle(TopK(2), noise=FixedNoise(eps), target=PerturbedTarget(2.5), num_samples=3,
                               scale_by_step_size=scale)
        t = theta.clone().requires_grad_()
        (layer(t) * w).sum().backward()
        grads.append(t.grad)
    torch.testing.assert_close(grads[0] * 2.5, grads[1])


def test_samples_combine_by_sum(generator):
    """With S samples the gradient is the sum of the S single-sample gradients (same noise each)."""
    theta = torch.randn(4, 7, generator=generator, dtype=torch.float64)
    eps = Gumbel().sample((5, 4, 7), generator=generator, dtype=torch.float64)
    w = torch.randn(5, 4, 7, generator=generator, dtype=torch.float64)
    t = theta.clone().requires_grad_()
    (discograd.imle(TopK(3), noise=FixedNoise(eps), num_samples=5)(t) * w).sum().backward()
    total = torch.zeros_like(theta)
    for s in range(5):
        ts = theta.clone().requires_grad_()
        (discograd.imle(TopK(3), noise=FixedNoise(eps[s : s + 1]))(ts) * w[s]).sum().backward()
        total += ts.grad
    torch.testing.assert_close(t.grad, total)


@pytest.mark.parametrize("two_sided", [False, True])
def test_expected_gradient_is_exact_for_gumbel_argmax(two_sided, generator):
    """Argmax with Gumbel noise samples softmax(θ) exactly, so for a linear loss <c, z> the expected
    one-sided I-MLE gradient is (softmax(θ) − softmax(θ − λc))/λ and the two-sided one is
    (softmax(θ + λc) − softmax(θ − λc))/(2λ). The Monte Carlo mean must match within 4 standard errors."""
    n, S, lam = 6, 40_000, 0.8
    theta = torch.randn(n, generator=generator, dtype=torch.float64)
    c = torch.randn(n, generator=generator, dtype=torch.float64)
    eps = Gumbel().sample((S, n), generator=generator, dtype=torch.float64)
    target = PerturbedTarget(lam, two_sided=two_sided)
    z = Argmax()(theta + eps)
    per_sample = discograd.estimators.imle_gradient(Argmax(), theta, z, c.expand(S, n), eps, target, num_samples=S)
    mean = per_sample.mean(0)
    se = per_sample.std(0) / math.sqrt(S)
    if two_sided:
        expected = (torch.softmax(theta + lam * c, 0) - torch.softmax(theta - lam * c, 0)) / (2 * lam)
    else:
        expected = (torch.softmax(theta, 0) - torch.softmax(theta - lam * c, 0)) / lam
    assert torch.all((mean - expected).abs() < 4 * se + 1e-12), (mean, expected, se)
    # and the layer's backward is the sum of exactly these per-sample gradients
    layer = discograd.imle(Argmax(), noise=FixedNoise(eps), target=target, num_samples=S)
    t = theta.clone().requires_grad_()
    (layer(t) * c).sum().backward()
    torch.testing.assert_close(t.grad, per_sample.sum(0))


def test_two_sided_has_lower_bias_than_one_sided(generator):
    """Against the exact gradient J_softmax(θ) c (λ → 0), at the same λ, with exact expectations."""
    n, lam = 8, 1.0
    worse = 0
    for _ in range(20):
        theta = torch.randn(n, generator=generator, dtype=torch.float64)
        c = torch.randn(n, generator=generator, dtype=torch.float64)
        t = theta.clone().requires_grad_()
        (exact,) = torch.autograd.grad(torch.softmax(t, 0), t, c)
        one = (torch.softmax(theta, 0) - torch.softmax(theta - lam * c, 0)) / lam
        two = (torch.softmax(theta + lam * c, 0) - torch.softmax(theta - lam * c, 0)) / (2 * lam)
        worse += int((two - exact).norm() >= (one - exact).norm())
    assert worse == 0


def test_small_step_cosine_to_exact_gradient_topk(generator):
    """λ → 0 with many samples: the I-MLE gradient through TopK(10, 5) with Gumbel noise points along the
    exact gradient of L(μ(θ)) = <c, μ(θ)> (J_μ c by autograd through the k-subset DP). Measured: cosine
    0.99 (it is not 1: per-coordinate Gumbel perturb-and-MAP is not exactly p(z; θ) for k > 1)."""
    n, k, S = 10, 5, 20_000
    cosines = []
    for _ in range(3):
        theta = torch.randn(n, generator=generator, dtype=torch.float64)
        c = torch.randn(n, generator=generator, dtype=torch.float64)
        t = theta.clone().requires_grad_()
        (exact,) = torch.autograd.grad(topk_marginals(t, k), t, c)
        layer = discograd.imle(TopK(k), noise=Gumbel(), target=PerturbedTarget(0.1, two_sided=True),
                               num_samples=S, generator=generator)
        t = theta.clone().requires_grad_()
        (layer(t) * c).sum().backward()
        cosines.append(torch.nn.functional.cosine_similarity(t.grad, exact, dim=0).item())
    assert min(cosines) > 0.95, cosines


# --- API -----------------------------------------------------------------------------------------


def test_num_samples_none_equals_one(generator):
    theta = torch.randn(3, 6, generator=generator)
    outs, grads = [], []
    for num_samples in (None, 1):
        layer = discograd.imle(TopK(2), noise=SumOfGamma(2), num_samples=num_samples,
                               generator=torch.Generator().manual_seed(5))
        t = theta.clone().requires_grad_()
        z = layer(t)
        outs.append(z if num_samples is None else z[0])
        (outs[-1] * torch.arange(6.0)).sum().backward()
        grads.append(t.grad)
        assert z.shape == ((3, 6) if num_samples is None else (1, 3, 6))
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(grads[0], grads[1])


def test_samples_are_a_leading_dimension_and_differ(generator):
    layer = discograd.imle(TopK(3), noise=Gumbel(), num_samples=16, generator=generator)
    z = layer(torch.zeros(2, 3, 10))
    assert z.shape == (16, 2, 3, 10)
    assert torch.all(z.sum(-1) == 3)
    assert len({tuple(row.tolist()) for row in z[:, 0, 0]}) > 1


def test_solver_called_once_per_pass_on_merged_batch(generator):
    calls = []

    def solver(theta):
        calls.append(tuple(theta.shape))
        return TopK(2)(theta)

    layer = discograd.imle(solver, num_samples=4, generator=generator)
    t = torch.randn(3, 5, requires_grad=True)
    layer(t).sum().backward()
    assert calls == [(12, 5), (12, 5)]
    calls.clear()
    discograd.imle(solver, num_samples=4, target=PerturbedTarget(two_sided=True), generator=generator)(
        torch.randn(5, requires_grad=True)).sum().backward()
    assert calls == [(4, 5), (4, 5), (4, 5)]


def test_decorator_form(generator):
    @discograd.imle(noise=SumOfGamma(2), num_samples=3, generator=generator)
    def top2(theta):
        """my solver"""
        return TopK(2)(theta)

    assert isinstance(top2, discograd.IMLE) and top2.__name__ == "top2" and top2.__doc__ == "my solver"
    t = torch.randn(4, 6, requires_grad=True)
    z = top2(t)
    assert z.shape == (3, 4, 6)
    (z * torch.arange(6.0)).sum().backward()
    assert t.grad is not None and t.grad.shape == (4, 6)


def test_extra_solver_args_and_per_instance(generator):
    layer = discograd.imle(TopK(), num_samples=5, generator=generator)
    t = torch.randn(3, 6, requires_grad=True)
    z = layer(t, 2)
    assert torch.all(z.sum(-1) == 2)
    z = layer(t, k=discograd.per_instance(torch.tensor([1, 2, 3])))
    assert z.shape == (5, 3, 6)
    assert torch.all(z.sum(-1) == torch.tensor([1.0, 2.0, 3.0]))
    (z * torch.arange(6.0)).sum().backward()
    assert torch.isfinite(t.grad).all()
    with pytest.raises(ValueError, match="per_instance"):
        layer(t, k=discograd.per_instance(torch.tensor([1, 2])))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_dtypes(dtype, generator):
    layer = discograd.imle(TopK(2), noise=SumOfGamma(2), num_samples=2, generator=generator)
    t = torch.randn(3, 5, dtype=dtype, requires_grad=True)
    z = layer(t)
    assert z.dtype == dtype
    (z * torch.arange(5.0, dtype=dtype)).sum().backward()
    assert t.grad.dtype == dtype


def test_no_noise_is_blackbox_interpolation(generator):
    """noise=None: I-MLE MAP-MAP, i.e. (1/λ)[MAP(θ) − MAP(θ − λg)] (Vlastelica et al.)."""
    theta = torch.randn(4, 7, generator=generator, dtype=torch.float64)
    g = torch.randn(4, 7, generator=generator, dtype=torch.float64)
    t = theta.clone().requires_grad_()
    z = discograd.imle(TopK(3), noise=None, target=PerturbedTarget(2.0))(t)
    assert torch.equal(z, TopK(3)(theta))
    (z * g).sum().backward()
    torch.testing.assert_close(t.grad, (TopK(3)(theta) - TopK(3)(theta - 2.0 * g)) / 2.0)


def test_label_target_is_maximum_likelihood_on_the_label(generator):
    """Eq. 14 target θ' = −λg where g ≠ 0: under a Hamming loss MAP(θ' + ε) is the label when λ dominates
    the noise, so the gradient is (z − z*)/λ per sample (the perceptron rule without noise). The size of g
    does not scale it: a loss averaged over S samples gives the sum of the per-sample terms."""
    theta = torch.randn(6, 8, generator=generator, dtype=torch.float64)
    label = TopK(3)(torch.randn(6, 8, generator=generator, dtype=torch.float64))
    for noise, samples in ((None, 1), (SumOfGamma(3), 4)):
        t = theta.clone().requires_grad_()
        layer = discograd.imle(TopK(3), noise=noise, target=LabelTarget(50.0), num_samples=samples,
                               generator=generator)
        z = layer(t)
        zs = z if z.dim() == 3 else z.unsqueeze(0)
        (zs * (1 - 2 * label) + label).sum(dim=(-2, -1)).mean().backward()  # Hamming: g = (1 − 2z*)/S ≠ 0
        torch.testing.assert_close(t.grad, (zs - label).sum(0) / 50.0)
    # where g = 0 the target keeps θ; elsewhere it is −λg, whatever θ is
    g = torch.zeros(1, 6, 8, dtype=torch.float64)
    g[..., 0] = 2.0
    params = LabelTarget(3.0).params(theta.unsqueeze(0), g, event_dims=1)
    assert torch.equal(params.theta_minus[..., 0], torch.full((1, 6), -6.0, dtype=torch.float64))
    assert torch.equal(params.theta_minus[..., 1:], theta.unsqueeze(0)[..., 1:])
    assert params.theta_plus is None and params.step_size == 3.0 and not params.two_sided


def test_gradient_flows_through_a_network(generator):
    """theta produced by a layer; the gradient reaches the layer's weights; no warnings (warnings are errors)."""
    torch.manual_seed(0)  # only for nn.Linear's initialisation in this test
    net = torch.nn.Linear(4, 6)
    layer = discograd.imle(TopK(2), noise=SumOfGamma(2), num_samples=3, generator=generator)
    x = torch.randn(8, 4, generator=generator)
    loss = (layer(net(x)) * torch.randn(6, generator=generator)).sum()
    loss.backward()
    assert net.weight.grad is not None and torch.isfinite(net.weight.grad).all()


def test_adaptive_target_with_fixed_beta_equals_perturbed_target(generator):
    """With update_step=0 the adaptive target is the PID target with λ = β‖θ‖/‖g‖ per instance."""
    theta = torch.randn(1, 8, generator=generator, dtype=torch.float64)
    eps = Gumbel().sample((1, 1, 8), generator=generator, dtype=torch.float64)
    g = torch.randn(1, 8, generator=generator, dtype=torch.float64)
    beta = 0.7
    lam = beta * theta.norm().item() / g.norm().item()
    grads = []
    for two_sided in (False, True):
        for target in (AdaptiveTarget(update_step=0.0, initial_beta=beta, two_sided=two_sided),
                       PerturbedTarget(lam, two_sided=two_sided)):
            t = theta.clone().requires_grad_()
            (discograd.imle(TopK(3), noise=FixedNoise(eps), target=target, num_samples=1)(t)[0] * g).sum().backward()
            grads.append(t.grad)
    torch.testing.assert_close(grads[0], grads[1])
    torch.testing.assert_close(grads[2], grads[3])


def test_adaptive_target_per_instance_step_sizes(generator):
    target = AdaptiveTarget(initial_beta=0.5)
    theta = torch.randn(2, 3, 5, generator=generator)
    g = torch.randn(2, 3, 5, generator=generator)
    g[0, 1] = 0.0
    lam = target.step_sizes(theta, g, event_dims=1)
    assert lam.shape == (2, 3, 1)
    torch.testing.assert_close(lam[1, 2, 0], 0.5 * theta[1, 2].norm() / g[1, 2].norm())
    assert lam[0, 1, 0] == 0.0


def test_adaptive_target_steers_towards_target_nonzeros(generator):
    """Starting from β = 0 (zero gradients), β grows until gradients have about the target density."""
    target = AdaptiveTarget(target_nonzeros=4.0, update_step=0.02, initial_beta=0.0, decay=0.9)
    layer = discograd.imle(TopK(5), noise=SumOfGamma(5), target=target, num_samples=4, generator=generator)
    theta = torch.randn(32, 20, generator=generator)
    b = torch.randn(20, generator=generator)
    history = []
    for _ in range(300):
        t = theta.clone().requires_grad_()
        ((layer(t) - b) ** 2).sum().backward()
        history.append(target.running_nonzeros)
    assert target.beta > 0 and target.num_updates == 300
    late = history[-100:]
    assert abs(sum(late) / len(late) - 4.0) < 1.5, (target.beta, late[-5:])


def test_adaptive_target_state(generator):
    target = AdaptiveTarget(target_nonzeros=2.0, update_step=0.1)
    layer = discograd.imle(TopK(2), target=target, num_samples=2, generator=generator)
    for _ in range(3):
        t = torch.randn(4, 6, requires_grad=True)
        (layer(t) * torch.randn(6)).sum().backward()
    state = target.state_dict()
    assert state["num_updates"] == 3 and state["beta"] > 0
    # the module's state_dict carries it, and loading restores it
    module_state = layer.state_dict()
    fresh = discograd.imle(TopK(2), target=AdaptiveTarget(target_nonzeros=2.0, update_step=0.1))
    fresh.load_state_dict(module_state)
    assert fresh.target.state_dict() == state
    target.reset()
    assert target.state_dict() == {"beta": 0.0, "running_nonzeros": None, "num_updates": 0}
    with pytest.raises(KeyError, match="beta"):
        target.load_state_dict({"running_nonzeros": None, "num_updates": 0})


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "theta,error,match",
    [
        (torch.tensor([1.0, float("nan"), 2.0]), ValueError, "theta must be finite; got 1 NaN"),
        (torch.tensor([1.0, float("inf")]), ValueError, "theta must be finite"),
        (torch.tensor(1.0), ValueError, "theta must have at least 1 dimension"),
        (torch.tensor([1, 2, 3]), TypeError, "theta must have a floating-point dtype"),
        ([1.0, 2.0], TypeError, "theta must be a torch.Tensor"),
    ],
)
def test_bad_theta(theta, error, match):
    with pytest.raises(error, match=match):
        discograd.imle(TopK(1))(theta)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"num_samples": 0}, ValueError, "num_samples must be >= 1"),
        ({"num_samples": 2.0}, TypeError, "num_samples must be an integer"),
        ({"temperature": -1.0}, ValueError, "temperature"),
        ({"target_temperature": float("nan")}, ValueError, "target_temperature"),
        ({"noise": "gumbel"}, TypeError, "noise must have a sample"),
        ({"target": 1.0}, TypeError, "target must have a params"),
        ({"generator": 0}, TypeError, "generator"),
        ({"scale_by_step_size": 1}, TypeError, "scale_by_step_size"),
    ],
)
def test_bad_layer_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        discograd.imle(TopK(1), **kwargs)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: PerturbedTarget(step_size=0.0), "step_size must be a finite number > 0"),
        (lambda: PerturbedTarget(step_size=-1.0), "step_size"),
        (lambda: AdaptiveTarget(target_nonzeros=0.0), "target_nonzeros"),
        (lambda: AdaptiveTarget(decay=1.0), "decay"),
        (lambda: AdaptiveTarget(update_step=-0.1), "update_step"),
        (lambda: LabelTarget(step_size=0.0), "step_size must be a finite number > 0"),
        (lambda: LabelTarget(step_size=float("nan")), "step_size"),
    ],
)
def test_bad_target_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_solver_returning_wrong_shape():
    layer = discograd.imle(lambda theta: theta[..., :-1], num_samples=2)
    with pytest.raises(ValueError, match=r"solver returned z of shape \(6, 4\) for theta of shape \(6, 5\)"):
        layer(torch.randn(3, 5))
    with pytest.raises(TypeError, match="solver must return a torch.Tensor"):
        discograd.imle(lambda theta: theta.tolist())(torch.randn(5))
    with pytest.raises(TypeError, match="solver must be callable"):
        discograd.imle(3)


def test_bad_noise_shape():
    class BadNoise:
        def sample(self, shape, *, generator=None, device=None, dtype=None):
            return torch.zeros(3)

    with pytest.raises(ValueError, match="noise.sample returned"):
        discograd.imle(TopK(1), noise=BadNoise())(torch.randn(2, 5))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("noise", [Gumbel(), SumOfGamma(3)], ids=repr)
def test_cuda(noise):
    g = torch.Generator(device="cuda").manual_seed(0)
    t = torch.randn(4, 10, device="cuda", dtype=torch.float64, requires_grad=True)
    layer = discograd.imle(TopK(3), noise=noise, num_samples=5, generator=g,
                           target=AdaptiveTarget(initial_beta=1.0))
    z = layer(t)
    assert z.device.type == "cuda" and z.dtype == torch.float64 and z.shape == (5, 4, 10)
    (z * torch.randn(10, device="cuda", dtype=torch.float64)).sum().backward()
    assert t.grad.device.type == "cuda" and torch.isfinite(t.grad).all()


@pytest.mark.parametrize("noise", [Gumbel(), SumOfGamma(3), SumOfGamma(3, method="table")])
@pytest.mark.parametrize("two_sided", [False, True])
def test_recompute_noise_gives_identical_gradients_and_keeps_no_noise(noise, two_sided):
    theta = torch.randn(6, 10, generator=torch.Generator().manual_seed(5))
    g = torch.randn(4, 6, 10, generator=torch.Generator().manual_seed(6))
    grads, saved = [], []
    for recompute in (False, True):
        layer = discograd.imle(TopK(3), noise=noise, target=PerturbedTarget(0.7, two_sided=two_sided), num_samples=4,
                               generator=torch.Generator().manual_seed(7), recompute_noise=recompute)
        t = theta.clone().requires_grad_()
        sizes = []
        with torch.autograd.graph.saved_tensors_hooks(lambda x: sizes.append(x.numel()) or x, lambda x: x):
            z = layer(t)
        (z * g).sum().backward()
        grads.append(t.grad)
        saved.append(sum(sizes))
    assert torch.equal(grads[0], grads[1]) and grads[0].abs().sum() > 0
    assert saved[0] - saved[1] == 4 * 6 * 10  # the [S, B, n] noise tensor is no longer kept


def test_recompute_noise_needs_a_generator():
    with pytest.raises(ValueError, match="recompute_noise=True needs a generator"):
        discograd.imle(TopK(2), recompute_noise=True)


def test_recompute_noise_with_the_adaptive_target():
    """AdaptiveTarget reads the noise's norm (its λ floor): the redrawn noise gives the same gradient."""
    theta = torch.zeros(3, 8)  # at θ = 0 the floor decides λ
    g = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(4))  # seeds with a non-zero gradient
    grads = []
    for recompute in (False, True):
        layer = discograd.imle(TopK(2), noise=SumOfGamma(2), target=discograd.AdaptiveTarget(initial_beta=1.0),
                               num_samples=2, generator=torch.Generator().manual_seed(2), recompute_noise=recompute)
        t = theta.clone().requires_grad_()
        (layer(t) * g).sum().backward()
        grads.append(t.grad)
    assert torch.equal(grads[0], grads[1]) and grads[0].abs().sum() > 0
