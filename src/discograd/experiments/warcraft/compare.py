r"""Several Warcraft methods × several seeds → one table (Markdown and CSV) and one figure; and the demo.

:func:`run_compare` trains every ``(method, seed)`` pair with :func:`~.train.run_warcraft` on the same data
(generated or loaded once), each in its own run folder ``{out}/{method}/seed{seed}/`` (so an interrupted
comparison resumes run by run, and inside a run from its last epoch), then writes to ``{out}``:

- ``compare.md``: per method, the test metrics of the last epoch as mean ± standard deviation over seeds
  (sample standard deviation; 0 with one seed), next to the paper's Table 2 where it reports the method;
- ``compare.csv``: the same numbers, one row per method; ``runs.csv``: one row per run;
- ``compare.json``: the config, the table and every run's final numbers;
- ``compare.png``: the test accuracy per method (bars: mean ± std over seeds, diamonds: the paper) and the
  mean test accuracy per epoch.

:func:`warcraft_demo` is the flagship demo: I-MLE, blackbox and straight-through, trained briefly on
generated 12 × 12 maps on 2 CPU threads (:data:`DEMO_CONFIG`), a few minutes in all.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from .._io import atomic_write_text, environment_info, write_json
from .train import (
    METHODS,
    METRIC_KEYS,
    PAPER_TABLE2,
    WarcraftConfig,
    _pyplot,
    _save_figure,
    load_data,
    run_warcraft,
)

__all__ = ["DEMO_CONFIG", "DEMO_METHODS", "format_compare", "plot_compare", "run_compare", "warcraft_demo"]

#: the demo's methods
DEMO_METHODS = ("imle", "blackbox", "straight_through")
#: the demo's config: generated 12 × 12 maps, the paper's network, 200 Adam steps at a 10× higher learning rate
#: than the paper's (5e-3, × 0.1 for the last two epochs): about a minute per method on 2 idle CPU cores
DEMO_CONFIG = WarcraftConfig(grid_size=12, num_train=2000, num_val=200, num_test=200, epochs=5, batch_size=50,
                             learning_rate=5e-3, lr_milestones=[3], eval_batch_size=200)

_LABELS = {"optimal_pct": "% optimal", "exact_pct": "% exact", "cost_ratio": "cost ratio", "regret": "regret",
           "hamming": "wrong cells"}


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def _check_methods_and_seeds(methods: Sequence[str], seeds: Sequence[int]) -> tuple[list[str], list[int]]:
    methods, seeds = list(methods), list(seeds)
    if not methods:
        raise ValueError(f"methods must name at least one of {list(METHODS)}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods must be among {list(METHODS)}; got unknown {unknown}")
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods must not repeat; got {methods}")
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be one or more integers >= 0; got {seeds}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must not repeat; got {seeds}")
    return methods, seeds


def run_compare(methods: Sequence[str], seeds: Sequence[int], base: WarcraftConfig, out_dir: str | os.PathLike, *,
                data: Any = None, progress: bool = True, plot: bool = True, cache_dir: str | os.PathLike | None = None,
                num_threads: int | None = None) -> dict[str, Any]:
    """Train every method with every seed on the same data; write the table, CSV, JSON and figure.

    ``base`` gives every hyperparameter except ``method`` and ``seed`` (its own are ignored). Finished runs
    found in ``{out_dir}/{method}/seed{seed}`` with the same config are reused, unfinished ones resume.
    Returns ``{"config", "methods", "seeds", "table": {method: {metric: {"mean", "std"}}}, "runs"}``.
    """
    methods, seeds = _check_methods_and_seeds(methods, seeds)
    base.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = load_data(base, cache_dir=cache_dir, progress=progress)
    pairs = [(m, s) for m in methods for s in seeds]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pairs), desc="compare", unit="run", position=0)
    runs: dict[str, dict[str, Any]] = {}
    curves: dict[str, list[list[float]]] = {}
    try:
        for method, seed in pairs:
            if bar is not None:
                bar.set_postfix_str(f"{method} seed {seed}")
            folder = out / method / f"seed{seed}"
            final = run_warcraft(replace(base, method=method, seed=seed), folder, data=data, progress=progress,
                                 plot=plot, num_threads=num_threads, bar_position=1)
            runs[f"{method}/seed{seed}"] = final
            with open(folder / "metrics.jsonl", encoding="utf-8") as f:
                curves.setdefault(method, []).append([json.loads(line)["test_optimal_pct"] for line in f])
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    table = {}
    for method in methods:
        finals = [runs[f"{method}/seed{s}"] for s in seeds]
        row = {key: dict(zip(("mean", "std"), _mean_std([f["test"][key] for f in finals]))) for key in METRIC_KEYS}
        row["train_seconds"] = dict(zip(("mean", "std"), _mean_std([f["train_seconds"] for f in finals])))
        row["paper_optimal_pct"] = PAPER_TABLE2.get(method, {}).get(base.grid_size)
        table[method] = row
    config = asdict(base)
    config.pop("method")
    config.pop("seed")
    results = {"config": config, "methods": methods, "seeds": seeds, "table": table, "runs": runs,
               "data_source": getattr(data, "source", None), "environment": environment_info()}
    write_json(out / "compare.json", results)
    atomic_write_text(out / "compare.md", format_compare(results) + "\n")
    atomic_write_text(out / "compare.csv", _table_csv(results))
    atomic_write_text(out / "runs.csv", _runs_csv(results))
    if plot:
        plot_compare(results, curves, out / "compare.png")
    return results


def format_compare(results: dict[str, Any]) -> str:
    """The Markdown table of :func:`run_compare` (test metrics at the last epoch, mean ± std over seeds)."""
    cfg = results["config"]
    k = cfg["grid_size"]
    seeds = results["seeds"]
    source = results.get("data_source") or ("original data" if cfg.get("data_dir") else "generated")
    lines = [
        (f"Warcraft shortest paths, {k} x {k} ({source} data: {cfg['num_train']} training / {cfg['num_test']} test "
         f"maps), {cfg['epochs']} epochs, batch {cfg['batch_size']}, Adam lr {cfg['learning_rate']:g}; test metrics "
         f"after the last epoch, mean ± std over {len(seeds)} seed{'s' if len(seeds) != 1 else ''} "
         f"({', '.join(map(str, seeds))})"),
        "",
        "| method | % optimal cost | % exact path | cost ratio | regret | paper Table 2 (% optimal) | training time per run |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in results["methods"]:
        row = results["table"][method]
        paper = row["paper_optimal_pct"]
        cells = [
            f"{row['optimal_pct']['mean']:.1f} ± {row['optimal_pct']['std']:.1f}",
            f"{row['exact_pct']['mean']:.1f} ± {row['exact_pct']['std']:.1f}",
            f"{row['cost_ratio']['mean']:.4f} ± {row['cost_ratio']['std']:.4f}",
            f"{row['regret']['mean']:.3f} ± {row['regret']['std']:.3f}",
            "" if paper is None else f"{paper:.1f}",
            _duration(row["train_seconds"]["mean"]),
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", ("% optimal cost: the predicted path's true cost is within 1e-4 (relative) of the optimum, the "
                   "paper's accuracy; % exact: the predicted path equals the label; cost ratio and regret under the "
                   "true costs. The paper's numbers are on the original data set (50 epochs, 5 seeds).")]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _table_csv(results: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    keys = [*METRIC_KEYS, "train_seconds"]
    writer.writerow(["method", "num_seeds"] + [f"{k}_{s}" for k in keys for s in ("mean", "std")]
                    + ["paper_optimal_pct"])
    for method in results["methods"]:
        row = results["table"][method]
        paper = row["paper_optimal_pct"]
        writer.writerow([method, len(results["seeds"])] + [repr(row[k][s]) for k in keys for s in ("mean", "std")]
                        + ["" if paper is None else paper])
    return buffer.getvalue()


def _runs_csv(results: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "seed", *[f"test_{k}" for k in METRIC_KEYS], "train_seconds"])
    for final in results["runs"].values():
        writer.writerow([final["method"], final["seed"], *[repr(final["test"][k]) for k in METRIC_KEYS],
                         repr(final["train_seconds"])])
    return buffer.getvalue()


def plot_compare(results: dict[str, Any], curves: dict[str, list[list[float]]], path: str | os.PathLike) -> Path:
    """Bars of the test accuracy per method (mean ± std, the paper's value as a diamond) and the mean test
    accuracy per epoch."""
    plt = _pyplot()
    methods = results["methods"]
    fig, (bars, lines) = plt.subplots(1, 2, figsize=(12, 4.2), dpi=100)
    means = [results["table"][m]["optimal_pct"]["mean"] for m in methods]
    stds = [results["table"][m]["optimal_pct"]["std"] for m in methods]
    positions = list(range(len(methods)))
    bars.bar(positions, means, yerr=stds, capsize=4, color="#4c72b0")
    paper = [(i, results["table"][m]["paper_optimal_pct"]) for i, m in enumerate(methods)
             if results["table"][m]["paper_optimal_pct"] is not None]
    if paper:
        bars.scatter([i for i, _ in paper], [v for _, v in paper], marker="D", color="#dd8452", zorder=3,
                     label="paper, Table 2 (original data)")
        bars.legend(loc="lower right", fontsize=8)
    for i, value in enumerate(means):
        bars.text(i, value + 1, f"{value:.1f}", ha="center", fontsize=8)
    bars.set_xticks(positions, methods, rotation=20, fontsize=8)
    bars.set_ylim(0, 105)
    bars.set_ylabel("% test paths with optimal cost")
    bars.set_title(f"after {results['config']['epochs']} epochs, mean ± std over {len(results['seeds'])} seed(s)",
                   fontsize=9)
    for method in methods:
        runs = curves.get(method, [])
        if not runs:
            continue
        length = min(len(r) for r in runs)
        mean = [sum(r[e] for r in runs) / len(runs) for e in range(length)]
        lines.plot(range(length), mean, marker=".", label=method)
    from matplotlib.ticker import MaxNLocator

    lines.xaxis.set_major_locator(MaxNLocator(integer=True))
    lines.set_xlabel("epoch (0: untrained)")
    lines.set_ylabel("% test paths with optimal cost")
    lines.set_ylim(0, 100)
    lines.legend(fontsize=8)
    k = results["config"]["grid_size"]
    fig.suptitle(f"Warcraft shortest paths, {k} x {k}")
    fig.tight_layout()
    return _save_figure(fig, Path(path))


def warcraft_demo(out_dir: str | os.PathLike = "runs/demo", *, methods: Sequence[str] = DEMO_METHODS,
                  seeds: Sequence[int] = (0,), num_threads: int | None = 2, progress: bool = True, plot: bool = True,
                  verbose: bool = True, cache_dir: str | os.PathLike | None = None,
                  **overrides: Any) -> dict[str, Any]:
    """The flagship demo: train ``methods`` briefly on generated 12 × 12 maps and compare their test accuracy.

    Uses :data:`DEMO_CONFIG` (``overrides`` replace its fields, e.g. ``epochs=5``), 2 torch threads by
    default, and writes everything :func:`run_compare` writes to ``out_dir`` (plus each run's own folder with
    its learning curves and a panel of test maps with true and predicted paths). With ``verbose``, prints
    the accuracy table and where the plots are. Returns :func:`run_compare`'s results.
    """
    config = replace(DEMO_CONFIG, lr_milestones=list(DEMO_CONFIG.lr_milestones), **overrides)
    start = time.perf_counter()
    results = run_compare(methods, seeds, config, out_dir, progress=progress, plot=plot, cache_dir=cache_dir,
                          num_threads=num_threads)
    if verbose:
        out = Path(out_dir)
        print(format_compare(results))
        print(f"\nwrote {out}/ (compare.md, compare.csv, compare.json{', compare.png' if plot else ''}; one folder per "
              f"run with metrics, checkpoints{', curves.png and paths.png' if plot else ''}) in "
              f"{time.perf_counter() - start:.0f} s")
    return results
