"""The predict-then-optimize solvers on PyEPO's benchmarks: MultiKnapsack against MILP on the 2-D knapsack,
TSP at 20 nodes, and PyEPO's own Gurobi models where gurobipy is installed.

Knapsack: ``discograd.pto.knapsack_data`` (bit-identical to ``pyepo.data.knapsack.genData``; PyEPO's notebook
setting: dim 2, deg 6, noise 0.5) for 16 items (the notebook's) and 32, capacity 20 per row;
``MultiKnapsack(weights, [20, 20])`` (compiled branch and bound) against ``MILP(A_ub=weights, b_ub=[20, 20])``
(HiGHS, persistent model) and, if installed, ``pyepo.model.grb.knapsackModel(weights, [20, 20])`` re-solved
per instance (``setObj`` + ``solve``, as PyEPO's training loop does). TSP: ``discograd.pto.tsp_data`` (as
``pyepo.data.tsp.genData``, deg 4, noise 0.5) at 20 nodes, ``TSP(20)(-c)`` against
``pyepo.model.grb.tspDFJModel(20)`` if installed. Every solver on one thread (``num_threads=1`` /
``num_workers=1``), timed interleaved (A B C, C B A, ...) after a warm-up call each, medians of wall and CPU
time per instance; the objectives are compared outside the timed region.

    python benchmarks/bench_pto_solvers.py [--quick] [--out results.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, format_table, median, time_interleaved, write_json

from discograd.pto import knapsack_data, tsp_data
from discograd.solvers import MILP, TSP, MultiKnapsack


def _gurobi_available() -> bool:
    if importlib.util.find_spec("gurobipy") is None or importlib.util.find_spec("pyepo") is None:
        return False
    try:
        import gurobipy

        gurobipy.Model().dispose()  # a licence is needed to build a model
    except Exception:  # noqa: BLE001 -- any licence or installation problem: leave PyEPO's Gurobi out
        return False
    return True


def _pyepo_loop(model, costs: np.ndarray):
    """PyEPO's way: one ``setObj`` + ``solve`` per instance; returns the objectives."""

    def run() -> np.ndarray:
        objectives = np.empty(len(costs))
        for i, c in enumerate(costs):
            model.setObj(c)
            _, objectives[i] = model.solve()
        return objectives

    return run


def _measure(candidates: dict, batch: int, repeats: int) -> tuple[dict, list]:
    wall, cpu = time_interleaved(candidates, repeats=repeats, warmup=1, device=torch.device("cpu"))
    results, rows = {}, []
    for name in candidates:
        ms_wall, ms_cpu = 1e3 * median(wall[name]) / batch, 1e3 * median(cpu[name]) / batch
        results[name] = {"ms_per_instance_wall": ms_wall, "ms_per_instance_cpu": ms_cpu}
        rows.append([name, ms_wall, ms_cpu])
    return results, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few instances and repeats (a smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    gurobi = _gurobi_available()
    knapsack_batch, tsp_batch, repeats = (8, 2, 2) if args.quick else (200, 20, 5)
    result = {"benchmark": "pto_solvers", "quick": args.quick, "environment": environment(torch.device("cpu")),
              "repeats": repeats, "pyepo_gurobi": gurobi, "knapsack": {}, "tsp": {}}
    all_same = True

    for num_items in (16, 32):
        weights, _, values = knapsack_data(knapsack_batch, 5, num_items, dim=2, deg=6, noise_width=0.5, seed=135)
        capacity = [20.0, 20.0]
        theta = torch.from_numpy(values).double()
        ours = MultiKnapsack(weights, capacity, num_threads=1)
        milp = MILP(A_ub=weights, b_ub=capacity, num_workers=1)
        candidates = {"MultiKnapsack": lambda s=ours, t=theta: s(t), "MILP (HiGHS)": lambda s=milp, t=theta: s(t)}
        objectives = {"MultiKnapsack": (ours(theta) * theta).sum(-1).numpy(),
                      "MILP (HiGHS)": (milp(theta) * theta).sum(-1).numpy()}
        if gurobi:
            from pyepo.model.grb import knapsackModel

            candidates["PyEPO Gurobi"] = _pyepo_loop(knapsackModel(weights, capacity), values)
            objectives["PyEPO Gurobi"] = candidates["PyEPO Gurobi"]()
        same = all(bool(np.allclose(o, objectives["MultiKnapsack"], rtol=0, atol=1e-6)) for o in objectives.values())
        all_same &= same
        timings, rows = _measure(candidates, knapsack_batch, repeats)
        entry = {"batch": knapsack_batch, "dim": 2, "capacity": capacity, "same_objectives": same,
                 "solvers": timings,
                 "speedup_vs_milp_wall": timings["MILP (HiGHS)"]["ms_per_instance_wall"]
                 / timings["MultiKnapsack"]["ms_per_instance_wall"]}
        if gurobi:
            entry["speedup_vs_pyepo_gurobi_wall"] = (timings["PyEPO Gurobi"]["ms_per_instance_wall"]
                                                     / timings["MultiKnapsack"]["ms_per_instance_wall"])
        result["knapsack"][str(num_items)] = entry
        print(f"2-D knapsack, {num_items} items, capacity 20 per row, {knapsack_batch} instances")
        print(format_table(["solver", "ms / instance (wall)", "ms / instance (CPU)"], rows))
        print(f"same objectives: {same}\n")

    _, costs = tsp_data(tsp_batch, 5, 20, deg=4, noise_width=0.5, seed=135)
    costs64 = costs.astype(np.float64)
    theta = -torch.from_numpy(costs64)
    tsp = TSP(20, num_workers=1)
    candidates = {"TSP (HiGHS + cuts)": lambda: tsp(theta)}
    objectives = {"TSP (HiGHS + cuts)": (tsp(theta).numpy() * costs64).sum(-1)}
    if gurobi:
        from pyepo.model.grb import tspDFJModel

        candidates["PyEPO Gurobi DFJ"] = _pyepo_loop(tspDFJModel(20), costs)
        objectives["PyEPO Gurobi DFJ"] = candidates["PyEPO Gurobi DFJ"]()
    ours = objectives["TSP (HiGHS + cuts)"]
    # Gurobi's default MIPGap is 1e-4; TSP runs HiGHS with mip_rel_gap 0: ours is never worse
    same = all(bool(((ours <= o + 1e-6) & (ours >= o * (1 - 1e-4) - 1e-6)).all()) for o in objectives.values())
    all_same &= same
    timings, rows = _measure(candidates, tsp_batch, repeats)
    result["tsp"] = {"num_nodes": 20, "batch": tsp_batch, "same_objectives": same, "solvers": timings,
                     "max_rounds_of_cuts": tsp.last_num_rounds}
    print(f"TSP, 20 nodes, {tsp_batch} instances (at most {tsp.last_num_rounds} rounds of cuts)")
    print(format_table(["solver", "ms / instance (wall)", "ms / instance (CPU)"], rows))
    print(f"same objectives (within Gurobi's 1e-4 gap): {same}; PyEPO's Gurobi: "
          f"{'measured' if gurobi else 'not installed'}; load average {result['environment']['load_average_1min']}")
    result["same_objectives"] = all_same
    if args.out is not None:
        write_json(args.out, result)
    return 0 if all_same else 1


if __name__ == "__main__":
    raise SystemExit(main())
