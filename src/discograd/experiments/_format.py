"""Table cells shared by the experiments' comparison tables."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

__all__ = ["csv_text", "mean_std", "mean_std_cell", "over_seeds"]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0 for one value) of ``values``.

    Example:
        >>> mean_std([1.0, 2.0, 3.0]), mean_std([5.0])
        ((2.0, 1.0), (5.0, 0.0))
    """
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def csv_text(rows: list[dict[str, Any]]) -> str:
    """``rows`` as CSV text: the columns in order of first appearance, ``None`` (or a missing key) as an empty cell.

    Example:
        >>> print(csv_text([{"a": 1, "b": None}, {"a": 2, "c": 3}]), end="")
        a,b,c
        1,,
        2,,3
    """
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: ("" if row.get(c) is None else row.get(c)) for c in columns})
    return buffer.getvalue()


def mean_std_cell(mean: float, std: float, num_seeds: int, digits: int) -> str:
    """``"mean ± std"`` with ``digits`` decimals; just ``"mean"`` for one seed, which has no spread to show.

    Example:
        >>> mean_std_cell(90.25, 1.5, 3, 1), mean_std_cell(90.25, 0.0, 1, 1)
        ('90.2 ± 1.5', '90.2')
    """
    return f"{mean:.{digits}f}" if num_seeds < 2 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def over_seeds(seeds: list[int]) -> str:
    """``"mean ± std over 3 seeds (0, 1, 2)"``, or ``"one seed (0)"``.

    Example:
        >>> over_seeds([0, 1, 2]), over_seeds([4])
        ('mean ± std over 3 seeds (0, 1, 2)', 'one seed (4)')
    """
    listed = ", ".join(map(str, seeds))
    return f"one seed ({listed})" if len(seeds) == 1 else f"mean ± std over {len(seeds)} seeds ({listed})"
