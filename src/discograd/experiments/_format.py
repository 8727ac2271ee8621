"""Table cells shared by the experiments' comparison tables."""

from __future__ import annotations

__all__ = ["mean_std_cell", "over_seeds"]


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
