"""Lazy imports of optional dependencies, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise ``ImportError`` saying which ``discograd[extra]`` provides it.

    Example: ``numba = require("numba", extra="solvers", purpose="GridShortestPath's Dijkstra kernel")``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{purpose} needs the optional dependency '{module.split('.')[0]}': "
            f"pip install 'discograd[{extra}]'"
        ) from exc
