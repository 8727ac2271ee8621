"""When do the compiled solvers gain from a second thread? Small batches against their size.

For each solver and batch size, the same batch is solved with ``num_threads=1`` and ``num_threads=2``,
interleaved (A B, B A, ...) in blocks of consecutive calls of about 5 ms, medians of wall-clock time
per call; the ratio ``t(1 thread) / t(2 threads)``
says whether handing part of the batch to a pool thread paid off (> 1) or stalled (< 1). The "work" column
is the solver's own estimate of a batch's elementary operations (what ``run_batched`` compares with its
``min_work_per_chunk`` to decide whether to split at all), and "µs" the one-thread time: the split
threshold should sit where the ratio crosses 1, in those units.

Run it twice: on an idle machine and while other jobs keep the cores busy (the case that motivated it:
n = 10 assignments at 0.24-0.34x of one thread with two).

    python benchmarks/bench_threads.py [--quick] [--out results.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, format_table, load_average, median, time_interleaved, write_json  # noqa: E402

from discograd.solvers import GridShortestPath, Knapsack, LinearAssignment, SpanningTree  # noqa: E402


def cases(quick: bool) -> list[tuple[str, Callable[[int], Any], Callable[[int], torch.Tensor], Callable[[int], float]]]:
    """(name, solver factory by threads, batch of scores by size, work estimate of a batch by size)."""
    g = torch.Generator().manual_seed(0)
    weights = torch.randint(1, 11, (50,), generator=g)
    return [
        ("LinearAssignment n=10", lambda t: LinearAssignment(num_threads=t),
         lambda b: torch.randn(b, 10, 10, generator=g, dtype=torch.float64), lambda b: b * 10.0**3),
        ("SpanningTree n=10", lambda t: SpanningTree(num_threads=t),
         lambda b: torch.randn(b, 10, 10, generator=g, dtype=torch.float64), lambda b: b * 2 * 10.0**2),
        ("Knapsack n=50 cap=100", lambda t: Knapsack(weights, 100, num_threads=t),
         lambda b: torch.randn(b, 50, generator=g, dtype=torch.float64), lambda b: b * 50 * 101.0),
        ("GridShortestPath K=12", lambda t: GridShortestPath(num_threads=t),
         lambda b: -torch.rand(b, 12, 12, generator=g, dtype=torch.float64) * 9.5 - 0.5, lambda b: b * 8 * 144.0),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two batch sizes and few repeats (a smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # torch's own ops on one thread: only the solvers' pool is compared
    sizes = (8, 700) if args.quick else (8, 32, 128, 512, 2048, 8192)
    repeats = 3 if args.quick else 41
    result: dict[str, Any] = {"benchmark": "threads", "quick": args.quick,
                              "environment": environment(torch.device("cpu")), "rows": []}
    table = []
    for name, make, scores, work in cases(args.quick):
        one, two = make(1), make(2)
        for size in sizes:
            theta = scores(size)
            if not torch.equal(one(theta), two(theta)):
                raise AssertionError(f"{name}: 1 and 2 threads disagree at batch {size}")
            # calls of a few µs: time blocks of consecutive calls (no garbage collection in between, which
            # would leave the caches cold), about 5 ms per block, and divide
            start = time.perf_counter()
            one(theta)
            inner = max(1, min(1000, int(0.005 / max(time.perf_counter() - start, 1e-6))))

            def block(solver: Any) -> Callable[[], None]:
                def run() -> None:
                    for _ in range(inner):
                        solver(theta)
                return run

            wall, cpu = time_interleaved({"one": block(one), "two": block(two)},
                                         repeats=repeats, warmup=1, device=torch.device("cpu"))
            wall = {key: [t / inner for t in values] for key, values in wall.items()}
            cpu = {key: [t / inner for t in values] for key, values in cpu.items()}
            t1, t2 = median(wall["one"]), median(wall["two"])
            row = {"solver": name, "batch": size, "work": work(size), "calls_per_block": inner, "one_thread_s": t1, "two_threads_s": t2,
                   "speedup": t1 / t2, "one_thread_cpu_s": median(cpu["one"]), "two_threads_cpu_s": median(cpu["two"]),
                   "times_s": wall, "cpu_times_s": cpu}
            result["rows"].append(row)
            table.append([name, size, f"{row['work']:.3g}", f"{1e6 * t1:.0f}", f"{1e6 * t2:.0f}", f"{t1 / t2:.2f}"])
    result["environment"]["load_average_1min_end"] = load_average()
    env = result["environment"]
    print(f"solver threads, 1 vs 2 (medians of {repeats}); load average {env['load_average_1min']} at start, "
          f"{env['load_average_1min_end']} at end")
    print(format_table(["solver", "batch", "work", "µs, 1 thread", "µs, 2 threads", "1 / 2"], table))
    if args.out is not None:
        write_json(args.out, result)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
