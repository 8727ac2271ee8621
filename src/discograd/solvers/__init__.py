"""Batched MAP oracles: ``z = argmax_{z in C} <theta, z>`` for every instance of a batch.

See :mod:`discograd.solvers.base` for the contract every solver follows: every solver *maximises*
``<theta, z>`` (a cost-minimisation problem takes ``theta = -cost``), accepts any leading batch shape
and returns ``theta``'s shape, dtype and device.

=====================  ==========================  ==============================================
solver                 theta                       z
=====================  ==========================  ==============================================
``Argmax``             ``[*batch, n]``             one-hot
``TopK(k)``            ``[*batch, n]``             exactly k ones
``GridShortestPath``   ``[*batch, H, W]`` (cells)  cells of a min-cost path (costs = −theta)
``ShortestPath``       ``[*batch, E]`` (edges)     edges of a min-cost directed path
``LinearAssignment``   ``[*batch, n, m]``          0/1 assignment matrix
``Ranking``            ``[*batch, n]``             a permutation of the rank values
``SpanningTree``       ``[*batch, n, n]``          symmetric adjacency of a max spanning tree
``Knapsack``           ``[*batch, n]`` (values)    0/1 items within the capacity
``MultiKnapsack``      ``[*batch, n]`` (values)    0/1 items within d real-valued capacities
``MILP``               ``[*batch, n]``             optimum of a mixed-integer program (HiGHS)
``TSP``                ``[*batch, E]`` (edges)     edges of a min-cost tour, E = N (N - 1) / 2 (HiGHS)
=====================  ==========================  ==============================================

The compiled solvers need ``pip install 'discograd[solvers]'`` (numba, scipy).
"""

from .argmax import Argmax
from .assignment import LinearAssignment
from .base import Solver, SolverFn, event_dims_of
from .grid_shortest_path import GridShortestPath
from .knapsack import Knapsack
from .milp import MILP
from .multi_knapsack import MultiKnapsack
from .ranking import Ranking
from .shortest_path import ShortestPath
from .spanning_tree import SpanningTree
from .topk import TopK
from .tsp import TSP

__all__ = [
    "MILP",
    "TSP",
    "Argmax",
    "GridShortestPath",
    "Knapsack",
    "LinearAssignment",
    "MultiKnapsack",
    "Ranking",
    "ShortestPath",
    "Solver",
    "SolverFn",
    "SpanningTree",
    "TopK",
    "event_dims_of",
]
