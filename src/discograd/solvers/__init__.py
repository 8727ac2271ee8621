"""Batched MAP oracles: ``z = argmax_{z in C} <theta, z>`` for every instance of a batch.

See :mod:`discograd.solvers.base` for the contract every solver follows.
"""

from .argmax import Argmax
from .base import Solver, SolverFn, event_dims_of
from .milp import MILP
from .topk import TopK

__all__ = ["Solver", "SolverFn", "Argmax", "TopK", "MILP", "event_dims_of"]
