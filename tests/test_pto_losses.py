"""Decision-focused losses and estimators of issue 14: the ``reduction`` of every loss, the multiplicative
perturbation (perturbed optimizer and Fenchel-Young loss), the structured SVM loss and negative identity.

Each against a formula on fixed noise, an exact reference (enumeration, quadrature) where one exists, and
PyEPO's own implementation (a pure-Python ``optModel`` solving by enumeration, so it runs without a
commercial solver; a Gurobi-backed comparison runs where gurobipy is installed)."""

import math

import numpy as np
import pytest
import torch

import discograd
from discograd import Argmax, Normal, TopK
from discograd.estimators import negative_identity
from discograd.estimators.perturbed import multiplicative_factor
from discograd.exact import ksubset_states
from discograd.losses import (
    FenchelYoungLoss,
    StructuredSVMLoss,
    fenchel_young_loss,
    hamming_loss,
    spo_plus_loss,
    structured_svm_loss,
)
from discograd.solvers import Knapsack, LinearAssignment, ShortestPath

F64 = torch.float64


class ReplayNormal:
    """Replays a given tensor as standard Normal noise (so its score ``∇ν(ε) = ε``)."""

    def __init__(self, eps):
        self.eps = eps

    def sample(self, shape, *, generator=None, device=None, dtype=None):
        assert tuple(shape) == tuple(self.eps.shape)
        return self.eps.to(device=device, dtype=dtype).clone()

    def grad_neg_log_density(self, eps):
        return eps


def within_standard_errors(samples, expected, num_se=4.0):
    """samples: [M, ...] independent replicates of an estimator; compare the mean with ``expected``."""
    mean = samples.mean(0)
    se = samples.std(0) / math.sqrt(samples.shape[0])
    return bool(torch.all((mean - expected).abs() <= num_se * se + 1e-9)), (mean, expected, se)


# --- reduction: every loss ------------------------------------------------------------------------


def _losses():
    """name -> f(theta, reduction) for a batch of 5 instances of 6 items (fixed noise where there is noise)."""
    g = torch.Generator().manual_seed(7)
    theta_true = torch.randn(5, 6, generator=g, dtype=F64)
    z_true = TopK(2)(theta_true)
    one_hot = Argmax()(theta_true)
    eps = torch.randn(4, 5, 6, generator=g, dtype=F64)

    def fy(perturbation):
        return lambda t, r: FenchelYoungLoss(TopK(2), noise=ReplayNormal(eps), noise_scale=0.5, num_samples=4,
                                             perturbation=perturbation, reduction=r)(t, z_true)

    return {
        "fenchel_young": fy("additive"),
        "fenchel_young_multiplicative": fy("multiplicative"),
        "fenchel_young_functional": lambda t, r: fenchel_young_loss(t, z_true, solver=TopK(2), noise=ReplayNormal(eps),
                                                                    num_samples=4, reduction=r),
        "spo_plus": lambda t, r: spo_plus_loss(t, theta_true, z_true, solver=TopK(2), reduction=r),
        "hamming": lambda t, r: hamming_loss(TopK(2)(t.detach()) * t, z_true, reduction=r),
        "structured_svm": lambda t, r: structured_svm_loss(t, z_true, solver=TopK(2), reduction=r),
        "structured_svm_zero_one": lambda t, r: StructuredSVMLoss(Argmax(), base_loss="zero_one", reduction=r)(t, one_hot),
    }


LOSSES = list(_losses())


@pytest.mark.parametrize("name", LOSSES)
def test_reduction_of_every_loss(name, generator):
    """"none" gives one value per instance; "mean" (the default) and "sum" are their mean and sum, with
    the matching gradients; anything else is refused by name."""
    loss = _losses()[name]
    theta = torch.randn(5, 6, generator=generator, dtype=F64)
    values, grads = {}, {}
    for reduction in ("none", "mean", "sum"):
        t = theta.clone().requires_grad_()
        values[reduction] = loss(t, reduction)
        weight = torch.arange(1.0, 6.0, dtype=F64) if reduction == "none" else torch.tensor(1.0, dtype=F64)
        (values[reduction] * weight).sum().backward()
        grads[reduction] = t.grad
    assert values["none"].shape == (5,)
    assert values["mean"].shape == values["sum"].shape == ()
    assert torch.equal(values["mean"], values["none"].mean())
    assert torch.equal(values["sum"], values["none"].sum())
    t = theta.clone().requires_grad_()
    loss(t, "none").mean().backward()
    torch.testing.assert_close(grads["mean"], t.grad, rtol=0, atol=1e-15)
    t = theta.clone().requires_grad_()
    loss(t, "none").sum().backward()
    torch.testing.assert_close(grads["sum"], t.grad, rtol=0, atol=1e-15)
    assert grads["sum"].abs().sum() > 0
    with pytest.raises(ValueError, match="reduction must be one of"):
        loss(theta.clone(), "average")


def test_default_reduction_is_the_mean(generator):
    theta = torch.randn(3, 5, generator=generator, dtype=F64)
    z_true = TopK(2)(torch.randn(3, 5, generator=generator, dtype=F64))
    assert torch.equal(spo_plus_loss(theta, -theta, z_true, solver=TopK(2)),
                       spo_plus_loss(theta, -theta, z_true, solver=TopK(2), reduction="none").mean())
    assert torch.equal(hamming_loss(TopK(2)(theta), z_true), hamming_loss(TopK(2)(theta), z_true, reduction="none").mean())
    assert torch.equal(structured_svm_loss(theta, z_true, solver=TopK(2)),
                       structured_svm_loss(theta, z_true, solver=TopK(2), reduction="none").mean())
    eps = torch.randn(2, 3, 5, generator=generator, dtype=F64)
    fy = FenchelYoungLoss(TopK(2), noise=ReplayNormal(eps), num_samples=2)
    assert fy.reduction == "mean" and fy(theta, z_true).shape == ()
    # hamming's mean runs over sample dimensions too
    z = torch.stack([TopK(2)(theta), z_true])
    assert torch.equal(hamming_loss(z, z_true), hamming_loss(z, z_true, reduction="none").mean())


# --- multiplicative perturbation: the formula on fixed noise ---------------------------------------


def test_multiplicative_factor_is_exp_sigma_eps_minus_half_sigma_squared(generator):
    eps = torch.randn(200_000, generator=generator, dtype=F64)
    factor = multiplicative_factor(eps, 0.7)
    torch.testing.assert_close(factor, torch.exp(0.7 * eps - 0.245))
    # mean one for standard Normal noise, within standard errors
    assert abs(float(factor.mean()) - 1.0) < 4 * float(factor.std()) / math.sqrt(eps.numel())


@pytest.mark.parametrize("control_variate", [False, True, "leave_one_out"])
def test_perturbed_multiplicative_equals_the_formula_on_fixed_noise(control_variate, generator):
    """Forward: mean_s MAP(θ ⊙ exp(σε_s − σ²/2)); backward: mean_s <g, z_s − b_s> ε_s / (σθ), written out."""
    S, B, n, k, sigma = 6, 4, 7, 3, 0.8
    theta = torch.randn(B, n, generator=generator, dtype=F64)  # both signs
    eps = torch.randn(S, B, n, generator=generator, dtype=F64)
    g = torch.randn(B, n, generator=generator, dtype=F64)
    layer = discograd.perturbed(TopK(k), noise=ReplayNormal(eps), noise_scale=sigma, num_samples=S,
                                perturbation="multiplicative", control_variate=control_variate)
    t = theta.clone().requires_grad_()
    y = layer(t)
    z = torch.stack([TopK(k)(theta * torch.exp(sigma * eps[s] - sigma**2 / 2)) for s in range(S)])
    assert torch.equal(y.detach(), z.mean(0))
    (y * g).sum().backward()
    rewards = (g * z).sum(-1)  # [S, B]
    if control_variate is True:
        rewards = rewards - (g * TopK(k)(theta)).sum(-1)
    elif control_variate == "leave_one_out":
        rewards = torch.stack([rewards[s] - torch.cat([rewards[:s], rewards[s + 1:]]).mean(0) for s in range(S)])
    expected = sum(rewards[s, :, None] * eps[s] for s in range(S)) / S / (sigma * theta)
    torch.testing.assert_close(t.grad, expected)
    assert expected.abs().sum() > 0


def test_perturbed_additive_leave_one_out_equals_the_formula_and_keeps_the_default(generator):
    S, B, n, k, sigma = 5, 3, 6, 2, 0.5
    theta = torch.randn(B, n, generator=generator, dtype=F64)
    eps = torch.randn(S, B, n, generator=generator, dtype=F64)
    g = torch.randn(B, n, generator=generator, dtype=F64)
    z = TopK(k)(theta + sigma * eps)
    rewards = (g * z).sum(-1)
    grads = {}
    for cv in (False, "leave_one_out"):
        t = theta.clone().requires_grad_()
        layer = discograd.perturbed(TopK(k), noise=ReplayNormal(eps), noise_scale=sigma, num_samples=S,
                                    control_variate=cv)
        (layer(t) * g).sum().backward()
        grads[cv] = t.grad
    plain = sum(rewards[s, :, None] * eps[s] for s in range(S)) / S / sigma
    assert torch.equal(grads[False], (rewards[..., None] * eps).mean(0) / sigma)  # today's bits
    torch.testing.assert_close(grads[False], plain)
    loo = torch.stack([rewards[s] - torch.cat([rewards[:s], rewards[s + 1:]]).mean(0) for s in range(S)])
    torch.testing.assert_close(grads["leave_one_out"], sum(loo[s, :, None] * eps[s] for s in range(S)) / S / sigma)


# --- multiplicative perturbation: the Jacobian against the exact expectation ------------------------


def _normal_cdf(x):
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


def _exact_multiplicative_argmax(theta, sigma, num_points=20_001):
    """E[onehot(argmax_i θ_i e^{σε_i − σ²/2})] for ε ~ N(0, I), by quadrature over the winner's ε.

    P(item i wins) = ∫ φ(e) Π_{j≠i} P(θ_j m_j < x) de with x = θ_i e^{σe − σ²/2}, where for θ_j > 0
    P(θ_j m_j < x) = Φ((log(x/θ_j) + σ²/2)/σ) (0 for x <= 0), and for θ_j < 0 it is 1 for x >= 0 and
    1 − Φ((log(x/θ_j) + σ²/2)/σ) for x < 0."""
    e = torch.linspace(-10.0, 10.0, num_points, dtype=F64)
    density = torch.exp(-0.5 * e * e) / math.sqrt(2 * math.pi)
    out = []
    for i in range(theta.numel()):
        x = theta[i] * torch.exp(sigma * e - sigma**2 / 2)
        prob = density.clone()
        for j in range(theta.numel()):
            if j == i:
                continue
            ratio = x / theta[j]
            u = torch.where(ratio > 0, (torch.log(ratio.abs().clamp_min(1e-300)) + sigma**2 / 2) / sigma,
                            torch.zeros_like(ratio))
            if theta[j] > 0:
                below = torch.where(x > 0, _normal_cdf(u), torch.zeros_like(x))
            else:
                below = torch.where(x >= 0, torch.ones_like(x), 1 - _normal_cdf(u))
            prob = prob * below
        out.append(torch.trapezoid(prob, e))
    return torch.stack(out)


@pytest.mark.parametrize("theta", [[0.9, 0.6, 0.3], [-0.4, -0.8, -0.5], [1.0, 0.5, -0.7]],
                         ids=["positive", "negative", "mixed"])
@pytest.mark.parametrize("control_variate", [False, "leave_one_out"])
def test_multiplicative_jacobian_matches_finite_differences_of_the_exact_expectation(theta, control_variate,
                                                                                      generator):
    """Argmax over 3 items: the forward mean and the vector-Jacobian product of the estimator match the
    exact expectation (quadrature) and its central finite differences, within standard errors; both signs."""
    sigma, M, S, h = 0.6, 3000, 8, 1e-4
    theta = torch.tensor(theta, dtype=F64)
    v = torch.tensor([0.7, -1.2, 0.4], dtype=F64)
    exact = _exact_multiplicative_argmax(theta, sigma)
    torch.testing.assert_close(exact.sum(), torch.tensor(1.0, dtype=F64))
    jacobian = torch.stack([(_exact_multiplicative_argmax(theta + h * e, sigma)
                             - _exact_multiplicative_argmax(theta - h * e, sigma)) / (2 * h)
                            for e in torch.eye(3, dtype=F64)], dim=1)  # J[i, k] = ∂y_i/∂θ_k
    expected_vjp = v @ jacobian
    layer = discograd.perturbed(Argmax(), noise=Normal(), noise_scale=sigma, num_samples=S,
                                perturbation="multiplicative", control_variate=control_variate, generator=generator)
    tm = theta.expand(M, 3).clone().requires_grad_()
    y = layer(tm)
    ok, info = within_standard_errors(y.detach(), exact)
    assert ok, info
    (y * v).sum().backward()
    ok, info = within_standard_errors(tm.grad, expected_vjp)
    assert ok, info
    if theta.min() > 0 or theta.max() < 0:
        assert expected_vjp.abs().min() > 0.05  # a non-trivial Jacobian in every column


def test_multiplicative_keeps_signs_and_refuses_zeros_to_differentiate(generator):
    theta = torch.tensor([[2.0, -1.0, 0.5, -3.0]], dtype=F64)
    layer = discograd.perturbed(TopK(2), perturbation="multiplicative", noise_scale=2.0, num_samples=50,
                                generator=generator)
    seen = []

    def recording_solver(t):
        seen.append(t.clone())
        return TopK(2)(t)

    recording_solver.event_dims = 1
    discograd.perturbed(recording_solver, perturbation="multiplicative", noise_scale=2.0, num_samples=50,
                        generator=generator)(theta)
    assert torch.equal(torch.sign(seen[0]), torch.sign(theta).expand(50, 4))
    zero = torch.tensor([[2.0, 0.0, 0.5, -3.0]], dtype=F64)
    with torch.no_grad():
        assert layer(zero).shape == (1, 4)  # the forward alone is fine
    assert layer(zero).shape == (1, 4)      # nothing to differentiate
    with pytest.raises(ValueError, match="theta must have no zero entry.*multiplicative.*got 1 zero"):
        layer(zero.clone().requires_grad_())


def test_perturbed_bad_arguments():
    with pytest.raises(ValueError, match="perturbation must be one of"):
        discograd.perturbed(TopK(2), perturbation="exponential")
    with pytest.raises(TypeError, match="control_variate must be False, True or 'leave_one_out'"):
        discograd.perturbed(TopK(2), control_variate="mean")
    with pytest.raises(TypeError, match="control_variate"):
        discograd.perturbed(TopK(2), control_variate=1)
    with pytest.raises(ValueError, match="leave_one_out' needs num_samples >= 2"):
        discograd.perturbed(TopK(2), num_samples=1, control_variate="leave_one_out")
    with pytest.raises(ValueError, match="perturbation must be one of"):
        FenchelYoungLoss(TopK(2), perturbation=None)
    assert "perturbation='multiplicative'" in repr(discograd.perturbed(TopK(2), perturbation="multiplicative"))


# --- Fenchel-Young with the multiplicative perturbation ---------------------------------------------


def test_fenchel_young_multiplicative_equals_the_formula_on_fixed_noise(generator):
    """value: mean_s <η_s, MAP(η_s)> − <θ, y>; gradient: mean_s m_s ⊙ MAP(η_s) − y, with η_s = θ ⊙ m_s."""
    S, B, n, k, sigma = 5, 4, 6, 2, 0.7
    theta = torch.randn(B, n, generator=generator, dtype=F64)
    z_true = TopK(k)(torch.randn(B, n, generator=generator, dtype=F64))
    eps = torch.randn(S, B, n, generator=generator, dtype=F64)
    loss = FenchelYoungLoss(TopK(k), noise=ReplayNormal(eps), noise_scale=sigma, num_samples=S,
                            perturbation="multiplicative", reduction="none")
    t = theta.clone().requires_grad_()
    value = loss(t, z_true)
    m = torch.exp(sigma * eps - sigma**2 / 2)
    z = TopK(k)(theta * m)
    torch.testing.assert_close(value.detach(), (theta * m * z).sum(-1).mean(0) - (theta * z_true).sum(-1))
    value.sum().backward()
    torch.testing.assert_close(t.grad, (m * z).mean(0) - z_true)
    # zero scores are allowed here (no division by θ): they stay 0 under the perturbation
    t = theta.clone()
    t[:, 0] = 0.0
    t.requires_grad_()
    loss(t, z_true).sum().backward()
    torch.testing.assert_close(t.grad, (m * TopK(k)(t.detach() * m)).mean(0) - z_true)
    # the additive default is unchanged: its gradient is the plain mean of the solutions
    t = theta.clone().requires_grad_()
    FenchelYoungLoss(TopK(k), noise=ReplayNormal(eps), noise_scale=sigma, num_samples=S, reduction="sum")(
        t, z_true).backward()
    torch.testing.assert_close(t.grad, TopK(k)(theta + sigma * eps).mean(0) - z_true)


def test_fenchel_young_multiplicative_gradient_is_the_derivative_of_its_value(generator):
    """With the noise fixed, the value is piecewise linear in θ (a max of linear functions): its central
    finite difference equals the gradient (envelope theorem), which checks the weighting by m_s."""
    S, n, k, sigma, h = 8, 6, 2, 0.9, 1e-6
    theta = torch.randn(n, generator=generator, dtype=F64)
    z_true = TopK(k)(torch.randn(n, generator=generator, dtype=F64))
    eps = torch.randn(S, n, generator=generator, dtype=F64)
    loss = FenchelYoungLoss(TopK(k), noise=ReplayNormal(eps), noise_scale=sigma, num_samples=S,
                            perturbation="multiplicative")
    t = theta.clone().requires_grad_()
    loss(t, z_true).backward()
    fd = torch.stack([(loss(theta + h * e, z_true) - loss(theta - h * e, z_true)) / (2 * h)
                      for e in torch.eye(n, dtype=F64)])
    torch.testing.assert_close(t.grad, fd, atol=1e-7, rtol=1e-6)
    unweighted = TopK(k)(theta * multiplicative_factor(eps, sigma)).mean(0) - z_true
    assert (fd - unweighted).abs().max() > 1e-2  # the plain mean of the solutions is not the gradient


def test_fenchel_young_multiplicative_learns_the_target_from_negative_scores(generator):
    """Costs c > 0 (θ = −c < 0): minimising the multiplicative FY loss over c drives MAP(−c) to z_true."""
    z_true = TopK(3)(torch.randn(16, 10, generator=generator))
    log_cost = torch.zeros(16, 10, requires_grad=True)
    optimizer = torch.optim.Adam([log_cost], lr=0.1)
    loss = FenchelYoungLoss(TopK(3), perturbation="multiplicative", noise_scale=0.5, num_samples=4,
                            generator=generator)
    for _ in range(150):
        optimizer.zero_grad()
        loss(-log_cost.exp(), z_true).backward()
        optimizer.step()
    assert torch.equal(TopK(3)(-log_cost.detach().exp()), z_true)


# --- PyEPO's own implementation (pure-Python optModel: runs without a commercial solver) ------------


def _pyepo_enumeration_model(states):
    """A PyEPO optModel minimising cᵀw over the rows of ``states`` by enumeration."""
    pytest.importorskip("pyepo")
    from pyepo.model.opt import optModel

    class EnumerationModel(optModel):
        def __init__(self):
            self.states = states.numpy()
            super().__init__()

        def _getModel(self):
            return None, list(range(self.states.shape[1]))

        def setObj(self, c):
            self.cost = np.asarray(c, dtype=np.float64)

        def solve(self):
            objectives = self.states @ self.cost
            best = int(np.argmin(objectives))
            return self.states[best].copy(), float(objectives[best])

    return EnumerationModel()


def _pyepo_noise(batch, num_samples, size, seed=135):
    """PyEPO's draw (``torch.randn((b, n, d))`` from a generator seeded ``seed``), in our ``[S, B, d]``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((batch, num_samples, size), generator=gen, dtype=F64).transpose(0, 1).contiguous()


N_ITEMS, K_ITEMS = 6, 2


@pytest.fixture
def pyepo_topk():
    states = ksubset_states(N_ITEMS, K_ITEMS, dtype=F64)
    return _pyepo_enumeration_model(states)


@pytest.mark.parametrize("variance_reduction", [True, False])
@pytest.mark.parametrize("multiplicative", [True, False])
def test_perturbed_optimizer_equals_pyepo(pyepo_topk, multiplicative, variance_reduction, generator):
    """pyepo.func.perturbedOptMul / perturbedOpt (DPOMul / DPO) on costs c == discograd.perturbed on θ = −c:
    the same mean solution and the same gradient in c, on PyEPO's own noise."""
    from pyepo.func import perturbedOpt, perturbedOptMul

    B, S, sigma = 4, 5, 0.7
    cost = torch.rand(B, N_ITEMS, generator=generator, dtype=F64) * 2 + 0.1
    v = torch.randn(B, N_ITEMS, generator=generator, dtype=F64)
    module = (perturbedOptMul if multiplicative else perturbedOpt)(pyepo_topk, n_samples=S, sigma=sigma,
                                                                   variance_reduction=variance_reduction)
    c_pyepo = cost.clone().requires_grad_()
    y_pyepo = module(c_pyepo)
    (y_pyepo * v).sum().backward()
    eps = _pyepo_noise(B, S, N_ITEMS)
    # additive: PyEPO perturbs the costs, c + σε, i.e. θ − σε; multiplicative: c ⊙ m, i.e. θ ⊙ m, same ε
    layer = discograd.perturbed(TopK(K_ITEMS), noise=ReplayNormal(eps if multiplicative else -eps), noise_scale=sigma,
                                num_samples=S, perturbation="multiplicative" if multiplicative else "additive",
                                control_variate="leave_one_out" if variance_reduction else False)
    c_ours = cost.clone().requires_grad_()
    y_ours = layer(-c_ours)
    (y_ours * v).sum().backward()
    torch.testing.assert_close(y_ours.detach(), y_pyepo.detach())
    torch.testing.assert_close(c_ours.grad, c_pyepo.grad)
    assert c_ours.grad.abs().sum() > 0


@pytest.mark.parametrize("multiplicative", [True, False])
def test_fenchel_young_equals_pyepo(pyepo_topk, multiplicative, generator):
    """pyepo.func.perturbedFenchelYoungMul / perturbedFenchelYoung (PFYMul / PFY) == FenchelYoungLoss on
    θ = −c: the same value (PyEPO 2.2.7 returns F − <θ, w*> too) and gradient, both reductions."""
    from pyepo.func import perturbedFenchelYoung, perturbedFenchelYoungMul

    B, S, sigma = 4, 5, 0.7
    cost = torch.rand(B, N_ITEMS, generator=generator, dtype=F64) * 2 + 0.1
    w_true = TopK(K_ITEMS)(-torch.rand(B, N_ITEMS, generator=generator, dtype=F64))
    eps = _pyepo_noise(B, S, N_ITEMS)
    for reduction in ("mean", "none"):
        module = (perturbedFenchelYoungMul if multiplicative else perturbedFenchelYoung)(
            pyepo_topk, n_samples=S, sigma=sigma, reduction=reduction)
        c_pyepo = cost.clone().requires_grad_()
        value_pyepo = module(c_pyepo, w_true)
        value_pyepo.sum().backward()
        loss = FenchelYoungLoss(TopK(K_ITEMS), noise=ReplayNormal(eps if multiplicative else -eps),
                                noise_scale=sigma, num_samples=S,
                                perturbation="multiplicative" if multiplicative else "additive", reduction=reduction)
        c_ours = cost.clone().requires_grad_()
        value_ours = loss(-c_ours, w_true)
        value_ours.sum().backward()
        assert value_ours.shape == value_pyepo.shape
        torch.testing.assert_close(value_ours.detach(), value_pyepo.detach())
        torch.testing.assert_close(c_ours.grad, c_pyepo.grad)
        assert c_ours.grad.abs().sum() > 0


def test_negative_identity_equals_pyepo(pyepo_topk, generator):
    from pyepo.func import negativeIdentity

    B = 5
    cost = torch.rand(B, N_ITEMS, generator=generator, dtype=F64)
    v = torch.randn(B, N_ITEMS, generator=generator, dtype=F64)
    c_pyepo = cost.clone().requires_grad_()
    w_pyepo = negativeIdentity(pyepo_topk)(c_pyepo)
    (w_pyepo * v).sum().backward()
    c_ours = cost.clone().requires_grad_()
    w_ours = negative_identity(TopK(K_ITEMS))(-c_ours)
    (w_ours * v).sum().backward()
    assert torch.equal(w_ours.detach(), w_pyepo.detach())
    assert torch.equal(c_ours.grad, c_pyepo.grad)
    assert torch.equal(c_ours.grad, -v)


def test_spo_plus_reduction_equals_pyepo(pyepo_topk, generator):
    from pyepo.func import SPOPlus

    B = 5
    cost = torch.rand(B, N_ITEMS, generator=generator, dtype=F64)
    cost_hat = torch.rand(B, N_ITEMS, generator=generator, dtype=F64)
    w_true = TopK(K_ITEMS)(-cost)
    z_true = (cost * w_true).sum(-1, keepdim=True)
    for reduction in ("mean", "sum", "none"):
        c_pyepo = cost_hat.clone().requires_grad_()
        value_pyepo = SPOPlus(pyepo_topk, reduction=reduction)(c_pyepo, cost, w_true, z_true)
        value_pyepo.sum().backward()
        c_ours = cost_hat.clone().requires_grad_()
        value_ours = spo_plus_loss(-c_ours, -cost, w_true, solver=TopK(K_ITEMS), reduction=reduction)
        value_ours.sum().backward()
        torch.testing.assert_close(value_ours.detach(), value_pyepo.detach())
        torch.testing.assert_close(c_ours.grad, c_pyepo.grad)


def test_pyepo_gurobi_shortest_path_multiplicative_and_nid(generator):
    """PyEPO's Gurobi shortest path on a 5 × 5 grid against discograd.solvers.ShortestPath, arcs in PyEPO's
    order: DPOMul, PFYMul and NID give our mean solution, loss and gradients."""
    pytest.importorskip("gurobipy")
    pytest.importorskip("pyepo")
    from pyepo.func import negativeIdentity, perturbedFenchelYoungMul, perturbedOptMul
    from pyepo.model.grb import shortestPathModel

    optmodel = shortestPathModel((5, 5))
    solver = ShortestPath(25, list(optmodel.arcs), 0, 24)
    B, S, sigma, d = 3, 4, 0.5, len(optmodel.arcs)
    cost = torch.rand(B, d, generator=generator, dtype=F64) + 0.5
    v = torch.randn(B, d, generator=generator, dtype=F64)
    w_true = solver(-(torch.rand(B, d, generator=generator, dtype=F64) + 0.5))
    eps = _pyepo_noise(B, S, d)

    c_pyepo = cost.clone().requires_grad_()
    (perturbedOptMul(optmodel, n_samples=S, sigma=sigma)(c_pyepo) * v).sum().backward()
    c_ours = cost.clone().requires_grad_()
    layer = discograd.perturbed(solver, noise=ReplayNormal(eps), noise_scale=sigma, num_samples=S,
                                perturbation="multiplicative", control_variate="leave_one_out")
    (layer(-c_ours) * v).sum().backward()
    torch.testing.assert_close(c_ours.grad, c_pyepo.grad)

    c_pyepo = cost.clone().requires_grad_()
    value_pyepo = perturbedFenchelYoungMul(optmodel, n_samples=S, sigma=sigma)(c_pyepo, w_true)
    value_pyepo.backward()
    c_ours = cost.clone().requires_grad_()
    value_ours = FenchelYoungLoss(solver, noise=ReplayNormal(eps), noise_scale=sigma, num_samples=S,
                                  perturbation="multiplicative")(-c_ours, w_true)
    value_ours.backward()
    torch.testing.assert_close(value_ours.detach(), value_pyepo.detach())
    torch.testing.assert_close(c_ours.grad, c_pyepo.grad)

    c_pyepo = cost.clone().requires_grad_()
    (negativeIdentity(optmodel)(c_pyepo) * v).sum().backward()
    c_ours = cost.clone().requires_grad_()
    (negative_identity(solver)(-c_ours) * v).sum().backward()
    assert torch.equal(c_ours.grad, c_pyepo.grad)


# --- structured SVM ---------------------------------------------------------------------------------


def _ssvm_by_enumeration(theta, z_true, states, base_loss, score_scale, normalize):
    """max over the listed states of Δ(z, y) + α<θ, z − y> per instance, and the maximiser."""
    event_dims = states.dim() - 1
    flat_states = states.reshape(states.shape[0], -1)
    batch = theta.shape[:theta.dim() - event_dims]
    t = theta.reshape(-1, flat_states.shape[1])
    y = z_true.reshape(-1, flat_states.shape[1])
    hamming = (flat_states[None] != y[:, None]).sum(-1).to(theta.dtype)  # [B, C]
    if base_loss == "zero_one":
        delta = (hamming > 0).to(theta.dtype)
    else:
        delta = hamming / flat_states.shape[1] if normalize else hamming
    objective = delta + score_scale * (t @ flat_states.T - (t * y).sum(-1, keepdim=True))
    best, index = objective.max(-1)
    return best.reshape(batch), flat_states[index].reshape(theta.shape)


def _feasible_problems():
    knapsack_weights = [3, 1, 4, 2, 2, 5]
    return {
        "topk": (TopK(3), ksubset_states(6, 3, dtype=F64), (6,)),
        "knapsack": (Knapsack(knapsack_weights, 7), Knapsack().enumerate_feasible(6, weights=knapsack_weights,
                                                                                   capacity=7, dtype=F64), (6,)),
        "assignment": (LinearAssignment(), LinearAssignment().enumerate_feasible(4, dtype=F64), (4, 4)),
    }


@pytest.mark.parametrize("problem", ["topk", "knapsack", "assignment"])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("score_scale", [1.0, 0.3])
def test_structured_svm_hamming_equals_enumeration(problem, normalize, score_scale, generator):
    """The loss-augmented decoding by one solver call is exact: value and subgradient α(ẑ − y) equal the
    maximum over every feasible structure; ℓ >= Δ(MAP(θ), y) >= 0."""
    solver, states, event = _feasible_problems()[problem]
    B = 12
    theta = torch.randn(B, *event, generator=generator, dtype=F64)
    z_true = states[torch.randint(states.shape[0], (B,), generator=generator)]
    expected, z_hat = _ssvm_by_enumeration(theta, z_true, states, "hamming", score_scale, normalize)
    loss = StructuredSVMLoss(solver, score_scale=score_scale, normalize=normalize, reduction="none")
    t = theta.clone().requires_grad_()
    value = loss(t, z_true)
    torch.testing.assert_close(value.detach(), expected)
    value.sum().backward()
    torch.testing.assert_close(t.grad, score_scale * (z_hat - z_true))
    prediction = solver(theta)
    dims = tuple(range(1, 1 + len(event)))
    delta = (prediction != z_true).sum(dims).to(F64) / (prediction[0].numel() if normalize else 1)
    assert torch.all(value.detach() >= delta - 1e-12) and torch.all(delta >= 0)
    assert (value > 0).any()


def test_structured_svm_zero_one_is_the_exact_multiclass_hinge(generator):
    """Argmax with the 0-1 base loss: the Crammer-Singer hinge max_j [1(j ≠ y) + α(θ_j − θ_y)] by
    enumeration, including a correct prediction with a margin below 1/α (where InferOpt's
    zero_one_loss_maximizer returns y and the loss 0)."""
    n, B = 5, 200
    theta = torch.randn(B, n, generator=generator, dtype=F64)
    labels = torch.randint(n, (B,), generator=generator)
    labels[:50] = theta[:50].argmax(-1)  # correct predictions, most with a margin below 1
    z_true = torch.nn.functional.one_hot(labels, n).to(F64)
    for score_scale in (1.0, 2.5):
        expected, z_hat = _ssvm_by_enumeration(theta, z_true, torch.eye(n, dtype=F64), "zero_one", score_scale, False)
        t = theta.clone().requires_grad_()
        value = structured_svm_loss(t, z_true, solver=Argmax(), base_loss="zero_one", score_scale=score_scale,
                                    reduction="none")
        torch.testing.assert_close(value.detach(), expected)
        value.sum().backward()
        torch.testing.assert_close(t.grad, score_scale * (z_hat - z_true))
        correct = theta.argmax(-1) == labels
        assert (value.detach()[correct] > 0).any()  # InferOpt's maximizer would give 0 on all of these
    theta = torch.tensor([1.0, 0.9, -1.0], dtype=F64)
    assert torch.isclose(structured_svm_loss(theta, torch.tensor([1.0, 0, 0], dtype=F64), solver=Argmax(),
                                             base_loss="zero_one"), torch.tensor(0.9, dtype=F64))


def test_structured_svm_learns_a_margin(generator):
    """Subgradient descent on the SSVM loss reaches 0 in finitely many steps: MAP(θ) = y with a margin."""
    z_true = TopK(3)(torch.randn(8, 10, generator=generator))
    theta = torch.zeros(8, 10, requires_grad=True)
    optimizer = torch.optim.SGD([theta], lr=0.2)
    for _ in range(200):
        optimizer.zero_grad()
        value = structured_svm_loss(theta, z_true, solver=TopK(3), reduction="sum")
        if value.item() == 0:
            break
        value.backward()
        optimizer.step()
    assert value.item() == 0
    assert torch.equal(TopK(3)(theta.detach()), z_true)
    # a zero loss means y beats every other structure by its Hamming distance: the augmented MAP is y itself
    assert torch.equal(TopK(3)(theta.detach() + 1 - 2 * z_true), z_true)


def test_structured_svm_passes_solver_arguments_and_grids(generator):
    """Per-instance solver arguments, and a 2-D event (a grid shortest path) with event_dims from the solver."""
    theta = torch.randn(3, 6, generator=generator, dtype=F64)
    k = torch.tensor([1, 2, 3])
    z_true = discograd.solvers.TopK()(torch.randn(3, 6, generator=generator, dtype=F64), k=k)
    loss = StructuredSVMLoss(discograd.solvers.TopK(), reduction="none")
    value = loss(theta, z_true, k=discograd.per_instance(k))
    each = torch.stack([structured_svm_loss(theta[i], z_true[i], solver=TopK(int(k[i]))) for i in range(3)])
    torch.testing.assert_close(value, each)
    grid_solver = discograd.GridShortestPath(neighbourhood=4)
    states = grid_solver.enumerate_feasible(3, 3, dtype=F64)
    costs = torch.rand(4, 3, 3, generator=generator, dtype=F64) + 0.1
    z_true = states[torch.randint(states.shape[0], (4,), generator=generator)]
    expected, _ = _ssvm_by_enumeration(-costs, z_true, states, "hamming", 1.0, True)
    value = structured_svm_loss(-costs, z_true, solver=grid_solver, normalize=True, reduction="none")
    torch.testing.assert_close(value, expected)


def test_structured_svm_bad_input():
    y = torch.tensor([0.0, 1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="base_loss must be one of"):
        StructuredSVMLoss(TopK(2), base_loss="hinge")
    with pytest.raises(ValueError, match="score_scale must be a finite number > 0"):
        StructuredSVMLoss(TopK(2), score_scale=0.0)
    with pytest.raises(ValueError, match="normalize=True applies to base_loss='hamming' only"):
        StructuredSVMLoss(Argmax(), base_loss="zero_one", normalize=True)
    with pytest.raises(TypeError, match="normalize must be a bool"):
        StructuredSVMLoss(TopK(2), normalize=1)
    with pytest.raises(ValueError, match="reduction must be one of"):
        StructuredSVMLoss(TopK(2), reduction="avg")
    with pytest.raises(TypeError, match="solver must be callable"):
        StructuredSVMLoss("TopK")
    with pytest.raises(ValueError, match="theta and z_true must have the same shape"):
        structured_svm_loss(torch.zeros(3), y, solver=TopK(2))
    with pytest.raises(ValueError, match="theta must be finite"):
        structured_svm_loss(torch.tensor([0.0, float("nan"), 1.0, 2.0]), y, solver=TopK(2))
    with pytest.raises(ValueError, match="z_true must be one-hot"):
        structured_svm_loss(torch.zeros(4), y, solver=Argmax(), base_loss="zero_one")
    with pytest.raises(ValueError, match="the solution of the loss-augmented problem must be one-hot"):
        structured_svm_loss(torch.zeros(4), torch.tensor([0.0, 1.0, 0.0, 0.0]), solver=TopK(2), base_loss="zero_one")


# --- negative identity ------------------------------------------------------------------------------


def test_negative_identity_is_straight_through_without_noise(generator):
    theta = torch.randn(4, 7, generator=generator, dtype=F64)
    g = torch.randn(4, 7, generator=generator, dtype=F64)
    layer = negative_identity(TopK(3))
    assert isinstance(layer, discograd.StraightThrough) and layer.noise is None and layer.num_samples is None
    t = theta.clone().requires_grad_()
    z = layer(t)
    assert torch.equal(z, TopK(3)(theta))
    (z * g).sum().backward()
    assert torch.equal(t.grad, g)
    t2 = theta.clone().requires_grad_()
    (discograd.straight_through(TopK(3), noise=None)(t2) * g).sum().backward()
    assert torch.equal(t.grad, t2.grad)

    @negative_identity()
    def top_two(scores):
        return TopK(2)(scores)

    assert top_two.__name__ == "top_two" and torch.equal(top_two(theta), TopK(2)(theta))
    grid = negative_identity(event_dims=2)(lambda s: discograd.GridShortestPath()(s))
    assert grid.event_dims == 2 and grid(-torch.rand(2, 3, 3, generator=generator)).shape == (2, 3, 3)
    with pytest.raises(TypeError, match="solver must be callable"):
        negative_identity(3)
