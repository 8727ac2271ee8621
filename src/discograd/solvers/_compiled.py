"""Runtime shared by the compiled (numba) solvers: lazy compilation, array conversion and a fork-safe
thread pool that runs a kernel over ranges of a batch.

Kernels are plain module-level Python functions compiled on first use with
``numba.njit(cache=True, nogil=True)`` (the on-disk cache keeps later processes' first call fast), so
importing discograd never imports numba. A kernel ``kernel(*args, start, stop)`` solves the instances
``start <= b < stop``; instances are independent, so results never depend on how the batch is split,
hence on the number of threads.

Threads rather than numba's ``prange``: the threading layers available with numba's wheels are OpenMP
(unsafe after a fork, e.g. in DataLoader workers) and workqueue (unsafe when called from several threads).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from .._optional import require
from .._validation import check_int

__all__ = ["jit", "as_float64_array", "resolve_num_threads", "default_num_threads", "thread_pool", "run_batched"]

_compiled: dict[Callable[..., Any], Callable[..., Any]] = {}
_compile_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_key: tuple[int, int] | None = None  # (process id, number of workers)
_pool_lock = threading.Lock()


def jit(function: Callable[..., Any], purpose: str) -> Callable[..., Any]:
    """``numba.njit(cache=True, nogil=True)(function)``, compiled once per process."""
    kernel = _compiled.get(function)
    if kernel is None:
        with _compile_lock:
            kernel = _compiled.get(function)
            if kernel is None:
                numba = require("numba", extra="solvers", purpose=purpose)
                kernel = numba.njit(cache=True, nogil=True)(function)
                _compiled[function] = kernel
    return kernel


def as_float64_array(x: Tensor) -> np.ndarray:
    """A C-contiguous float64 NumPy array with ``x``'s values, on the CPU (no copy when ``x`` already is one)."""
    return x.detach().to(device="cpu", dtype=torch.float64).contiguous().numpy()


def resolve_num_threads(num_threads: int | None) -> int | None:
    """Validate a solver's ``num_threads`` argument (``None``: decide per call)."""
    return None if num_threads is None else check_int(num_threads, "num_threads", minimum=1)


def default_num_threads() -> int:
    """Threads the solvers use by default: ``torch.get_num_threads()``."""
    return max(1, torch.get_num_threads())


def thread_pool(num_workers: int) -> ThreadPoolExecutor:
    """A process-wide pool with at least ``num_workers`` workers. It only grows, and it is rebuilt after a
    fork (a forked child inherits the pool object but none of its worker threads)."""
    global _pool, _pool_key
    pid = os.getpid()
    with _pool_lock:
        if _pool is None or _pool_key is None or _pool_key[0] != pid or _pool_key[1] < num_workers:
            # no shutdown of the old pool: a concurrent caller may still be submitting to it; its idle
            # workers exit once it is garbage-collected
            _pool = ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="discograd-solver")
            _pool_key = (pid, num_workers)
        return _pool


def run_batched(kernel: Callable[..., Any], args: tuple, num_instances: int, work_per_instance: float,
                num_threads: int | None = None, *, min_work_per_chunk: int = 50_000,
                chunks_per_thread: int = 1) -> None:
    """Call ``kernel(*args, start, stop)`` on ranges covering ``range(num_instances)``.

    The batch is cut into at most ``chunks_per_thread * threads`` ranges of at least
    ``min_work_per_chunk`` elementary operations (so the hand-off, tens of microseconds, stays small next
    to the work); workers, the calling thread included, take the next range when done (more ranges than
    threads balance instances of unequal cost). ``num_threads=None`` uses ``torch.get_num_threads()``.
    """
    if num_instances == 0:
        return
    threads = default_num_threads() if num_threads is None else num_threads
    useful = int(num_instances * max(work_per_instance, 1.0) // min_work_per_chunk)
    num_chunks = max(1, min(chunks_per_thread * threads, num_instances, useful))
    if threads <= 1 or num_chunks <= 1:
        kernel(*args, 0, num_instances)
        return
    bounds = [num_instances * i // num_chunks for i in range(num_chunks + 1)]
    ranges = iter(list(zip(bounds[:-1], bounds[1:])))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                item = next(ranges, None)
            if item is None:
                return
            kernel(*args, item[0], item[1])

    workers = min(threads, num_chunks) - 1
    pool = thread_pool(workers)
    futures = [pool.submit(work) for _ in range(workers)]
    try:
        work()
    finally:
        for future in futures:
            future.result()
