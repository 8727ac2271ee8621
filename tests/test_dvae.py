"""The discrete VAE experiment: exact KL, every method's training step, the data loaders, run folders,
resume and the CLI wiring. Small data, a few steps each (seconds)."""

from __future__ import annotations

import argparse
import gzip
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from discograd.exact import enumeration_log_probs, ksubset_states
from discograd.experiments.dvae import (
    METHODS,
    BinaryImages,
    DiscreteVAE,
    DVAEConfig,
    EstimatorSettings,
    RateSumOfGamma,
    add_dvae_commands,
    annealed_temperature,
    build_estimator,
    categorical_kl,
    default_hidden,
    ksubset_kl,
    load_mnist_binary,
    proxy_kl,
    read_idx,
    run_compare,
    run_dvae,
    run_dvae_command,
    training_loss,
)
from discograd.experiments.dvae.model import evaluate, training_kl
from discograd.experiments.dvae.train import format_compare, plot_compare
from discograd.noise import SumOfGamma

FIXTURE = Path(__file__).parent / "fixtures" / "mnist"


def _tiny_data(num_train: int = 24, num_test: int = 10, side: int = 4) -> BinaryImages:
    g = torch.Generator().manual_seed(0)
    train = (torch.rand(num_train, side * side, generator=g) < 0.4).float()
    test = (torch.rand(num_test, side * side, generator=g) < 0.4).float()
    return BinaryImages(train=train, test=test, height=side, width=side, source="random")


def _tiny_config(method: str = "subset_imle", **overrides) -> DVAEConfig:
    values = {"method": method, "groups": 3, "categories": 4, "subset_size": 6, "subset_k": 3, "hidden": [16, 16],
              "epochs": 2, "batch_size": 8, "eval_samples": 2, "eval_batch_size": 16}
    values.update(overrides)
    return DVAEConfig(**values)


# ------------------------------------------------------------------------------------------------
# the defaults are the original code's settings
# ------------------------------------------------------------------------------------------------


def test_defaults_are_the_original_settings():
    """tf-imle DVAE notebook (cells 2-4) and torch-adaptive-imle cli/vae-cli.py; see docs/dvae.md."""
    c = DVAEConfig()
    original = {
        "method": "subset_imle", "groups": 20, "subset_size": 20, "subset_k": 10,  # 20 groups of 10-of-20 subsets
        "categories": 20,  # Gumbel-softmax baseline: 20 categoricals of 20
        "temperature": 10.0, "step_size": 10.0, "sog_noise": "scale",  # SoG τ = 10 (κ = k = 10), λ = 10
        "loss_reduction": "mean", "train_kl": "proxy",  # batch-mean loss; the categorical proxy KL in training
        "learning_rate": 1e-3, "batch_size": 100, "epochs": 100, "num_samples": 1, "init": "glorot",
        "relaxation_temperature": 1.0, "relaxation_min_temperature": 0.5, "relaxation_anneal_rate": 3e-4,
    }
    assert {name: getattr(c, name) for name in original} == original
    assert c.hidden == [] and c.hidden_widths == [128, 64]  # digits: a quarter of the original widths
    settings = c.estimator_settings()
    assert (settings.k, settings.step_size, settings.temperature, settings.num_samples) == (10, 10.0, 10.0, 1)
    layer = build_estimator(settings, torch.Generator()).layer
    assert isinstance(layer.noise, SumOfGamma) and (layer.noise.k, layer.noise.num_terms) == (10, 10)
    assert layer.temperature == layer.target_temperature == 10.0 and layer.target.step_size == 10.0
    assert layer.scale_by_step_size  # the notebook's (1/λ)(z − z')
    # the original widths on MNIST: encoder 784-512-256-400, decoder 400-256-512-784
    mnist = replace(c, dataset="mnist", data_dir=str(FIXTURE)).resolved()
    assert mnist.hidden == [512, 256]
    model = DiscreteVAE(784, 20, 20, mnist.hidden, init="glorot")
    sizes = [(m.in_features, m.out_features) for m in model.encoder if isinstance(m, torch.nn.Linear)]
    assert sizes == [(784, 512), (512, 256), (256, 400)]
    sizes = [(m.in_features, m.out_features) for m in model.decoder if isinstance(m, torch.nn.Linear)]
    assert sizes == [(400, 256), (256, 512), (512, 784)]
    assert all(not m.bias.detach().any() for m in model.modules() if isinstance(m, torch.nn.Linear))


def test_widths_rule():
    assert default_hidden("digits") == [128, 64] and default_hidden("mnist") == [512, 256]
    assert DVAEConfig(hidden=[32]).hidden_widths == [32]
    model = DiscreteVAE(16, 3, 6, [32])  # one hidden layer, mirrored
    assert [m.out_features for m in model.encoder if isinstance(m, torch.nn.Linear)] == [32, 18]
    assert [m.out_features for m in model.decoder if isinstance(m, torch.nn.Linear)] == [32, 16]
    assert DiscreteVAE(16, 3, 6, 8).hidden == (8, 8)  # an integer: two layers of that width
    with pytest.raises(ValueError, match="init must be one of"):
        DiscreteVAE(16, 3, 6, 8, init="he")


def test_mnist_run_uses_the_original_widths(tmp_path):
    config = DVAEConfig(dataset="mnist", data_dir=str(FIXTURE), epochs=1, eval_samples=1)
    final = run_dvae(config, tmp_path / "run", progress=False, plot=False)
    assert final["model"]["encoder"] == [784, 512, 256, 400] and final["model"]["decoder"] == [400, 256, 512, 784]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["hidden"] == [512, 256]
    final = run_dvae(_tiny_config(hidden=[]), None, data=_tiny_data(), progress=False, plot=False)
    assert final["model"]["encoder"] == [16, 128, 64, 18]  # dataset "digits": the scaled widths


def test_annealing_schedule(tmp_path):
    # τ_e = max(τ_{e-1} exp(−r e), 0.5) from τ_0 = 1 (the notebook's loop), r = 3e-4
    tau, expected = 1.0, []
    for epoch in range(1, 101):
        tau = max(tau * math.exp(-3e-4 * epoch), 0.5)
        expected.append(tau)
    assert [annealed_temperature(e) for e in range(1, 101)] == pytest.approx(expected, rel=1e-12)
    assert annealed_temperature(67) > 0.5 and annealed_temperature(68) == 0.5 and annealed_temperature(0) == 1.0
    assert annealed_temperature(50, 2.0, 0.1, 0.0) == 2.0  # rate 0: constant
    # a run records the τ it trained each epoch with
    data = _tiny_data()
    config = _tiny_config("cat_gumbel_softmax", epochs=3, relaxation_anneal_rate=0.2)
    run_dvae(config, tmp_path / "run", data=data, progress=False, plot=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["relaxation_temperature"] for r in rows[1:]] == pytest.approx([math.exp(-0.2), math.exp(-0.6), 0.5])
    # the relaxation reads the settings' τ at every call
    settings = config.estimator_settings()
    generator = torch.Generator()
    estimator = build_estimator(settings, generator)
    model = DiscreteVAE(16, 3, 4, [8])
    theta = model.encode(data.train[:4])
    generator.manual_seed(0)
    hot = estimator.loss(model, theta, data.train[:4])
    settings.relaxation_temperature = 1e-3
    generator.manual_seed(0)
    cold = estimator.loss(model, theta, data.train[:4])
    assert not torch.allclose(hot, cold)


def test_loss_reduction_scales_gradients_by_the_batch_size():
    data = _tiny_data()
    x = data.train[:8]

    def grads(method, reduction, num_samples=1):
        config = _tiny_config(method, num_samples=num_samples)
        torch.manual_seed(0)
        model = DiscreteVAE(16, config.groups, config.n, config.hidden)
        estimator = build_estimator(config.estimator_settings(), torch.Generator().manual_seed(1))
        theta = model.encode(x)
        loss = training_loss(estimator.loss(model, theta, x), training_kl(theta, config.kind, 3, "proxy"), reduction)
        loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    # a pathwise method: every gradient is exactly B·S times larger with "sum"
    for s in (1, 3):
        mean, total = grads("cat_gumbel_softmax", "mean", s), grads("cat_gumbel_softmax", "sum", s)
        for name in mean:
            assert torch.allclose(total[name], 8 * s * mean[name], rtol=1e-4, atol=1e-6), name
    # I-MLE: the decoder's (pathwise) gradient scales by B too; the upstream gradient at z is 1/B per instance
    mean, total = grads("subset_imle", "mean"), grads("subset_imle", "sum")
    for name in mean:
        if name.startswith("decoder"):
            assert torch.allclose(total[name], 8 * mean[name], rtol=1e-4, atol=1e-6), name
    r, kl = torch.randn(2, 8, requires_grad=True), torch.randn(8, requires_grad=True)
    training_loss(r, kl, "mean").backward()
    assert torch.allclose(r.grad, torch.full((2, 8), 1 / 16)) and torch.allclose(kl.grad, torch.full((8,), 1 / 8))
    with pytest.raises(ValueError, match="loss_reduction"):
        training_loss(r, kl, "max")


def test_tf_imle_rate_noise_moments():
    """The notebook's Gamma(1/κ, rate κ/i) = scale i/κ, against the paper's scale κ/i (κ = s = τ = 10)."""
    k, s, tau = 10, 10, 10.0
    g = torch.Generator().manual_seed(0)
    rate = RateSumOfGamma(k, temperature=tau).sample((400_000,), generator=g, dtype=torch.float64)
    scale = SumOfGamma(k, temperature=tau).sample((400_000,), generator=g, dtype=torch.float64)
    i = np.arange(1, s + 1)
    rate_mean, rate_var = tau / k * ((i / k**2).sum() - math.log(s)), (tau / k) ** 2 * (i**2 / k**3).sum()
    scale_mean, scale_var = tau / k * ((1 / i).sum() - math.log(s)), (tau / k) ** 2 * (k / i**2).sum()
    assert float(rate.mean()) == pytest.approx(rate_mean, abs=0.01) and rate_mean == pytest.approx(-1.7526, abs=1e-4)
    assert float(rate.var()) == pytest.approx(rate_var, rel=0.02) and rate_var == pytest.approx(0.385)
    assert float(scale.mean()) == pytest.approx(scale_mean, abs=0.03) and scale_mean == pytest.approx(0.6264, abs=1e-4)
    assert float(scale.var()) == pytest.approx(scale_var, rel=0.03) and scale_var == pytest.approx(15.4977, abs=1e-3)
    assert math.sqrt(scale_var / rate_var) == pytest.approx(6.345, abs=1e-3)


# ------------------------------------------------------------------------------------------------
# the exact KL
# ------------------------------------------------------------------------------------------------


def test_kl_is_zero_at_uniform_logits():
    assert categorical_kl(torch.zeros(2, 20, 10)).abs().max() < 1e-5  # float32 rounding, 20 groups
    assert categorical_kl(torch.zeros(2, 20, 10, dtype=torch.float64)).abs().max() < 1e-12
    assert ksubset_kl(torch.zeros(2, 20, 20), 10).abs().max() < 1e-4
    assert ksubset_kl(torch.full((2, 3, 6), 1.7, requires_grad=True), 3).abs().max() < 1e-5  # shift-invariant


@pytest.mark.parametrize("n, k", [(6, 3), (5, 1), (7, 2)])
def test_ksubset_kl_matches_enumeration(n, k):
    theta = torch.randn(4, 2, n, generator=torch.Generator().manual_seed(n + k), dtype=torch.float64)
    log_q = enumeration_log_probs(ksubset_states(n, k, dtype=torch.float64), theta)  # [4, 2, C(n, k)]
    brute = (log_q.exp() * (log_q + math.log(math.comb(n, k)))).sum(-1).sum(-1)
    assert torch.allclose(ksubset_kl(theta, k), brute, atol=1e-10)
    # the training path (μ as the gradient of log Z, with a graph) agrees in value and gradient
    leaf = theta.clone().requires_grad_()
    (grad_fast,) = torch.autograd.grad(ksubset_kl(leaf, k).sum(), leaf)
    leaf2 = theta.clone().requires_grad_()
    log_q2 = enumeration_log_probs(ksubset_states(n, k, dtype=torch.float64), leaf2)
    (grad_brute,) = torch.autograd.grad((log_q2.exp() * log_q2).sum(), leaf2)
    assert torch.allclose(grad_fast, grad_brute, atol=1e-9)


def test_categorical_kl_closed_form_and_proxy():
    logits = torch.randn(3, 5, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p = torch.softmax(logits, -1)
    expected = (p * (p * 10).log()).sum(-1).sum(-1)
    assert torch.allclose(categorical_kl(logits), expected, atol=1e-12)
    assert torch.allclose(proxy_kl(logits), categorical_kl(logits))
    # the proxy is not the k-subset KL
    assert not torch.allclose(proxy_kl(logits), ksubset_kl(logits, 5), atol=1e-2)
    assert (ksubset_kl(logits, 5) >= 0).all() and (proxy_kl(logits) >= 0).all()


def test_training_kl_choices():
    theta = torch.randn(2, 3, 6, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(training_kl(theta, "subset", 3, "exact"), ksubset_kl(theta, 3))
    assert torch.allclose(training_kl(theta, "subset", 3, "proxy"), proxy_kl(theta))
    assert torch.allclose(training_kl(theta, "categorical", 3, "exact"), categorical_kl(theta))


def test_evaluate_is_the_exact_elbo_for_a_fixed_decoder():
    data = _tiny_data()
    model = DiscreteVAE(16, 2, 4, hidden=8)
    g = torch.Generator().manual_seed(0)
    metrics = evaluate(model, data.test, "subset", 2, 4000, 100, g)
    # enumeration: E_q[-log p(x|z)] over the C(4, 2) = 6 states of each of 2 groups (36 joint states)
    with torch.no_grad():
        states = ksubset_states(4, 2)
        logits = model.encode(data.test)
        log_q = enumeration_log_probs(states, logits)  # [N, 2, 6]
        joint = torch.stack([torch.stack([states[a], states[b]]) for a in range(6) for b in range(6)])  # [36, 2, 4]
        weights = torch.stack([log_q[:, 0, a] + log_q[:, 1, b] for a in range(6) for b in range(6)]).exp()  # [36, N]
        nll = torch.nn.functional.binary_cross_entropy_with_logits(
            model.decode(joint)[:, None].expand(36, len(data.test), 16), data.test.expand(36, -1, -1),
            reduction="none").sum(-1)
        exact_recon = float((weights * nll).sum(0).mean())
        exact_kl = float(ksubset_kl(logits, 2).mean())
    assert metrics["kl"] == pytest.approx(exact_kl, rel=1e-5)
    assert metrics["reconstruction"] == pytest.approx(exact_recon, abs=0.05)
    assert metrics["nelbo"] == pytest.approx(metrics["reconstruction"] + metrics["kl"])


# ------------------------------------------------------------------------------------------------
# every method: a few steps with finite losses and gradients
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("num_samples", [1, 3])
def test_every_method_trains(method, num_samples):
    config = _tiny_config(method, num_samples=num_samples)
    data = _tiny_data()
    kind = config.kind
    model = DiscreteVAE(16, config.groups, config.n, config.hidden)
    estimator = build_estimator(config.estimator_settings(), torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in model.encoder.parameters()]
    for step in range(3):
        x = data.train[step * 8:(step + 1) * 8]
        theta = model.encode(x)
        reconstruction = estimator.loss(model, theta, x)
        expected_s = max(2, num_samples) if method == "cat_score_function" else num_samples
        assert reconstruction.shape == (expected_s, 8)
        loss = (reconstruction.sum(0) + expected_s * training_kl(theta, kind, config.subset_k, "exact")).sum()
        optimizer.zero_grad()
        loss.backward()
        assert torch.isfinite(loss)
        for p in model.parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all()
        optimizer.step()
    # the encoder receives gradients through the estimator (or at least through the KL)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.encoder.parameters()))


def test_tf_imle_rate_noise_trains():
    config = _tiny_config("subset_imle", sog_noise="tf_imle_rate")
    final = run_dvae(config, None, data=_tiny_data(), progress=False, plot=False)
    assert all(math.isfinite(v) for v in final["test"].values())
    layer = build_estimator(config.estimator_settings(), torch.Generator()).layer
    assert isinstance(layer.noise, RateSumOfGamma)


def test_estimator_rejects_unknown_method():
    settings = EstimatorSettings("nope", 3, 1, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="method must be one of"):
        build_estimator(settings, torch.Generator())


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------


def test_idx_fixture():
    assert sum(p.stat().st_size for p in FIXTURE.iterdir()) < 50_000
    images = read_idx(FIXTURE / "train-images-idx3-ubyte")
    assert images.shape == (5, 28, 28) and images.dtype == np.uint8
    labels = read_idx(FIXTURE / "t10k-labels-idx1-ubyte.gz")
    assert labels.tolist() == [0, 1, 2]
    data = load_mnist_binary(FIXTURE)
    assert data.train.shape == (5, 784) and data.test.shape == (3, 784)
    assert (data.height, data.width) == (28, 28)
    assert set(data.train.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(data.train, torch.from_numpy((images.reshape(5, -1) > 127).astype(np.float32)))


def test_idx_bad_files(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"\x12\x34\x08\x03" + b"\x00" * 12)
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(bad)
    # a header that announces more data than the file holds
    bad.write_bytes(bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 10)
    with pytest.raises(ValueError, match="announces shape"):
        read_idx(bad)
    truncated = tmp_path / "x.gz"
    truncated.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + b"abc")[:-6])
    with pytest.raises(ValueError, match="cannot read"):
        read_idx(truncated)
    with pytest.raises(ValueError, match="has no t10k-images"):
        load_mnist_binary(tmp_path)
    with pytest.raises(ValueError, match="data_dir must be a folder"):
        load_mnist_binary(tmp_path / "missing")


def test_digits_loader():
    pytest.importorskip("sklearn")
    from discograd.experiments.dvae import load_digits_binary

    a, b = load_digits_binary(seed=0), load_digits_binary(seed=0)
    assert a.train.shape[1] == 64 and len(a.train) + len(a.test) == 1797
    assert torch.equal(a.test, b.test)
    assert not torch.equal(a.test, load_digits_binary(seed=1).test)
    with pytest.raises(ValueError, match="threshold"):
        load_digits_binary(threshold=16)


# ------------------------------------------------------------------------------------------------
# run folders, resume, compare
# ------------------------------------------------------------------------------------------------


def test_run_folder_and_resume(tmp_path):
    data = _tiny_data()
    config = _tiny_config("subset_aimle", epochs=3)
    full = run_dvae(config, tmp_path / "full", data=data, progress=False, plot=True)
    folder = tmp_path / "full"
    for name in ("config.json", "metrics.jsonl", "final.json", "checkpoints/last.pt", "curves.png",
                 "reconstructions.png", "samples.png"):
        assert (folder / name).exists(), name
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    assert all(math.isfinite(r["test_nelbo"]) and math.isfinite(r["test_original_loss"]) for r in rows)
    # both headline metrics, named and described, in final.json
    written = json.loads((folder / "final.json").read_text())
    test = written["test"]
    assert test["original_loss"] == pytest.approx(test["sampler_reconstruction"] + test["proxy_kl"])
    assert test["nelbo"] == pytest.approx(test["reconstruction"] + test["kl"])
    assert "training sampler" in written["metrics"]["original_loss"] and "exact" in written["metrics"]["nelbo"]
    state = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 3 and len(state["history"]) == 4
    assert state["layer"]["_extra_state"]["target"]["num_updates"] > 0  # AIMLE's β travels with the checkpoint

    # evaluating every second epoch: the same training, rows without test metrics in between
    sparse = run_dvae(replace(config, eval_every=2), tmp_path / "sparse", data=data, progress=True, plot=True)
    sparse_rows = [json.loads(line) for line in (tmp_path / "sparse" / "metrics.jsonl").read_text().splitlines()]
    assert ["test_nelbo" in r for r in sparse_rows] == [True, False, True, True]
    assert sparse["test"] == full["test"] and sparse["evaluated_epoch"] == 3
    assert [r["train_loss"] for r in sparse_rows] == [r["train_loss"] for r in rows]

    partial = run_dvae(config, tmp_path / "resumed", data=data, progress=False, plot=False, stop_after_epochs=1)
    assert partial["epochs_done"] == 1 and not (tmp_path / "resumed" / "final.json").exists()
    resumed = run_dvae(config, tmp_path / "resumed", data=data, progress=False, plot=False)
    assert resumed["epochs_done"] == 3
    assert resumed["test"] == full["test"]
    # a finished run is read back, and a different config in the same folder is refused
    assert run_dvae(config, folder, data=data, progress=False)["test"] == full["test"]
    with pytest.raises(ValueError, match="different config"):
        run_dvae(replace(config, learning_rate=0.1), folder, data=data, progress=False)


def test_compare_writes_tables(tmp_path):
    data = _tiny_data()
    config = _tiny_config(epochs=1)
    results = run_compare(["cat_imle", "subset_simple"], [0, 1], config, tmp_path, progress=False, plot=False,
                          data=data)
    assert [r["method"] for r in results["rows"]] == ["cat_imle", "subset_simple"]
    plot_compare(results, tmp_path, tmp_path / "compare.png")  # the per-run plots are tested above
    for name in ("compare.md", "compare.csv", "runs.csv", "compare.json", "compare.png"):
        assert (tmp_path / name).exists(), name
    assert (tmp_path / "subset_simple" / "seed1" / "final.json").exists()
    table = (tmp_path / "compare.md").read_text()
    assert "± " in table
    one_seed = format_compare(dict(results, seeds=[0]))  # one seed has no spread: no "± 0.00"
    assert "±" not in one_seed and "one seed (0)" in one_seed
    header = next(line for line in table.splitlines() if line.startswith("| method"))
    assert header.index("original metric") < header.index("−ELBO (exact)")  # side by side, the original first
    csv_header = (tmp_path / "compare.csv").read_text().splitlines()[0]
    assert "original_loss_mean" in csv_header and "nelbo_mean" in csv_header
    assert "test_original_loss" in (tmp_path / "runs.csv").read_text().splitlines()[0]
    assert {"original_loss", "nelbo"} <= set(results["runs"][0]["test"])
    assert len((tmp_path / "runs.csv").read_text().splitlines()) == 5
    with pytest.raises(ValueError, match="methods must be one of|method must be one of"):
        run_compare(["bogus"], [0], config, tmp_path / "x", progress=False, data=data)


@pytest.mark.parametrize("field, value, message", [
    ("method", "bogus", "method must be one of"), ("epochs", 0, "epochs must be"),
    ("subset_k", 20, "subset_k must be < subset_size"), ("train_kl", "approx", "train_kl must be"),
    ("learning_rate", -1.0, "learning_rate must be"), ("dataset", "mnist", "needs data_dir"),
    ("loss_reduction", "max", "loss_reduction must be"), ("init", "he", "init must be"),
    ("sog_noise", "shape", "sog_noise must be"), ("hidden", [0], "hidden must be"), ("hidden", 8, "hidden must be"),
    ("relaxation_anneal_rate", -1.0, "relaxation_anneal_rate must be"), ("cat_temperature", 0.0, "cat_temperature")])
def test_config_validation(field, value, message):
    with pytest.raises(ValueError, match=message):
        replace(DVAEConfig(), **{field: value}).validate()


# ------------------------------------------------------------------------------------------------
# CLI wiring
# ------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="discograd")
    add_dvae_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_parses_and_rejects():
    parser = _parser()
    args = parser.parse_args(["dvae", "train", "--method", "cat_imle", "--epochs", "2", "--step-size", "3"])
    assert args.dvae_command == "train" and args.method == "cat_imle" and args.epochs == 2 and args.step_size == 3.0
    args = parser.parse_args(["dvae", "compare", "--methods", "cat_imle", "subset_imle", "--seeds", "0", "1"])
    assert args.methods == ["cat_imle", "subset_imle"] and args.seeds == [0, 1]
    args = parser.parse_args(["dvae", "train", "--hidden", "64", "32", "--loss-reduction", "sum", "--train-kl", "exact",
                              "--sog-noise", "tf_imle_rate"])
    assert args.hidden == [64, 32] and args.loss_reduction == "sum" and args.train_kl == "exact"
    assert args.sog_noise == "tf_imle_rate"
    for bad in (["dvae", "train", "--method", "bogus"], ["dvae", "compare", "--seeds", "x"], ["dvae"],
                ["dvae", "train", "--train-kl", "approx"], ["dvae", "train", "--loss-reduction", "max"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    # a value argparse accepts but the config refuses: exit status 2 and a message naming the option
    args = parser.parse_args(["dvae", "train", "--epochs", "0", "--no-progress", "--no-plot"])
    assert run_dvae_command(args) == 2


def test_cli_train_runs_on_mnist_fixture(tmp_path, capsys):
    args = _parser().parse_args(["dvae", "train", "--dataset", "mnist", "--data-dir", str(FIXTURE), "--method",
                                 "cat_straight_through", "--epochs", "1", "--hidden", "8", "--groups", "2",
                                 "--out", str(tmp_path / "run"), "--no-progress", "--no-plot"])
    assert run_dvae_command(args) == 0
    printed = capsys.readouterr().out
    assert "test -ELBO" in printed and "test original metric" in printed
    assert (tmp_path / "run" / "final.json").exists()
    assert run_dvae_command(args) == 0  # finished: read back, and said so
    assert "reused the finished run in" in capsys.readouterr().out


def test_cli_quick_preset_on_digits(tmp_path):
    pytest.importorskip("sklearn")
    args = _parser().parse_args(["dvae", "train", "--quick", "--method", "cat_imle", "--epochs", "1",
                                 "--out", str(tmp_path / "run"), "--no-progress", "--no-plot", "--num-threads", "1"])
    assert run_dvae_command(args) == 0
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert final["data"]["num_train"] == 300 and final["data"]["num_test"] == 359
    assert all(math.isfinite(v) for v in final["test"].values())


def test_a_corrupt_checkpoint_is_named_with_what_to_do(tmp_path):
    config = _tiny_config(epochs=2)
    out = tmp_path / "run"
    run_dvae(config, out, data=_tiny_data(), progress=False, plot=False, stop_after_epochs=1)
    (out / "checkpoints" / "last.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match=r"the checkpoint .*last.pt is corrupt .*delete it to restart"):
        run_dvae(config, out, data=_tiny_data(), progress=False, plot=False)


def test_resuming_with_another_thread_count_is_refused(tmp_path):
    config = _tiny_config(epochs=2)
    out = tmp_path / "run"
    run_dvae(config, out, data=_tiny_data(), progress=False, plot=False, stop_after_epochs=1, num_threads=1)
    with pytest.raises(ValueError, match=r"trained with 1 torch thread\(s\); resuming it with 2 .*--num-threads 1"):
        run_dvae(config, out, data=_tiny_data(), progress=False, plot=False, num_threads=2)
    assert run_dvae(config, out, data=_tiny_data(), progress=False, plot=False, num_threads=1)["epochs_done"] == 2
