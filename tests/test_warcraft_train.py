"""Warcraft model, methods, metrics, run folders, resume, the CLI and the comparison (tiny data, seconds)."""

import argparse
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from discograd.experiments.warcraft import train as train_module
from discograd.experiments.warcraft.commands import (
    add_warcraft_commands,
    run_warcraft_command,
)
from discograd.experiments.warcraft.compare import run_compare, run_table2
from discograd.experiments.warcraft.data import generate_warcraft
from discograd.experiments.warcraft.model import WarcraftNet
from discograd.experiments.warcraft.train import (
    METHODS,
    WarcraftConfig,
    _Split,
    benchmark_epoch,
    build_method,
    build_model,
    path_metrics,
    run_warcraft,
)
from discograd.losses import hamming_loss
from discograd.solvers import GridShortestPath
from discograd.targets import LabelTarget


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny steps on one thread: torch's thread wake-ups would dominate them on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def data():
    return generate_warcraft(12, num_train=16, num_val=6, num_test=6, seed=0)


def tiny(**overrides):
    """A config that trains in about a second: 12 maps, width-8 network."""
    values = {"num_train": 12, "num_val": 6, "num_test": 6, "epochs": 1, "batch_size": 6, "width": 8,
              "lr_milestones": [], "eval_batch_size": 6, "learning_rate": 1e-3}
    values.update(overrides)
    return WarcraftConfig(**values)


# -- model --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid_size", [12, 18])
@pytest.mark.parametrize("activation", ["abs", "softplus", "identity"])
def test_model_shapes_and_non_negative_costs(grid_size, activation):
    torch.manual_seed(0)
    net = WarcraftNet(grid_size, width=16, cost_activation=activation)
    costs = net(torch.randn(3, 3, 8 * grid_size, 8 * grid_size))
    assert costs.shape == (3, grid_size, grid_size)
    assert torch.isfinite(costs).all()
    if activation == "softplus":
        assert (costs >= np.log(2) - 1e-6).all()  # softplus of a non-negative channel mean
    else:
        assert (costs >= 0).all()


def test_model_is_the_resnet18_stem():
    net = WarcraftNet(12)
    assert net.conv1.kernel_size == (7, 7) and net.conv1.stride == (2, 2) and net.conv1.out_channels == 64
    assert len(net.layer1) == 2 and all(b.conv1.out_channels == 64 for b in net.layer1)
    # ResNet18's conv1 + bn1 + layer1 parameter count
    assert sum(p.numel() for p in net.parameters()) == 3 * 64 * 49 + 2 * 64 + 4 * (64 * 64 * 9 + 2 * 64)


def test_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="cost_activation must be one of"):
        WarcraftNet(12, cost_activation="relu")
    with pytest.raises(ValueError, match="at least 4 \\* grid_size"):
        WarcraftNet(12)(torch.zeros(1, 3, 40, 40))


def test_build_model_is_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = build_model(tiny(seed=3))
    assert torch.equal(torch.get_rng_state(), state)
    b = build_model(tiny(seed=3))
    c = build_model(tiny(seed=4))
    assert torch.equal(a.conv1.weight, b.conv1.weight) and not torch.equal(a.conv1.weight, c.conv1.weight)


# -- methods --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_every_method_takes_finite_steps(method, data):
    config = tiny(method=method, num_samples=2)
    split = _Split(data.train, 8, None, None, "cpu")
    config = config.resolve()
    model = build_model(config)
    layer = build_method(config, torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(2):
        images, weights, paths = split.batch(np.arange(4 * step, 4 * step + 4))
        losses = layer.loss(model(images), paths, weights)
        assert losses.dim() == 2 and losses.shape[-1] == 4 and torch.isfinite(losses).all()
        optimizer.zero_grad()
        layer.objective(losses).backward()
        grads = [p.grad for p in model.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(bool(g.abs().sum() > 0) for g in grads), f"{method}: zero gradient"
        optimizer.step()


def test_resolved_config_fills_method_defaults():
    imle = WarcraftConfig(method="imle").resolve()
    assert imle.noise_k == 15 and imle.step_size == 20.0 and imle.target_temperature == 1.0
    assert WarcraftConfig(method="imle", grid_size=30).resolve().noise_k == 39  # int(1.3 K)
    aimle = WarcraftConfig(method="aimle").resolve()
    assert aimle.aimle_target_nonzeros == 12.0 and aimle.step_size is None
    assert WarcraftConfig(method="two_stage").resolve().noise_k is None
    assert WarcraftConfig(method="imle_mu_map").resolve().target_temperature == 0.0
    # "sum" keeps the cost move λ|g| of "mean": λ divided by the batch size
    assert WarcraftConfig(method="blackbox", loss_reduction="sum").resolve().step_size == 20.0 / 70
    assert WarcraftConfig(method="blackbox", loss_reduction="sum", step_size=3.0).resolve().step_size == 3.0
    with pytest.raises(ValueError, match="loss_reduction must be one of"):
        WarcraftConfig(loss_reduction="max").validate()


def test_table2_methods_default_to_the_original_runs_settings():
    """tf-imle WARCRAFT maprop.py and the Table 2 run names: μ-μ λ 10 with SoG(int(1.3 K), 10 terms), τ = τ' = 1,
    one sample; M-M λ 50 without noise; blackbox λ 20; perturbed optimizer σ 0.01, one sample; |m| costs,
    the Hamming loss averaged over the batch of 70."""
    mumu = WarcraftConfig(method="imle_mumu").resolve()
    assert (mumu.step_size, mumu.noise_k, mumu.noise_terms, mumu.temperature, mumu.target_temperature,
            mumu.num_samples) == (10.0, 15, 10, 1.0, 1.0, 1)
    assert WarcraftConfig(method="imle_mm").resolve().step_size == 50.0
    assert WarcraftConfig(method="blackbox").resolve().step_size == 20.0
    fy = WarcraftConfig(method="perturbed_fy").resolve()
    assert fy.fy_noise_scale == 0.01 and fy.num_samples == 1
    base = WarcraftConfig()
    assert (base.cost_activation, base.loss_reduction, base.batch_size, base.learning_rate, base.epochs,
            base.lr_milestones) == ("abs", "mean", 70, 5e-4, 50, [30, 40])
    from discograd.targets import KnownTarget
    assert isinstance(build_method(mumu).layer.target, KnownTarget)
    assert isinstance(build_method(WarcraftConfig(method="imle_mu_map").resolve()).layer.target, LabelTarget)


def test_mumu_is_supervised_by_the_true_costs(data):
    """imle_mumu's gradient is (1/λ)[MAP(θ + ε) − MAP(−true cost + ε)] with the same ε, whatever the loss and
    its reduction (as in the original's mode 4: the upstream gradient is not used)."""
    split = _Split(data.train, 6, None, None, "cpu")
    _, weights, paths = split.batch(np.arange(6))
    config = tiny(method="imle_mumu").resolve()
    method = build_method(config, torch.Generator().manual_seed(7))
    costs = (1.0 + torch.rand(6, 12, 12, generator=torch.Generator().manual_seed(1))).requires_grad_()
    method.objective(method.loss(costs, paths, weights)).backward()
    eps = method.layer.noise.sample((1, 6, 12, 12), generator=torch.Generator().manual_seed(7))[0]
    solver = GridShortestPath()
    expected = (solver(-costs.detach() + eps) - solver(-weights + eps)) / config.step_size
    torch.testing.assert_close(costs.grad, -expected)  # θ = −cost
    assert costs.grad.abs().sum() > 0


def test_blackbox_and_mm_differ_at_the_original_step_sizes(data):
    """With g = ±1/70 (a batch of 70) and λ = 20, blackbox's target moves costs by 0.29, not to the label:
    unlike λ = 5 on a summed loss (the defaults before 0.1.0), blackbox is not Eq. 14's M-M in disguise."""
    split = _Split(data.train, 16, None, None, "cpu")
    _, weights, paths = split.batch(np.arange(70) % 16)
    costs = weights + 3.0 * torch.rand(70, 12, 12, generator=torch.Generator().manual_seed(3))
    diffs = {}
    for name in ("blackbox", "imle_mm"):
        c = costs.clone().requires_grad_()
        config = tiny(method=name, batch_size=70).resolve()
        method = build_method(config)
        method.objective(method.loss(c, paths, weights)).backward()
        diffs[name] = (c.grad * config.step_size).round()  # undo 1/λ: MAP(θ') − MAP(θ), entries in {−1, 0, 1}
    assert diffs["imle_mm"].abs().sum() > 0
    # M-M's target is the label on every map; blackbox's small move reaches it on some maps only
    reached = (diffs["blackbox"] == diffs["imle_mm"]).flatten(1).all(1)
    assert 0 < int(reached.sum()) < 70


# -- metrics --------------------------------------------------------------------------------------------------


def test_path_metrics_count_equal_cost_paths_as_optimal():
    costs = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]).expand(3, 3, 3)
    label = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])    # cost 4, around the top
    mirror = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])   # cost 4, around the bottom
    centre = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])   # cost 7, through the middle
    metrics = path_metrics(torch.stack([label, mirror, centre]), label.expand(3, 3, 3), costs)
    assert metrics["optimal"].tolist() == [1.0, 1.0, 0.0]
    assert metrics["exact"].tolist() == [1.0, 0.0, 0.0]
    assert metrics["regret"].tolist() == [0.0, 0.0, 3.0]
    assert metrics["cost_ratio"].tolist() == [1.0, 1.0, 7.0 / 4.0]
    assert metrics["hamming"].tolist() == [0.0, 4.0, 3.0]
    with pytest.raises(ValueError, match="same shape"):
        path_metrics(label, label[None], costs)


def test_path_metrics_relative_tolerance():
    """The original's below_0.0001_percent_acc: cost ratio − 1 below 1e-6."""
    label = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    other = torch.tensor([[[1.0, 1.0], [0.0, 1.0]]])
    costs = torch.tensor([[[1000.0, 0.0], [0.0, 1000.0]]], dtype=torch.float64)
    costs_close = costs.clone()
    costs_close[0, 0, 1] = 1e-3  # 1e-3 / 2000 = 5e-7 relative
    assert path_metrics(other, label, costs_close)["optimal"].item() == 1.0
    costs_far = costs.clone()
    costs_far[0, 0, 1] = 1e-2  # 5e-6 relative
    assert path_metrics(other, label, costs_far)["optimal"].item() == 0.0


# -- run folder and resume -----------------------------------------------------------------------------------


def test_run_folder_contents(data, tmp_path):
    out = tmp_path / "run"
    final = run_warcraft(tiny(method="imle"), out, data=data, progress=False)
    for name in ("config.json", "metrics.jsonl", "metrics.csv", "final.json", "curves.png", "paths.png",
                 "checkpoints/last.pt"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.rglob(".*tmp*"))
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "imle" and config["noise_k"] == 15 and config["step_size"] == 20.0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    assert rows[0]["train_loss"] is None and rows[1]["train_loss"] > 0
    for key in ("optimal_pct", "exact_pct", "cost_ratio", "regret", "hamming"):
        assert f"val_{key}" in rows[1] and f"test_{key}" in rows[1]
    assert 0 <= rows[1]["test_optimal_pct"] <= 100 and rows[1]["test_cost_ratio"] >= 1.0 - 1e-9
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["epoch", "lr", "train_loss", "train_seconds"]
    assert final == json.loads((out / "final.json").read_text())
    assert final["test"]["optimal_pct"] == rows[1]["test_optimal_pct"]
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and set(state) >= {"model", "optimizer", "scheduler", "generator", "layer", "history"}
    # a finished run is not trained again; a different config in the same folder is refused
    assert run_warcraft(tiny(method="imle"), out, data=data, progress=False) == final
    with pytest.raises(ValueError, match="different config \\(differs in: learning_rate\\)"):
        run_warcraft(tiny(method="imle", learning_rate=0.1), out, data=data, progress=False)


def _weights(out):
    return torch.load(out / "checkpoints" / "last.pt", weights_only=True)


def _strip_times(final):
    final = dict(final)
    for key in ("train_seconds", "environment"):
        final.pop(key)
    return final


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 truncated", bytes(range(256)) * 4])
def test_a_corrupt_checkpoint_is_named_with_what_to_do(data, tmp_path, damage):
    out = tmp_path / "run"
    run_warcraft(tiny(epochs=2), out, data=data, progress=False, plot=False, stop_after_epochs=1)
    (out / "checkpoints" / "last.pt").write_bytes(damage)
    with pytest.raises(ValueError, match=r"the checkpoint .*last.pt is corrupt or not a discograd checkpoint .*delete "
                                         r"it to restart") as info:
        run_warcraft(tiny(epochs=2), out, data=data, progress=False, plot=False)
    assert "weights_only=False" not in str(info.value)


def test_resume_with_another_thread_count_is_refused(data, tmp_path):
    out = tmp_path / "run"
    run_warcraft(tiny(epochs=2), out, data=data, progress=False, plot=False, stop_after_epochs=1, num_threads=1)
    with pytest.raises(ValueError, match=r"trained with 1 torch thread\(s\); resuming it with 2 would change its "
                                         r"result .* --num-threads 1"):
        run_warcraft(tiny(epochs=2), out, data=data, progress=False, plot=False, num_threads=2)
    run_warcraft(tiny(epochs=2), out, data=data, progress=False, plot=False, num_threads=1)  # the same: resumes


def test_result_files_follow_the_umask(data, tmp_path):
    import os

    previous = os.umask(0o022)
    try:
        out = tmp_path / "run"
        run_warcraft(tiny(), out, data=data, progress=False, plot=False)
    finally:
        os.umask(previous)
    for name in ("config.json", "final.json", "metrics.jsonl", "metrics.csv", "checkpoints/last.pt"):
        assert (out / name).stat().st_mode & 0o777 == 0o644, name


def test_a_damaged_json_file_is_named(data, tmp_path):
    out = tmp_path / "run"
    run_warcraft(tiny(), out, data=data, progress=False, plot=False)
    (out / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config.json is not valid JSON .* delete it"):
        run_warcraft(tiny(), out, data=data, progress=False, plot=False)


def test_resume_gives_the_uninterrupted_result(data, tmp_path, monkeypatch):
    # AIMLE: its β is state that must survive; a milestone inside the run exercises the scheduler
    config = tiny(method="aimle", epochs=3, lr_milestones=[2], num_samples=2)
    straight = run_warcraft(config, tmp_path / "straight", data=data, progress=False, plot=False)

    # stopped after 2 epochs (as if killed between epochs), then resumed
    stopped = tmp_path / "stopped"
    run_warcraft(config, stopped, data=data, progress=False, plot=False, stop_after_epochs=2)
    assert _weights(stopped)["epoch"] == 2 and not (stopped / "final.json").exists()
    assert _weights(stopped)["layer"]["_extra_state"]["target"]["num_updates"] == 4
    resumed = run_warcraft(config, stopped, data=data, progress=False, plot=False)

    # interrupted in the middle of epoch 3 (Ctrl-C), then resumed
    interrupted = tmp_path / "interrupted"
    calls = {"n": 0}
    real_step = train_module._step

    def flaky_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # the second step of epoch 3
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "_step", flaky_step)
    with pytest.raises(KeyboardInterrupt):
        run_warcraft(config, interrupted, data=data, progress=False, plot=False)
    monkeypatch.setattr(train_module, "_step", real_step)
    assert _weights(interrupted)["epoch"] == 2
    again = run_warcraft(config, interrupted, data=data, progress=False, plot=False)

    reference = _weights(tmp_path / "straight")
    for final, folder in ((resumed, stopped), (again, interrupted)):
        assert _strip_times(final) == _strip_times(straight)
        state = _weights(folder)
        for key, value in reference["model"].items():
            assert torch.equal(state["model"][key], value), key
        assert torch.equal(state["generator"], reference["generator"])
        assert state["layer"] == reference["layer"]
        assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
        assert [r["test_regret"] for r in state["history"]] == [r["test_regret"] for r in reference["history"]]


def test_training_is_reproducible_and_seed_dependent(data):
    a = run_warcraft(tiny(method="straight_through"), None, data=data, progress=False)
    b = run_warcraft(tiny(method="straight_through"), None, data=data, progress=False)
    c = run_warcraft(tiny(method="straight_through", seed=1), None, data=data, progress=False)
    assert a["test"] == b["test"]
    assert a["test"] != c["test"] or a["val"] != c["val"]


def test_run_rejects_a_grid_size_that_does_not_match_the_data(data):
    with pytest.raises(ValueError, match="grid_size is 18 but the data has 12 x 12 grids"):
        run_warcraft(tiny(grid_size=18), None, data=data, progress=False)


@pytest.mark.parametrize("overrides,match", [
    ({"method": "sgd"}, "method must be one of"),
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"lr_milestones": [30, 10]}, "lr_milestones must be increasing"),
    ({"learning_rate": -1.0}, "learning_rate must be a finite number > 0"),
    ({"method": "imle", "temperature": 0.0}, "temperature must be > 0 for method 'imle'"),
    ({"device": "tpu"}, "device must be 'cpu', 'cuda' or 'cuda:N'"),
])
def test_config_validation_names_the_rule(overrides, match):
    with pytest.raises(ValueError, match=match):
        tiny(**overrides).validate()


# -- CLI -----------------------------------------------------------------------------------------------------


def _parser():
    parser = argparse.ArgumentParser(prog="discograd")
    sub = parser.add_subparsers(dest="command", required=True)
    add_warcraft_commands(sub, demo_name="demo")
    return parser


def _main(argv):
    return run_warcraft_command(_parser().parse_args(argv))


@pytest.mark.parametrize("argv,match", [
    (["warcraft", "--method", "sgd"], "argument --method: invalid choice: 'sgd' (choose from imle, aimle"),
    (["compare", "--methods", "imle", "adam"], "argument --methods: invalid choice: 'adam'"),
    (["warcraft", "--cost-activation", "relu"], "invalid choice: 'relu' (choose from abs, softplus, identity)"),
    (["warcraft", "--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
])
def test_cli_rejects_bad_choices(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(argv)
    assert exc.value.code == 2
    assert match.replace("'", "") in capsys.readouterr().err.replace("'", "")


@pytest.mark.parametrize("argv,match", [
    (["warcraft", "--epochs", "0"], "epochs must be an integer >= 1; got 0"),
    (["warcraft", "--lr-milestones", "5", "3"], "lr_milestones must be increasing integers >= 1"),
    (["warcraft", "--step-size", "-2"], "step_size must be a finite number > 0"),
    (["warcraft", "--num-threads", "0"], "--num-threads must be an integer >= 1"),
    (["compare", "--seeds", "0", "-1"], "seeds must be one or more integers >= 0"),
    (["compare", "--methods", "imle", "imle"], "methods must not repeat"),
    (["table2", "--grid-sizes", "12", "12"], "grid_sizes must be distinct"),
    (["table2", "--grid-sizes", "12", "1"], "grid_size must be"),
    (["table2", "--data-dir", "somewhere"], "data_dir names one grid size's folder"),
])
def test_cli_reports_bad_values(argv, match, capsys, tmp_path):
    assert _main(argv + ["--quick", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
                         "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"discograd {argv[0]}: error:" in err and match in err


def test_cli_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["warcraft", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for fragment in ("--method {imle,aimle,imle_mm,imle_mumu,imle_mu_map,blackbox,perturbed_fy,spo_plus,straight_through,"
                     "two_stage}", "--loss-reduction {mean,sum}",
                     "--lr-milestones", "(default: 30 40)", "--data-dir", "--step-size", "resumes an interrupted run",
                     "--benchmark-epoch", "--quick"):
        assert fragment in text, fragment


def test_cli_trains_resumes_and_benchmarks(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["warcraft", "--quick", "--num-train", "10", "--num-val", "4", "--num-test", "4", "--epochs", "1",
            "--batch-size", "5", "--width", "8", "--method", "blackbox", "--out", str(out), "--cache-dir",
            str(tmp_path / "cache"), "--no-progress", "--no-plot", "--num-threads", "1"]
    assert _main(argv) == 0
    printed = capsys.readouterr().out
    assert "blackbox, 12x12, 1 epochs: test" in printed and "% optimal cost" in printed
    assert json.loads((out / "config.json").read_text())["step_size"] == 20.0
    assert _main(argv) == 0  # finished: read back, not retrained
    assert "reused the finished run in" in capsys.readouterr().out
    assert list((tmp_path / "cache").iterdir())  # the generated maps were cached
    bench = ["warcraft", "--benchmark-epoch", "--quick", "--num-train", "8", "--batch-size", "4", "--no-progress",
             "--out", str(tmp_path / "bench")]
    assert _main(bench) == 0
    printed = capsys.readouterr().out
    assert "| imle_S10 |" in printed and "× two-stage" in printed
    result = json.loads((tmp_path / "bench" / "benchmark_epoch.json").read_text())
    assert result["results"]["two_stage"]["ratio_to_two_stage"] == 1.0


# -- compare and benchmark -----------------------------------------------------------------------------------


def test_compare_writes_its_table(data, tmp_path):
    out = tmp_path / "compare"
    results = run_compare(["imle_mumu", "two_stage"], [0, 1], tiny(), out, data=data, progress=False)
    for name in ("compare.md", "compare.csv", "runs.csv", "compare.json", "compare.png",
                 "imle_mumu/seed0/final.json", "two_stage/seed1/final.json"):
        assert (out / name).stat().st_size > 0, name
    table = (out / "compare.md").read_text()
    assert "| imle_mumu |" in table and "| two_stage |" in table and "97.2" in table  # the paper's μ-μ at K = 12
    assert "mean ± std over 2 seeds (0, 1)" in table
    row = results["table"]["two_stage"]["optimal_pct"]
    runs = [results["runs"][f"two_stage/seed{s}"]["test"]["optimal_pct"] for s in (0, 1)]
    assert row["mean"] == pytest.approx(np.mean(runs)) and row["std"] == pytest.approx(np.std(runs, ddof=1))
    lines = (out / "compare.csv").read_text().splitlines()
    assert lines[0].startswith("method,num_seeds,optimal_pct_mean,optimal_pct_std") and len(lines) == 3
    assert len((out / "runs.csv").read_text().splitlines()) == 5
    # a second call reuses the finished runs
    again = run_compare(["imle_mumu", "two_stage"], [0, 1], tiny(), out, data=data, progress=False, plot=False)
    assert again["table"] == results["table"]


def test_table2_puts_grid_sizes_side_by_side(tmp_path):
    out = tmp_path / "table2"
    config = tiny(num_train=6, num_val=3, num_test=4, width=4)
    results = run_table2(["imle_mm", "two_stage"], [0], config, [12, 18], out, progress=False,
                         cache_dir=tmp_path / "cache", num_threads=2)
    # the runs' thread count is recorded, not the ambient one (1, set by the one_thread fixture)
    assert results["compare"][18]["environment"]["num_threads"] == 2
    for name in ("table2.md", "table2.csv", "table2.json", "table2.png", "K12/compare.md",
                 "K18/imle_mm/seed0/final.json", "K18/two_stage/seed0/paths.png"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "K18/imle_mm/seed0/config.json").read_text())["grid_size"] == 18
    table = (out / "table2.md").read_text()
    assert "| method | 12 x 12 | 18 x 18 |" in table and "one seed (0)" in table
    row = next(line for line in table.splitlines() if line.startswith("| imle_mm |"))
    cells = [c.strip() for c in row.strip("|").split("|")[1:]]
    for cell, k, paper in zip(cells, (12, 18), (95.2, 94.4)):  # the paper's M-M in brackets
        ours = results["compare"][k]["table"]["imle_mm"]["optimal_pct"]["mean"]
        assert cell == f"{ours:.1f} ({paper})"  # one seed: no spread shown
    assert "(" not in next(line for line in table.splitlines() if line.startswith("| two_stage |"))
    lines = (out / "table2.csv").read_text().splitlines()
    assert len(lines) == 5 and lines[1].startswith("imle_mm,12,1,") and lines[1].endswith(",95.2")
    # the same call again reuses every finished run
    again = run_table2(["imle_mm", "two_stage"], [0], config, [12, 18], out, progress=False, plot=False,
                       cache_dir=tmp_path / "cache")
    assert all(again["compare"][k]["table"] == results["compare"][k]["table"] for k in (12, 18))
    with pytest.raises(ValueError, match="grid_sizes must be distinct and non-empty"):
        run_table2(["imle_mm"], [0], config, [], out)


def test_cli_table2(tmp_path, capsys):
    argv = ["table2", "--quick", "--grid-sizes", "12", "--methods", "two_stage", "--seeds", "0", "--num-train", "6",
            "--num-val", "3", "--num-test", "3", "--width", "4", "--epochs", "1", "--batch-size", "3", "--out",
            str(tmp_path / "t2"), "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--no-plot"]
    assert _main(argv) == 0
    printed = capsys.readouterr().out
    assert "| two_stage |" in printed and "wrote " in printed and (tmp_path / "t2" / "table2.md").exists()


def test_benchmark_epoch_splits_the_step(data):
    result = benchmark_epoch(12, num_maps=12, batch_size=4, max_batches=2, progress=False)
    assert result["batches_measured"] == 2 and result["num_batches"] == 3
    rows = result["results"]
    assert set(rows) == {"two_stage", "imle_S1", "imle_S10"}
    for row in rows.values():
        parts = row["data"] + row["network"] + row["solver"] + row["estimator"]
        assert row["total"] == pytest.approx(parts) and min(row[k] for k in ("data", "network", "solver")) >= 0
    assert rows["two_stage"]["solver"] == 0.0 and rows["imle_S10"]["solver"] > 0


def test_demo_config_is_valid():
    from discograd.experiments.warcraft.compare import DEMO_CONFIG, DEMO_METHODS

    replace(DEMO_CONFIG).validate()
    assert DEMO_CONFIG.grid_size == 12 and set(DEMO_METHODS) == {"imle", "blackbox", "straight_through"}
