r"""Methods × seeds (× data settings) of the predict-then-optimize benchmark → one table and one figure.

:func:`run_compare` trains every ``(setting, method, seed)`` with :func:`~.train.run_pto`, each in its own folder
``{out}/{setting}/{method}/seed{seed}/`` (``setting`` names the data: ``n1000-deg4-e0.5``), so an interrupted
comparison resumes run by run (and inside a run from its last epoch), then writes to ``{out}``:

- ``compare.md``: per setting and method the test regret after the last epoch (PyEPO's normalisation, %), mean ±
  std over seeds, the mean of per-instance normalised regrets, the median training time per epoch, and, where
  PyEPO's notebook has the method on that setting, its printed number (:data:`NOTEBOOK_REGRET_PCT`);
- ``compare.csv`` (one row per setting and method) and ``runs.csv`` (one row per run);
- ``compare.json``: the base config, the table and every run's final numbers;
- ``compare.png``: test regret against epochs, per method (mean over seeds), one panel per setting.

``protocol="paper"`` is the PyEPO paper's grid (Tang & Khalil, *PyEPO*, Math. Prog. Comp. 2024): training sizes
100, 1000, 5000 × polynomial degrees 1, 2, 4, 6 × noise half-widths 0, 0.5, with the notebook's model and optimiser.
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
from .train import METHODS, PTOConfig, data_key, load_data

__all__ = ["NOTEBOOK_REGRET_PCT", "PAPER_GRID", "PROTOCOLS", "format_compare", "plot_compare", "run_compare",
           "settings_for"]

PROTOCOLS = ("notebook", "paper")
#: the PyEPO paper's grid: (training size, degree, noise half-width)
PAPER_GRID = [(n, deg, e) for n in (100, 1000, 5000) for deg in (1, 2, 4, 6) for e in (0.0, 0.5)]

#: test regret (%) printed by PyEPO's notebooks at their last printed epoch, one run each: the shortest path
#: ``notebooks/03 Training and Testing.ipynb`` (commit 04ea26b; after epoch 20 of 20; no I-MLE, AI-MLE, NID or CMAP
#: cell; its NCE cell passes the costs where PyEPO's ``NCE`` takes the optimal solutions) and the knapsack
#: ``notebooks/04 2D knapsack Solution Visualization.ipynb`` (commit 030b75b; it prints every second epoch, so after
#: epoch 39 of 40; it also has PG, which we do not have)
NOTEBOOK_REGRET_PCT: dict[tuple[str, str], float] = {
    ("shortest_path", "spo_plus"): 7.4135, ("shortest_path", "dpo"): 8.5196, ("shortest_path", "pfy"): 7.7841,
    ("shortest_path", "dbb"): 20.8303, ("shortest_path", "nce"): 7.8501, ("shortest_path", "ltr_listwise"): 9.2906,
    ("shortest_path", "ltr_pairwise"): 8.8564, ("shortest_path", "ltr_pointwise"): 8.4713,
    ("knapsack", "two_stage"): 10.5455, ("knapsack", "spo_plus"): 6.2675, ("knapsack", "pfy"): 8.3145,
    ("knapsack", "dpo"): 13.5102, ("knapsack", "imle"): 15.6659, ("knapsack", "dbb"): 15.1737,
    ("knapsack", "nid"): 12.8430, ("knapsack", "nce"): 6.7536, ("knapsack", "ltr_listwise"): 12.5985,
}


def setting_name(config: PTOConfig) -> str:
    """The folder name of a data setting, e.g. ``n1000-deg4-e0.5``."""
    return _setting_of(asdict(config))


def _setting_of(final: dict[str, Any]) -> str:
    """:func:`setting_name` of a run's final numbers (they hold its config's fields)."""
    return f"n{final['num_train']}-deg{final['deg']}-e{final['noise_width']:g}"


def settings_for(base: PTOConfig, protocol: str) -> list[PTOConfig]:
    """The data settings of a protocol: ``"notebook"`` is ``base`` itself, ``"paper"`` the grid
    :data:`PAPER_GRID` around it."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {list(PROTOCOLS)}; got {protocol!r}")
    if protocol == "notebook":
        return [base.resolve_problem()]
    return [replace(base, num_train=n, deg=deg, noise_width=e).resolve_problem() for n, deg, e in PAPER_GRID]


def _check(methods: Sequence[str], seeds: Sequence[int]) -> tuple[list[str], list[int]]:
    methods, seeds = list(methods), list(seeds)
    if not methods or any(m not in METHODS for m in methods) or len(set(methods)) != len(methods):
        raise ValueError(f"methods must be one or more distinct names among {list(METHODS)}; got {methods}")
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds) \
            or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be one or more distinct integers >= 0; got {seeds}")
    return methods, seeds


def run_compare(methods: Sequence[str], seeds: Sequence[int], base: PTOConfig, out_dir: str | os.PathLike, *,
                protocol: str = "notebook", progress: bool = True, plot: bool = True,
                num_threads: int | None = None, executor: str = "local", ray_address: str | None = None,
                ray_num_cpus: int | None = None) -> dict[str, Any]:
    """Train every setting × method × seed and write the comparison (see the module docstring)."""
    methods, seeds = _check(methods, seeds)
    base.validate()
    out = Path(out_dir)
    started = time.perf_counter()
    settings = settings_for(base, protocol)
    tasks = []
    for setting in settings:
        for method in methods:
            for seed in seeds:
                config = replace(setting, method=method, seed=seed)
                tasks.append(RunTask("pto", asdict(config), str(out / setting_name(setting) / method / f"seed{seed}"),
                                     num_threads=num_threads, options={"plot": plot},
                                     label=f"{setting_name(setting)} {method} seed {seed}"))
    cache: dict[tuple, Any] = {}

    def data_for(task: RunTask) -> Any:
        config = PTOConfig(**task.config)
        key = data_key(config)
        if key not in cache:
            cache.clear()  # settings come one after the other: keep one data set in memory
            cache[key] = load_data(config)
        return cache[key]

    runs = run_tasks(tasks, executor, ray_address=ray_address, ray_num_cpus=ray_num_cpus, data_for=data_for,
                     progress=progress, desc=f"pto compare {base.problem}")
    table = []
    for setting in settings:
        name = setting_name(setting)
        for method in methods:
            group = [r for r in runs if r["method"] == method and _setting_of(r) == name]
            regret_mean, regret_std = mean_std([r["test_regret_pct"] for r in group])
            mean_ratio = mean_std([r["test_mean_normalized_regret_pct"] for r in group])[0]
            notebook = NOTEBOOK_REGRET_PCT.get((base.problem, method)) if (
                protocol == "notebook" and _is_notebook_setting(setting)) else None
            curves = [r["regret_curve_pct"] for r in group]
            table.append({"setting": name, "method": method, "seeds": len(group),
                          "test_regret_pct_mean": regret_mean, "test_regret_pct_std": regret_std,
                          "test_mean_normalized_regret_pct_mean": mean_ratio,
                          "epoch_seconds_median": sorted(r["epoch_seconds_median"] for r in group)[len(group) // 2],
                          "notebook_regret_pct": notebook,
                          "regret_curve_pct_mean": [sum(v) / len(v) for v in zip(*curves)]})
    results = {"problem": base.problem, "protocol": protocol, "methods": methods, "seeds": seeds,
               "base_config": asdict(base.resolve_problem()), "table": table, "runs": runs,
               "wall_seconds": time.perf_counter() - started, "environment": environment_info()}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "compare.md", format_compare(results) + "\n")
    atomic_write_text(out / "compare.csv", csv_text([{k: v for k, v in row.items() if k != "regret_curve_pct_mean"}
                                                  for row in table]))
    atomic_write_text(out / "runs.csv", csv_text([{k: v for k, v in r.items() if k != "regret_curve_pct"} for r in runs]))
    write_json(out / "compare.json", results)
    if plot:
        plot_compare(results, out / "compare.png")
    return results


def _is_notebook_setting(config: PTOConfig) -> bool:
    """Whether ``config`` (problem-resolved) is the setting of PyEPO's notebook for its problem."""
    defaults = PTOConfig(problem=config.problem).resolve_problem()
    keys = ("num_train", "num_test", "num_features", "deg", "noise_width", "data_seed", "split_seed", "grid",
            "num_items", "dim", "capacity", "epochs", "batch_size", "learning_rate")
    return all(getattr(config, k) == getattr(defaults, k) for k in keys)


def format_compare(results: dict[str, Any]) -> str:
    """The Markdown table of a comparison."""
    base = results["base_config"]
    problem = results["problem"]
    what = {"shortest_path": f"{base['grid']} × {base['grid']} shortest path",
            "knapsack": f"{base['dim']}-D knapsack, {base['num_items']} items, capacity {base['capacity']:g}",
            "tsp": f"TSP, {base['num_nodes']} nodes"}[problem]
    header = ["setting", "method", "test regret % (PyEPO)", "mean per-instance regret %", "s / epoch",
              "PyEPO notebook %"]
    lines = [(f"Predict-then-optimize, {what}: {base['num_features']} features, {base['num_test']} test instances, "
             f"{base['epochs']} epochs, batch {base['batch_size']}, Adam {base['learning_rate']:g}; test metrics after "
             f"the last epoch, {over_seeds(list(results['seeds']))}"),
             "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    num_seeds = len(results["seeds"])
    for row in results["table"]:
        notebook = row["notebook_regret_pct"]
        lines.append("| " + " | ".join([
            row["setting"], row["method"],
            mean_std_cell(row["test_regret_pct_mean"], row["test_regret_pct_std"], num_seeds, 2),
            f"{row['test_mean_normalized_regret_pct_mean']:.2f}", f"{row['epoch_seconds_median']:.3f}",
            "" if notebook is None else f"{notebook:.2f}"]) + " |")
    lines += ["", ("test regret % (PyEPO): Σ regret / Σ |optimal objective| over the test set, "
              "`pyepo.metric.regret`'s normalisation; mean per-instance regret: the mean of regret / |optimum|.")]
    return "\n".join(lines)


def plot_compare(results: dict[str, Any], path: str | os.PathLike) -> Path:
    """Test regret against epochs per method (mean over seeds), one panel per setting."""
    plt = pyplot()
    settings = list(dict.fromkeys(row["setting"] for row in results["table"]))
    cols = min(4, len(settings))
    rows = -(-len(settings) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, setting in zip(axes.flat, settings):
        for row in results["table"]:
            if row["setting"] == setting:
                curve = row["regret_curve_pct_mean"]
                ax.plot(range(len(curve)), curve, label=row["method"])
        ax.set_title(setting, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test regret %")
    for ax in list(axes.flat)[len(settings):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{results['problem']}: test regret (PyEPO's normalisation), mean over "
                 f"{len(results['seeds'])} seed(s)")
    fig.tight_layout(rect=(0, 0, 1, 0.97))  # room for the title
    return save_figure(fig, path)
