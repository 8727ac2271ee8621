"""The gradient-quality benchmark: its metrics on known inputs, its exact references, its estimator
harness (the λ scale, the mean over samples) and the ``discograd bench gradients`` command."""

import json
import math

import pytest
import torch

from discograd import Gumbel, TopK
from discograd.exact import enumeration_marginals, ksubset_states, topk_marginals
from discograd.experiments.cli import main
from discograd.experiments.gradient_quality import (
    ESTIMATORS,
    GradientQualityConfig,
    estimate_gradients,
    exact_gradients,
    gradient_metrics,
    make_loss,
    make_theta,
    run_gradient_quality,
)

# ------------------------------------------------------------------------------------------------
# metrics on known inputs
# ------------------------------------------------------------------------------------------------


def test_metrics_of_the_exact_gradient():
    g = torch.tensor([0.5, -1.0, 0.25, 0.25], dtype=torch.float64)
    m = gradient_metrics(g.expand(7, 4), g)
    assert m["cosine"] == pytest.approx(1.0) and m["cosine_single"] == pytest.approx(1.0)
    assert m["bias"] == 0.0 and m["bias_floor"] == 0.0 and m["variance"] == 0.0
    assert m["norm_ratio"] == pytest.approx(1.0) and m["zero_fraction"] == 0.0


def test_metrics_of_scaled_zero_and_symmetric_estimates():
    g = torch.tensor([3.0, -4.0], dtype=torch.float64)  # ‖g‖ = 5
    scaled = gradient_metrics((2 * g).expand(3, 2), g)
    assert scaled["cosine"] == pytest.approx(1.0) and scaled["bias"] == pytest.approx(1.0)
    assert scaled["norm_ratio"] == pytest.approx(2.0)
    zero = gradient_metrics(torch.zeros(5, 2, dtype=torch.float64), g)
    assert zero["cosine"] == 0.0 and zero["cosine_single"] == 0.0 and zero["bias"] == pytest.approx(1.0)
    assert zero["zero_fraction"] == 1.0
    # two estimates g ± d: mean g (no bias), unbiased per-coordinate variance 2 d_i², tr Cov = 2‖d‖²
    d = torch.tensor([1.0, 2.0], dtype=torch.float64)
    m = gradient_metrics(torch.stack([g + d, g - d]), g)
    assert m["bias"] == pytest.approx(0.0, abs=1e-15) and m["cosine"] == pytest.approx(1.0)
    assert m["variance"] == pytest.approx(float((2 * d**2).mean()) / 25)
    assert m["bias_floor"] == pytest.approx(math.sqrt(float((2 * d**2).sum()) / 2) / 5)
    cosines = [float((e @ g) / (e.norm() * g.norm())) for e in (g + d, g - d)]
    assert m["cosine_single"] == pytest.approx(sum(cosines) / 2)


def test_metrics_of_a_known_variance_estimator():
    """g + σ·N(0, I): relative variance σ²/‖g‖² within its standard error, bias at its Monte-Carlo floor."""
    gen = torch.Generator().manual_seed(0)
    n, r, sigma = 8, 20_000, 0.3
    g = torch.randn(n, generator=gen, dtype=torch.float64)
    estimates = g + sigma * torch.randn(r, n, generator=gen, dtype=torch.float64)
    m = gradient_metrics(estimates, g)
    norm2 = float(g @ g)
    # the sample variance of a normal has sd σ² sqrt(2 / (R − 1)); averaged over n coordinates
    se = sigma**2 * math.sqrt(2 / (r - 1) / n) / norm2
    assert abs(m["variance"] - sigma**2 / norm2) < 4 * se
    # ‖mean − g‖² ~ σ² χ²_n / R: the bias is of the order of its floor
    assert m["bias_floor"] == pytest.approx(sigma * math.sqrt(n / r) / math.sqrt(norm2), rel=0.05)
    assert m["bias"] < 2 * m["bias_floor"]
    assert m["cosine"] > 0.999


def test_metrics_reject_bad_inputs():
    with pytest.raises(ValueError, match=r"estimates must be \[R, n\]"):
        gradient_metrics(torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="exact gradient is zero"):
        gradient_metrics(torch.ones(2, 3), torch.zeros(3))


# ------------------------------------------------------------------------------------------------
# exact references
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss_name", ["sqdist", "linear"])
def test_marginal_closed_form_matches_enumeration(loss_name):
    """E‖z − b‖² = Σ μ_i(1 − 2b_i) + ‖b‖² and E⟨c, z⟩ = ⟨c, μ⟩: the TopK(20, 10) route, checked on TopK(10, 5)."""
    theta, loss = make_theta("topk10", 3), make_loss("topk10", loss_name, 3)
    refs = exact_gradients(theta, 5, loss)  # by enumeration
    leaf = theta.clone().requires_grad_()
    mu = topk_marginals(leaf, 5)
    (via_dp,) = torch.autograd.grad(loss.expected_from_marginals(mu), leaf)
    torch.testing.assert_close(refs["expected"], via_dp)
    leaf = theta.clone().requires_grad_()
    (via_enumeration,) = torch.autograd.grad(loss(enumeration_marginals(ksubset_states(10, 5, dtype=theta.dtype), leaf)), leaf)
    torch.testing.assert_close(refs["marginal"], via_enumeration)


def test_references_on_the_large_problem():
    theta = make_theta("topk20")
    assert exact_gradients(theta, 10, make_loss("topk20", "quadratic"))["expected"] is None  # needs E[z_i z_j]
    linear = exact_gradients(theta, 10, make_loss("topk20", "linear"))
    torch.testing.assert_close(linear["expected"], linear["marginal"])  # both J_μ c
    sq = exact_gradients(theta, 10, make_loss("topk20", "sqdist"))
    assert sq["expected"].abs().sum() > 0 and not torch.allclose(sq["expected"], sq["marginal"])
    assert abs(float(sq["expected"].sum())) < 1e-10  # p is invariant to θ + const


# ------------------------------------------------------------------------------------------------
# the estimator harness
# ------------------------------------------------------------------------------------------------


def _estimate(name, loss_name="linear", num_samples=3, hyper=1.0, instances=4, seed=0):
    theta, loss = make_theta("topk10"), make_loss("topk10", loss_name)
    return estimate_gradients(name, theta, 5, loss, num_samples=num_samples, hyper=hyper, num_instances=instances,
                              generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("num_samples", [1, 7])
def test_harness_returns_the_mean_over_samples(num_samples):
    """STE passes ∂L/∂z = c straight through, SIMPLE gives J_μ c for a linear loss: exactly, for any S."""
    c = make_loss("topk10", "linear").c
    torch.testing.assert_close(_estimate("straight_through", num_samples=num_samples), c.expand(4, 10))
    exact = exact_gradients(make_theta("topk10"), 5, make_loss("topk10", "linear"))["expected"]
    torch.testing.assert_close(_estimate("simple", num_samples=num_samples), exact.expand(4, 10))


def test_imle_step_size_is_in_units_of_the_per_sample_gradient():
    """With S samples the harness gives (1/S) Σ_s [MAP(θ + ε_s) − MAP(θ − λ∇L(z_s) + ε_s)] / λ, not the
    estimate of a loss averaged over samples (whose g, hence λ, would shrink by 1/S)."""
    s, lam, r = 5, 0.7, 3
    theta, loss = make_theta("topk10"), make_loss("topk10", "linear")
    got = estimate_gradients("imle_gumbel", theta, 5, loss, num_samples=s, hyper=lam, num_instances=r,
                             generator=torch.Generator().manual_seed(9))
    eps = Gumbel().sample((s, r, 10), generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    z = TopK(5)(theta + eps)
    target = TopK(5)(theta - lam * loss.c + eps)
    torch.testing.assert_close(got, ((z - target) / lam).mean(0))


def test_score_function_is_unbiased_in_the_harness():
    theta, loss = make_theta("topk10"), make_loss("topk10", "sqdist")
    ref = exact_gradients(theta, 5, loss)["expected"]
    est = estimate_gradients("score_function", theta, 5, loss, num_samples=4, hyper=None, num_instances=4000,
                             generator=torch.Generator().manual_seed(1))
    m = gradient_metrics(est, ref)
    assert m["bias"] < 3 * m["bias_floor"]


def test_every_estimator_runs_on_the_large_problem():
    theta, loss = make_theta("topk20"), make_loss("topk20", "quadratic")
    for name, spec in ESTIMATORS.items():
        kwargs = {}
        if name == "aimle":
            from discograd import AdaptiveTarget

            kwargs["aimle_target"] = AdaptiveTarget(target_nonzeros=2.0, initial_beta=1.0)
        est = estimate_gradients(name, theta, 10, loss, num_samples=max(2, spec.min_samples),
                                 hyper=None if spec.hyper is None or name == "aimle" else 1.0, num_instances=3,
                                 generator=torch.Generator().manual_seed(0), **kwargs)
        assert est.shape == (3, 20) and bool(torch.isfinite(est).all()), name


# ------------------------------------------------------------------------------------------------
# the benchmark and its command
# ------------------------------------------------------------------------------------------------


def test_quick_benchmark_writes_its_files_and_resumes(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["bench", "gradients", "--quick", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Target `expected`" in printed and "| SIMPLE |" in printed
    for name in ("config.json", "cells.json", "results.json", "results.md", "quality_topk10.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    assert {c["estimator"] for c in results["cells"]} == set(ESTIMATORS)
    assert results["targets"] == {"expected": "∇E_p[L(z)]", "marginal": "∇L(μ(θ))"}
    by_key = {c["key"]: c for c in results["cells"]}
    assert "skipped" in by_key["topk10/sqdist/score_function/None=None/S=1"]  # leave-one-out needs S >= 2
    simple = by_key["topk10/linear/simple/None=None/S=10"]["metrics"]["expected"]
    assert simple["cosine"] == pytest.approx(1.0) and simple["bias"] < 1e-9
    # resume: the same config reruns nothing
    before = (out / "cells.json").read_text()
    assert main(argv + ["--no-plot"]) == 0
    assert (out / "cells.json").read_text() == before
    assert not list(out.glob(".*tmp*"))


def test_benchmark_without_a_folder_is_reproducible():
    config = GradientQualityConfig.quick()
    config.estimators, config.losses = ["imle_sog", "aimle"], ["sqdist"]
    a = run_gradient_quality(config, None, progress=False, plot=False)
    b = run_gradient_quality(config, None, progress=False, plot=False)
    assert [c["metrics"] for c in a["cells"]] == [c["metrics"] for c in b["cells"]]


@pytest.mark.parametrize("argv,match", [
    (["--num-samples", "0"], "num_samples must be integers >= 1"),
    (["--hypers", "-1"], "hypers must be finite numbers > 0"),
    (["--min-instances", "1"], "min_instances must be >= 2"),
    (["--min-instances", "500", "--max-instances", "100"], "min_instances must be <= max_instances"),
])
def test_bench_cli_rejects_bad_values(argv, match, tmp_path, capsys):
    assert main(["bench", "gradients", "--quick", "--out", str(tmp_path), "--no-progress"] + argv) == 2
    err = capsys.readouterr().err
    assert "discograd bench gradients: error:" in err and match in err


@pytest.mark.parametrize("argv", [
    ["bench"],
    ["bench", "nonsense"],
    ["bench", "gradients", "--estimators", "magic"],
    ["bench", "gradients", "--problems", "topk99"],
    ["bench", "gradients", "--num-samples", "ten"],
])
def test_bench_cli_rejects_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="problems must be among"):
        GradientQualityConfig(problems=["topk99"]).validate()
    with pytest.raises(ValueError, match="estimators must not be empty"):
        GradientQualityConfig(estimators=[]).validate()
