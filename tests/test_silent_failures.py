"""What used to fail silently or with a misleading message now raises, naming the culprit and the fix."""

import pytest
import torch

import discograd
from discograd import KnownTarget, LabelTarget, PerturbedTarget, TopK


def nan_solver(theta):
    z = TopK(1)(theta)
    z[..., 0] = float("nan")
    return z


def test_a_solver_returning_nan_is_named():
    layer = discograd.imle(nan_solver, noise=None)
    with pytest.raises(ValueError, match=r"z returned by the solver nan_solver must be finite; got 2 NaN .*check the solver"):
        layer(torch.zeros(2, 4, requires_grad=True))


def test_a_solver_returning_inf_is_named_in_straight_through_too():
    def inf_solver(theta):
        return torch.full_like(theta, float("inf"))

    with pytest.raises(ValueError, match="z returned by the solver .*inf_solver must be finite; got 0 NaN and 8 infinite"):
        discograd.straight_through(inf_solver, noise=None)(torch.zeros(2, 4))


def test_nan_in_the_loss_is_reported_as_the_loss_gradient_not_theta():
    theta = torch.zeros(2, 4, requires_grad=True)
    z = discograd.imle(TopK(1), noise=None)(theta)
    loss = (z * torch.tensor([float("nan"), 1.0, 1.0, 1.0])).sum()
    with pytest.raises(ValueError, match=r"the gradient of the loss with respect to z must be finite; got 2 NaN .*check the loss"):
        loss.backward()


class NaNNoise:
    def sample(self, shape, *, generator=None, device=None, dtype=None):
        eps = torch.zeros(shape, device=device, dtype=dtype)
        eps.view(-1)[0] = float("nan")
        return eps

    def __repr__(self):
        return "NaNNoise()"


def test_a_noise_object_returning_nan_is_named():
    layer = discograd.imle(TopK(1), noise=NaNNoise())
    with pytest.raises(ValueError, match=r"the noise drawn by NaNNoise\(\) must be finite; got 1 NaN"):
        layer(torch.zeros(2, 4))


@pytest.mark.parametrize("make", [PerturbedTarget, LabelTarget, KnownTarget,
                                  lambda step_size: discograd.blackbox(TopK(1), step_size=step_size)])
@pytest.mark.parametrize("bad", [1e-300, 1e-21, 1e21, 1e300])
def test_step_sizes_outside_the_usable_range_are_refused(make, bad):
    with pytest.raises(ValueError, match=r"step_size must lie in \[1e-20, 1e\+20\]"):
        make(step_size=bad)


def test_the_edges_of_the_step_size_range_give_finite_gradients():
    for lam in (1e-20, 1e20):
        theta = torch.tensor([[0.0, 1.0, 2.0]], requires_grad=True)
        z = discograd.imle(TopK(1), noise=None, target=PerturbedTarget(lam))(theta)
        (z * torch.tensor([1e18, 0.0, 0.0])).sum().backward()
        assert torch.isfinite(theta.grad).all()


def _train(layer, steps, reduce):
    theta = torch.arange(20.0).repeat(64, 1).requires_grad_()  # scores 1 apart
    target = torch.zeros(64, 20)
    target[:, :3] = 1
    for _ in range(steps):
        z = layer(theta)
        loss = ((z - target) ** 2)
        (loss.mean() if reduce == "mean" else loss.sum()).backward()
        theta.grad = None


def test_a_step_too_small_for_an_averaged_loss_warns_once():
    """mean over 64 x 20 entries: g = ±1/640, λ = 1 moves theta by 0.0016 < the gaps of 1: no MAP state changes."""
    import warnings

    layer = discograd.imle(TopK(3), noise=None, target=PerturbedTarget(1.0))
    with pytest.warns(UserWarning, match=r"first 10 backward passes .* zero gradient .* sum the loss instead, raise "
                                         r"step_size, or use AdaptiveTarget .* warn_zero_gradient=False"):
        _train(layer, 10, "mean")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _train(layer, 12, "mean")  # once per layer
        _train(discograd.imle(TopK(3), noise=None, target=PerturbedTarget(1.0)), 12, "sum")  # learns: no warning
        _train(discograd.imle(TopK(3), noise=None, target=PerturbedTarget(1.0), warn_zero_gradient=False), 12, "mean")
        _train(discograd.imle(TopK(3), noise=None, target=LabelTarget(1.0)), 12, "mean")  # zero = at the label
    with pytest.warns(UserWarning, match="first 10 backward passes"):
        _train(discograd.blackbox(TopK(3), step_size=1.0), 10, "mean")


def test_sum_of_gamma_samples_in_a_forked_child_after_threaded_sampling_in_the_parent():
    import multiprocessing as mp

    from discograd import SumOfGamma

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        generator = torch.Generator().manual_seed(0)
        SumOfGamma(3, method="gamma").sample((4, 1 << 17), generator=generator)  # the pool's threads start
        SumOfGamma(3).sample((4, 1 << 17), generator=generator)  # torch's parallel kernels run
        context = mp.get_context("fork")
        with context.Pool(1) as pool:
            result = pool.apply_async(_sample_in_child)
            assert result.get(timeout=60) == ((4, 1 << 17), (4, 1 << 17), True, 1)
    finally:
        torch.set_num_threads(previous)


def _sample_in_child():
    import warnings

    from discograd import SumOfGamma

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = SumOfGamma(3).sample((4, 1 << 17), generator=torch.Generator().manual_seed(1))
    gamma = SumOfGamma(3, method="gamma").sample((4, 1 << 17), generator=torch.Generator().manual_seed(1))
    # the default (table) sampler runs torch's kernels, which hang after fork() on several threads: it
    # switches this child to one thread and says so
    warned = any("set_num_threads(1)" in str(w.message) for w in caught)
    return tuple(table.shape), tuple(gamma.shape), warned, torch.get_num_threads()


def _train_from_zero(target, steps=200):
    """SGD on θ = 0 (ties: TopK picks the first k) towards the last 3 of 10 entries."""
    generator = torch.Generator().manual_seed(0)
    layer = discograd.imle(TopK(3), target=target, num_samples=4, generator=generator)
    theta = torch.zeros(8, 10, requires_grad=True)
    reward = torch.zeros(10)
    reward[-3:] = 1.0
    opt = torch.optim.SGD([theta], lr=0.5)
    for _ in range(steps):
        opt.zero_grad()
        (-(layer(theta) * reward).sum(-1).mean()).backward()
        opt.step()
    return theta.detach()


def test_aimle_learns_from_theta_zero_thanks_to_the_floor():
    """λ = β max(‖θ‖, 0.1 ‖τε‖)/‖g‖: from θ = 0 the target still differs from the forward sample."""
    theta = _train_from_zero(discograd.AdaptiveTarget(target_nonzeros=2.0))
    assert TopK(3)(theta)[:, -3:].sum(-1).eq(3).all(), theta
    # the original rule (no floor) leaves θ exactly at 0: the failure the floor is there for
    assert _train_from_zero(discograd.AdaptiveTarget(target_nonzeros=2.0, min_relative_norm=0.0)).eq(0).all()


def test_aimle_floor_uses_the_perturbation_norm():
    target = discograd.AdaptiveTarget(initial_beta=2.0, min_relative_norm=0.5)
    theta = torch.zeros(1, 2, 4)
    theta[0, 1] = 3.0  # ‖θ‖ = 6, above the floor
    g = torch.ones(1, 2, 4)  # ‖g‖ = 2
    noise_norm = torch.full((1, 2, 1), 4.0)
    lam = target.step_sizes(theta, g, 1, noise_norm)
    torch.testing.assert_close(lam.flatten(), torch.tensor([2.0 * 0.5 * 4.0 / 2.0, 2.0 * 6.0 / 2.0]))
    torch.testing.assert_close(target.step_sizes(theta, g, 1).flatten(), torch.tensor([0.0, 6.0]))


def test_aimle_batch_norm_is_torch_adaptive_imles_rule():
    """norm="batch": λ = β‖θ‖/‖dy‖ over the whole batch (torch-adaptive-imle imle/target.py)."""
    generator = torch.Generator().manual_seed(3)
    theta = torch.randn(1, 5, 7, generator=generator)
    g = torch.randn(1, 5, 7, generator=generator)
    target = discograd.AdaptiveTarget.torch_adaptive_imle()
    assert (target.beta, target.update_step, target.running_nonzeros, target.min_relative_norm, target.norm) == (
        1.0, 1e-4, 1.0, 0.0, "batch")
    lam = target.step_sizes(theta, g, 1)
    assert lam.shape == (1, 1, 1)
    torch.testing.assert_close(lam.flatten(), (theta.norm() / g.norm()).reshape(1))
    with pytest.raises(ValueError, match="norm must be one of"):
        discograd.AdaptiveTarget(norm="global")
    with pytest.raises(ValueError, match="min_relative_norm"):
        discograd.AdaptiveTarget(min_relative_norm=-1.0)
