"""Pure-Python PyEPO optimisation models for exact comparisons with PyEPO without any commercial solver.

Imported by the tests that compare with PyEPO, after ``pytest.importorskip("pyepo")``.
"""

from __future__ import annotations

import numpy as np


def enumeration_model(feasible, *, maximize: bool = False):
    """A PyEPO ``optModel`` that solves ``min (or max) cᵀw over the rows w of feasible`` by enumeration
    (the first optimal row wins ties)."""
    from pyepo import EPO
    from pyepo.model.opt import optModel

    class EnumerationModel(optModel):
        def __init__(self, feasible, maximize=False):
            self.feasible = np.asarray(feasible, dtype=np.float64)
            self.maximize = maximize
            super().__init__()
            self.modelSense = EPO.MAXIMIZE if maximize else EPO.MINIMIZE

        def _getModel(self):
            return None, list(range(self.feasible.shape[1]))

        def setObj(self, c):
            self.c = np.asarray(c, dtype=np.float64)

        def solve(self):
            values = self.feasible @ self.c
            i = int(np.argmax(values) if self.maximize else np.argmin(values))
            return self.feasible[i].copy(), float(values[i])

    return EnumerationModel(np.asarray(feasible), maximize=maximize)


def dataset(model, costs, seed: int = 0):
    """A PyEPO ``optDataset`` (its optimal solutions computed by ``model``) with random features."""
    from pyepo.data.dataset import optDataset

    costs = np.asarray(costs)
    feats = np.random.default_rng(seed).normal(size=(costs.shape[0], 3))
    return optDataset(model, feats, costs)
