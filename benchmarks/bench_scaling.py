"""Scale-out on one machine: a sweep of Warcraft runs on a local Ray instance with 1 and with 2 CPUs, and one
Warcraft run as 1 process and as 2 torchrun ranks.

Sweep: ``run_compare`` over 2 methods x 2 seeds (one torch thread per run, so one CPU per Ray task), timed from
the call to the table, Ray's start-up included, each repeat in a fresh folder (every run trains). Data
parallelism: ``discograd warcraft`` under ``torch.distributed.run --nproc_per_node N`` (gloo, one thread per
rank), the median epoch time from ``metrics.jsonl`` (start-up and data generation excluded) and the wall time
of the command. The two settings of each comparison alternate repeat by repeat (1 2, 2 1, ...).

    python benchmarks/bench_scaling.py [--quick] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, environment, format_table, median, write_json  # noqa: E402

from discograd.experiments.warcraft.compare import run_compare  # noqa: E402
from discograd.experiments.warcraft.train import WarcraftConfig  # noqa: E402


def _config(quick: bool) -> WarcraftConfig:
    if quick:
        return WarcraftConfig(grid_size=6, num_train=24, num_val=8, num_test=8, epochs=1, batch_size=8, width=8,
                              lr_milestones=[], eval_batch_size=8)
    return WarcraftConfig(grid_size=12, num_train=700, num_val=100, num_test=100, epochs=2, batch_size=70,
                          lr_milestones=[], eval_batch_size=100)


def _sweep(config: WarcraftConfig, cpus: int, root: Path, cache: Path) -> float:
    out = Path(tempfile.mkdtemp(prefix=f"sweep-{cpus}cpu-", dir=root))
    start = time.perf_counter()
    run_compare(["imle", "blackbox"], [0, 1], config, out, progress=False, plot=False, cache_dir=cache,
                num_threads=1, executor="ray", ray_num_cpus=cpus)
    return time.perf_counter() - start


def _torchrun(config: WarcraftConfig, ranks: int, root: Path, cache: Path) -> tuple[float, float]:
    out = Path(tempfile.mkdtemp(prefix=f"ddp-{ranks}-", dir=root)) / "run"
    args = ["--grid-size", str(config.grid_size), "--num-train", str(config.num_train), "--num-val",
            str(config.num_val), "--num-test", str(config.num_test), "--epochs", str(config.epochs), "--batch-size",
            str(config.batch_size), "--width", str(config.width), "--eval-batch-size", str(config.eval_batch_size),
            "--lr-milestones", "--method", "imle", "--num-threads", "1", "--no-progress", "--no-plot",
            "--out", str(out), "--cache-dir", str(cache)]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
                    "-m", "discograd", "warcraft", *args], check=True, capture_output=True, env=env, cwd=REPO_ROOT)
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return wall, median([row["train_seconds"] for row in rows if row["epoch"] > 0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny config, one repeat (a smoke test)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats of each setting (default: 2; quick 1)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 2)
    config = _config(args.quick)
    result = {"benchmark": "scaling", "quick": args.quick, "repeats": repeats,
              "environment": environment(torch.device("cpu")),
              "config": {k: getattr(config, k) for k in ("grid_size", "num_train", "epochs", "batch_size", "width")}}
    sweep: dict[int, list[float]] = {1: [], 2: []}
    ddp_wall: dict[int, list[float]] = {1: [], 2: []}
    ddp_epoch: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cache = root / "data"
        from discograd.experiments.warcraft.train import load_data

        load_data(config, cache_dir=cache)  # generated once, outside the timings
        for r in range(repeats):
            for n in ((1, 2) if r % 2 == 0 else (2, 1)):
                sweep[n].append(_sweep(config, n, root, cache))
            for n in ((1, 2) if r % 2 == 0 else (2, 1)):
                wall, epoch = _torchrun(config, n, root, cache)
                ddp_wall[n].append(wall)
                ddp_epoch[n].append(epoch)
    result["sweep_seconds"] = {f"{n}_cpus": median(v) for n, v in sweep.items()}
    result["sweep_speedup"] = median(sweep[1]) / median(sweep[2])
    result["torchrun_wall_seconds"] = {f"{n}_ranks": median(v) for n, v in ddp_wall.items()}
    result["torchrun_epoch_seconds"] = {f"{n}_ranks": median(v) for n, v in ddp_epoch.items()}
    result["torchrun_epoch_speedup"] = median(ddp_epoch[1]) / median(ddp_epoch[2])
    result["load_average_after"] = os.getloadavg()[0]
    print(format_table(["what", "1 worker (s)", "2 workers (s)", "speed-up"], [
        ["Ray sweep, 4 runs (wall, start-up included)", median(sweep[1]), median(sweep[2]), result["sweep_speedup"]],
        ["torchrun, one run: median epoch", median(ddp_epoch[1]), median(ddp_epoch[2]),
         result["torchrun_epoch_speedup"]],
        ["torchrun, one run: wall", median(ddp_wall[1]), median(ddp_wall[2]),
         median(ddp_wall[1]) / median(ddp_wall[2])],
    ]))
    print(f"load average before {result['environment']['load_average_1min']}, after {result['load_average_after']:.2f}")
    if args.out is not None:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
