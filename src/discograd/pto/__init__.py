r"""Predict-then-optimize: PyEPO's data, graphs, data set and regret, for discograd's solvers.

Everything a PyEPO (khalil-research/PyEPO, 2.2.7) user needs around the estimators, without PyEPO:

- Data, bit-identical to PyEPO's ``genData`` for the same arguments and seed (:mod:`discograd.pto.data`):
  :func:`shortest_path_data` ``-> (x, c)``, :func:`knapsack_data` ``-> (weights, x, c)``,
  :func:`tsp_data` ``-> (x, c)``.
- Graphs in PyEPO's edge order, so that column ``e`` of ``c`` is edge ``e`` (:mod:`discograd.pto.graph`):
  :func:`grid_graph` ``(h, w)`` for :class:`discograd.solvers.ShortestPath` ``(h * w, edges, 0, h * w - 1)``,
  :func:`complete_graph_edges` ``(num_nodes)`` for the TSP.
- :class:`OptDataset`: items ``(x, c, w, z)`` like PyEPO's ``optDataset``, the labels from one batched solver
  call.
- Regret in PyEPO's normalisation, a ratio of sums over a data set (:mod:`discograd.pto.metrics`):
  :func:`batch_regret` (tensors) and :func:`dataset_regret` (a model and a loader, as
  ``pyepo.metric.regret``). The per-instance ratio is :func:`discograd.metrics.normalized_regret`, another
  quantity.

Sense conventions. discograd's solvers **maximise** ``<θ, z>``; PyEPO's ``c`` are costs for the shortest
path and the TSP (``sense="min"``: the solver is called on ``θ = -c``) and values for the knapsack
(``sense="max"``: ``θ = c``). :class:`OptDataset`, :func:`batch_regret` and :func:`dataset_regret` take the
``sense`` explicitly (there is no default) and do the sign change themselves; :func:`scores_from_costs`
does it for your own calls.

Example:
    >>> import torch
    >>> from torch.utils.data import DataLoader
    >>> from discograd.pto import OptDataset, batch_regret, dataset_regret, grid_graph, shortest_path_data
    >>> from discograd.solvers import ShortestPath
    >>> x, c = shortest_path_data(1000, 5, (5, 5), deg=4, noise_width=0.5, seed=135)
    >>> solver = ShortestPath(25, grid_graph(5, 5), source=0, target=24)
    >>> data = OptDataset(solver, x, c, sense="min")
    >>> x0, c0, w0, z0 = data[0]
    >>> x0.shape, c0.shape, w0.shape, z0.shape
    (torch.Size([5]), torch.Size([40]), torch.Size([40]), torch.Size([1]))
    >>> float(batch_regret(data.costs, data.costs, data.objs, solver, sense="min"))  # the true costs: no regret
    0.0
    >>> # the same through a model and a loader: features = the costs, and a model that returns its input
    >>> oracle = DataLoader(OptDataset(solver, c, c, sense="min"), batch_size=32)
    >>> dataset_regret(torch.nn.Identity(), oracle, solver, sense="min")
    0.0
    >>> untrained = torch.nn.Linear(5, 40)
    >>> dataset_regret(untrained, DataLoader(data, batch_size=32), solver, sense="min") > 0
    True
"""

from .data import knapsack_data, shortest_path_data, tsp_data
from .dataset import SENSES, OptDataset, check_sense, scores_from_costs
from .graph import complete_graph_edges, grid_graph
from .metrics import PYEPO_EPS, REGRET_REDUCTIONS, batch_regret, dataset_regret

__all__ = [
    "PYEPO_EPS",
    "REGRET_REDUCTIONS",
    "SENSES",
    "OptDataset",
    "batch_regret",
    "check_sense",
    "complete_graph_edges",
    "dataset_regret",
    "grid_graph",
    "knapsack_data",
    "scores_from_costs",
    "shortest_path_data",
    "tsp_data",
]
