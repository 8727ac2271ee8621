"""Helpers shared by the benchmark scripts: environment record, timing, peak memory, tables, JSON.

Not part of the library. Every comparison a script reports is a ratio of two timings taken in the same
run, interleaved repeat by repeat (A B, B A, A B, ...) so that a change in machine load hits both sides.
"""

from __future__ import annotations

import datetime
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"

__all__ = [
    "REPO_ROOT",
    "RESULTS_DIR",
    "git_sha",
    "environment",
    "load_average",
    "resolve_device",
    "synchronize",
    "clock",
    "time_interleaved",
    "median",
    "read_proc_status_kib",
    "reset_peak_rss",
    "format_table",
    "write_json",
]


def git_sha() -> str | None:
    """``git rev-parse --short HEAD`` of the repository holding the benchmarks, or ``None``."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = result.stdout.strip()
    return sha if result.returncode == 0 and sha else None


def environment(device: torch.device) -> dict[str, Any]:
    """What a reader needs to compare numbers across machines."""
    env: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_sha": git_sha(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or None,
        "num_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    env["load_average_1min"] = load_average()
    return env


def load_average() -> float | None:
    """The 1-minute load average (other work competing for the cores), or ``None``."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def resolve_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available in this torch build / machine")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` after the device has finished its queued work."""
    synchronize(device)
    return time.perf_counter()


def time_interleaved(
    candidates: Mapping[str, Callable[[], Any]],
    *,
    repeats: int,
    warmup: int,
    device: torch.device,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and CPU seconds of each candidate, ``repeats`` times each, after ``warmup`` untimed calls.

    The candidates run in alternating order (forward on even repeats, reversed on odd ones), with a
    garbage collection before each call, outside the timed region; return values are dropped at once.
    Wall-clock time is ``time.perf_counter``; CPU time is ``time.process_time`` (all threads of this
    process), which other processes competing for the cores barely change.
    """
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            gc.collect()
            synchronize(device)
            start_cpu, start = time.process_time(), time.perf_counter()
            result = candidates[name]()
            synchronize(device)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            del result
    return wall, cpu


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


# -- peak memory (CPU: the process's resident-set high-water mark) -------------------------------------
def read_proc_status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), or ``None`` where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current ``VmRSS`` (Linux >= 4.0: write 5 to ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    hwm, rss = read_proc_status_kib("VmHWM"), read_proc_status_kib("VmRSS")
    return hwm is not None and rss is not None and hwm <= rss + 64


# -- output ----------------------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        magnitude = abs(value)
        if magnitude != 0 and (magnitude < 1e-3 or magnitude >= 1e5):
            return f"{value:.3g}"
        return f"{value:.4g}" if magnitude < 1 else f"{value:.3f}"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table (right-aligned cells)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _strict(value: Any) -> Any:
    """``value`` with non-finite floats replaced by ``None`` (strict JSON has no NaN or Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _strict(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(_strict(payload), f, indent=2, allow_nan=False)
        f.write("\n")
