"""Every estimator against an exact reference where one exists, plus generic tests over a registry."""

import math

import pytest
import torch

import discograd
from discograd import Argmax, Gumbel, Normal, TopK
from discograd.exact import enumeration_expectation, ksubset_states, topk_marginals
from discograd.losses import FenchelYoungLoss, fenchel_young_loss, hamming_loss, spo_plus_loss
from discograd.metrics import exact_match, hamming_distance, normalized_regret, regret


class FixedNoise:
    def __init__(self, eps, score=None):
        self.eps = eps
        self._score = score

    def sample(self, shape, *, generator=None, device=None, dtype=None):
        assert tuple(shape) == tuple(self.eps.shape)
        return self.eps.to(device=device, dtype=dtype).clone()

    def grad_neg_log_density(self, eps):
        return self._score(eps)


def within_standard_errors(samples, expected, num_se=4.0):
    """samples: [M, ...] independent replicates of an estimator; compare the mean with ``expected``."""
    mean = samples.mean(0)
    se = samples.std(0) / math.sqrt(samples.shape[0])
    return bool(torch.all((mean - expected).abs() <= num_se * se + 1e-9)), (mean, expected, se)


# --- score function ------------------------------------------------------------------------------


@pytest.mark.parametrize("baseline", ["leave_one_out", "none", 0.5])
def test_score_function_topk_is_unbiased(baseline, generator):
    """E[gradient] equals the exact gradient of E_p[‖z − b‖²] (enumeration), within standard errors."""
    n, k, M, S = 6, 2, 3000, 4
    theta = torch.randn(n, generator=generator, dtype=torch.float64)
    b = torch.rand(n, generator=generator, dtype=torch.float64)
    states = ksubset_states(n, k, dtype=torch.float64)
    t = theta.clone().requires_grad_()
    (exact,) = torch.autograd.grad(enumeration_expectation(states, t, ((states - b) ** 2).sum(-1)), t)
    # M independent replicates as a batch of M identical instances
    tm = theta.expand(M, n).clone().requires_grad_()
    sf = discograd.score_function(TopK(k), num_samples=S, baseline=baseline, generator=generator)
    z = sf(tm)
    assert z.shape == (S, M, n) and torch.all(z.sum(-1) == k)
    losses = ((z - b) ** 2).sum(-1)
    sf.surrogate(tm, z, losses).mean(0).sum().backward()
    ok, info = within_standard_errors(tm.grad, exact)
    assert ok, info


def test_score_function_argmax_is_unbiased(generator):
    n, M, S = 5, 4000, 3
    theta = torch.randn(n, generator=generator, dtype=torch.float64)
    c = torch.randn(n, generator=generator, dtype=torch.float64)
    # a nonlinear loss L(z) = <c, z>², whose expectation under softmax(θ) is Σ_i p_i c_i²
    t = theta.clone().requires_grad_()
    (exact,) = torch.autograd.grad((torch.softmax(t, 0) * c**2).sum(), t)
    tm = theta.expand(M, n).clone().requires_grad_()
    sf = discograd.score_function(Argmax(), num_samples=S, generator=generator)
    z = sf(tm)
    sf.surrogate(tm, z, (z * c).sum(-1) ** 2).mean(0).sum().backward()
    ok, info = within_standard_errors(tm.grad, exact)
    assert ok, info


def test_score_function_rejects_unsupported_solvers():
    with pytest.raises(TypeError, match="supports discograd.Argmax"):
        discograd.score_function(lambda t: t)
    with pytest.raises(ValueError, match="k set at construction"):
        discograd.score_function(TopK())
    with pytest.raises(ValueError, match="leave_one_out"):
        discograd.score_function(Argmax(), num_samples=1)
    with pytest.raises(ValueError, match="baseline must be one of"):
        discograd.score_function(Argmax(), num_samples=2, baseline="median")


# --- SIMPLE --------------------------------------------------------------------------------------


def test_simple_backward_is_the_exact_marginals_gradient(generator):
    theta = torch.randn(3, 8, generator=generator, dtype=torch.float64)
    w = torch.randn(5, 3, 8, generator=generator, dtype=torch.float64)
    t = theta.clone().requires_grad_()
    z = discograd.simple_topk(t, 3, num_samples=5, generator=generator)
    assert z.shape == (5, 3, 8) and torch.all(z.sum(-1) == 3) and set(z.unique().tolist()) <= {0.0, 1.0}
    (z * w).sum().backward()
    t2 = theta.clone().requires_grad_()
    (expected,) = torch.autograd.grad(topk_marginals(t2, 3), t2, w.sum(0))
    torch.testing.assert_close(t.grad, expected)


def test_simple_samples_are_exact(generator):
    """SIMPLE's forward is an exact sample: its frequencies match the exact marginals within SE."""
    theta = torch.randn(7, generator=generator, dtype=torch.float64)
    z = discograd.simple(3, num_samples=20_000, generator=generator)(theta)
    ok, info = within_standard_errors(z.detach(), topk_marginals(theta, 3))
    assert ok, info


# --- perturbed optimizers and Fenchel-Young ------------------------------------------------------


@pytest.mark.parametrize("noise_scale", [0.5, 1.0])
@pytest.mark.parametrize("control_variate", [False, True])
def test_perturbed_argmax_gumbel_is_softmax_value_and_jacobian(noise_scale, control_variate, generator):
    n, M, S = 5, 2000, 16
    theta = torch.randn(n, generator=generator, dtype=torch.float64)
    v = torch.randn(n, generator=generator, dtype=torch.float64)
    layer = discograd.perturbed(Argmax(), noise=Gumbel(), noise_scale=noise_scale, num_samples=S,
                                control_variate=control_variate, generator=generator)
    tm = theta.expand(M, n).clone().requires_grad_()
    y = layer(tm)
    assert y.shape == (M, n)
    ok, info = within_standard_errors(y.detach(), torch.softmax(theta / noise_scale, 0))
    assert ok, info
    (y * v).sum().backward()
    t = theta.clone().requires_grad_()
    (expected,) = torch.autograd.grad(torch.softmax(t / noise_scale, 0), t, v)
    ok, info = within_standard_errors(tm.grad, expected)
    assert ok, info


def test_perturbed_normal_topk_jacobian_matches_finite_difference(generator):
    """y_σ is smooth: its estimated Jacobian-vector product matches a finite difference of y_σ computed
    with common random numbers, within standard errors."""
    n, k, M, S, sigma, h = 6, 2, 400, 64, 0.7, 0.3
    theta = torch.randn(n, generator=generator, dtype=torch.float64)
    v = torch.randn(n, generator=generator, dtype=torch.float64)
    layer = discograd.perturbed(TopK(k), noise=Normal(), noise_scale=sigma, num_samples=S, generator=generator)
    tm = theta.expand(M, n).clone().requires_grad_()
    (layer(tm) * v).sum().backward()
    # the directional derivative of <v, y_σ(θ)> along a basis vector e_i by central differences, many samples
    eps = Normal().sample((200_000, n), generator=generator, dtype=torch.float64)
    fd = torch.empty(n, dtype=torch.float64)
    for i in range(n):
        e = torch.zeros(n, dtype=torch.float64)
        e[i] = 1.0
        up = TopK(k)(theta + h * e + sigma * eps).mean(0)
        down = TopK(k)(theta - h * e + sigma * eps).mean(0)
        fd[i] = ((up - down) @ v) / (2 * h)
    cos = torch.nn.functional.cosine_similarity(tm.grad.mean(0), fd, dim=0)
    assert cos > 0.95, (tm.grad.mean(0), fd)


def test_fenchel_young_gradient_is_perturbed_mean_minus_target(generator):
    theta = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    z_true = TopK(2)(torch.randn(4, 6, generator=generator, dtype=torch.float64))
    eps = Normal().sample((8, 4, 6), generator=generator, dtype=torch.float64)
    loss = FenchelYoungLoss(TopK(2), noise=FixedNoise(eps, lambda e: e), noise_scale=0.5, num_samples=8,
                            reduction="none")
    t = theta.clone().requires_grad_()
    value = loss(t, z_true)
    assert value.shape == (4,)
    value.sum().backward()
    y = TopK(2)(theta + 0.5 * eps)
    torch.testing.assert_close(t.grad, y.mean(0) - z_true)
    expected_value = ((theta + 0.5 * eps) * y).sum(-1).mean(0) - (theta * z_true).sum(-1)
    torch.testing.assert_close(value.detach(), expected_value)


def test_fenchel_young_learns_to_predict_the_target(generator):
    """Minimising the FY loss drives MAP(θ) to z_true."""
    z_true = TopK(3)(torch.randn(16, 10, generator=generator))
    theta = torch.zeros(16, 10, requires_grad=True)
    opt = torch.optim.SGD([theta], lr=0.5)
    for _ in range(100):
        opt.zero_grad()
        fenchel_young_loss(theta, z_true, solver=TopK(3), num_samples=4, generator=generator,
                           reduction="none").sum().backward()
        opt.step()
    assert exact_match(TopK(3)(theta.detach()), z_true).mean() == 1.0


# --- blackbox, SPO+, Hamming, metrics ------------------------------------------------------------


def test_blackbox_equals_the_formula(generator):
    theta = torch.randn(5, 9, generator=generator, dtype=torch.float64)
    g = torch.randn(5, 9, generator=generator, dtype=torch.float64)
    t = theta.clone().requires_grad_()
    z = discograd.blackbox(TopK(4), step_size=3.0)(t)
    assert torch.equal(z, TopK(4)(theta))
    (z * g).sum().backward()
    torch.testing.assert_close(t.grad, (TopK(4)(theta) - TopK(4)(theta - 3.0 * g)) / 3.0)


def test_spo_plus_closed_form_by_enumeration(generator):
    n, k = 6, 2
    states = ksubset_states(n, k, dtype=torch.float64)
    for _ in range(10):
        theta_true = torch.randn(n, generator=generator, dtype=torch.float64)
        theta_pred = torch.randn(n, generator=generator, dtype=torch.float64)
        z_true = TopK(k)(theta_true)
        # paper form with costs c = −θ: max_z (c − 2ĉ)ᵀz + 2ĉᵀz* − cᵀz*
        c, c_hat = -theta_true, -theta_pred
        expected = ((states @ (c - 2 * c_hat)).max() + 2 * c_hat @ z_true - c @ z_true)
        t = theta_pred.clone().requires_grad_()
        value = spo_plus_loss(t, theta_true, z_true, solver=TopK(k))
        torch.testing.assert_close(value.detach(), expected)
        # SPO+ upper-bounds the regret of the prediction
        assert value.item() >= regret(theta_true, TopK(k)(theta_pred), z_true).item() - 1e-12
        value.backward()
        torch.testing.assert_close(t.grad, 2 * (TopK(k)(2 * theta_pred - theta_true) - z_true))


def test_hamming_and_metrics():
    z = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    z_true = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    torch.testing.assert_close(hamming_loss(z, z_true, reduction="none"), torch.tensor([0.0, 0.5]))
    torch.testing.assert_close(hamming_loss(z, z_true, normalize=False, reduction="none"), torch.tensor([0.0, 2.0]))
    torch.testing.assert_close(hamming_distance(z, z_true), torch.tensor([0.0, 2.0]))
    torch.testing.assert_close(exact_match(z, z_true), torch.tensor([1.0, 0.0]))
    theta = torch.tensor([[4.0, 0.0, 1.0, 0.0], [4.0, 1.0, 2.0, 0.0]])
    torch.testing.assert_close(regret(theta, z, z_true), torch.tensor([0.0, 3.0]))
    torch.testing.assert_close(normalized_regret(theta, z, z_true), torch.tensor([0.0, 0.5]))
    grid = torch.zeros(2, 3, 3)
    assert hamming_loss(grid, grid, event_dims=2, reduction="none").shape == (2,)
    with pytest.raises(ValueError, match="z and z_true must share"):
        hamming_loss(torch.zeros(2, 4), torch.zeros(2, 5))


# --- relaxations: gradcheck with frozen noise, limits ----------------------------------------------


RELAXATIONS = {
    "gumbel_softmax": lambda x, seed, hard=False: discograd.gumbel_softmax(
        x, temperature=0.7, hard=hard, generator=torch.Generator().manual_seed(seed)),
    "relaxed_topk": lambda x, seed, hard=False: discograd.relaxed_topk(
        x, 2, temperature=0.7, hard=hard, generator=torch.Generator().manual_seed(seed)),
    "k_concrete": lambda x, seed, hard=False: discograd.k_concrete(
        x, 2, temperature=0.7, hard=hard, generator=torch.Generator().manual_seed(seed)),
}


@pytest.mark.parametrize("name", RELAXATIONS)
def test_relaxations_gradcheck(name, generator):
    x = torch.randn(2, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: RELAXATIONS[name](t, 3), (x,))


@pytest.mark.parametrize("name", RELAXATIONS)
def test_relaxations_hard_forward_is_discrete_with_soft_gradient(name, generator):
    x = torch.randn(4, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    hard = RELAXATIONS[name](x, 5, hard=True)
    soft = RELAXATIONS[name](x, 5, hard=False)
    expected_ones = 1 if name == "gumbel_softmax" else 2
    assert set(hard.detach().unique().tolist()) <= {0.0, 1.0} and torch.all(hard.detach().sum(-1) == expected_ones)
    w = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    (g_hard,) = torch.autograd.grad((hard * w).sum(), x)
    (g_soft,) = torch.autograd.grad((soft * w).sum(), x)
    torch.testing.assert_close(g_hard, g_soft)


def test_gumbel_softmax_low_temperature_samples_softmax(generator):
    theta = torch.tensor([1.0, 0.0, -0.5], dtype=torch.float64)
    y = discograd.gumbel_softmax(theta.expand(40_000, 3), temperature=1e-3, hard=True, generator=generator)
    ok, info = within_standard_errors(y.detach(), torch.softmax(theta, 0))
    assert ok, info


def test_relaxed_topk_sums_to_k_and_k_concrete_is_bounded(generator):
    x = torch.randn(8, 10, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(discograd.relaxed_topk(x, 3, temperature=0.3, generator=generator).sum(-1),
                               torch.full((8,), 3.0, dtype=torch.float64))
    y = discograd.k_concrete(x, 3, temperature=0.3, generator=generator)
    assert torch.all((y >= 0) & (y <= 1))


# --- the registry: generic tests over every estimator --------------------------------------------

K = 2


def _layer_estimators(generator):
    return {
        "imle": discograd.imle(TopK(K), noise=discograd.SumOfGamma(K), num_samples=3, generator=generator),
        "aimle": discograd.imle(TopK(K), noise=discograd.SumOfGamma(K), num_samples=3, generator=generator,
                                target=discograd.AdaptiveTarget(initial_beta=1.0, two_sided=True)),
        "blackbox": discograd.blackbox(TopK(K), step_size=1.0),
        "straight_through": discograd.straight_through(TopK(K), num_samples=3, generator=generator),
        "perturbed": discograd.perturbed(TopK(K), num_samples=3, generator=generator),
        "perturbed_multiplicative": discograd.perturbed(TopK(K), num_samples=3, perturbation="multiplicative",
                                                        control_variate="leave_one_out", generator=generator),
        "negative_identity": discograd.estimators.negative_identity(TopK(K)),
        "simple": discograd.simple(K, num_samples=3, generator=generator),
        "gumbel_softmax": lambda t: discograd.gumbel_softmax(t, temperature=0.5, generator=generator),
        "relaxed_topk": lambda t: discograd.relaxed_topk(t, K, temperature=0.5, generator=generator),
        "k_concrete": lambda t: discograd.k_concrete(t, K, temperature=0.5, generator=generator),
    }


REGISTRY = list(_layer_estimators(None))


@pytest.mark.parametrize("name", REGISTRY)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
def test_registry_shapes_dtypes_and_gradients(name, dtype, batch, generator):
    layer = _layer_estimators(generator)[name]
    t = torch.randn(*batch, 6, generator=generator, dtype=dtype).requires_grad_()
    out = layer(t)
    assert out.dtype == dtype
    assert out.shape[-len(t.shape):] == t.shape if t.dim() else True
    assert out.shape in (t.shape, (3, *t.shape))
    (out * torch.arange(6.0, dtype=dtype)).sum().backward()
    assert t.grad is not None and t.grad.shape == t.shape and torch.isfinite(t.grad).all()


@pytest.mark.parametrize("name", REGISTRY)
def test_registry_rejects_nan_and_scalars(name, generator):
    layer = _layer_estimators(generator)[name]
    with pytest.raises(ValueError, match="must be finite"):
        layer(torch.tensor([1.0, float("nan"), 0.0, 2.0]))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        layer(torch.tensor(1.0))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", REGISTRY)
def test_registry_cuda(name):
    g = torch.Generator(device="cuda").manual_seed(0)
    layer = _layer_estimators(g)[name]
    t = torch.randn(4, 6, device="cuda", requires_grad=True)
    out = layer(t)
    assert out.device.type == "cuda"
    out.sum().backward()
    assert t.grad.device.type == "cuda"


def test_estimators_bad_arguments():
    with pytest.raises(TypeError, match="grad_neg_log_density"):
        discograd.perturbed(TopK(2), noise=discograd.SumOfGamma(2))
    with pytest.raises(ValueError, match="noise_scale"):
        discograd.perturbed(TopK(2), noise_scale=0.0)
    with pytest.raises(ValueError, match="step_size"):
        discograd.blackbox(TopK(2), step_size=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        discograd.gumbel_softmax(torch.zeros(3), temperature=0.0)
    with pytest.raises(ValueError, match="k must satisfy"):
        discograd.relaxed_topk(torch.zeros(3), 4)
    with pytest.raises(ValueError, match="theta and z_true must have the same shape"):
        fenchel_young_loss(torch.zeros(3), torch.zeros(4), solver=TopK(1))
    with pytest.raises(ValueError, match="theta_pred and theta_true"):
        spo_plus_loss(torch.zeros(3), torch.zeros(4), torch.zeros(3), solver=TopK(1))


@pytest.mark.parametrize("scale", [1.0, 1e2, 1e4])
def test_simple_float32_gradient_matches_float64_reference(scale, generator):
    """SIMPLE's backward (a second derivative of the DP's log-partition) stays accurate in float32."""
    t = (torch.randn(4, 200, generator=generator) * scale).requires_grad_()
    w = torch.randn(4, 200, generator=generator)
    (discograd.simple_topk(t, 50, generator=generator) * w).sum().backward()
    t64 = t.detach().double().requires_grad_()
    (reference,) = torch.autograd.grad(topk_marginals(t64, 50), t64, w.double())
    assert torch.isfinite(t.grad).all()
    torch.testing.assert_close(t.grad.double(), reference, atol=1e-5, rtol=1e-4)
