r"""PyEPO's synthetic predict-then-optimize data: shortest path, multi-dimensional knapsack, TSP.

Each generator reproduces the corresponding ``genData`` of PyEPO (Tang & Khalil, "PyEPO: a PyTorch-based
end-to-end predict-then-optimize library for linear and integer programming", Mathematical Programming
Computation 2024, arXiv:2206.14234; repository khalil-research/PyEPO, release 2.2.7) **bit for bit**: the same
arguments and seed give the same numpy arrays, of the same dtypes, in the same return order, so published
PyEPO numbers can be rerun without PyEPO installed. The draws come from one
``numpy.random.RandomState(seed)`` in PyEPO's order, and every arithmetic step is PyEPO's, in PyEPO's order
(floating-point results depend on it).

==========================  =============================================  ==========================
generator                   PyEPO (2.2.7)                                  scores for our solvers
==========================  =============================================  ==========================
:func:`shortest_path_data`  ``pyepo/data/shortestpath.py``, ``genData``   ``theta = -c`` (costs)
:func:`knapsack_data`       ``pyepo/data/knapsack.py``, ``genData``       ``theta = c`` (values)
:func:`tsp_data`            ``pyepo/data/tsp.py``, ``genData``            ``theta = -c`` (costs)
==========================  =============================================  ==========================

Every solver of discograd maximises ``<θ, z>``; the last column says how PyEPO's ``c`` becomes ``θ``.

Argument checks: ``deg`` (a positive ``int``) and ``noise_width`` (a finite real ``>= 0``) are checked as
PyEPO checks them (``ValueError`` in every case, including a wrong type, as PyEPO raises). The sizes, which
PyEPO does not check, must be integers (``TypeError`` otherwise) ``>= 1`` (``ValueError``); a TSP needs
``num_nodes >= 3`` and a grid at least two nodes.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .._optional import require
from .._validation import check_int

__all__ = ["knapsack_data", "shortest_path_data", "tsp_data"]


def _check_degree(deg: object) -> int:
    """``deg`` as PyEPO's ``validate_degree`` accepts it: a Python ``int`` (not a bool) ``>= 1``."""
    if isinstance(deg, bool) or not isinstance(deg, int) or deg < 1:
        raise ValueError(f"deg must be a positive integer (a Python int >= 1, as PyEPO requires); got {deg!r}")
    return deg


def _check_noise_width(noise_width: object) -> object:
    """``noise_width`` as PyEPO's ``validate_nonnegative`` accepts it: a finite real ``>= 0``, returned unchanged
    (PyEPO computes ``1 - noise_width`` with the value as given, so its type is kept)."""
    if isinstance(noise_width, bool) or not isinstance(noise_width, numbers.Real):
        # PyEPO raises ValueError for a wrong type too
        raise ValueError(f"noise_width must be a finite real number >= 0; got {type(noise_width).__name__} "  # noqa: TRY004
                         f"{noise_width!r}")
    if not (math.isfinite(float(noise_width)) and float(noise_width) >= 0):
        raise ValueError(f"noise_width must be a finite real number >= 0; got {noise_width!r}")
    return noise_width


def _check_seed(seed: object) -> object:
    """``seed`` for ``numpy.random.RandomState``: an integer in ``[0, 2**32)`` (or ``None``, fresh entropy)."""
    if seed is None:
        return None
    value = check_int(seed, "seed", minimum=0)
    if value >= 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32) (numpy.random.RandomState's range); got {value}")
    return value


def _check_grid(grid: object) -> tuple[int, int]:
    try:
        dimensions = tuple(grid)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"grid must be a pair (rows, columns) of integers; got {type(grid).__name__}") from None
    if len(dimensions) != 2:
        raise ValueError(f"grid must be a pair (rows, columns) of integers; got {len(dimensions)} values {grid!r}")
    rows = check_int(dimensions[0], "grid[0] (rows)", minimum=1)
    columns = check_int(dimensions[1], "grid[1] (columns)", minimum=1)
    if rows * columns < 2:
        raise ValueError(f"grid must have at least two nodes (rows * columns >= 2), so that it has an arc; got {grid!r}")
    return rows, columns


def shortest_path_data(num_data: int, num_features: int, grid: tuple[int, int], deg: int = 1,
                       noise_width: float = 0, seed: int | None = 135) -> tuple[np.ndarray, np.ndarray]:
    r"""Features and arc costs of PyEPO's shortest path on an ``h x w`` grid, bit-identical to PyEPO.

    Reproduces ``pyepo.data.shortestpath.genData`` (pyepo 2.2.7, ``pyepo/data/shortestpath.py``). With
    ``p = num_features``, ``d = (h - 1) w + (w - 1) h`` arcs and ``n = num_data``, drawn in this order from
    ``RandomState(seed)``:

    .. math::

        B \in \{0, 1\}^{d \times p},\ B_{jk} \sim \mathrm{Bernoulli}(0.5); \qquad
        x_i \sim \mathcal{N}(0, I_p); \qquad
        \varepsilon_{ij} \sim \mathcal{U}[1 - \bar\varepsilon, 1 + \bar\varepsilon],

        c_{ij} = \frac{\big[(B x_i)_j / \sqrt{p} + 3\big]^{\mathrm{deg}} + 1}{3.5^{\mathrm{deg}}}
        \cdot \varepsilon_{ij},

    with :math:`\bar\varepsilon` = ``noise_width``. The features stay float64; the costs are cast to
    float32 at the end, as PyEPO does. ``deg`` sets how non-linear the map from features to costs is
    (``deg = 1`` is linear). With ``noise_width < 1`` a cost is negative only when ``deg`` is odd and
    :math:`(B x_i)_j / \sqrt{p} < -4`, a draw more than 4 standard deviations out; the grid graph has no
    directed cycle, so :class:`discograd.solvers.ShortestPath` is exact for costs of any sign anyway.

    Column ``j`` of ``c`` is the cost of arc ``j`` of :func:`discograd.pto.grid_graph` ``(h, w)`` (PyEPO's arc
    order). Our solvers maximise, so the shortest path takes **theta = -c**::

        edges = grid_graph(h, w)
        solver = ShortestPath(h * w, edges, 0, h * w - 1)
        z = solver(-torch.from_numpy(c))

    Args:
        num_data: the number of instances ``n >= 1``.
        num_features: the feature dimension ``p >= 1``.
        grid: ``(h, w)``, rows and columns of the grid, with ``h * w >= 2``.
        deg: the polynomial degree, a positive ``int``.
        noise_width: the half-width :math:`\bar\varepsilon >= 0` of the multiplicative noise.
        seed: the seed of ``numpy.random.RandomState`` (PyEPO's default 135).

    Returns:
        ``(x, c)``: features ``[n, p]`` float64 and costs ``[n, d]`` float32.

    Raises:
        ValueError: ``deg`` or ``noise_width`` outside PyEPO's rules; a size below its minimum.
        TypeError: a size that is not an integer.

    Example:
        >>> from discograd.pto import shortest_path_data
        >>> x, c = shortest_path_data(1000, 5, (5, 5), deg=4, noise_width=0.5, seed=135)
        >>> x.shape, x.dtype, c.shape, c.dtype
        ((1000, 5), dtype('float64'), (1000, 40), dtype('float32'))
    """
    num_data = check_int(num_data, "num_data", minimum=1)
    num_features = check_int(num_features, "num_features", minimum=1)
    rows, columns = _check_grid(grid)
    deg = _check_degree(deg)
    noise_width = _check_noise_width(noise_width)
    rnd = np.random.RandomState(_check_seed(seed))
    n, p = num_data, num_features
    d = (rows - 1) * columns + (columns - 1) * rows
    B = rnd.binomial(1, 0.5, (d, p))
    x = rnd.normal(0, 1, (n, p))
    c = (x @ B.T / np.sqrt(p) + 3) ** deg + 1
    c /= 3.5**deg
    epsilon = rnd.uniform(1 - noise_width, 1 + noise_width, (n, d))
    c *= epsilon
    return x, c.astype(np.float32)


def knapsack_data(num_data: int, num_features: int, num_items: int, dim: int = 1, deg: int = 1,
                  noise_width: float = 0, seed: int | None = 135) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Item weights, features and item values of PyEPO's multi-dimensional knapsack, bit-identical to PyEPO.

    Reproduces ``pyepo.data.knapsack.genData`` (pyepo 2.2.7, ``pyepo/data/knapsack.py``). With
    ``m = num_items``, ``p = num_features``, ``n = num_data``, drawn in this order from ``RandomState(seed)``:

    .. math::

        W_{kj} \sim \mathcal{U}\{3.00, 3.01, \dots, 7.99\}\ (\text{``choice(range(300, 800)) / 100''});
        \qquad B \in \{0, 1\}^{m \times p},\ B_{jl} \sim \mathrm{Bernoulli}(0.5);

        x_i \sim \mathcal{N}(0, I_p); \qquad
        \varepsilon_{ij} \sim \mathcal{U}[1 - \bar\varepsilon, 1 + \bar\varepsilon]; \qquad
        c_{ij} = \Big\lceil \frac{5\,\big(\big[(B x_i)_j / \sqrt{p} + 3\big]^{\mathrm{deg}} + 1\big)}
        {3.5^{\mathrm{deg}}} \cdot \varepsilon_{ij} \Big\rceil .

    The weights ``W`` (``[dim, m]``, float64) are the same for every instance; only the values ``c``
    (integers, stored as float32) depend on the features. The capacities are not generated (PyEPO's
    ``genData`` does not either): the caller chooses one per dimension, e.g. for
    :class:`discograd.solvers.MILP` ``(A_ub=weights, b_ub=capacity)``.

    A knapsack maximises the value, so our solvers take **theta = c** (no sign change)::

        solver = MILP(A_ub=weights, b_ub=capacity)
        z = solver(torch.from_numpy(c))

    Args:
        num_data: the number of instances ``n >= 1``.
        num_features: the feature dimension ``p >= 1``.
        num_items: the number of items ``m >= 1``.
        dim: the number of capacity constraints (the knapsack's dimension), ``>= 1``.
        deg: the polynomial degree, a positive ``int``.
        noise_width: the half-width :math:`\bar\varepsilon >= 0` of the multiplicative noise.
        seed: the seed of ``numpy.random.RandomState`` (PyEPO's default 135).

    Returns:
        ``(weights, x, c)``: weights ``[dim, m]`` float64, features ``[n, p]`` float64, values ``[n, m]``
        float32.

    Raises:
        ValueError: ``deg`` or ``noise_width`` outside PyEPO's rules; a size below its minimum.
        TypeError: a size that is not an integer.

    Example:
        >>> from discograd.pto import knapsack_data
        >>> weights, x, c = knapsack_data(1000, 5, 32, dim=2, deg=4, noise_width=0.5, seed=135)
        >>> weights.shape, x.shape, c.shape, c.dtype
        ((2, 32), (1000, 5), (1000, 32), dtype('float32'))
        >>> bool((c == c.round()).all() and (c >= 1).all())  # positive integer values
        True
    """
    num_data = check_int(num_data, "num_data", minimum=1)
    num_features = check_int(num_features, "num_features", minimum=1)
    num_items = check_int(num_items, "num_items", minimum=1)
    dim = check_int(dim, "dim", minimum=1)
    deg = _check_degree(deg)
    noise_width = _check_noise_width(noise_width)
    rnd = np.random.RandomState(_check_seed(seed))
    n, p, d, m = num_data, num_features, dim, num_items
    weights = rnd.choice(range(300, 800), size=(d, m)) / 100
    B = rnd.binomial(1, 0.5, (m, p))
    x = rnd.normal(0, 1, (n, p))
    c = (x @ B.T / np.sqrt(p) + 3) ** deg + 1
    c *= 5
    c /= 3.5**deg
    epsilon = rnd.uniform(1 - noise_width, 1 + noise_width, (n, m))
    c *= epsilon
    c = np.ceil(c).astype(np.float32)
    return weights, x, c


def tsp_data(num_data: int, num_features: int, num_nodes: int, deg: int = 1, noise_width: float = 0,
             seed: int | None = 135) -> tuple[np.ndarray, np.ndarray]:
    r"""Features and edge costs of PyEPO's symmetric travelling-salesperson problem, bit-identical to PyEPO.

    Reproduces ``pyepo.data.tsp.genData`` (pyepo 2.2.7, ``pyepo/data/tsp.py``). With ``N = num_nodes``,
    ``E = N (N - 1) / 2`` undirected edges, ``p = num_features`` and ``n = num_data``, drawn in this order
    from ``RandomState(seed)``:

    .. math::

        u_1, \dots, u_{\lfloor N/2 \rfloor} \sim \mathcal{U}[-2, 2]^2, \quad
        u_{\lfloor N/2 \rfloor + 1}, \dots, u_N \sim \mathcal{N}(0, I_2) \quad (\text{node coordinates});

        B = \mathrm{Bernoulli}(0.5)^{E \times p} \odot \mathcal{U}[-2, 2]^{E \times p}; \qquad
        x_i \sim \mathcal{N}(0, I_p); \qquad
        \varepsilon_{ie} \sim \mathcal{U}[1 - \bar\varepsilon, 1 + \bar\varepsilon];

        c_{ie} = \lVert u_a - u_b \rVert_2
        + \frac{\big[(B x_i)_e / \sqrt{p} + 3\big]^{\mathrm{deg}}}{3^{\mathrm{deg} - 1}} \cdot \varepsilon_{ie}
        \quad \text{for edge } e = (a, b),

    rounded to 4 decimals and cast to float32. The coordinates (hence the Euclidean part) are the same for
    every instance; the distances are ``scipy.spatial.distance.pdist``'s, as in PyEPO (scipy comes with
    ``discograd[solvers]``). Note that ``B`` has entries of both signs, so a cost can be negative for
    unusual features.

    Column ``e`` of ``c`` is edge ``e`` of :func:`discograd.pto.complete_graph_edges` ``(N)``: the pairs
    ``(a, b)``, ``a < b``, in lexicographic order (PyEPO's ``itertools.combinations`` edge list, and the
    order of ``pdist``'s condensed distances). A tour minimises the cost, so our solvers take
    **theta = -c**.

    Args:
        num_data: the number of instances ``n >= 1``.
        num_features: the feature dimension ``p >= 1``.
        num_nodes: the number of cities ``N >= 3`` (PyEPO's TSP models need 3).
        deg: the polynomial degree, a positive ``int``.
        noise_width: the half-width :math:`\bar\varepsilon >= 0` of the multiplicative noise.
        seed: the seed of ``numpy.random.RandomState`` (PyEPO's default 135).

    Returns:
        ``(x, c)``: features ``[n, p]`` float64 and costs ``[n, E]`` float32.

    Raises:
        ValueError: ``deg`` or ``noise_width`` outside PyEPO's rules; a size below its minimum.
        TypeError: a size that is not an integer.
        ImportError: scipy is not installed.

    Example:
        >>> from discograd.pto import tsp_data
        >>> x, c = tsp_data(100, 10, 20, deg=4, noise_width=0.5, seed=135)
        >>> x.shape, c.shape, c.dtype  # 20 * 19 / 2 = 190 edges
        ((100, 10), (100, 190), dtype('float32'))
    """
    num_data = check_int(num_data, "num_data", minimum=1)
    num_features = check_int(num_features, "num_features", minimum=1)
    num_nodes = check_int(num_nodes, "num_nodes", minimum=3)
    deg = _check_degree(deg)
    noise_width = _check_noise_width(noise_width)
    distance = require("scipy.spatial.distance", extra="solvers", purpose="tsp_data (the Euclidean distances)")
    rnd = np.random.RandomState(_check_seed(seed))
    n, p, m = num_data, num_features, num_nodes
    num_edges = m * (m - 1) // 2
    coords = np.concatenate((rnd.uniform(-2, 2, (m // 2, 2)), rnd.normal(0, 1, (m - m // 2, 2))))
    dist_upper = distance.pdist(coords, "euclidean")
    B = rnd.binomial(1, 0.5, (num_edges, p)) * rnd.uniform(-2, 2, (num_edges, p))
    x = rnd.normal(0, 1, (n, p))
    feature_cost = ((x @ B.T / np.sqrt(p) + 3) ** deg) / 3 ** (deg - 1)
    noise = rnd.uniform(1 - noise_width, 1 + noise_width, (n, num_edges))
    c = dist_upper + feature_cost * noise
    c = np.around(c, decimals=4).astype(np.float32)
    return x, c
