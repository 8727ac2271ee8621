"""Executors: the Ray executor gives the local executor's numbers, reuses finished runs and resumes
interrupted ones (a local Ray instance with 2 CPUs)."""

from __future__ import annotations

import json
import sys

import pytest

from discograd.experiments.cli import main
from discograd.experiments.executors import RunTask, run_tasks
from discograd.experiments.warcraft.train import WarcraftConfig, run_warcraft

ray = pytest.importorskip("ray", reason="the ray executor needs discograd[distributed]")


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module (the executor joins it instead of starting its own)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _tiny(**overrides):
    values = {"grid_size": 6, "num_train": 12, "num_val": 6, "num_test": 6, "epochs": 2, "batch_size": 6, "width": 8,
              "lr_milestones": [], "eval_batch_size": 6, "learning_rate": 1e-3}
    values.update(overrides)
    return WarcraftConfig(**values)


def _strip(final):
    """A run's numbers without its timings and machine description."""
    return {k: v for k, v in final.items() if k not in ("train_seconds", "environment")}


def _metrics(folder):
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "train_seconds"} for row in rows]


def test_ray_compare_equals_local_reuses_and_resumes(tmp_path, ray_instance):
    from discograd.experiments.warcraft.compare import run_compare

    base, cache = _tiny(), tmp_path / "data"
    methods, seeds = ["imle", "blackbox"], [0, 1]
    local = run_compare(methods, seeds, base, tmp_path / "local", progress=False, plot=False, cache_dir=cache,
                        num_threads=1)
    # an interrupted run waiting in the Ray comparison's folder: the Ray task must resume it
    from dataclasses import replace

    run_warcraft(replace(base, method="blackbox", seed=1), tmp_path / "ray" / "blackbox" / "seed1", progress=False,
                 plot=False, cache_dir=cache, num_threads=1, stop_after_epochs=1)
    remote = run_compare(methods, seeds, base, tmp_path / "ray", progress=False, plot=False, cache_dir=cache,
                         num_threads=1, executor="ray")
    for method in methods:
        for key, value in local["table"][method].items():
            if key != "train_seconds":
                assert remote["table"][method][key] == value, (method, key)
    for key in local["runs"]:  # "method/seedS", also the run folder
        assert _strip(remote["runs"][key]) == _strip(local["runs"][key]), key
        assert _metrics(tmp_path / "ray" / key) == _metrics(tmp_path / "local" / key)
    assert [r["test"]["optimal_pct"] for r in remote["runs"].values()] == \
        [r["test"]["optimal_pct"] for r in local["runs"].values()]
    # a second call reuses every finished run: final.json is not rewritten
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "ray").glob("*/seed*/final.json")}
    again = run_compare(methods, seeds, base, tmp_path / "ray", progress=False, plot=False, cache_dir=cache,
                        num_threads=1, executor="ray")
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "ray").glob("*/seed*/final.json")} == before
    assert again["runs"] == remote["runs"]


def test_ray_table2_equals_local(tmp_path, ray_instance):
    from discograd.experiments.warcraft.compare import run_table2

    kwargs = {"progress": False, "plot": False, "cache_dir": tmp_path / "data", "num_threads": 1}
    local = run_table2(["imle"], [0], _tiny(epochs=1), [5, 6], tmp_path / "local", **kwargs)
    remote = run_table2(["imle"], [0], _tiny(epochs=1), [5, 6], tmp_path / "ray", executor="ray", **kwargs)
    for k in (5, 6):
        assert _strip(remote["compare"][k]["runs"]["imle/seed0"]) == _strip(local["compare"][k]["runs"]["imle/seed0"])
    assert (tmp_path / "ray" / "table2.md").read_text() == (tmp_path / "local" / "table2.md").read_text()


def test_ray_l2x_and_dvae_compare_equal_local(tmp_path, ray_instance):
    from discograd.experiments.dvae.train import DVAEConfig
    from discograd.experiments.dvae.train import run_compare as dvae_compare
    from discograd.experiments.l2x.compare import run_compare as l2x_compare
    from discograd.experiments.l2x.train import L2XConfig

    l2x = L2XConfig.quick(task="xor", num_train=200, num_val=50, num_test=50, epochs=1)
    kwargs = {"progress": False, "plot": False, "num_threads": 1}
    a = l2x_compare(["imle", "simple"], [0], l2x, tmp_path / "l2x-local", **kwargs)
    b = l2x_compare(["imle", "simple"], [0], l2x, tmp_path / "l2x-ray", executor="ray", **kwargs)
    assert [_strip(r) for r in a["runs"]] == [_strip(r) for r in b["runs"]]

    dvae = DVAEConfig.quick(epochs=1, num_train=100, method="cat_imle")
    a = dvae_compare(["cat_imle", "cat_straight_through"], [0], dvae, tmp_path / "dvae-local", **kwargs)
    b = dvae_compare(["cat_imle", "cat_straight_through"], [0], dvae, tmp_path / "dvae-ray", executor="ray", **kwargs)
    assert [_strip(r) for r in a["runs"]] == [_strip(r) for r in b["runs"]]


def test_a_failing_ray_task_raises_its_error(tmp_path, ray_instance):
    missing = tmp_path / "no-such-data"
    bad = RunTask("warcraft", {**_config_dict(_tiny()), "data_dir": str(missing)}, str(tmp_path / "bad"),
                  options={"plot": False}, num_threads=1)
    ok = RunTask("warcraft", _config_dict(_tiny(epochs=1)), str(tmp_path / "ok"), options={"plot": False},
                 num_threads=1)
    with pytest.raises((ValueError, FileNotFoundError)) as info:  # the task's own error type
        run_tasks([ok, bad], "ray", progress=False)
    assert str(missing) in str(info.value)


def _config_dict(config):
    from dataclasses import asdict

    return asdict(config)


def test_the_ray_executor_without_ray_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    task = RunTask("warcraft", _config_dict(_tiny()), str(tmp_path / "run"))
    with pytest.raises(ImportError, match=r"discograd\[distributed\]"):
        run_tasks([task], "ray", progress=False)


def test_executor_arguments_are_checked(tmp_path, capsys):
    task = RunTask("warcraft", _config_dict(_tiny()), str(tmp_path / "run"))
    with pytest.raises(ValueError, match="executor"):
        run_tasks([task], "dask")
    with pytest.raises(ValueError, match="ray executor"):
        run_tasks([task], "local", ray_address="auto")
    with pytest.raises(ValueError, match="experiment"):
        RunTask("tsp", {}, "x")
    # a Ray task asks for a GPU when its run is on CUDA, unless told otherwise
    assert task.gpus == 0.0
    assert RunTask("warcraft", {**task.config, "device": "cuda:1"}, "x").gpus == 1.0
    assert RunTask("warcraft", {**task.config, "device": "cuda"}, "x", num_gpus=0.5).gpus == 0.5
    assert main(["compare", "--quick", "--ray-address", "auto", "--no-progress"]) == 2
    assert "--executor ray" in capsys.readouterr().err
    assert main(["dvae", "compare", "--quick", "--executor", "ray", "--ray-num-cpus", "0", "--no-progress"]) == 2
    assert "--ray-num-cpus" in capsys.readouterr().err


def test_cli_compare_with_the_ray_executor(tmp_path, ray_instance, capsys):
    out = tmp_path / "cli"
    args = ["compare", "--quick", "--grid-size", "5", "--num-train", "12", "--num-val", "6", "--num-test", "6",
            "--epochs", "1", "--batch-size", "6", "--width", "8", "--methods", "imle", "--seeds", "0",
            "--num-threads", "1", "--cache-dir", str(tmp_path / "data"), "--no-progress", "--no-plot"]
    assert main([*args, "--out", str(out), "--executor", "ray"]) == 0
    assert main([*args, "--out", str(tmp_path / "local")]) == 0
    a = json.loads((out / "compare.json").read_text())["runs"]["imle/seed0"]
    b = json.loads((tmp_path / "local" / "compare.json").read_text())["runs"]["imle/seed0"]
    assert _strip(a) == _strip(b)
