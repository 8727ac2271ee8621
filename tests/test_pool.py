"""SolutionPool and CachedSolver: dedup and best against brute force, PyEPO's pool rules, solve_ratio statistics,
caching inside the estimators, state, bad input."""

import io
import itertools
import math

import numpy as np
import pytest
import torch

import discograd
from discograd.pool import CachedSolver, SolutionPool, default_tolerance


def _rows(t):
    return [tuple(r) for r in t.reshape(t.shape[0], -1).tolist()]


def _brute_best(pool_rows, theta_rows):
    """argmax_n <theta, w_n> by a Python loop, first index among ties."""
    out = []
    for th in theta_rows:
        values = [sum(a * b for a, b in zip(th, w)) for w in pool_rows]
        out.append(values.index(max(values)))
    return out


class CountingSolver:
    """TopK(k) that counts the instances it is asked to solve."""

    event_dims = 1

    def __init__(self, k=2):
        self.inner = discograd.TopK(k)
        self.calls = 0
        self.instances = []

    def __call__(self, theta, *args, **kwargs):
        self.calls += 1
        self.instances.append(math.prod(theta.shape[:-1]))
        return self.inner(theta, *args, **kwargs)


class MatrixArgmax:
    """One-hot of the largest entry of each [3, 2] matrix: a solver with event_dims = 2."""

    event_dims = 2

    def __call__(self, theta):
        flat = theta.reshape(*theta.shape[:-2], 6)
        return torch.nn.functional.one_hot(flat.argmax(-1), 6).to(theta.dtype).reshape(theta.shape)


# ---------------------------------------------------------------------------------------------- SolutionPool
def test_add_deduplicates_like_a_set_in_pyepo_order():
    g = torch.Generator().manual_seed(0)
    pool = SolutionPool(6)
    seen = []
    for _ in range(12):
        batch = (torch.rand(7, 6, generator=g) < 0.3).float()
        before = len(pool)
        added = pool.add(batch)
        # brute force: distinct rows not yet seen, appended in lexicographic order (torch.unique's)
        new = sorted({r for r in _rows(batch) if r not in seen})
        seen.extend(new)
        assert added == len(new) == len(pool) - before
        assert _rows(pool.solutions) == seen


def test_add_matches_pyepo_update_solution_pool():
    pytest.importorskip("pyepo")
    from pyepo.func.utils import _update_solution_pool

    g = torch.Generator().manual_seed(1)
    init = (torch.rand(5, 8, generator=g) < 0.5).float()
    pool = SolutionPool(8, init)
    reference = torch.unique(init, dim=0).clone()  # PyEPO's init_solution_pool
    assert torch.equal(pool.solutions, reference)
    for _ in range(10):
        batch = (torch.rand(6, 8, generator=g) < 0.5).float()
        pool.add(batch)
        reference = _update_solution_pool(batch, reference)
        assert torch.equal(pool.solutions, reference)


def test_tolerance_merges_near_duplicates():
    base = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
    assert default_tolerance(4) == pytest.approx(4e-4)
    pool = SolutionPool(4, base)
    # within 3e-4 in L1 of a pooled row, and two near-copies of a new row within the batch
    near = base + torch.tensor([[1e-4, 0, 0, 0], [0, 0, 0, -2e-4]])
    fresh = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1e-4]])
    assert pool.add(torch.cat([near, fresh])) == 1
    assert len(pool) == 3
    # just outside the tolerance is new; tolerance=0 keeps every distinct value
    assert pool.add(base[:1] + 5e-4) == 1
    exact = SolutionPool(4, base, tolerance=0)
    assert exact.add(near) == 2


def test_max_size_drops_the_oldest():
    g = torch.Generator().manual_seed(2)
    pool = SolutionPool(5, max_size=4)
    seen = []
    for _ in range(8):
        batch = (torch.rand(3, 5, generator=g) < 0.5).float()
        pool.add(batch)
        seen.extend(sorted({r for r in _rows(batch) if r not in seen}))
        assert _rows(pool.solutions) == seen[-4:]  # FIFO; a dropped solution may come back later
        seen = seen[-4:]


@pytest.mark.parametrize("batch_shape", [(), (5,), (2, 3)])
def test_best_equals_brute_force(batch_shape):
    g = torch.Generator().manual_seed(3)
    pool = SolutionPool(7, torch.randn(20, 7, generator=g), tolerance=0)
    theta = torch.randn(*batch_shape, 7, generator=g)
    z = pool.best(theta)
    index = pool.best_index(theta)
    expected = _brute_best(_rows(pool.solutions), theta.reshape(-1, 7).tolist())
    assert index.shape == batch_shape and index.reshape(-1).tolist() == expected
    assert torch.equal(z.reshape(-1, 7), pool.solutions[expected])
    assert z.shape == theta.shape


def test_best_ties_go_to_the_earliest_solution_and_matrix_events():
    pool = SolutionPool((2, 2), tolerance=0)
    for w in torch.tensor([[[1.0, 0], [0, 0]], [[0, 1.0], [0, 0]], [[0, 0], [0, 1.0]]]):
        pool.add(w)  # one at a time: insertion order (a batch is added in torch.unique's sorted order)
    theta = torch.tensor([[[1.0, 1.0], [0.0, 0.5]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 2.0]]])
    assert pool.best_index(theta).tolist() == [0, 0, 2]
    assert torch.equal(pool.best(theta)[2], pool.solutions[2])


def test_best_casts_to_theta_dtype_and_objectives_are_differentiable():
    pool = SolutionPool(3, torch.eye(3), dtype=torch.float32)
    theta = torch.tensor([[0.1, 0.7, 0.2]], dtype=torch.float64, requires_grad=True)
    z = pool.best(theta)
    assert z.dtype == torch.float64 and not z.requires_grad
    values = pool.objectives(theta)
    assert values.dtype == torch.float64 and values.shape == (1, 3)
    values.sum().backward()
    assert torch.equal(theta.grad, torch.ones(1, 3, dtype=torch.float64))


def test_from_solutions_reads_the_event_shape():
    pool = SolutionPool.from_solutions(torch.zeros(4, 2, 3), event_dims=2)
    assert pool.event_shape == (2, 3) and len(pool) == 1
    assert SolutionPool.from_solutions(torch.eye(3)).event_shape == (3,)


def test_state_dict_keeps_the_pool():
    g = torch.Generator().manual_seed(4)
    pool = SolutionPool(6, (torch.rand(9, 6, generator=g) < 0.5).float())
    buffer = io.BytesIO()
    torch.save(pool.state_dict(), buffer)
    buffer.seek(0)
    restored = SolutionPool(6)
    restored.load_state_dict(torch.load(buffer))
    assert torch.equal(restored.solutions, pool.solutions)
    # through a CachedSolver (the pool is a submodule)
    cached = CachedSolver(discograd.TopK(2), SolutionPool(6), 0.5)
    cached.load_state_dict({"pool._solutions": pool.solutions})
    assert torch.equal(cached.pool.solutions, pool.solutions)
    assert "pool._solutions" in CachedSolver(discograd.TopK(2), pool, 0.5).state_dict()
    with pytest.raises(RuntimeError, match="event_shape"):
        SolutionPool(5).load_state_dict(pool.state_dict())


def test_pool_starts_from_a_pyepo_dataset():
    pytest.importorskip("pyepo")
    from pyepo_toys import dataset, enumeration_model

    feasible = discograd.TopK(2).enumerate_feasible(5, dtype=torch.float64)
    model = enumeration_model(feasible.numpy())
    data = dataset(model, np.random.default_rng(0).normal(size=(30, 5)))
    pool = SolutionPool(5, data.sols)
    assert torch.equal(pool.solutions, torch.unique(data.sols, dim=0))  # PyEPO's init_solution_pool


def test_pool_bad_input():
    with pytest.raises(TypeError, match="event_shape"):
        SolutionPool("3")
    with pytest.raises(ValueError, match="event_shape"):
        SolutionPool((3, 0))
    with pytest.raises(ValueError, match="max_size"):
        SolutionPool(3, max_size=0)
    with pytest.raises(ValueError, match="tolerance"):
        SolutionPool(3, tolerance=-1.0)
    with pytest.raises(TypeError, match="dtype"):
        SolutionPool(3, dtype=torch.int64)
    with pytest.raises(TypeError, match="solutions"):
        SolutionPool(3, [[1.0, 0.0, 0.0]])
    pool = SolutionPool(3)
    with pytest.raises(ValueError, match="empty"):
        pool.best(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"z must have shape"):
        pool.add(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="z must be finite"):
        pool.add(torch.tensor([[1.0, float("nan"), 0.0]]))
    pool.add(torch.eye(3))
    with pytest.raises(ValueError, match="theta must be finite"):
        pool.best(torch.tensor([1.0, float("inf"), 0.0]))
    with pytest.raises(ValueError, match="theta must have shape"):
        pool.best(torch.zeros(3, 2))
    with pytest.raises(TypeError, match="floating-point"):
        pool.best(torch.zeros(3, dtype=torch.int64))
    pool.clear()
    assert len(pool) == 0 and pool.solutions.shape == (0, 3)


# ---------------------------------------------------------------------------------------------- CachedSolver
@pytest.mark.parametrize("mode", ["batch", "instance"])
def test_solve_ratio_one_is_the_solver(mode):
    g = torch.Generator().manual_seed(5)
    solver = discograd.TopK(3)
    cached = CachedSolver(solver, SolutionPool(8), 1.0, mode=mode, generator=g)
    seen = set()
    for _ in range(5):
        theta = torch.randn(4, 2, 8, generator=g)
        z = cached(theta)
        assert torch.equal(z, solver(theta))
        seen |= set(_rows(z.reshape(-1, 8)))
    assert set(_rows(cached.pool.solutions)) == seen
    assert cached.num_solved == 40 and cached.num_cached == 0


@pytest.mark.parametrize("mode", ["batch", "instance"])
def test_solve_ratio_zero_answers_from_the_pool_only(mode):
    g = torch.Generator().manual_seed(6)
    solver = CountingSolver(2)
    pool = SolutionPool(6, (torch.rand(10, 6, generator=g) < 0.5).float())
    before = pool.solutions.clone()
    cached = CachedSolver(solver, pool, 0.0, mode=mode, generator=g)
    theta = torch.randn(7, 6, generator=g)
    assert torch.equal(cached(theta), pool.best(theta))
    assert solver.calls == 0 and cached.num_cached == 7
    assert torch.equal(pool.solutions, before)


def test_a_full_pool_makes_the_cache_exact():
    g = torch.Generator().manual_seed(7)
    solver = discograd.TopK(2)
    cached = CachedSolver(solver, SolutionPool(6, solver.enumerate_feasible(6)), 0.0)
    theta = torch.randn(50, 6, generator=g)
    assert torch.equal(cached(theta), solver(theta))


def _binomial_ok(successes, trials, p, z=4.5):
    return abs(successes - trials * p) <= z * math.sqrt(trials * p * (1 - p))


def test_batch_mode_solves_whole_batches_with_probability_solve_ratio():
    g = torch.Generator().manual_seed(8)
    solver = CountingSolver(1)
    cached = CachedSolver(solver, SolutionPool(5, torch.eye(5)), 0.3, generator=g)
    theta = torch.randn(4, 5, generator=g)
    calls = 2000
    for _ in range(calls):
        cached(theta)
    assert set(solver.instances) == {4}  # all or nothing per call (PyEPO's rule)
    assert _binomial_ok(solver.calls, calls, 0.3)
    assert cached.num_solved == 4 * solver.calls and cached.num_cached == 4 * (calls - solver.calls)


def test_instance_mode_solves_each_instance_with_probability_solve_ratio():
    g = torch.Generator().manual_seed(9)
    solver = CountingSolver(1)
    cached = CachedSolver(solver, SolutionPool(5, torch.eye(5)), 0.3, mode="instance", generator=g)
    theta = torch.randn(25, 5, generator=g)
    calls = 200
    for _ in range(calls):
        z = cached(theta)
        assert torch.equal(z, discograd.TopK(1)(theta))  # the pool holds every one-hot: answers stay exact
    assert _binomial_ok(cached.num_solved, calls * 25, 0.3)
    assert cached.num_solved + cached.num_cached == calls * 25
    assert len(set(solver.instances)) > 3  # binomial sub-batches, not all or nothing


def test_the_generator_makes_the_draws_reproducible():
    def run(seed):
        solver = CountingSolver(1)
        cached = CachedSolver(solver, SolutionPool(5, torch.eye(5)), 0.5, mode="instance",
                              generator=torch.Generator().manual_seed(seed))
        for _ in range(20):
            cached(torch.randn(6, 5, generator=torch.Generator().manual_seed(0)))
        return solver.instances

    assert run(1) == run(1) and run(1) != run(2)


def test_eval_mode_solves_exactly_and_keeps_the_pool():
    solver = CountingSolver(1)
    pool = SolutionPool(5, torch.eye(5)[:2])
    cached = CachedSolver(solver, pool, 0.0).eval()
    theta = torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0]])
    assert torch.equal(cached(theta), torch.eye(5)[3:4]) and solver.calls == 1 and len(pool) == 2
    cached_in_eval = CachedSolver(solver, pool, 0.0, exact_in_eval=False).eval()
    assert torch.equal(cached_in_eval(theta), pool.solutions[:1]) and solver.calls == 1  # tie: the first pooled


def test_event_dims_are_carried():
    solver = MatrixArgmax()
    cached = CachedSolver(solver, SolutionPool((3, 2), torch.eye(6).reshape(6, 3, 2)), 0.0)
    assert cached.event_dims == 2 == discograd.solvers.event_dims_of(cached)
    theta = torch.randn(4, 3, 2, generator=torch.Generator().manual_seed(10))
    assert torch.equal(cached(theta), solver(theta))
    layer = discograd.blackbox(cached, step_size=1.0)
    assert layer.event_dims == 2


def test_per_call_solver_arguments_reach_the_solver_in_batch_mode():
    solver = discograd.TopK()
    cached = CachedSolver(solver, SolutionPool(4), 1.0)
    theta = torch.tensor([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    assert cached(theta, k=torch.tensor([1, 3])).sum(-1).tolist() == [1.0, 3.0]
    instance = CachedSolver(solver, SolutionPool(4), 1.0, mode="instance")
    assert instance(theta, k=2).sum(-1).tolist() == [2.0, 2.0]
    with pytest.raises(TypeError, match="mode='batch'"):
        instance(theta, k=torch.tensor([1, 3]))


@pytest.mark.parametrize("num_samples", [None, 3])
def test_inside_imle_a_full_pool_gives_the_solvers_gradients(num_samples):
    solver = discograd.TopK(2)
    theta = torch.randn(4, 6, generator=torch.Generator().manual_seed(11))
    upstream = torch.randn(*(() if num_samples is None else (num_samples,)), 4, 6,
                           generator=torch.Generator().manual_seed(12))

    def run(s):
        layer = discograd.imle(s, num_samples=num_samples, generator=torch.Generator().manual_seed(13))
        t = theta.clone().requires_grad_(True)
        z = layer(t)
        (z * upstream).sum().backward()
        return z, t.grad

    cached = CachedSolver(solver, SolutionPool(6, solver.enumerate_feasible(6)), 0.0)
    z_ref, grad_ref = run(solver)
    z, grad = run(cached)
    assert torch.equal(z, z_ref) and torch.equal(grad, grad_ref)
    assert cached.num_cached == 4 * (num_samples or 1) * 2  # forward and target solves, all from the pool
    # solve_ratio = 1: the same again, and the pool collects the solutions it saw
    collecting = CachedSolver(solver, SolutionPool(6), 1.0)
    z, grad = run(collecting)
    assert torch.equal(z, z_ref) and torch.equal(grad, grad_ref)
    assert set(_rows(z.reshape(-1, 6))) <= set(_rows(collecting.pool.solutions))


def test_inside_blackbox_cached_answers_are_the_pools():
    g = torch.Generator().manual_seed(14)
    pool = SolutionPool(6, discograd.TopK(2)(torch.randn(3, 6, generator=g)))
    cached = CachedSolver(discograd.TopK(2), pool, 0.0)
    layer = discograd.blackbox(cached, step_size=2.0, warn_zero_gradient=False)
    theta = torch.randn(5, 6, generator=g, requires_grad=True)
    upstream = torch.randn(5, 6, generator=g)
    z = layer(theta)
    (z * upstream).sum().backward()
    assert torch.equal(z, pool.best(theta))
    assert torch.allclose(theta.grad, (pool.best(theta) - pool.best(theta - 2.0 * upstream)) / 2.0)


@pytest.mark.parametrize("solve_ratio", [0.0, 1.0])
@pytest.mark.parametrize("maximize", [False, True])
def test_inside_blackbox_equals_pyepo_dbb(solve_ratio, maximize):
    pytest.importorskip("pyepo")
    from pyepo.func import blackboxOpt
    from pyepo_toys import dataset, enumeration_model

    rng = np.random.default_rng(15)
    feasible = discograd.TopK(2).enumerate_feasible(5, dtype=torch.float64)
    model = enumeration_model(feasible.numpy(), maximize=maximize)
    data = dataset(model, rng.normal(size=(6, 5)))
    lam = 3.0
    dbb = blackboxOpt(model, lambd=lam, solve_ratio=solve_ratio, dataset=data)
    cost = torch.tensor(rng.normal(size=(8, 5)), requires_grad=True)
    upstream = torch.tensor(rng.normal(size=(8, 5)))
    sol = dbb(cost)
    (sol * upstream).sum().backward()

    sign = 1.0 if maximize else -1.0  # theta = -cost for a minimisation, theta = cost for a maximisation
    cached = CachedSolver(discograd.TopK(2), SolutionPool(5, data.sols, dtype=torch.float64), solve_ratio)
    theta = (sign * cost.detach()).requires_grad_(True)
    z = discograd.blackbox(cached, step_size=lam, warn_zero_gradient=False)(theta)
    (z * upstream).sum().backward()
    assert torch.equal(z, sol)
    # PyEPO divides by lambda + 1e-8 (pyepo.utils._EPS); d/d cost = sign * d/d theta
    torch.testing.assert_close(cost.grad, sign * theta.grad * lam / (lam + 1e-8), rtol=0, atol=1e-12)


def test_works_with_the_losses():
    g = torch.Generator().manual_seed(16)
    solver = discograd.TopK(2)
    cached = CachedSolver(solver, SolutionPool(6, solver.enumerate_feasible(6)), 0.0)
    theta, theta_true = torch.randn(2, 4, 6, generator=g)
    z_true = solver(theta_true)
    spo_ref = discograd.losses.spo_plus_loss(theta, theta_true, z_true, solver=solver)
    spo = discograd.losses.spo_plus_loss(theta, theta_true, z_true, solver=cached)
    assert torch.equal(spo, spo_ref)
    fy = discograd.losses.FenchelYoungLoss(cached, num_samples=4, generator=torch.Generator().manual_seed(0))
    fy_ref = discograd.losses.FenchelYoungLoss(solver, num_samples=4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(fy(theta, z_true), fy_ref(theta, z_true))


def test_cached_solver_bad_input():
    solver = discograd.TopK(1)
    pool = SolutionPool(3, torch.eye(3))
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="solve_ratio must lie in"):
            CachedSolver(solver, pool, bad)
    for bad in (True, "0.5", None):
        with pytest.raises(TypeError, match="solve_ratio"):
            CachedSolver(solver, pool, bad)
    with pytest.raises(ValueError, match="mode"):
        CachedSolver(solver, pool, 0.5, mode="sometimes")
    with pytest.raises(TypeError, match="pool must be"):
        CachedSolver(solver, torch.eye(3), 0.5)
    with pytest.raises(TypeError, match="solver must be callable"):
        CachedSolver(3, pool, 0.5)
    with pytest.raises(ValueError, match="event_dims"):
        CachedSolver(MatrixArgmax(), pool, 0.5)
    with pytest.raises(TypeError, match="generator"):
        CachedSolver(solver, pool, 0.5, generator=0)
    with pytest.raises(TypeError, match="exact_in_eval"):
        CachedSolver(solver, pool, 0.5, exact_in_eval=1)
    cached = CachedSolver(solver, pool, 0.5)
    with pytest.raises(ValueError, match="theta must be finite"):
        cached(torch.tensor([[0.0, float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="theta must have shape"):
        cached(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="empty"):
        CachedSolver(solver, SolutionPool(3), 0.0)(torch.zeros(2, 3))


def test_repr_names_the_settings():
    text = repr(CachedSolver(discograd.TopK(1), SolutionPool(3, torch.eye(3)), 0.25, mode="instance"))
    assert "solve_ratio=0.25" in text and "mode='instance'" in text and "size=3" in text
    assert list(itertools.islice(CachedSolver(discograd.TopK(1), SolutionPool(3), 0.5).buffers(), 1))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("mode", ["batch", "instance"])
def test_cuda_matches_cpu(mode):
    g = torch.Generator().manual_seed(17)
    solver = discograd.TopK(2)
    init = solver(torch.randn(10, 6, generator=g))
    theta = torch.randn(40, 6, generator=g)
    results = []
    for device in ("cpu", "cuda"):
        cached = CachedSolver(solver, SolutionPool(6, init).to(device), 0.5, mode=mode,
                              generator=torch.Generator(device=device).manual_seed(0))
        z = cached(theta.to(device))
        assert z.device.type == device and cached.pool.solutions.device.type == device
        results.append((z.cpu(), cached.pool.best(theta.to(device)).cpu()))
    # the draws differ between devices; the pooled answers of the same pool contents do not
    pool_cpu = SolutionPool(6, init)
    assert torch.equal(pool_cpu.best(theta), SolutionPool(6, init).to("cuda").best(theta.cuda()).cpu())
    assert all(z.shape == theta.shape for z, _ in results)
