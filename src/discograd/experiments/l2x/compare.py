r"""Several L2X methods × seeds (× k) → one table (Markdown and CSV) and one figure.

:func:`run_compare` trains every ``(method, k, seed)`` with :func:`~.train.run_l2x` on one data set (generated
or loaded once), each run in its own folder ``{out}/{method}-k{k}/seed{seed}/`` (an interrupted comparison
resumes run by run, and inside a run from its last epoch), then writes to ``{out}``:

- ``compare.md``: per method and k, the test metrics at each run's best-validation epoch (the original's
  checkpoint; :func:`~.train.best_epoch`), mean ± std over seeds (sample standard deviation; 0 with one seed),
  the best epochs, and for ``beer`` the I-MLE paper's Table 1 where it has the method; then the same after the
  last epoch;
- ``compare.csv`` (the same, one row per method and k; ``last_*``: after the last epoch) and ``runs.csv`` (one
  row per run);
- ``compare.json``: the base config, the table and every run's final numbers;
- ``compare.png``: the main metrics per method (bars: mean ± std over seeds; diamonds: the paper).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from .._format import csv_text, mean_std, mean_std_cell, over_seeds
from .._io import atomic_write_text, environment_info, pyplot, save_figure, write_json
from ..executors import RunTask, run_tasks
from .data import TABULAR_TASKS
from .train import (
    DEFAULT_K,
    METHODS,
    PAPER_TABLE1,
    TABULAR_METRICS,
    TEXT_METRICS,
    L2XConfig,
    load_data,
    methods_for,
)

__all__ = ["format_compare", "plot_compare", "run_compare"]

_LABELS = {"tpr_pct": "TPR %", "median_rank": "median rank", "post_hoc_accuracy_pct": "post-hoc accuracy %",
           "bayes_accuracy_pct": "Bayes accuracy %", "mse_x100": "test MSE ×100", "precision_pct": "precision %"}


def _check(methods: Sequence[str], seeds: Sequence[int], ks: Sequence[int],
           task: str) -> tuple[list[str], list[int], list[int]]:
    methods, seeds, ks = list(methods), list(seeds), list(ks)
    if not methods or any(m not in METHODS for m in methods):
        raise ValueError(f"methods must be one or more of {list(METHODS)}; got {methods}")
    unfit = [m for m in methods if m not in methods_for(task)]
    if unfit:
        raise ValueError(f"methods {unfit} cannot run on task {task!r} (they enumerate every subset: tabular only)")
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods must not repeat; got {methods}")
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be one or more distinct integers >= 0; got {seeds}")
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks) or len(set(ks)) != len(ks):
        raise ValueError(f"ks must be one or more distinct integers >= 1; got {ks}")
    return methods, seeds, ks


def run_compare(methods: Sequence[str] | None, seeds: Sequence[int], base: L2XConfig, out_dir: str | os.PathLike,
                *, ks: Sequence[int] | None = None, data: Any = None, progress: bool = True, plot: bool = True,
                num_threads: int | None = None, executor: str = "local", ray_address: str | None = None,
                ray_num_cpus: int | None = None) -> dict[str, Any]:
    """Train every method × k × seed on ``base``'s task and write the comparison (see the module docstring).
    ``methods``: ``None`` for every method the task allows (:func:`~.train.methods_for`). ``ks``: the subset
    sizes (``None``: ``base.k``, or the task's default). ``base.temperature`` unset gives the tabular tasks
    τ = k for each k and the text tasks τ = 1. ``executor``: ``"local"`` (the runs share ``data``) or ``"ray"``
    (one Ray task per run, each loading its own data; :mod:`discograd.experiments.executors`)."""
    ks = [base.k if base.k is not None else DEFAULT_K[base.task]] if ks is None else list(ks)
    methods = list(methods_for(base.task)) if methods is None else methods
    methods, seeds, ks = _check(methods, seeds, ks, base.task)
    base.validate()
    out = Path(out_dir)
    started = time.perf_counter()
    if executor != "local" and data is not None:
        raise ValueError("data (in memory) can only be shared by local runs; with the ray executor every task loads "
                         "its own")
    if data is None and executor == "local":
        data = load_data(replace(base, method=methods[0], k=ks[0]).resolve())
    tasks = [RunTask("l2x", asdict(replace(base, method=method, k=k, seed=seed)),
                     str(out / f"{method}-k{k}" / f"seed{seed}"), num_threads=num_threads, options={"plot": plot},
                     label=f"{method} k={k} seed {seed}")
             for method in methods for k in ks for seed in seeds]
    runs = run_tasks(tasks, executor, ray_address=ray_address, ray_num_cpus=ray_num_cpus,
                     data_for=lambda task: data, progress=progress, desc=f"l2x compare {base.task}")
    keys = TABULAR_METRICS if base.task in TABULAR_TASKS else TEXT_METRICS
    table = []
    for method in methods:
        for k in ks:
            group = [r for r in runs if r["method"] == method and r["k"] == k]
            row: dict[str, Any] = {"method": method, "k": k, "seeds": len(group),
                                   "epochs": group[0]["epochs"],
                                   "best_epochs": " ".join(str(r["best_epoch"]) for r in group),
                                   "train_seconds_mean": mean_std([r["train_seconds"] for r in group])[0]}
            for report, prefix in (("test", ""), ("test_last", "last_")):
                for key in keys:
                    values = [r[report][key] for r in group if key in r[report]]
                    if values:
                        row[f"{prefix}{key}_mean"], row[f"{prefix}{key}_std"] = mean_std(values)
            paper = PAPER_TABLE1.get((method, k)) if base.task == "beer" else None
            row["paper_mse_x100"], row["paper_precision_pct"] = paper if paper else (None, None)
            table.append(row)
    results = {"task": base.task, "methods": methods, "seeds": seeds, "ks": ks, "base_config": asdict(base),
               "table": table, "runs": runs, "wall_seconds": time.perf_counter() - started,
               "environment": environment_info()}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "compare.md", format_compare(results) + "\n")
    atomic_write_text(out / "compare.csv", csv_text(table))
    atomic_write_text(out / "runs.csv", csv_text([{"method": r["method"], "k": r["k"], "seed": r["seed"],
                                               "epochs": r["epochs_done"], "best_epoch": r["best_epoch"],
                                               "train_seconds": r["train_seconds"],
                                               **{f"test_{key}": v for key, v in r["test"].items()},
                                               **{f"test_last_{key}": v for key, v in r["test_last"].items()}}
                                              for r in runs]))
    write_json(out / "compare.json", results)
    if plot:
        plot_compare(results, out / "compare.png")
    return results


def format_compare(results: dict[str, Any]) -> str:
    """The Markdown tables of a comparison: at the best-validation epoch, then after the last epoch."""
    task = results["task"]
    keys = TABULAR_METRICS if task in TABULAR_TASKS else TEXT_METRICS
    blocks = []
    for prefix, title in (("", "test metrics at each run's best-validation epoch (lowest validation loss)"),
                          ("last_", "test metrics after the last epoch")):
        header = ["method", "k"] + [_LABELS[k] for k in keys]
        if task == "beer" and not prefix:
            header += ["paper MSE ×100", "paper precision %"]
        header += ["best epoch per seed", "train s / run"] if not prefix else []
        lines = [f"L2X, task {task}: {title}, {over_seeds(list(results['seeds']))}",
                 "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        num_seeds = len(results["seeds"])
        for row in results["table"]:
            cells = [row["method"], str(row["k"])]
            for key in keys:
                name = f"{prefix}{key}"
                cells.append(mean_std_cell(row[f"{name}_mean"], row[f"{name}_std"], num_seeds, 2)
                             if f"{name}_mean" in row else "")
            if task == "beer" and not prefix:
                cells += ["" if row["paper_mse_x100"] is None else f"{row['paper_mse_x100']:.2f}",
                          "" if row["paper_precision_pct"] is None else f"{row['paper_precision_pct']:.2f}"]
            if not prefix:
                cells += [row["best_epochs"], f"{row['train_seconds_mean']:.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def plot_compare(results: dict[str, Any], path: str | os.PathLike) -> Path:
    """Bars (mean ± std over seeds) of the two main metrics per method and k; diamonds: the paper's Table 1."""
    plt = pyplot()
    task = results["task"]
    keys = ("tpr_pct", "median_rank") if task in TABULAR_TASKS else ("mse_x100", "precision_pct")
    table = results["table"]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.3 * len(table) + 4), 3.8))
    labels = [f"{r['method']}\nk={r['k']}" for r in table]
    for ax, key in zip(axes, keys):
        means = [r.get(f"{key}_mean", float("nan")) for r in table]
        stds = [r.get(f"{key}_std", 0.0) for r in table]
        ax.bar(range(len(table)), means, yerr=stds, capsize=3, color="tab:blue", alpha=0.8)
        if task == "beer":
            paper_key = "paper_mse_x100" if key == "mse_x100" else "paper_precision_pct"
            xs = [i for i, r in enumerate(table) if r[paper_key] is not None]
            if xs:
                ax.plot(xs, [table[i][paper_key] for i in xs], "D", color="tab:red", label="paper (Table 1)")
                ax.legend()
        ax.set_xticks(range(len(table)), labels, fontsize=8)
        ax.set_title(_LABELS[key])
    fig.suptitle(f"L2X {task}: test metrics, mean ± std over {len(results['seeds'])} seeds")
    fig.tight_layout()
    return save_figure(fig, path)
