"""Cheap, loud argument validation shared by every public entry point.

Every error names the argument, what it got and the rule it broke, e.g.
``ValueError("theta must be finite; got 3 NaN and 0 infinite values in a tensor of shape (2, 5)")``.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "check_theta",
    "check_finite",
    "check_positive",
    "check_step_size",
    "check_non_negative",
    "check_int",
    "check_k",
    "check_num_samples",
    "check_generator",
]


_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def check_finite(x: Tensor, name: str, *, hint: str = "") -> None:
    """Raise ``ValueError`` if ``x`` holds a NaN or an infinity (``hint`` is appended to the message)."""
    if x.is_floating_point() and x.numel() > 0:
        # fast path: one sum, no boolean tensor (NaN and ±inf propagate; a sum that overflows falls through to
        # the exact count below, which then finds nothing). CPU tensors use NumPy's single-threaded reduction: a
        # torch reduction here would wake torch's OpenMP workers, whose spin-waiting then competes with the
        # compiled solvers' threads.
        if x.device.type == "cpu" and x.dtype in _NUMPY_FLOATS:
            with np.errstate(over="ignore", invalid="ignore"):
                if np.isfinite(np.add.reduce(x.detach().numpy(), axis=None)):
                    return
        elif bool(torch.isfinite(x.sum())):
            return
    if x.is_floating_point() or x.is_complex():
        finite = torch.isfinite(x)
        if not bool(finite.all()):
            num_nan = int(torch.isnan(x).sum())
            num_inf = int(x.numel() - finite.sum()) - num_nan
            raise ValueError(
                f"{name} must be finite; got {num_nan} NaN and {num_inf} infinite values "
                f"in a tensor of shape {_shape(x)}{hint}"
            )


def check_theta(theta: object, name: str = "theta", *, min_dim: int = 1, finite: bool = True) -> Tensor:
    """Check that ``theta`` is a floating-point tensor with at least ``min_dim`` dimensions.

    Returns ``theta`` unchanged so that the call can be used inline.
    """
    if not isinstance(theta, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(theta).__name__}")
    if not theta.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype; got {theta.dtype} with shape {_shape(theta)}")
    if theta.dim() < min_dim:
        raise ValueError(
            f"{name} must have at least {min_dim} dimension(s) (the event dimensions, after any batch "
            f"dimensions); got shape {_shape(theta)}"
        )
    if finite:
        check_finite(theta, name)
    return theta


def check_positive(value: object, name: str) -> float:
    """Check a real scalar is finite and > 0; return it as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    v = float(value)
    if not (v > 0.0 and v < float("inf")):
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return v


#: the usable range of a step size λ: 1/λ and λ·g stay finite in float32 for any |g| up to 1e18
STEP_SIZE_RANGE = (1e-20, 1e20)


def check_step_size(value: object, name: str = "step_size") -> float:
    """Check a step size λ: a real number in :data:`STEP_SIZE_RANGE`; return it as a float."""
    v = check_positive(value, name)
    lo, hi = STEP_SIZE_RANGE
    if not lo <= v <= hi:
        raise ValueError(f"{name} must lie in [{lo:g}, {hi:g}] (the estimator divides by it and moves theta by "
                         f"{name} * grad, both must stay finite in float32); got {value!r}")
    return v


def check_non_negative(value: object, name: str) -> float:
    """Check a real scalar is finite and >= 0; return it as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    v = float(value)
    if not (v >= 0.0 and v < float("inf")):
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return v


def check_int(value: object, name: str, *, minimum: int | None = None) -> int:
    """Check an integer scalar (not a bool), optionally ``>= minimum``; return it as an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {v}")
    return v


def check_k(k: object, n: int, name: str = "k") -> int:
    """Check a subset size: an integer with 0 <= k <= n."""
    v = check_int(k, name)
    if not 0 <= v <= n:
        raise ValueError(f"{name} must satisfy 0 <= {name} <= n = {n} (the size of the last dimension); got {v}")
    return v


def check_num_samples(num_samples: object, name: str = "num_samples") -> int | None:
    """``None`` (one sample, no sample dimension) or an integer >= 1."""
    if num_samples is None:
        return None
    return check_int(num_samples, name, minimum=1)


def check_generator(generator: object, name: str = "generator") -> torch.Generator | None:
    """``None`` or a ``torch.Generator``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None; got {type(generator).__name__}")
    return generator
