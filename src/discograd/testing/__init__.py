"""Public checks of the solver contract, to run on your own solver (a plain function or a ``Solver``).

Each ``check_*`` raises ``AssertionError`` with an informative message on failure, so it can be used
directly inside a pytest test::

    from discograd.testing import check_solver

    def test_my_solver():
        check_solver(MySolver(), event_shape=(6,), states=my_feasible_states)
"""

from ._checks import (
    SolverCheckReport,
    check_batch_equals_loop,
    check_deterministic,
    check_feasible,
    check_optimal,
    check_output_contract,
    check_solver,
    check_tie_rule,
)

__all__ = [
    "SolverCheckReport",
    "check_batch_equals_loop",
    "check_deterministic",
    "check_feasible",
    "check_optimal",
    "check_output_contract",
    "check_solver",
    "check_tie_rule",
]
