r"""The graphs of PyEPO's shortest-path and TSP problems, edges in PyEPO's order.

PyEPO's cost vectors are indexed by the arcs (shortest path) or edges (TSP) of its models, in the order
those models list them; these functions return the same lists as ``[E, 2]`` int64 arrays, so that column
``e`` of PyEPO's ``c`` (from :func:`discograd.pto.shortest_path_data` / :func:`discograd.pto.tsp_data`)
is the cost of row ``e``.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_int

__all__ = ["complete_graph_edges", "grid_graph"]


def grid_graph(h: int, w: int) -> np.ndarray:
    r"""Directed arcs of PyEPO's ``h x w`` grid, in PyEPO's arc order: an ``[E, 2]`` int64 array of ``(tail, head)``.

    Node ``(i, j)`` (row ``i``, column ``j``) is numbered ``v = i w + j``. Every node has an arc to its right
    neighbour ``v -> v + 1`` and one to the node below ``v -> v + w`` (so the graph is a DAG and every
    path from the top-left node ``0`` to the bottom-right node ``h w - 1`` has ``h + w - 2`` arcs). The
    order is PyEPO's (``pyepo/model/utils.py``, ``_get_grid_arcs``, used by every
    ``pyepo.model.*.shortestPathModel``): row by row, first the ``w - 1`` rightward arcs of row ``i``, then
    (except in the last row) the ``w`` downward arcs leaving row ``i``. There are
    ``E = (h - 1) w + (w - 1) h`` arcs, the cost dimension of :func:`discograd.pto.shortest_path_data`.

    Use it with :class:`discograd.solvers.ShortestPath`, which maximises ``<θ, z>``: with PyEPO's costs
    ``c``, call it on ``θ = -c``; ``z[..., e] = 1`` when arc ``e`` is on the path, PyEPO's solution vector.

    Args:
        h, w: the numbers of rows and columns, ``>= 1`` each, ``h * w >= 2``.

    Returns:
        ``[E, 2]`` int64 array; row ``e`` is arc ``e`` ``(tail, head)``.

    Example:
        >>> import torch
        >>> from discograd.pto import grid_graph
        >>> from discograd.solvers import ShortestPath
        >>> grid_graph(2, 3).tolist()
        [[0, 1], [1, 2], [0, 3], [1, 4], [2, 5], [3, 4], [4, 5]]
        >>> edges = grid_graph(5, 5)
        >>> solver = ShortestPath(25, edges, 0, 24)
        >>> cost = torch.ones(len(edges))
        >>> float((solver(-cost) * cost).sum())  # 8 arcs of cost 1
        8.0
    """
    h = check_int(h, "h", minimum=1)
    w = check_int(w, "w", minimum=1)
    if h * w < 2:
        raise ValueError(f"the grid must have at least two nodes (h * w >= 2), so that it has an arc; got h = {h}, w = {w}")
    row_start = np.arange(h, dtype=np.int64)[:, None] * w
    right = row_start + np.arange(w - 1, dtype=np.int64)  # [h, w - 1] tails of the rightward arcs
    down = row_start[:-1] + np.arange(w, dtype=np.int64)  # [h - 1, w] tails of the downward arcs
    # per row i < h - 1: its rightward arcs, then its downward arcs; the last row: its rightward arcs only
    tails = np.concatenate([np.concatenate([right[:-1], down], axis=1).reshape(-1), right[-1]])
    heads = np.concatenate([np.concatenate([right[:-1] + 1, down + w], axis=1).reshape(-1), right[-1] + 1])
    return np.stack([tails, heads], axis=1)


def complete_graph_edges(num_nodes: int) -> np.ndarray:
    r"""Undirected edges ``(a, b)``, ``a < b``, of the complete graph on ``num_nodes`` nodes, in PyEPO's TSP order.

    The order is lexicographic, ``(0, 1), (0, 2), ..., (0, N-1), (1, 2), ...``: PyEPO's
    ``tspABBase.edges = list(itertools.combinations(range(N), 2))`` (``pyepo/model/bases.py``), the order of
    the cost vector of every ``pyepo.model.*.tsp*Model`` and of the columns of
    :func:`discograd.pto.tsp_data`'s ``c`` (whose Euclidean part is ``scipy.spatial.distance.pdist``'s
    condensed vector, the same row-major upper triangle). Edge ``(a, b)`` has index
    ``a N - a (a + 1) / 2 + b - a - 1``.

    Args:
        num_nodes: ``N >= 2``.

    Returns:
        ``[N (N - 1) / 2, 2]`` int64 array.

    Example:
        >>> from discograd.pto import complete_graph_edges
        >>> complete_graph_edges(4).tolist()
        [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    """
    num_nodes = check_int(num_nodes, "num_nodes", minimum=2)
    a, b = np.triu_indices(num_nodes, k=1)
    return np.stack([a, b], axis=1).astype(np.int64)
