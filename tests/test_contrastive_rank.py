"""NCE, CMAP and the learning-to-rank losses: hand-written formulas, gradcheck and analytic gradients, PyEPO itself
(through a pure-Python enumeration optModel), the pool refresh, reduction, bad input."""

import math

import numpy as np
import pytest
import torch

import discograd
from discograd.losses.contrastive import CMAPLoss, NCELoss, cmap_loss, nce_loss
from discograd.losses.ranking import (
    ListwiseLTRLoss,
    PairwiseLTRLoss,
    PointwiseLTRLoss,
    listwise_ltr_loss,
    pairwise_ltr_loss,
    pointwise_ltr_loss,
)
from discograd.pool import SolutionPool

CONTRASTIVE = {"nce": nce_loss, "cmap": cmap_loss}
RANKING = {"pointwise": pointwise_ltr_loss, "pairwise": pairwise_ltr_loss, "listwise": listwise_ltr_loss}
FUNCTIONS = {**CONTRASTIVE, **RANKING}
MODULES = {"nce": NCELoss, "cmap": CMAPLoss, "pointwise": PointwiseLTRLoss, "pairwise": PairwiseLTRLoss,
           "listwise": ListwiseLTRLoss}


# ------------------------------------------------------------------------- hand-written formulas (Python floats)
def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def hand_loss(name, theta, other, pool):
    """One instance: ``theta``, ``other`` (z_true or theta_true) and the pool as lists of floats."""
    n = len(pool)
    s = [_dot(theta, w) for w in pool]
    if name in CONTRASTIVE:
        diffs = [si - _dot(theta, other) for si in s]
        return sum(diffs) / n if name == "nce" else max(diffs)
    t = [_dot(other, w) for w in pool]
    if name == "pointwise":
        return sum((ti - si) ** 2 for si, ti in zip(s, t)) / n
    if name == "pairwise":
        b = t.index(max(t))
        return sum(max(0.0, si - s[b]) for si in s) / max(n - 1, 1)
    zt = sum(math.exp(ti - max(t)) for ti in t)
    zs = sum(math.exp(si - max(s)) for si in s)
    return -sum(max(math.exp(ti - max(t)) / zt, 1e-8) * (si - max(s) - math.log(zs)) for si, ti in zip(s, t))


def hand_gradient(name, theta, other, pool):
    """The analytic gradient of :func:`hand_loss` in theta (away from kinks)."""
    n, d = len(pool), len(theta)
    s = [_dot(theta, w) for w in pool]
    g = [0.0] * d
    if name == "nce":
        return [sum(w[i] for w in pool) / n - other[i] for i in range(d)]
    if name == "cmap":
        b = s.index(max(s))
        return [pool[b][i] - other[i] for i in range(d)]
    t = [_dot(other, w) for w in pool]
    if name == "pointwise":
        for w, si, ti in zip(pool, s, t):
            g = [gi + 2.0 / n * (si - ti) * wi for gi, wi in zip(g, w)]
        return g
    if name == "pairwise":
        b = t.index(max(t))
        for w, si in zip(pool, s):
            if si > s[b]:
                g = [gi + (wi - wb) / max(n - 1, 1) for gi, wi, wb in zip(g, w, pool[b])]
        return g
    zt = sum(math.exp(ti) for ti in t)
    zs = sum(math.exp(si) for si in s)
    q = [max(math.exp(ti) / zt, 1e-8) for ti in t]
    p = [math.exp(si) / zs for si in s]
    for w, pn, qn in zip(pool, p, q):
        g = [gi + (pn * sum(q) - qn) * wi for gi, wi in zip(g, w)]
    return g


def _problem(seed, batch=4, n=5, size=6, dtype=torch.float64):
    """Random scores, a pool of distinct 0/1 rows and a target per instance (z_true in the pool)."""
    g = torch.Generator().manual_seed(seed)
    pool = SolutionPool(n, (torch.rand(size, n, generator=g) < 0.5).to(dtype), dtype=dtype)
    theta = torch.randn(batch, n, generator=g, dtype=dtype)
    theta_true = torch.randn(batch, n, generator=g, dtype=dtype)
    z_true = pool.best(theta_true)
    return theta, theta_true, z_true, pool


def _rows(t):
    return [tuple(r) for r in t.tolist()]


def _other(name, theta_true, z_true):
    return z_true if name in CONTRASTIVE else theta_true


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_value_and_gradient_match_the_hand_formula(name):
    theta, theta_true, z_true, pool = _problem(0)
    other = _other(name, theta_true, z_true)
    theta = theta.requires_grad_(True)
    values = FUNCTIONS[name](theta, other, pool, reduction="none")
    assert values.shape == (4,)
    rows = pool.solutions.tolist()
    expected = [hand_loss(name, th, ot, rows) for th, ot in zip(theta.tolist(), other.tolist())]
    torch.testing.assert_close(values, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    values.sum().backward()
    expected_grad = [hand_gradient(name, th, ot, rows) for th, ot in zip(theta.tolist(), other.tolist())]
    torch.testing.assert_close(theta.grad, torch.tensor(expected_grad, dtype=torch.float64), rtol=1e-10, atol=1e-12)


def test_values_on_a_fixed_pool():
    # three solutions, one instance, the numbers worked out by hand
    pool = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
    theta = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)       # s = (0, 1, 3)
    theta_true = torch.tensor([2.0, 0.0, 1.0], dtype=torch.float64)   # t = (3, 1, 2): best w_0
    z_true = pool[0]
    assert nce_loss(theta, z_true, pool).item() == pytest.approx((0 + 1 + 3) / 3 - 0)
    assert cmap_loss(theta, z_true, pool).item() == pytest.approx(3.0)
    assert pointwise_ltr_loss(theta, theta_true, pool).item() == pytest.approx((9 + 0 + 1) / 3)
    assert pairwise_ltr_loss(theta, theta_true, pool).item() == pytest.approx((0 + 1 + 3) / 2)
    q = np.exp([3.0, 1.0, 2.0]) / np.exp([3.0, 1.0, 2.0]).sum()
    log_p = np.array([0.0, 1.0, 3.0]) - np.log(np.exp([0.0, 1.0, 3.0]).sum())
    assert listwise_ltr_loss(theta, theta_true, pool).item() == pytest.approx(-(q * log_p).sum(), rel=1e-12)


def test_listwise_clamps_the_target_probabilities_like_pyepo():
    # true objectives 40 apart: softmax(t) has entries below 1e-8, which PyEPO raises to 1e-8
    pool = torch.eye(3, dtype=torch.float64)
    theta = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    theta_true = torch.tensor([40.0, 0.0, -1.0], dtype=torch.float64)
    value = listwise_ltr_loss(theta, theta_true, pool)
    unclamped = -(theta_true.softmax(0) * theta.log_softmax(0)).sum()
    assert value.item() == pytest.approx(hand_loss("listwise", theta.tolist(), theta_true.tolist(), pool.tolist()),
                                         rel=1e-13)
    assert abs(value.item() - unclamped.item()) > 1e-8
    value.backward()
    torch.testing.assert_close(theta.grad, torch.tensor(
        hand_gradient("listwise", theta.tolist(), theta_true.tolist(), pool.tolist()), dtype=torch.float64))


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_gradcheck(name):
    # continuous scores: the max / relu are away from their kinks with probability one
    theta, theta_true, z_true, pool = _problem(1, batch=3)
    other = _other(name, theta_true, z_true)
    assert torch.autograd.gradcheck(lambda t: FUNCTIONS[name](t, other, pool, reduction="sum"),
                                    (theta.clone().requires_grad_(True),))


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_reduction(name):
    theta, theta_true, z_true, pool = _problem(2)
    other = _other(name, theta_true, z_true)
    values = FUNCTIONS[name](theta, other, pool, reduction="none")
    torch.testing.assert_close(FUNCTIONS[name](theta, other, pool), values.mean())
    torch.testing.assert_close(FUNCTIONS[name](theta, other, pool, reduction="sum"), values.sum())
    with pytest.raises(ValueError, match="reduction"):
        FUNCTIONS[name](theta, other, pool, reduction="average")
    with pytest.raises(ValueError, match="reduction"):
        MODULES[name](None, pool, solve_ratio=0, reduction="max")


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_batch_and_event_shapes(name):
    # [2, 3] batch of [2, 2] matrices equals the flattened [6, 4] problem; a single instance gives a 0-dim value
    g = torch.Generator().manual_seed(3)
    rows = (torch.rand(5, 4, generator=g) < 0.5).double()
    pool = SolutionPool((2, 2), rows.reshape(5, 2, 2))
    flat_pool = pool.solutions.reshape(-1, 4)
    theta, theta_true = torch.randn(2, 2, 3, 2, 2, generator=g, dtype=torch.float64)
    z_true = pool.best(theta_true)
    other = _other(name, theta_true, z_true)
    values = FUNCTIONS[name](theta, other, pool, reduction="none")
    assert values.shape == (2, 3)
    flat = FUNCTIONS[name](theta.reshape(6, 4), other.reshape(6, 4), flat_pool, reduction="none")
    torch.testing.assert_close(values.reshape(6), flat, rtol=1e-14, atol=1e-14)
    single = FUNCTIONS[name](theta[0, 0], other[0, 0], pool, reduction="none")
    assert single.shape == () and torch.allclose(single, values[0, 0])


# ----------------------------------------------------------------------------------------------- against PyEPO
def _pyepo_setup(maximize, seed=4, num_data=6):
    pytest.importorskip("pyepo")
    from pyepo_toys import dataset, enumeration_model

    feasible = discograd.TopK(2).enumerate_feasible(5, dtype=torch.float64)
    model = enumeration_model(feasible.numpy(), maximize=maximize)
    rng = np.random.default_rng(seed)
    return model, dataset(model, rng.normal(size=(num_data, 5))), rng


def _pyepo_module(name, model, solve_ratio, reduction, data):
    from pyepo.func import CMAP, NCE, lsLTR, prLTR, ptLTR

    cls = {"nce": NCE, "cmap": CMAP, "pointwise": ptLTR, "pairwise": prLTR, "listwise": lsLTR}
    return cls[name](model, solve_ratio=solve_ratio, reduction=reduction, dataset=data)


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("solve_ratio", [0.0, 1.0])
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_equals_pyepo(name, solve_ratio, maximize):
    model, data, rng = _pyepo_setup(maximize)
    sign = 1.0 if maximize else -1.0  # theta = -cost (minimisation) or cost (maximisation)
    for reduction in ("mean", "none", "sum"):
        reference = _pyepo_module(name, model, solve_ratio, reduction, data)
        ours = MODULES[name](discograd.TopK(2), SolutionPool(5, data.sols, dtype=torch.float64),
                             solve_ratio=solve_ratio, reduction=reduction)
        for _ in range(3):  # several steps: the pools must evolve alike
            cost = torch.tensor(rng.normal(size=(4, 5)), requires_grad=True)
            true_cost = torch.tensor(rng.normal(size=(4, 5)))
            true_sol = torch.tensor(np.stack([model.feasible[np.argmax(model.feasible @ c) if maximize
                                                             else np.argmin(model.feasible @ c)]
                                              for c in true_cost.numpy()]))
            second = true_sol if name in CONTRASTIVE else true_cost
            value = reference(cost, second)
            weights = torch.tensor(rng.normal(size=value.shape))
            (value * weights).sum().backward()
            theta = (sign * cost.detach()).requires_grad_(True)
            mine = ours(theta, second if name in CONTRASTIVE else sign * true_cost)
            (mine * weights).sum().backward()
            torch.testing.assert_close(mine, value, rtol=0, atol=1e-10)
            torch.testing.assert_close(sign * theta.grad, cost.grad, rtol=0, atol=1e-10)
            assert torch.equal(ours.pool.solutions, reference.solpool)


# ------------------------------------------------------------------------------------------ the pool refresh
class CountingSolver:
    event_dims = 1

    def __init__(self, k=1):
        self.inner = discograd.TopK(k)  # k=None: given per call
        self.calls = 0

    def __call__(self, theta, *args, **kwargs):
        self.calls += 1
        return self.inner(theta, *args, **kwargs)


def test_refresh_rate_is_solve_ratio():
    solver = CountingSolver()
    g = torch.Generator().manual_seed(5)
    loss = NCELoss(solver, SolutionPool(4, torch.eye(4)), solve_ratio=0.25, generator=g)
    theta = torch.randn(3, 4, generator=g)
    calls = 600
    for _ in range(calls):
        loss(theta, torch.eye(4)[:3])
    assert abs(solver.calls - calls * 0.25) <= 4.5 * math.sqrt(calls * 0.25 * 0.75)
    assert loss.num_refreshes == solver.calls


@pytest.mark.parametrize("name", list(MODULES))
def test_every_module_refreshes_with_its_solver_and_arguments(name):
    solver = CountingSolver(k=None)
    pool = SolutionPool(4, torch.eye(4)[:1])
    loss = MODULES[name](solver, pool, solve_ratio=1.0)
    theta = torch.tensor([[0.0, 1.0, 3.0, 2.0]])
    loss(theta, torch.eye(4)[:1] if name in CONTRASTIVE else theta, k=2)  # extra arguments go to the solver
    assert solver.calls == 1 and _rows(pool.solutions) == [(1.0, 0.0, 0.0, 0.0), (0.0, 0.0, 1.0, 1.0)]


def test_fresh_solutions_join_the_pool_before_the_loss():
    # PyEPO refreshes first: the batch's own MAP(theta) is in the pool the loss sees
    pool = SolutionPool(3, torch.tensor([[1.0, 0.0, 0.0]]))
    loss = CMAPLoss(discograd.TopK(1), pool)
    theta = torch.tensor([[0.0, 0.0, 5.0]])
    assert loss(theta, torch.tensor([[1.0, 0.0, 0.0]])).item() == 5.0 and len(pool) == 2


def test_no_refresh_without_solve_ratio_or_in_eval_mode():
    solver = CountingSolver()
    pool = SolutionPool(4, torch.eye(4)[:2])
    loss = NCELoss(solver, pool, solve_ratio=0.0)
    theta = torch.randn(3, 4, generator=torch.Generator().manual_seed(6))
    loss(theta, torch.eye(4)[:3])
    assert solver.calls == 0 and len(pool) == 2
    loss = NCELoss(solver, pool, solve_ratio=1.0).eval()
    loss(theta, torch.eye(4)[:3])
    assert solver.calls == 0 and len(pool) == 2
    loss.train()(theta, torch.eye(4)[:3])
    assert solver.calls == 1


def test_modules_keep_the_pool_in_their_state():
    pool = SolutionPool(4, torch.eye(4))
    loss = PairwiseLTRLoss(discograd.TopK(1), pool)
    state = loss.state_dict()
    assert torch.equal(state["pool._solutions"], pool.solutions)
    restored = PairwiseLTRLoss(discograd.TopK(1), SolutionPool(4))
    restored.load_state_dict(state)
    assert len(restored.pool) == 4


def test_losses_train_a_linear_model():
    # NCE with solution caching learns to put the true optimum on top: the regret falls
    g = torch.Generator().manual_seed(7)
    solver = discograd.TopK(2)
    x = torch.randn(64, 3, generator=g)
    theta_true = x @ torch.randn(3, 6, generator=g)
    z_true = solver(theta_true)
    model = torch.nn.Linear(3, 6)
    torch.manual_seed(0)
    model.reset_parameters()
    loss = NCELoss(solver, SolutionPool(6, z_true), solve_ratio=0.5, generator=g)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)

    def regret():
        with torch.no_grad():
            return float(((theta_true * z_true).sum(-1) - (theta_true * solver(model(x))).sum(-1)).mean())

    before = regret()
    for _ in range(60):
        optimiser.zero_grad()
        loss(model(x), z_true).backward()
        optimiser.step()
    assert regret() < 0.5 * before


# --------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_bad_input(name):
    theta, theta_true, z_true, pool = _problem(8)
    other = _other(name, theta_true, z_true)
    fn = FUNCTIONS[name]
    with pytest.raises(ValueError, match="empty"):
        fn(theta, other, SolutionPool(5))
    with pytest.raises(ValueError, match="empty"):
        MODULES[name](None, SolutionPool(5), solve_ratio=0)(theta, other)
    with pytest.raises(ValueError, match="same shape"):
        fn(theta, other[:2], pool)
    with pytest.raises(ValueError, match="theta must have shape"):
        fn(theta[:, :4], other[:, :4], pool)
    bad = theta.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="theta must be finite"):
        fn(bad, other, pool)
    with pytest.raises(ValueError, match="must be finite"):
        fn(theta, torch.full_like(other, float("inf")), pool)
    with pytest.raises(ValueError, match="solutions must be finite"):
        fn(theta, other, torch.full((3, 5), float("nan"), dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\[N, \*event_shape\]"):
        fn(theta, other, torch.ones(5))
    with pytest.raises(TypeError, match="SolutionPool or a torch.Tensor"):
        fn(theta, other, [[1.0] * 5])
    module = MODULES[name]
    with pytest.raises(ValueError, match="solve_ratio=0"):
        module(None, pool, solve_ratio=0.5)
    with pytest.raises(ValueError, match="solve_ratio must lie in"):
        module(discograd.TopK(2), pool, solve_ratio=2.0)
    with pytest.raises(TypeError, match="pool must be"):
        module(discograd.TopK(2), pool.solutions)
    with pytest.raises(ValueError, match="event_dims"):
        module(discograd.LinearAssignment(), pool)
    with pytest.raises(TypeError, match="solver must be callable"):
        module("TopK", pool)
