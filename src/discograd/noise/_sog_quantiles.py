r"""The exact law of Sum-of-Gamma noise, and a quantile table to sample it by inverse CDF.

For fixed ``(κ, s)`` the Sum-of-Gamma variable is ``ε = (X − log s)/κ`` with
``X = Σ_{j=1..s} G_j``, ``G_j ~ Gamma(shape 1/κ, scale κ/j)`` independent: one fixed 1-D law. Its CDF is
the Gamma-mixture series of Moschopoulos (1985, "The distribution of the sum of independent gamma random
variables", Ann. Inst. Statist. Math. 37, 541-544) for sums of Gammas with a common shape: with the
smallest scale ``β = κ/s``, ``ρ = s/κ`` and ``y = x/β``,

.. math::

    F(x) = \sum_{k \ge 0} w_k \, P(\rho + k, y), \qquad
    \sum_k w_k z^k = \prod_{j=1}^{s} \Big(\frac{p_j}{1 - (1 - p_j) z}\Big)^{1/\kappa}, \quad p_j = j/s,

so ``w`` is the law of a sum of independent negative binomials (all terms positive, ``Σ w_k = 1``) and
``P`` is the regularised lower incomplete Gamma function. With the Poisson form of ``P``,
``P(ρ + k, y) = Σ_{m ≥ k} d_m(y)``, ``d_m(y) = e^{−y} y^{ρ+m} / Γ(ρ + m + 1)``, both tails come out
without cancellation:

.. math::

    F = \sum_m d_m W_m, \qquad 1 - F = Q(\rho, y) + \sum_m d_m (1 - W_m), \qquad W_m = \sum_{k \le m} w_k .

The table holds ``log x`` at ``t_i``, uniform in the logit coordinate ``t = log(u/(1−u))`` over
``[−T, T]``; a draw is one uniform ``u``, ``t = logit(u)``, a linear interpolation of ``log x`` in ``t`` and
``ε = (exp(log x) − log s)/κ``. In the logit coordinate the tails are straight lines (``log x ≈ t/ρ +
const`` at the bottom, ``x ≈ (κ) t + const`` at the top), so linear interpolation stays accurate there, and
``log x`` handles the lower edge at large κ, where the quantiles of ``x`` fall below any floating-point
number (they are then ``ε = −log s/κ`` to every digit, which is what the table gives).
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch

__all__ = ["sog_cdf", "sog_log_cdf_sf", "quantile_table", "cache_dir", "TABLE_NODES", "TABLE_LOGIT_RANGE"]

TABLE_NODES = 16384  #: nodes of a quantile table
TABLE_LOGIT_RANGE = 17.5  #: the table spans t = logit(u) in [−17.5, 17.5]: all of float32's uniforms

DISK_CACHE_SECONDS = 0.3  #: tables that take longer than this to build are also cached on disk
_VERSION = 1  # bump when the table's construction changes

_cache: dict[tuple[int, int], np.ndarray] = {}
_cache_lock = threading.Lock()


def _mixture_weights(k: int, s: int) -> np.ndarray:
    """``w_k`` of the series (normalised, truncated where the remaining mass is below ~1e-17)."""
    alpha = 1.0 / k
    p = np.arange(1, s + 1, dtype=np.float64) / s
    q = 1.0 - p
    # the number of terms: the mixture index is a sum of negative binomials with mean Σ α q/p and a
    # geometric tail of ratio max q = 1 − 1/s; 45 s terms beyond mean + 10 sd leave < 1e-17 of the mass
    mean = float(np.sum(alpha * q / p))
    sd = math.sqrt(float(np.sum(alpha * q / p**2)))
    n = int(math.ceil(mean + 10.0 * sd + 45.0 * s)) + 8 if s > 1 else 1
    if s == 1:
        return np.ones(1)
    # γ_i = Σ_j α q_j^i / i,  w_{m} = (1/m) Σ_{i=1..m} i γ_i w_{m−i}  (Moschopoulos' recursion)
    i = np.arange(1, n, dtype=np.float64)
    qi = q[:, None] ** i[None, :]  # [s, n-1]
    i_gamma = alpha * qi.sum(0)  # i γ_i
    w = np.empty(n)
    w[0] = 1.0  # scaled: the recursion is linear, so normalise at the end (and rescale against overflow)
    for m in range(1, n):
        w[m] = np.dot(i_gamma[:m], w[m - 1::-1]) / m
        if w[m] > 1e250:
            w[: m + 1] *= 1e-250
    total = w.sum()
    return w / total


def sog_log_cdf_sf(log_x: np.ndarray, k: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    """``(log F(x), log(1 − F(x)))`` of ``X = Σ_j Gamma(1/k, scale k/j)`` at ``x = exp(log_x)``, float64,
    both tails without cancellation (relative accuracy ~1e-13 away from underflow)."""
    log_x = np.asarray(log_x, dtype=np.float64)
    w = _mixture_weights(k, s)
    rho = s / k
    log_beta = math.log(k / s)
    log_y = log_x - log_beta
    y = np.exp(log_y)
    cum = np.minimum(np.cumsum(w), 1.0)
    rest = np.append(np.cumsum(w[::-1])[::-1][1:], 0.0)  # Σ_{k>m} w_k from the tail: no cancellation
    m = np.arange(len(w), dtype=np.float64)
    lg = _gammaln(rho + m + 1.0)
    log_f = np.empty_like(log_x)
    log_sf = np.empty_like(log_x)
    flat_ly, flat_y = log_y.reshape(-1), y.reshape(-1)
    out_f, out_sf = log_f.reshape(-1), log_sf.reshape(-1)
    chunk = max(1, 4_000_000 // len(w))
    with np.errstate(divide="ignore", under="ignore", over="ignore"):
        for lo in range(0, flat_ly.size, chunk):
            ly = flat_ly[lo:lo + chunk, None]
            log_d = -flat_y[lo:lo + chunk, None] + (rho + m[None, :]) * ly - lg[None, :]
            top = log_d.max(1, keepdims=True)
            top = np.where(np.isfinite(top), top, 0.0)
            d = np.exp(log_d - top)
            # F = Σ_m d_m W_m + P(ρ + M, y) (m beyond the table: W = 1); log-sum with the common factor e^top
            below = (d * cum[None, :]).sum(1)
            tail = (d * rest[None, :]).sum(1)
            ycol = flat_y[lo:lo + chunk]
            # terms m ≥ M, where W_m = 1: P(ρ + M, y), negligible unless y is far beyond the mixture's range
            beyond = gammainc(rho + len(w), ycol)
            log_below = np.log(below) + top[:, 0]
            out_f[lo:lo + chunk] = np.where(beyond > 0, np.logaddexp(log_below, np.log(beyond)), log_below)
            # Q(ρ, y) = 1 − P(ρ, y): from our own sum P = Σ_m d_m + P(ρ + M, y) where P < 1/2 (at tiny y,
            # even denormal ones, where gammaincc loses accuracy), from gammaincc elsewhere
            p_sum = d.sum(1) * np.exp(top[:, 0]) + beyond
            q0 = np.where(p_sum < 0.5, 1.0 - p_sum, gammaincc(rho, ycol))
            log_tail = np.log(tail) + top[:, 0]
            out_sf[lo:lo + chunk] = np.logaddexp(np.log(q0), log_tail)
    return log_f, log_sf


def sog_cdf(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """The CDF of ``X = Σ_j Gamma(1/k, scale k/j)`` at ``x ≥ 0`` (float64)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_f, _ = sog_log_cdf_sf(np.log(np.maximum(x, 0.0)), k, s)
    return np.exp(log_f)


def _gammaln(x: np.ndarray | float) -> np.ndarray:
    return torch.lgamma(torch.as_tensor(x, dtype=torch.float64)).numpy()


def gammainc(a: float, y: np.ndarray) -> np.ndarray:
    """The regularised lower incomplete Gamma function P(a, y) (torch's, so that no SciPy is needed)."""
    y = torch.as_tensor(y, dtype=torch.float64)
    return torch.special.gammainc(torch.full_like(y, a), y).numpy()


def gammaincc(a: float, y: np.ndarray) -> np.ndarray:
    """The regularised upper incomplete Gamma function Q(a, y)."""
    y = torch.as_tensor(y, dtype=torch.float64)
    return torch.special.gammaincc(torch.full_like(y, a), y).numpy()


def _pchip(x: np.ndarray, y: np.ndarray, xq: np.ndarray) -> np.ndarray:
    """Monotone piecewise-cubic Hermite interpolation (Fritsch & Carlson, 1980; the derivatives of
    SciPy's ``PchipInterpolator``) of strictly increasing data."""
    h = np.diff(x)
    delta = np.diff(y) / h
    d = np.empty_like(y)
    w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
    d[1:-1] = (w1 + w2) / (w1 / delta[:-1] + w2 / delta[1:])  # weighted harmonic mean (all δ > 0)

    def edge(h0: float, h1: float, d0: float, d1: float) -> float:
        value = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
        if value <= 0:
            return 0.0
        return min(value, 3 * d0) if d1 <= 0 else value

    d[0] = edge(h[0], h[1], delta[0], delta[1])
    d[-1] = edge(h[-1], h[-2], delta[-1], delta[-2])
    i = np.clip(np.searchsorted(x, xq) - 1, 0, len(x) - 2)
    t = (xq - x[i]) / h[i]
    t2, t3 = t * t, t * t * t
    return ((2 * t3 - 3 * t2 + 1) * y[i] + (t3 - 2 * t2 + t) * h[i] * d[i]
            + (-2 * t3 + 3 * t2) * y[i + 1] + (t3 - t2) * h[i] * d[i + 1])


def _build(k: int, s: int) -> np.ndarray:
    rho = s / k
    h_s = float(np.sum(1.0 / np.arange(1, s + 1)))
    sd_x = math.sqrt(k * float(np.sum(1.0 / np.arange(1, s + 1) ** 2)))
    # bottom: F ≈ w_0 (x/β)^ρ / Γ(ρ + 1), w_0 = Π_j (j/s)^(1/k); go 3 units of t below the table
    log_w0 = (math.lgamma(s + 1.0) - s * math.log(s)) / k
    log_lo = (-(TABLE_LOGIT_RANGE + 3.0) - log_w0 + math.lgamma(rho + 1.0)) / rho + math.log(k / s)
    # top: the slowest tail is exp(−x/κ) (the j = 1 term)
    x_hi = h_s + 10.0 * sd_x + (TABLE_LOGIT_RANGE + 8.0) * k
    log_hi = math.log(x_hi)
    log_mid = math.log(max(h_s - 6.0 * sd_x, h_s * 1e-3, 1e-300))
    grid = np.unique(np.concatenate([
        np.linspace(log_lo, log_hi, 1500),
        np.log(np.linspace(math.exp(log_mid), x_hi, 1500)),
    ]))
    nodes = np.linspace(-TABLE_LOGIT_RANGE, TABLE_LOGIT_RANGE, TABLE_NODES)
    t = _logit_cdf(grid, k, s)
    for _ in range(2):  # refine: add the exact points at every 16th predicted node (a secant step)
        grid, t = _increasing(grid, t)
        guess = _pchip(t, grid, nodes[8::16])
        grid = np.concatenate([grid, guess])
        t = np.concatenate([t, _logit_cdf(guess, k, s)])
        order = np.argsort(grid)
        grid, t = grid[order], t[order]
    grid, t = _increasing(grid, t)
    if t[0] > -TABLE_LOGIT_RANGE or t[-1] < TABLE_LOGIT_RANGE:
        raise RuntimeError(f"SumOfGamma({k}, num_terms={s}): the quantile grid covers t in [{t[0]:.1f}, "
                           f"{t[-1]:.1f}], not [−{TABLE_LOGIT_RANGE}, {TABLE_LOGIT_RANGE}]")
    return _pchip(t, grid, nodes)


def _logit_cdf(log_x: np.ndarray, k: int, s: int) -> np.ndarray:
    log_f, log_sf = sog_log_cdf_sf(log_x, k, s)
    return log_f - log_sf


def _increasing(grid: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points with finite t, increasing in t by at least 1e-6 from one to the next: closer points
    (a refinement point next to a grid point) would give PCHIP slopes made of rounding noise."""
    keep = np.isfinite(t)
    grid, t = grid[keep], t[keep]
    out = [0]
    for i in range(1, len(t)):
        if t[i] > t[out[-1]] + 1e-6:
            out.append(i)
    return grid[out], t[out]


def cache_dir() -> Path:
    """Where tables that took long to build are kept: ``$DISCOGRAD_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/discograd``, else ``~/.cache/discograd``."""
    explicit = os.environ.get("DISCOGRAD_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "discograd"


def _cache_file(k: int, s: int) -> Path:
    return cache_dir() / f"sog-quantiles-v{_VERSION}-k{k}-s{s}-n{TABLE_NODES}-t{TABLE_LOGIT_RANGE}.npy"


def _valid(table: np.ndarray) -> bool:
    return (table.shape == (TABLE_NODES,) and table.dtype == np.float64 and bool(np.all(np.isfinite(table)))
            and bool(np.all(np.diff(table) > 0)))


def _load(path: Path) -> np.ndarray | None:
    if not path.exists():
        return None
    try:
        table = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        table = None
    if table is None or not _valid(table):
        warnings.warn(f"the cached Sum-of-Gamma quantile table {path} is corrupt; rebuilding it (delete the "
                      f"file if this repeats)", RuntimeWarning, stacklevel=4)
        return None
    return table


def _store(path: Path, table: np.ndarray) -> None:
    """Write atomically; a cache that cannot be written (read-only home) is simply not kept."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, table, allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass


def quantile_table(k: int, s: int) -> np.ndarray:
    """``log x`` at the ``TABLE_NODES`` logit nodes for ``(κ = k, s)`` (float64, read-only), built once per
    process; a table that took more than ``DISK_CACHE_SECONDS`` to build is also kept on disk
    (:func:`cache_dir`) for later processes."""
    key = (int(k), int(s))
    table = _cache.get(key)
    if table is None:
        with _cache_lock:
            table = _cache.get(key)
            if table is None:
                path = _cache_file(*key)
                table = _load(path)
                if table is None:
                    start = time.perf_counter()
                    table = _build(*key)
                    if time.perf_counter() - start > DISK_CACHE_SECONDS:
                        _store(path, table)
                table.setflags(write=False)
                _cache[key] = table
    return table
