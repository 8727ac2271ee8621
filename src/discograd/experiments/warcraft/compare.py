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

:func:`run_table2` repeats :func:`run_compare` for several grid sizes (``{out}/K{K}/``) and writes one table of
% optimal paths, methods × grid sizes, next to the paper's Table 2 (``table2.md``, ``.csv``, ``.json``,
``.png``).

:func:`warcraft_demo` is the flagship demo: I-MLE, blackbox and straight-through, trained briefly on
generated 12 × 12 maps on 2 CPU threads (:data:`DEMO_CONFIG`), a few minutes in all.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from .._format import mean_std, mean_std_cell, over_seeds
from .._io import atomic_write_text, environment_info, pyplot, save_figure, write_json
from ..executors import RunTask, run_tasks
from .train import (
    METHODS,
    METRIC_KEYS,
    PAPER_TABLE2,
    WarcraftConfig,
    load_data,
)

__all__ = ["DEMO_CONFIG", "DEMO_METHODS", "TABLE2_METHODS", "format_compare", "format_table2", "plot_compare",
           "plot_table2", "run_compare", "run_table2", "warcraft_demo"]

#: the methods of the paper's Table 2, and discograd's default I-MLE (PID target, Sum-of-Gamma noise)
TABLE2_METHODS = ("imle", "imle_mumu", "imle_mm", "blackbox", "perturbed_fy")
#: the grid sizes of the paper's Table 2
TABLE2_GRID_SIZES = (12, 18, 24, 30)
#: the demo's methods
DEMO_METHODS = ("imle", "blackbox", "straight_through")
#: the demo's config: generated 12 × 12 maps, the paper's network, 200 Adam steps at a 10× higher learning rate
#: than the paper's (5e-3, × 0.1 for the last two epochs): about a minute per method on 2 idle CPU cores
DEMO_CONFIG = WarcraftConfig(grid_size=12, num_train=2000, num_val=200, num_test=200, epochs=5, batch_size=50,
                             learning_rate=5e-3, lr_milestones=[3], eval_batch_size=200)

_LABELS = {"optimal_pct": "% optimal", "exact_pct": "% exact", "cost_ratio": "cost ratio", "regret": "regret",
           "hamming": "wrong cells"}


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


def _tasks(methods: list[str], seeds: list[int], base: WarcraftConfig, out: Path, *, plot: bool,
           cache_dir: str | os.PathLike | None, num_threads: int | None, num_gpus: float | None) -> list[RunTask]:
    """One task per ``(method, seed)``, into ``{out}/{method}/seed{seed}/``."""
    options = {"plot": plot, "cache_dir": None if cache_dir is None else str(cache_dir)}
    return [RunTask("warcraft", asdict(replace(base, method=m, seed=s, lr_milestones=list(base.lr_milestones))),
                    str(out / m / f"seed{s}"), num_threads=num_threads, num_gpus=num_gpus, options=options,
                    label=f"K{base.grid_size} {m} seed {s}")
            for m in methods for s in seeds]


def run_compare(methods: Sequence[str], seeds: Sequence[int], base: WarcraftConfig, out_dir: str | os.PathLike, *,
                data: Any = None, progress: bool = True, plot: bool = True, cache_dir: str | os.PathLike | None = None,
                num_threads: int | None = None, executor: str = "local", ray_address: str | None = None,
                ray_num_cpus: int | None = None, num_gpus: float | None = None) -> dict[str, Any]:
    """Train every method with every seed on the same data; write the table, CSV, JSON and figure.

    ``base`` gives every hyperparameter except ``method`` and ``seed`` (its own are ignored). Finished runs
    found in ``{out_dir}/{method}/seed{seed}`` with the same config are reused, unfinished ones resume.
    ``executor``: ``"local"`` (here, one run after the other, sharing ``data``) or ``"ray"`` (one Ray task per
    run, see :mod:`discograd.experiments.executors`; ``data`` must then be ``None``: each task loads its own,
    from ``cache_dir`` when given, which the driver fills first).
    Returns ``{"config", "methods", "seeds", "table": {method: {metric: {"mean", "std"}}}, "runs"}``.
    """
    methods, seeds = _check_methods_and_seeds(methods, seeds)
    base.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = _prepare_data(base, data, executor, cache_dir, progress)
    tasks = _tasks(methods, seeds, base, out, plot=plot, cache_dir=cache_dir, num_threads=num_threads,
                   num_gpus=num_gpus)
    finals = run_tasks(tasks, executor, ray_address=ray_address, ray_num_cpus=ray_num_cpus,
                       data_for=lambda task: data, progress=progress, desc="compare")
    return _write_compare(methods, seeds, base, out, finals, num_threads=num_threads, plot=plot)


def _prepare_data(base: WarcraftConfig, data: Any, executor: str, cache_dir: str | os.PathLike | None,
                  progress: bool) -> Any:
    """The data a local comparison shares (loaded once); for Ray none (the tasks load their own), after filling
    ``cache_dir`` once here so that the tasks read it instead of each generating the same maps."""
    if executor != "local":
        if data is not None:
            raise ValueError("data (in memory) can only be shared by local runs; with the ray executor every task "
                             "loads its own (pass cache_dir on a shared path so the maps are generated once)")
        if cache_dir is not None and base.data_dir is None:
            load_data(base, cache_dir=cache_dir, progress=progress)
        return None
    return load_data(base, cache_dir=cache_dir, progress=progress) if data is None else data


def _write_compare(methods: list[str], seeds: list[int], base: WarcraftConfig, out: Path,
                   finals: list[dict[str, Any]], *, num_threads: int | None, plot: bool) -> dict[str, Any]:
    """The table, CSVs, JSON and figure of one comparison from its runs' final numbers (in task order)."""
    runs: dict[str, dict[str, Any]] = {}
    curves: dict[str, list[list[float]]] = {}
    for (method, seed), final in zip(((m, s) for m in methods for s in seeds), finals):
        runs[f"{method}/seed{seed}"] = final
        with open(out / method / f"seed{seed}" / "metrics.jsonl", encoding="utf-8") as f:
            curves.setdefault(method, []).append([json.loads(line)["test_optimal_pct"] for line in f])
    table = {}
    for method in methods:
        group = [runs[f"{method}/seed{s}"] for s in seeds]
        row = {key: dict(zip(("mean", "std"), mean_std([f["test"][key] for f in group]))) for key in METRIC_KEYS}
        row["train_seconds"] = dict(zip(("mean", "std"), mean_std([f["train_seconds"] for f in group])))
        row["paper_optimal_pct"] = PAPER_TABLE2.get(method, {}).get(base.grid_size)
        table[method] = row
    config = asdict(base)
    config.pop("method")
    config.pop("seed")
    environment = environment_info()
    if num_threads is not None:  # the runs' own thread count, not the one restored after them
        environment["num_threads"] = num_threads
    results = {"config": config, "methods": methods, "seeds": seeds, "table": table, "runs": runs,
               "data_source": finals[0]["data"]["source"] if finals else None, "environment": environment}
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
         f"after the last epoch, {over_seeds(seeds)}"),
        "",
        "| method | % optimal cost | % exact path | cost ratio | regret | paper Table 2 (% optimal) | training time per run |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in results["methods"]:
        row = results["table"][method]
        paper = row["paper_optimal_pct"]
        cells = [
            *(mean_std_cell(row[key]["mean"], row[key]["std"], len(seeds), digits)
              for key, digits in (("optimal_pct", 1), ("exact_pct", 1), ("cost_ratio", 4), ("regret", 3))),
            "" if paper is None else f"{paper:.1f}",
            _duration(row["train_seconds"]["mean"]),
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", ("% optimal cost: the predicted path's true cost is within 1e-6 (relative) of the optimum, the "
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
    plt = pyplot()
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
    return save_figure(fig, Path(path))


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


def run_table2(methods: Sequence[str], seeds: Sequence[int], base: WarcraftConfig, grid_sizes: Sequence[int],
               out_dir: str | os.PathLike, *, progress: bool = True, plot: bool = True,
               cache_dir: str | os.PathLike | None = None, num_threads: int | None = None, executor: str = "local",
               ray_address: str | None = None, ray_num_cpus: int | None = None,
               num_gpus: float | None = None) -> dict[str, Any]:
    """The paper's Table 2: :func:`run_compare` at every grid size of ``grid_sizes`` (into ``{out}/K{K}/``,
    with ``base``'s other hyperparameters), then one table of test accuracy, methods × grid sizes.

    Writes ``table2.md`` (% optimal cost, mean ± std over seeds, with the paper's number next to each),
    ``table2.csv`` (one row per method and grid size, every metric), ``table2.json`` and, with ``plot``,
    ``table2.png``. Finished runs are reused and interrupted ones resume, so the same call after an
    interruption (or with more seeds) only trains what is missing. With ``executor="ray"`` every
    ``(method, seed, grid size)`` run is one Ray task, all submitted at once. ``base.data_dir`` must be unset
    when there is more than one grid size (the original data set has one folder per grid size: call
    :func:`run_compare` per folder instead). Returns ``{"grid_sizes", "methods", "seeds", "config",
    "compare": {K: run_compare's results}, "wall_seconds": seconds for the whole call}``.
    """
    sizes = [int(k) for k in grid_sizes]
    if not sizes or len(set(sizes)) != len(sizes):
        raise ValueError(f"grid_sizes must be distinct and non-empty; got {list(grid_sizes)!r}")
    if base.data_dir is not None and len(sizes) > 1:
        raise ValueError("data_dir names one grid size's folder of the original data: with data_dir, give one grid "
                         "size (or call run_compare once per folder)")
    bases = {k: replace(base, grid_size=k, lr_milestones=list(base.lr_milestones)) for k in sizes}
    for config in bases.values():  # every size is checked before the first run starts
        config.validate()
    methods, seeds = _check_methods_and_seeds(methods, seeds)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tasks = []
    for k in sizes:
        if executor != "local":
            _prepare_data(bases[k], None, executor, cache_dir, progress)
        tasks += _tasks(methods, seeds, bases[k], out / f"K{k}", plot=plot, cache_dir=cache_dir,
                        num_threads=num_threads, num_gpus=num_gpus)
    loaded: dict[int, Any] = {}

    def data_for(task: RunTask) -> Any:  # one grid size's data in memory at a time (the tasks come in order)
        k = task.config["grid_size"]
        if k not in loaded:
            loaded.clear()
            loaded[k] = load_data(bases[k], cache_dir=cache_dir, progress=progress)
        return loaded[k]

    finals = run_tasks(tasks, executor, ray_address=ray_address, ray_num_cpus=ray_num_cpus, data_for=data_for,
                       progress=progress, desc="table2")
    per_size = len(methods) * len(seeds)
    compared = {k: _write_compare(methods, seeds, bases[k], out / f"K{k}", finals[i * per_size:(i + 1) * per_size],
                                  num_threads=num_threads, plot=plot)
                for i, k in enumerate(sizes)}
    config = asdict(base)
    for key in ("method", "seed", "grid_size"):
        config.pop(key)
    results = {"grid_sizes": sizes, "methods": methods, "seeds": seeds, "config": config, "compare": compared,
               "wall_seconds": time.perf_counter() - start}
    write_json(out / "table2.json", results)
    atomic_write_text(out / "table2.md", format_table2(results) + "\n")
    atomic_write_text(out / "table2.csv", _table2_csv(results))
    if plot:
        plot_table2(results, out / "table2.png")
    return results


def _table2_cell(results: dict[str, Any], method: str, k: int) -> tuple[dict[str, Any], float | None]:
    compared = results["compare"][k] if k in results["compare"] else results["compare"][str(k)]
    return compared["table"][method], PAPER_TABLE2.get(method, {}).get(k)


def format_table2(results: dict[str, Any]) -> str:
    """The Markdown table of :func:`run_table2`: % of test paths with optimal cost, methods × grid sizes."""
    cfg = results["config"]
    sizes = results["grid_sizes"]
    seeds = results["seeds"]
    epochs = f"{cfg['epochs']} epoch{'s' if cfg['epochs'] != 1 else ''}"
    milestones = cfg["lr_milestones"]
    decay = f", × {cfg['lr_decay']:g} after epoch(s) {', '.join(map(str, milestones))}" if milestones else ""
    lines = [
        (f"Warcraft shortest paths: % of test paths with optimal cost after {epochs}, {over_seeds(seeds)}; "
         f"{'original' if cfg.get('data_dir') else 'generated'} data, {cfg['num_train']} training / "
         f"{cfg['num_test']} test maps, batch {cfg['batch_size']}, Adam lr {cfg['learning_rate']:g}"
         f"{decay}. "
         "In brackets: the paper's Table 2 (original data, 50 epochs, 5 seeds)."),
        "",
        "| method | " + " | ".join(f"{k} x {k}" for k in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for method in results["methods"]:
        cells = []
        for k in sizes:
            row, paper = _table2_cell(results, method, k)
            cell = mean_std_cell(row["optimal_pct"]["mean"], row["optimal_pct"]["std"], len(results["seeds"]), 1)
            cells.append(cell + ("" if paper is None else f" ({paper:.1f})"))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    header = "| | " + " | ".join(f"{k} x {k}" for k in sizes) + " |"
    times = [sum(_table2_cell(results, m, k)[0]["train_seconds"]["mean"] for m in results["methods"])
             / len(results["methods"]) for k in sizes]
    lines += ["", header, "|---|" + "---|" * len(sizes),
              "| training time per run (mean over methods) | " + " | ".join(_duration(t) for t in times) + " |"]
    return "\n".join(lines)


def _table2_csv(results: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    keys = [*METRIC_KEYS, "train_seconds"]
    writer.writerow(["method", "grid_size", "num_seeds"] + [f"{k}_{s}" for k in keys for s in ("mean", "std")]
                    + ["paper_optimal_pct"])
    for method in results["methods"]:
        for k in results["grid_sizes"]:
            row, paper = _table2_cell(results, method, k)
            writer.writerow([method, k, len(results["seeds"])]
                            + [repr(row[m][s]) for m in keys for s in ("mean", "std")]
                            + ["" if paper is None else paper])
    return buffer.getvalue()


def plot_table2(results: dict[str, Any], path: str | os.PathLike) -> Path:
    """% optimal paths against the grid size per method (mean ± std; dashed: the paper's Table 2)."""
    plt = pyplot()
    sizes = results["grid_sizes"]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for method in results["methods"]:
        cells = [_table2_cell(results, method, k) for k in sizes]
        line = ax.errorbar(sizes, [c[0]["optimal_pct"]["mean"] for c in cells],
                           yerr=[c[0]["optimal_pct"]["std"] for c in cells], marker="o", capsize=3, label=method)
        paper = [(k, p) for k, (_, p) in zip(sizes, cells) if p is not None]
        if paper:
            ax.plot([k for k, _ in paper], [p for _, p in paper], linestyle="--", marker="D", markersize=4,
                    color=line[0].get_color(), alpha=0.7, label=f"{method} (paper)")
    ax.set_xticks(sizes, [f"{k}x{k}" for k in sizes])
    ax.set_xlabel("grid size")
    ax.set_ylabel("% test paths with optimal cost")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    cfg = results["config"]
    ax.set_title(f"{cfg['num_train']} maps, {cfg['epochs']} epochs, {len(results['seeds'])} seed(s); dashed: the paper "
                 "(original data, 50 epochs)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, Path(path))
