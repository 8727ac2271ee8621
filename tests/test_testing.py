"""The public solver checks pass on the built-in solvers and catch broken ones."""

from __future__ import annotations

import pytest
import torch

from discograd.solvers import Argmax, TopK
from discograd.testing import (
    SolverCheckReport,
    check_batch_equals_loop,
    check_deterministic,
    check_feasible,
    check_optimal,
    check_output_contract,
    check_solver,
)

ALL_CHECKS = ("output_contract", "feasible", "optimal", "batch_equals_loop", "deterministic")


def one_hot_argmax(theta):
    """A correct plain-function solver (no enumerate_feasible)."""
    index = theta.detach().argmax(-1, keepdim=True)
    return torch.zeros_like(theta).scatter_(-1, index, 1.0)


# deliberately broken solvers -------------------------------------------------------------------------------


def wrong_shape(theta):
    return one_hot_argmax(theta)[..., :-1]


def wrong_dtype(theta):
    return one_hot_argmax(theta).to(torch.float16)


def keeps_autograd(theta):
    return torch.softmax(theta, dim=-1)


def not_finite(theta):
    return one_hot_argmax(theta) * float("nan")


def modifies_theta(theta):
    z = one_hot_argmax(theta)
    theta.data.mul_(2.0)
    return z


def infeasible(theta):
    return (theta.detach() > 0).to(theta.dtype)  # not one-hot


def suboptimal(theta):
    return one_hot_argmax(-theta)  # feasible, but the argmin


def batch_dependent(theta):
    # every instance gets the answer of the first instance of the batch
    flat = theta.detach().reshape(-1, theta.shape[-1])
    return one_hot_argmax(flat[:1]).expand_as(flat).reshape(theta.shape).clone()


def tie_rule_depends_on_batch(theta):
    # optimal and deterministic, but a batch breaks ties by the lowest index and a lone instance by the highest
    if theta.dim() > 1:
        return one_hot_argmax(theta)
    return one_hot_argmax(theta.flip(-1)).flip(-1)


class RandomTies:
    """Optimal and feasible, but breaks ties differently on every call."""

    event_dims = 1

    def __init__(self):
        self.calls = 0

    def __call__(self, theta):
        self.calls += 1
        values = theta.detach() if self.calls % 2 else theta.detach().flip(-1)
        index = values.argmax(-1, keepdim=True)
        if not self.calls % 2:
            index = theta.shape[-1] - 1 - index
        return torch.zeros_like(theta).scatter_(-1, index, 1.0)


def theta_with_ties():
    generator = torch.Generator().manual_seed(0)
    return torch.randint(-2, 3, (4, 3, 5), generator=generator).to(torch.float64)


def theta_continuous():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(4, 3, 5, generator=generator, dtype=torch.float64)


# passing -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver, event_shape", [
    (Argmax(), 5), (TopK(1), 4), (TopK(3), 6), (TopK(0), 3), (TopK(4), 4),
], ids=repr)
def test_check_solver_passes_on_builtin_solvers(solver, event_shape):
    report = check_solver(solver, event_shape, num_trials=4)
    assert isinstance(report, SolverCheckReport)
    assert report.checks == ALL_CHECKS + ("tie_rule",) and report.skipped == ()
    assert report.num_trials == 4 and report.num_instances == 12
    assert report.num_states == solver.enumerate_feasible(event_shape).shape[0]


def test_check_solver_with_solver_args_and_generator():
    report = check_solver(TopK(), (6,), TopK(2).enumerate_feasible(6), solver_kwargs={"k": 2}, batch_shape=(2,),
                          generator=torch.Generator().manual_seed(5), dtype=torch.float32, num_trials=3)
    assert report.checks == ALL_CHECKS + ("tie_rule",) and report.num_instances == 2


def test_check_solver_plain_function():
    report = check_solver(one_hot_argmax, 5, torch.eye(5), num_trials=2)
    assert report.checks == ALL_CHECKS
    with pytest.warns(UserWarning, match="skipped the feasibility and optimality checks .* pass states="):
        skipped = check_solver(one_hot_argmax, 5, num_trials=2)  # no states and no enumerate_feasible
    assert skipped.checks == ("output_contract", "batch_equals_loop", "deterministic")
    assert skipped.num_states is None and skipped.skipped == ("feasible", "optimal")


def test_check_solver_on_grid_shortest_path_draws_valid_scores_and_checks_the_tie_rule():
    """GridShortestPath is exact for theta = -cost <= 0 (theta_domain); random theta of both signs used to be
    clamped and reported as 'not optimal'. Its tie rule is checked against the pure-Python reference."""
    from discograd import GridShortestPath

    for solver, shape in ((GridShortestPath(), (3, 3)), (GridShortestPath(neighbourhood=4), (3, 4))):
        report = check_solver(solver, shape, num_trials=4)
        assert report.checks == ALL_CHECKS + ("tie_rule",) and report.num_states > 0


def test_check_tie_rule_catches_a_solver_that_breaks_its_rule():
    from discograd.testing import check_tie_rule

    class HighestIndexWins(TopK):
        def solve(self, theta, k=None):
            return super().solve(theta.flip(-1), k).flip(-1)

    theta = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    with pytest.raises(AssertionError, match=r"breaks its documented tie rule on instance \(0,\): returned "
                                             r"\[0.0, 1.0, 1.0, 0.0\], the rule gives \[1.0, 1.0, 0.0, 0.0\]"):
        check_tie_rule(HighestIndexWins(2), theta)
    with pytest.raises(TypeError, match="has no reference"):
        check_tie_rule(one_hot_argmax, theta)


def test_check_solver_does_not_touch_global_rng():
    state = torch.get_rng_state()
    check_solver(Argmax(), 3, num_trials=2)
    assert torch.equal(torch.get_rng_state(), state)


def test_individual_checks_pass_and_return_z():
    theta = theta_with_ties()
    solver = TopK(2)
    states = solver.enumerate_feasible(5, dtype=theta.dtype)
    expected = solver(theta)
    for z in (check_output_contract(solver, theta), check_feasible(solver, theta, states),
              check_optimal(solver, theta, states), check_batch_equals_loop(solver, theta),
              check_deterministic(solver, theta)):
        assert torch.equal(z, expected)
    # extra positional / keyword arguments are forwarded to the solver
    assert (check_feasible(TopK(), theta, states, 2).sum(-1) == 2).all()
    assert (check_optimal(TopK(), theta, states, k=2).sum(-1) == 2).all()
    assert (check_batch_equals_loop(TopK(), theta, k=2).sum(-1) == 2).all()


def test_check_batch_equals_loop_with_explicit_event_dims():
    def per_row_argmax_2d(theta):  # event shape [2, 3]: one argmax per row of each instance
        return one_hot_argmax(theta)
    check_batch_equals_loop(per_row_argmax_2d, torch.randn(4, 2, 3), event_dims=2)


# failing -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("broken, pattern", [
    (wrong_shape, r"shape \(4, 3, 4\) instead of theta's \(4, 3, 5\)"),
    (wrong_dtype, "dtype torch.float16 instead of theta's torch.float64"),
    (keeps_autograd, "autograd history"),
    (not_finite, "non-finite"),
    (modifies_theta, "modified theta in place"),
    (lambda theta: theta.tolist(), "not a torch.Tensor"),
], ids=["shape", "dtype", "autograd", "nan", "in-place", "not-tensor"])
def test_check_output_contract_fails(broken, pattern):
    with pytest.raises(AssertionError, match=pattern):
        check_output_contract(broken, theta_continuous())


def test_check_feasible_fails_on_infeasible_output():
    with pytest.raises(AssertionError, match=r"infeasible z for instance \(\d+, \d+\)"):
        check_feasible(infeasible, theta_continuous(), torch.eye(5))
    with pytest.raises(AssertionError, match="infeasible"):
        check_feasible(TopK(3), theta_continuous(), TopK(2).enumerate_feasible(5))


def test_check_optimal_fails_on_suboptimal_output():
    with pytest.raises(AssertionError, match=r"not optimal for instance \(0, 0\) \(12 of 12 instances fail\)"):
        check_optimal(suboptimal, theta_continuous(), torch.eye(5))
    check_feasible(suboptimal, theta_continuous(), torch.eye(5))  # feasible all the same


def test_check_optimal_accepts_any_maximiser_under_ties():
    theta = torch.zeros(3, 5, dtype=torch.float64)
    check_optimal(lambda t: one_hot_argmax(t).flip(-1), theta, torch.eye(5))


def test_check_batch_equals_loop_fails_on_batch_dependent_output():
    with pytest.raises(AssertionError, match="different z for instance"):
        check_batch_equals_loop(batch_dependent, theta_continuous())
    with pytest.raises(AssertionError, match=r"different z for instance .* batch of shape \(4, 3\)"):
        check_batch_equals_loop(tie_rule_depends_on_batch, theta_with_ties())
    check_batch_equals_loop(tie_rule_depends_on_batch, theta_continuous())  # no ties: nothing to see


def test_check_deterministic_fails_on_random_tie_breaking():
    with pytest.raises(AssertionError, match="not deterministic"):
        check_deterministic(RandomTies(), theta_with_ties())
    check_deterministic(RandomTies(), theta_continuous())  # no ties: nothing to see


@pytest.mark.parametrize("broken, pattern", [
    (wrong_shape, "output contract"),
    (keeps_autograd, "output contract"),
    (infeasible, "infeasible"),
    (suboptimal, "not optimal"),
    (tie_rule_depends_on_batch, "different z for instance"),
    (RandomTies(), "not deterministic|different z"),
], ids=["shape", "autograd", "infeasible", "suboptimal", "batch-dependent-ties", "random-ties"])
def test_check_solver_fails_on_broken_solvers(broken, pattern):
    with pytest.raises(AssertionError, match=pattern):
        check_solver(broken, 5, torch.eye(5), num_trials=4)


def test_bad_arguments_to_the_checks():
    with pytest.raises(ValueError, match=r"states must have shape \[num_states, \*\(5,\)\]"):
        check_feasible(Argmax(), torch.randn(2, 5), torch.eye(4))
    with pytest.raises(ValueError, match="states must have shape"):
        check_solver(Argmax(), 5, torch.eye(4))
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        check_solver(Argmax(), 5, generator=0)
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype"):
        check_solver(Argmax(), 5, dtype=torch.int64)
