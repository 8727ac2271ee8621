"""The benchmark scripts run end to end in their quick mode, so they cannot rot."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _finite_positive(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_bench_core_quick(tmp_path):
    out = tmp_path / "core.json"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_core.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "I-MLE" in result.stdout and "vs torch-imle" in result.stdout

    data = json.loads(out.read_text())
    assert data["benchmark"] == "core" and data["quick"] is True
    env = data["environment"]
    for key in ("torch_version", "device", "num_threads", "git_sha"):
        assert key in env
    assert env["device"] == "cpu" and env["num_threads"] >= 1
    assert env["git_sha"] is None or isinstance(env["git_sha"], str)

    overhead = data["imle_overhead"]
    assert overhead["rows"] and overhead["target_max_ratio"] == 1.2
    for row in overhead["rows"]:
        assert row["k"] == row["n"] // 10
        for key in ("imle_s", "bare_s", "ratio", "noise_s", "solver_s"):
            assert _finite_positive(row[key]), (key, row[key])

    sog = data["sog_sampling"]
    assert sog["rows"] and sog["targets"]["speedup_vs_torch_imle"]["target"] == ">= 2.0"
    assert sog["targets"]["speedup_vs_gamma"]["target"] == ">= 15.0"
    assert sog["targets"]["ratio_to_gumbel"]["target"] == "<= 1.5"
    for row in sog["rows"]:
        for key in ("speedup_vs_torch_imle", "speedup_vs_gamma", "ratio_to_gumbel", "exact_variance"):
            assert _finite_positive(row[key]), (key, row[key])
        assert set(row["seconds"]) == {"torch_imle", "gamma", "table", "gumbel"}
        for sampler in ("torch_imle", "gamma", "table"):  # the three Sum-of-Gamma samplers
            assert all(math.isfinite(row["law"][sampler][key]) for key in ("mean", "variance", "mean_z", "variance_z"))

    step = data["imle_step"]
    assert step["rows"] and step["targets"]["speedup_vs_torch_imle"]["target"] == ">= 8.0"
    for row in step["rows"]:
        assert set(row["seconds"]) == {"torch_imle", "gamma", "table"}
        for key in ("speedup_vs_gamma", "speedup_vs_torch_imle"):
            assert _finite_positive(row[key]), (key, row[key])

    memory = data["memory"]
    assert memory["rows"]
    for row in memory["rows"]:
        assert _finite_positive(row["noise_bytes"])
        for key in ("imle_ratio", "imle_recompute_ratio", "bare_ratio"):
            # the CPU peak comes from /proc/self/status: Linux only
            if sys.platform == "linux" or row[key] is not None:
                assert _finite_positive(row[key]), (key, row[key])

    targets = data["targets"]
    assert set(targets) >= {"imle_overhead_max_ratio", "sog_speedup_vs_torch_imle", "sog_speedup_vs_gamma",
                            "sog_ratio_to_gumbel", "sog_same_law", "step_speedup_vs_gamma", "step_speedup_vs_torch_imle"}
    assert all(isinstance(t["met"], bool) for t in targets.values())


def test_bench_warcraft_quick(tmp_path):
    """The Warcraft epoch benchmark runs in its quick mode and writes finite ratios."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_warcraft.py"
    out = tmp_path / "warcraft.json"
    done = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    ratios = [r["ratio_to_two_stage"] for r in result["results"].values()]
    assert len(ratios) == 3 and all(r > 0 and r == r for r in ratios)


def test_bench_milp_quick(tmp_path):
    import pytest

    pytest.importorskip("highspy")
    out = tmp_path / "milp.json"
    result = subprocess.run([sys.executable, str(BENCHMARKS / "bench_milp.py"), "--quick", "--out", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["benchmark"] == "milp" and data["same_solutions"] is True
    for backend in ("highspy", "scipy"):
        assert _finite_positive(data["backends"][backend]["ms_per_solve_wall"])
    assert "Running HiGHS" not in result.stdout  # the banner is silenced


@pytest.mark.slow
def test_bench_scaling_quick(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "scaling.json"
    result = subprocess.run([sys.executable, str(BENCHMARKS / "bench_scaling.py"), "--quick", "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["benchmark"] == "scaling"
    for key in ("sweep_speedup", "torchrun_epoch_speedup"):
        assert _finite_positive(data[key])


def test_bench_threads_quick(tmp_path):
    """The solver-thread benchmark runs in its quick mode and writes finite timings for every solver."""
    out = tmp_path / "threads.json"
    result = subprocess.run([sys.executable, str(BENCHMARKS / "bench_threads.py"), "--quick", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["benchmark"] == "threads" and data["quick"] is True
    assert {row["solver"] for row in data["rows"]} == {"LinearAssignment n=10", "SpanningTree n=10",
                                                        "Knapsack n=50 cap=100", "GridShortestPath K=12"}
    for row in data["rows"]:
        for key in ("one_thread_s", "two_threads_s", "speedup", "work"):
            assert _finite_positive(row[key]), (key, row[key])


def test_bench_pto_solvers_quick(tmp_path):
    """The predict-then-optimize solver benchmark runs in its quick mode: finite timings, the same objectives."""
    pytest.importorskip("highspy")
    out = tmp_path / "pto_solvers.json"
    result = subprocess.run([sys.executable, str(BENCHMARKS / "bench_pto_solvers.py"), "--quick", "--out", str(out)],
                            check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["benchmark"] == "pto_solvers" and data["quick"] is True and data["same_objectives"] is True
    assert set(data["knapsack"]) == {"16", "32"}
    for entry in data["knapsack"].values():
        for name in ("MultiKnapsack", "MILP (HiGHS)"):
            assert _finite_positive(entry["solvers"][name]["ms_per_instance_wall"])
        assert _finite_positive(entry["speedup_vs_milp_wall"])
    assert _finite_positive(data["tsp"]["solvers"]["TSP (HiGHS + cuts)"]["ms_per_instance_wall"])
