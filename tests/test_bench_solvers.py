"""benchmarks/bench_solvers.py runs end to end in its quick mode and writes the JSON it documents."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba")
pytest.importorskip("scipy")
pytest.importorskip("networkx")

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_solvers.py"

SECTIONS = {
    "grid_shortest_path": {"ours_vs_heapq", "ours_vs_scipy", "threads_2_vs_1"},
    "linear_assignment": {"ours_vs_scipy_loop", "threads_2_vs_1"},
    "spanning_tree": {"ours_vs_networkx_loop", "ours_vs_scipy_loop", "threads_2_vs_1"},
    "knapsack": {"ours_vs_scipy_milp_loop", "threads_2_vs_1"},
    "ranking": {"ours_vs_numpy_loop", "ours_vs_numpy_batched"},
    "shortest_path": {"ours_vs_scipy_loop", "threads_2_vs_1"},
    "milp": {"default_vs_1_worker", "1_worker_vs_scipy_loop"},
}


def _finite_positive(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_bench_solvers_quick(tmp_path):
    out = tmp_path / "solvers.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "GridShortestPath" in result.stdout and "First call" in result.stdout

    data = json.loads(out.read_text())
    assert data["benchmark"] == "solvers" and data["quick"] is True
    assert data["torch_set_num_threads"] == 1
    env = data["environment"]
    for key in ("torch_version", "device", "num_threads", "git_sha", "load_average_1min", "date"):
        assert key in env
    assert env["device"] == "cpu" and env["num_threads"] == 1
    assert isinstance(data["config"], dict) and data["config"]["quick"] is True
    assert data["all_agree"] is True

    for section, ratio_names in SECTIONS.items():
        rows = data[section]["rows"]
        assert rows, section
        for row in rows:
            assert set(row["ratios"]) == ratio_names, (section, row["ratios"])
            for name, value in row["ratios"].items():
                assert _finite_positive(value), (section, name, value)
            for name, candidate in row["candidates"].items():
                assert len(candidate["times_s"]) == row["repeats"] >= 1
                assert all(_finite_positive(t) for t in candidate["times_s"]), (section, name)
                for key in ("median_s", "solves_per_s", "instances"):
                    assert _finite_positive(candidate[key]), (section, name, key)
            assert row["agree"] is True, section

    first = data["first_call"]
    assert first["rows"] and first["warmup_subprocess_s"] is None  # skipped in --quick
    for row in first["rows"]:
        for key in ("import_s", "first_call_s", "total_s", "second_call_s"):
            assert _finite_positive(row[key]), (row["solver"], key)

    targets = data["targets"]
    assert set(targets) == {
        "grid_min_speedup_vs_heapq", "grid_min_thread_speedup", "linear_assignment_min_ratio_vs_loops",
        "spanning_tree_min_ratio_vs_loops", "knapsack_min_ratio_vs_loops", "first_call_max_s",
    }
    for target in targets.values():
        assert isinstance(target["met"], bool) and _finite_positive(target["measured"])
