"""``discograd pto``: the predict-then-optimize benchmark runs every method, learns, resumes and writes its files."""

import json
import math
from dataclasses import replace

import pytest
import torch

from discograd.experiments.cli import main
from discograd.experiments.pto.compare import (
    NOTEBOOK_REGRET_PCT,
    PAPER_GRID,
    run_compare,
    settings_for,
)
from discograd.experiments.pto.train import (
    METHOD_DEFAULTS,
    METHODS,
    PTOConfig,
    load_data,
    make_method,
    run_pto,
)

TINY = {"num_train": 96, "num_test": 64, "epochs": 1, "batch_size": 32}


@pytest.fixture(scope="module")
def tiny_data():
    return load_data(PTOConfig(**TINY))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_with_finite_regret(method, tiny_data):
    final = run_pto(PTOConfig(method=method, **TINY), data=tiny_data, progress=False, plot=False)
    assert final["epochs_done"] == 1
    assert all(math.isfinite(v) and v >= 0 for v in final["regret_curve_pct"])
    assert math.isfinite(final["test_mean_normalized_regret_pct"])


def test_defaults_are_pyepo_notebook_settings():
    config = PTOConfig().resolve()
    assert (config.num_train, config.num_test, config.num_features, config.deg, config.noise_width,
            config.data_seed, config.split_seed, config.batch_size, config.learning_rate, config.epochs) == \
        (1000, 1000, 5, 4, 0.5, 42, 42, 32, 1e-2, 20)
    knapsack = PTOConfig(problem="knapsack").resolve()  # notebooks/04 2D knapsack Solution Visualization
    assert (knapsack.num_train, knapsack.num_items, knapsack.dim, knapsack.capacity, knapsack.deg, knapsack.data_seed,
            knapsack.split_seed, knapsack.epochs, knapsack.learning_rate) == (100, 16, 2, 20.0, 6, 135, 246, 40, 0.1)
    assert PTOConfig(problem="knapsack", num_train=500, epochs=3).resolve().num_train == 500  # options win
    pfy = PTOConfig(problem="knapsack", method="pfy").resolve()  # the knapsack notebook's PFYL: 10 samples, σ 0.5
    assert (pfy.num_samples, pfy.sigma) == (10, 0.5)
    assert PTOConfig(problem="knapsack", method="nce").resolve().solve_ratio == 0.1
    assert PTOConfig(method="pfy").resolve().num_samples == 1  # the shortest-path notebook's
    assert METHOD_DEFAULTS["dbb"] == {"lambd": 20.0} and METHOD_DEFAULTS["dpo"] == {"num_samples": 10, "sigma": 1.0}
    assert NOTEBOOK_REGRET_PCT[("shortest_path", "spo_plus")] == pytest.approx(7.4135)
    assert len(settings_for(PTOConfig(), "paper")) == len(PAPER_GRID) == 24


def test_knapsack_data_is_the_notebooks():
    from sklearn.model_selection import train_test_split

    from discograd.pto import knapsack_data

    data = load_data(PTOConfig(problem="knapsack"))
    weights, x, c = knapsack_data(1100, 5, 16, deg=6, dim=2, noise_width=0.5)  # the notebook's call
    x_train, _, _, c_test = train_test_split(x, c, test_size=1000, random_state=246)
    assert (data.weights == weights).all() and (data.x_train == x_train).all() and (data.c_test == c_test).all()


def test_split_is_sklearns_on_pyepos_data():
    from sklearn.model_selection import train_test_split

    from discograd.pto import shortest_path_data

    config = PTOConfig(**TINY)
    data = load_data(config)
    x, c = shortest_path_data(160, 5, (5, 5), deg=4, noise_width=0.5, seed=42)
    x_train, _x_test, _c_train, c_test = train_test_split(x, c, test_size=64, random_state=42)
    assert (data.x_train == x_train).all() and (data.c_test == c_test).all()


def test_spo_plus_learns_the_shortest_path(tiny_data):
    config = PTOConfig(method="spo_plus", num_train=400, num_test=200, epochs=5, deg=1, noise_width=0.0)
    final = run_pto(config, progress=False, plot=False)
    curve = final["regret_curve_pct"]
    assert curve[-1] < 0.5 * curve[0], curve  # an untrained linear model starts far off; 5 epochs halve it


@pytest.mark.parametrize("method", ["two_stage", "spo_plus", "dbb", "nid"])
def test_the_minimisation_sign_reaches_the_solvers(method, tiny_data):
    """The methods call the maximising solver on −ĉ: with ĉ = the true costs the decision is optimal and the
    loss vanishes; with ĉ = −c (the worst decision) it does not."""
    from discograd.experiments.pto.train import build_solver
    from discograd.pto import OptDataset

    config = PTOConfig(method=method, **TINY).resolve()
    solver = build_solver(config, tiny_data)
    data = OptDataset(solver, tiny_data.x_train, tiny_data.c_train, sense="min")
    loss = make_method(config, solver, data.sols, torch.Generator().manual_seed(0))
    assert float(loss(data.costs.clone(), data.costs, data.sols, data.objs).detach()) == pytest.approx(0.0, abs=1e-4)
    assert float(loss(-data.costs, data.costs, data.sols, data.objs).detach()) > 0.1


def test_resume_ends_with_the_numbers_of_an_uninterrupted_run(tmp_path, tiny_data):
    config = PTOConfig(method="pfy", **{**TINY, "epochs": 3})
    whole = run_pto(config, tmp_path / "whole", data=tiny_data, progress=False, plot=False)
    run_pto(config, tmp_path / "cut", data=tiny_data, progress=False, plot=False, stop_after_epochs=1)
    resumed = run_pto(config, tmp_path / "cut", data=tiny_data, progress=False, plot=False)
    assert resumed["regret_curve_pct"] == whole["regret_curve_pct"]
    again = run_pto(config, tmp_path / "cut", data=tiny_data, progress=False, plot=False)  # finished: reused
    assert again == json.loads((tmp_path / "cut" / "final.json").read_text())


@pytest.mark.parametrize("problem", ["knapsack", "tsp"])
def test_the_other_problems_run(problem):
    pytest.importorskip("numba")
    config = PTOConfig(problem=problem, method="spo_plus", num_train=64, num_test=32, epochs=1,
                       **({"num_nodes": 6} if problem == "tsp" else {}))
    final = run_pto(config, progress=False, plot=False)
    assert all(math.isfinite(v) for v in final["regret_curve_pct"])


def test_compare_writes_its_table_and_figure(tmp_path, tiny_data):
    pytest.importorskip("matplotlib")
    results = run_compare(["spo_plus", "two_stage"], [0, 1], PTOConfig(**TINY), tmp_path, progress=False)
    for name in ("compare.md", "compare.csv", "runs.csv", "compare.json", "compare.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert {row["method"] for row in results["table"]} == {"spo_plus", "two_stage"}
    assert all(row["seeds"] == 2 for row in results["table"])
    assert (tmp_path / "n96-deg4-e0.5" / "spo_plus" / "seed1" / "final.json").exists()


def test_cli_quick_run(tmp_path, capsys):
    code = main(["pto", "--quick", "--methods", "spo_plus", "--epochs", "1", "--no-progress", "--no-plot",
                 "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "spo_plus" in out and (tmp_path / "compare.md").exists()


@pytest.mark.parametrize("overrides, message", [
    ({"problem": "vrp"}, "problem must be one of"),
    ({"method": "spo"}, "method must be one of"),
    ({"num_train": 0}, "num_train must be an integer >= 1"),
    ({"noise_width": -1.0}, "noise_width must be finite and >= 0"),
    ({"method": "spo_plus", "lambd": 10.0}, "does not use"),
    ({"method": "dbb", "lambd": 0.0}, "lambd must be finite and > 0"),
    ({"method": "nce", "solve_ratio": 1.5}, "solve_ratio must be in"),
])
def test_bad_configs_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        replace(PTOConfig(), **overrides).resolve()


def test_cli_reports_bad_options(capsys):
    assert main(["pto", "--quick", "--seeds", "-1", "--no-progress"]) == 2
    assert "seeds must be" in capsys.readouterr().err


def test_aimle_starts_where_pyepos_does(tiny_data):
    """PyEPO 2.2.7's adaptiveImplicitMLE starts with alpha = 1.0 (not 0: that gives no gradient until alpha has
    grown, which on the 100-instance knapsack notebook is most of training)."""
    from discograd.experiments.pto.train import build_solver
    from discograd.pto import OptDataset

    config = PTOConfig(method="aimle", **TINY).resolve()
    solver = build_solver(config, tiny_data)
    data = OptDataset(solver, tiny_data.x_train, tiny_data.c_train, sense="min")
    method = make_method(config, solver, data.sols, torch.Generator().manual_seed(0))
    assert float(method.module.target.beta) == 1.0
    model = torch.nn.Linear(5, 40)
    method(model(data.feats[:32]), data.costs[:32], data.sols[:32], data.objs[:32]).backward()
    assert float(model.weight.grad.abs().sum()) > 0  # the first step already has a gradient
