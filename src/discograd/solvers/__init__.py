"""Batched MAP oracles: ``z = argmax_{z in C} <theta, z>`` for every instance of a batch.

See :mod:`discograd.solvers.base` for the contract every solver follows.
"""

from .argmax import Argmax
from .assignment import LinearAssignment
from .base import Solver, SolverFn, event_dims_of
from .knapsack import Knapsack
from .milp import MILP
from .ranking import Ranking
from .spanning_tree import SpanningTree
from .topk import TopK

__all__ = ["Solver", "SolverFn", "Argmax", "TopK", "LinearAssignment", "Ranking", "SpanningTree", "Knapsack", "MILP", "event_dims_of"]
