"""Smoke runs of the experiments and the CLI (a few steps each), so they cannot rot."""

import json

import pytest

from discograd.experiments.cli import main
from discograd.experiments.synthetic import SyntheticConfig, run_synthetic


def test_synthetic_cli_writes_results_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["synthetic", "--num-repetitions", "4", "--num-steps", "6", "--eval-every", "2", "--num-eval-samples", "8",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| imle_sog |" in printed and "| exact |" in printed
    for name in ("config.json", "curves.json", "results.json", "results.md", "curves.png"):
        assert (out / name).stat().st_size > 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == {"imle_sog", "imle_gumbel", "straight_through", "exact"}
    curves = json.loads((out / "curves.json").read_text())["curves"]
    assert curves["exact"]["steps"] == [0, 2, 4, 6]
    # the exact gradient decreases the exact gap; gaps are non-negative
    exact = curves["exact"]["exact_gap"]
    assert exact[-1] < exact[0] and min(exact) >= 0
    # resume: a second run with the same config reuses the finished methods (no tmp files left behind)
    before = (out / "curves.json").read_text()
    assert main(argv) == 0
    assert (out / "curves.json").read_text() == before
    assert not list(out.glob(".*tmp*"))


def test_synthetic_is_reproducible():
    config = SyntheticConfig(num_repetitions=3, num_steps=3, methods=["imle_sog", "straight_through"], num_eval_samples=4)
    a = run_synthetic(config, None, progress=False, plot=False)
    b = run_synthetic(config, None, progress=False, plot=False)
    for method in config.methods:
        assert a["methods"][method]["final_exact_gap"] == b["methods"][method]["final_exact_gap"]


@pytest.mark.parametrize("argv,match", [
    (["synthetic", "--num-steps", "0"], "num_steps must be >= 1"),
    (["synthetic", "--k", "12"], "need 1 <= k <= n"),
    (["synthetic", "--learning-rate", "-1"], "learning_rate must be > 0"),
])
def test_cli_rejects_bad_config(argv, match, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path), "--no-progress"]) == 2
    assert match in capsys.readouterr().err
