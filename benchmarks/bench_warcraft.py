"""One Warcraft training epoch: I-MLE (S = 1 and S = 10) against the two-stage MSE step, same network.

Targets (issue 5): the end-to-end I-MLE step costs at most 1.1x (S = 1) and 1.3x (S = 10) the two-stage
step. The time is split into data, network, solver and estimator. A thin wrapper over
``discograd.experiments.warcraft.train.benchmark_epoch`` (also ``discograd warcraft --benchmark-epoch``).

Usage::

    python benchmarks/bench_warcraft.py                 # 10,000 maps of 12 x 12, batch 70; 40 batches timed
    python benchmarks/bench_warcraft.py --quick         # 2 batches of 4 maps (CI)
    python benchmarks/bench_warcraft.py --max-batches 0 # the whole epoch (about 3.5 minutes per step kind on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from discograd.experiments._io import write_json
from discograd.experiments.warcraft.train import benchmark_epoch, format_benchmark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 batches of 4 maps of 12 x 12 (CI)")
    parser.add_argument("--grid-size", type=int, default=12)
    parser.add_argument("--num-maps", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=70)
    parser.add_argument("--max-batches", type=int, default=40, help="batches timed (0: all; the epoch is extrapolated)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/warcraft.json"))
    args = parser.parse_args(argv)
    if args.quick:
        result = benchmark_epoch(12, num_maps=8, batch_size=4, max_batches=2, progress=False)
    else:
        result = benchmark_epoch(args.grid_size, args.num_maps, args.batch_size,
                                 max_batches=args.max_batches or None, progress=True)
    print(format_benchmark(result))
    write_json(args.out, result)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
