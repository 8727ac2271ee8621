"""Smoke runs of the experiments and the CLI (a few steps each), so they cannot rot."""

import json

import pytest

from discograd.experiments.cli import main
from discograd.experiments.synthetic import (
    DEFAULT_METHODS,
    METHODS,
    STUDY_METHODS,
    StudyConfig,
    SyntheticConfig,
    run_study,
    run_synthetic,
)


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


def test_demo_methods_are_unchanged():
    """The README quotes the demo: its default methods, and their random streams (seeded by position), stay."""
    assert SyntheticConfig().methods == ["imle_sog", "imle_gumbel", "straight_through", "exact"]
    assert METHODS[:4] == DEFAULT_METHODS == ("imle_sog", "imle_gumbel", "straight_through", "exact")
    assert set(STUDY_METHODS) == set(METHODS)


def test_new_methods_run_and_exact_samplers_report_the_exact_gap():
    config = SyntheticConfig(num_repetitions=4, num_steps=4, eval_every=2, num_eval_samples=8, num_samples=2,
                             methods=["aimle", "simple", "score_function", "relaxed_topk"])
    results = run_synthetic(config, None, progress=False, plot=False)
    for method, row in results["methods"].items():
        assert 0 <= row["final_exact_gap"] < row["initial_exact_gap"] * 2, method
    for method in ("simple", "score_function"):  # exact samples of p: the sampled gap is the exact gap
        row = results["methods"][method]
        assert row["final_sampled_gap"] == row["final_exact_gap"]


def test_study_cli_writes_results_checks_claims_and_resumes(tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["study", "--quick", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Claims of the paper" in printed and "| score_function |" in printed
    for name in ("study_config.json", "grid.json", "study.json", "study.md", "grid.png", "gaps/curves.json",
                 "gaps/curves.png", "gaps/results.md"):
        assert (out / name).stat().st_size > 0, name
    study = json.loads((out / "study.json").read_text())
    assert set(study["gaps"]["methods"]) == set(STUDY_METHODS)
    assert len(study["grid"]) == 2 * 2 * 2  # (SoG, Gumbel) x 2 λ x 2 lr in the quick preset
    claims = study["claims"]
    for claim in ("a_sog_below_ste", "b_sog_beats_gumbel_grid", "c_score_function_slower"):
        assert set(claims[claim]) == {"exact", "sampled"}
        assert all(isinstance(claims[claim][gap]["holds"], bool) for gap in ("exact", "sampled"))
    assert claims["b_sog_beats_gumbel_grid"]["exact"]["cells"] == 4
    before = {name: (out / name).read_text() for name in ("grid.json", "gaps/curves.json")}
    assert main(argv + ["--no-plot"]) == 0
    assert {name: (out / name).read_text() for name in before} == before
    assert not list(out.rglob(".*tmp*"))


def test_study_without_a_folder():
    config = StudyConfig.quick()
    config.num_repetitions, config.grid_step_sizes, config.grid_learning_rates = 3, [1.0], [1.0]
    results = run_study(config, None, progress=False, plot=False)
    assert results["claims"]["b_sog_beats_gumbel_grid"]["sampled"]["cells"] == 1


@pytest.mark.parametrize("argv,match", [
    (["study", "--quick", "--grid-step-sizes", "0"], "grid_step_sizes must be finite numbers > 0"),
    (["study", "--quick", "--num-steps", "0"], "num_steps must be >= 1"),
    (["study", "--quick", "--aimle-update-step", "-1"], "aimle_update_step must be >= 0"),
])
def test_study_cli_rejects_bad_config(argv, match, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path), "--no-progress"]) == 2
    assert match in capsys.readouterr().err
