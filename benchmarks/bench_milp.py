"""MILP backends on PyEPO's 2-D knapsack: persistent highspy models against a scipy.optimize.milp call per
instance.

The problem is PyEPO's knapsack benchmark shape: 16 items, 2 capacity rows, integer weights drawn
uniformly from 3..7, capacity 20 per row, random positive values. ``MILP(..., backend="highspy")`` keeps
one HiGHS model per worker thread and changes only the objective between instances;
``backend="scipy"`` builds and solves a fresh problem per instance. Both with ``num_workers=1`` (the
calling thread), timed interleaved (A B, B A, ...) after a warm-up call each, medians of wall and CPU
time per solve; the solutions are checked equal outside the timed region.

    python benchmarks/bench_milp.py [--quick] [--out results.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, format_table, median, time_interleaved, write_json  # noqa: E402

from discograd.solvers import MILP  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few instances and repeats (a smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    batch, repeats = (8, 2) if args.quick else (200, 5)
    g = torch.Generator().manual_seed(0)
    weights = torch.randint(3, 8, (2, 16), generator=g).double()
    capacity = torch.full((2,), 20.0)
    theta = torch.rand(batch, 16, generator=g, dtype=torch.float64) * 10
    solvers = {backend: MILP(A_ub=weights, b_ub=capacity, backend=backend, num_workers=1)
               for backend in ("highspy", "scipy")}
    same = torch.equal(solvers["highspy"](theta), solvers["scipy"](theta))
    wall, cpu = time_interleaved({name: (lambda s=s: s(theta)) for name, s in solvers.items()},
                                 repeats=repeats, warmup=1, device=torch.device("cpu"))
    rows, result = [], {"benchmark": "milp", "quick": args.quick, "environment": environment(torch.device("cpu")),
                        "batch": batch, "repeats": repeats, "same_solutions": same, "backends": {}}
    for name in solvers:
        ms_wall, ms_cpu = 1e3 * median(wall[name]) / batch, 1e3 * median(cpu[name]) / batch
        result["backends"][name] = {"ms_per_solve_wall": ms_wall, "ms_per_solve_cpu": ms_cpu}
        rows.append([name, ms_wall, ms_cpu])
    result["speedup_wall"] = median(wall["scipy"]) / median(wall["highspy"])
    result["speedup_cpu"] = median(cpu["scipy"]) / median(cpu["highspy"])
    print(format_table(["backend", "ms / solve (wall)", "ms / solve (CPU)"], rows))
    print(f"highspy speed-up: {result['speedup_wall']:.2f}x wall, {result['speedup_cpu']:.2f}x CPU; "
          f"same solutions: {same}; load average {result['environment']['load_average_1min']}")
    if args.out is not None:
        write_json(args.out, result)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
