"""The Warcraft shortest-path experiment (Vlastelica et al., 2020; I-MLE paper, Section 5.3).

Data: :func:`generate_warcraft` (procedural Warcraft-like maps with optimal-path labels, cached on disk) and
:func:`load_warcraft` (the original data set's files), both returning a :class:`WarcraftData`; layouts in
:mod:`discograd.experiments.warcraft.data`.
"""

from .data import (
    TERRAIN_COSTS,
    TERRAIN_TYPES,
    WarcraftData,
    WarcraftSplit,
    generate_warcraft,
    load_warcraft,
    optimal_paths,
    path_costs,
    plot_paths,
)

__all__ = [
    "TERRAIN_COSTS",
    "TERRAIN_TYPES",
    "WarcraftData",
    "WarcraftSplit",
    "generate_warcraft",
    "load_warcraft",
    "optimal_paths",
    "path_costs",
    "plot_paths",
]
