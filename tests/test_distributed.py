"""Data parallelism: 2 processes over gloo on the loopback interface, launched with torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ddp_worker
from discograd import AdaptiveTarget, distributed

HERE = Path(__file__).resolve().parent


def torchrun(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=HERE.parent)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


@pytest.fixture(scope="module")
def two_rank_gradients(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    torchrun(str(HERE / "ddp_worker.py"), "gradients", str(out))
    return [torch.load(out / f"gradients-rank{r}.pt", weights_only=True) for r in range(2)]


@pytest.mark.parametrize("method", ddp_worker.METHODS)
def test_split_batch_gradient_equals_the_whole_batch_gradient(two_rank_gradients, method):
    reference = ddp_worker.gradients(method)  # one process, the whole batch, the same noise
    for rank in range(2):
        result = two_rank_gradients[rank][method]
        assert len(result["grads"]) == ddp_worker.STEPS
        assert all(w.abs().sum() > 0 for w in reference["grads"][0]), f"{method}: a zero gradient (vacuous check)"
        for step, (got, want) in enumerate(zip(result["grads"], reference["grads"])):
            for g, w in zip(got, want):
                torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12, msg=f"{method}, rank {rank}, step {step}")


@pytest.mark.parametrize("method", ["aimle", "aimle_batch"])
def test_aimle_beta_is_shared_across_ranks(two_rank_gradients, method):
    reference = ddp_worker.gradients(method)["betas"]
    betas = [two_rank_gradients[r][method]["betas"] for r in range(2)]
    assert betas[0] == betas[1] == reference
    assert len(set(reference)) > 1, "β never moved: the check would pass vacuously"


def test_rank_generators_differ_per_rank_and_rank0_is_the_plain_seed():
    a = distributed.rank_generator(5, rank_index=0)
    b = distributed.rank_generator(5, rank_index=1)
    plain = torch.Generator().manual_seed(5)
    x, y, ref = (torch.rand(4, generator=g) for g in (a, b, plain))
    assert torch.equal(x, ref) and not torch.equal(x, y)
    assert distributed.rank_seed(5, 1) == distributed.rank_seed(5, 1) != distributed.rank_seed(6, 1)
    with pytest.raises(ValueError, match="seed"):
        distributed.rank_seed(-1)


def test_shard_bounds_cover_the_batch_in_order():
    for length in range(0, 12):
        for ranks in (1, 2, 3, 5):
            parts = [distributed.shard(list(range(length)), r, ranks) for r in range(ranks)]
            assert sum(parts, []) == list(range(length))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(ValueError, match="rank_index"):
        distributed.shard_bounds(4, 2, 2)


def test_without_a_process_group_the_helpers_are_the_identity():
    t = torch.arange(3.0)
    assert distributed.all_reduce_sum(t) is t
    assert distributed.all_gather_object({"a": 1}) == [{"a": 1}]
    assert distributed.broadcast_object(7) == 7
    assert not distributed.is_distributed() and distributed.init_from_env() is False


def test_adaptive_target_distributed_flag_is_checked():
    assert AdaptiveTarget(1.0, distributed=False).distributed is False
    with pytest.raises(TypeError, match="distributed"):
        AdaptiveTarget(1.0, distributed="yes")


def _strip(final: dict) -> dict:
    return {k: v for k, v in final.items() if k not in ("train_seconds", "environment")}


def test_two_rank_warcraft_run_finishes_and_resumes(tmp_path):
    from discograd.experiments.warcraft.train import run_warcraft

    worker = str(HERE / "ddp_worker.py")
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    torchrun(worker, "warcraft", str(tmp_path), str(straight))
    torchrun(worker, "warcraft", str(tmp_path), str(stopped), "1")
    state = torch.load(stopped / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["world_size"] == 2 and len(state["ranks"]) == 2
    assert not torch.equal(state["ranks"][0]["generator"], state["ranks"][1]["generator"])
    assert not (stopped / "final.json").exists()
    # one process cannot resume a two-rank run: it would change the result
    with pytest.raises(ValueError, match="2 data-parallel rank"):
        run_warcraft(ddp_worker.warcraft_config(), stopped, progress=False, plot=False, cache_dir=tmp_path / "data",
                     num_threads=1)
    torchrun(worker, "warcraft", str(tmp_path), str(stopped))
    a = json.loads((straight / "final.json").read_text())
    b = json.loads((stopped / "final.json").read_text())
    assert _strip(a) == _strip(b)
    assert a["environment"]["world_size"] == 2 and a["epochs_done"] == 2
    # the metrics are over the whole splits (11 test maps: a percentage of 11, not of a 5- or 6-map shard)
    rows = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert round(row["test_exact_pct"] * 11 / 100, 6) == round(row["test_exact_pct"] * 11 / 100)
    # only rank 0 wrote: one config, no stray temporary files
    assert sorted(p.name for p in straight.iterdir()) == ["checkpoints", "config.json", "final.json", "metrics.csv",
                                                          "metrics.jsonl"]


def test_torchrun_runs_the_warcraft_command(tmp_path):
    out = tmp_path / "run"
    result = torchrun("-m", "discograd", "warcraft", "--quick", "--grid-size", "6", "--num-train", "16",
                      "--num-val", "8", "--num-test", "8", "--epochs", "1", "--batch-size", "8", "--width", "8",
                      "--out", str(out), "--cache-dir", str(tmp_path / "data"), "--num-threads", "1",
                      "--no-progress", "--no-plot")
    assert result.stdout.count("epochs: test") == 1  # rank 0 alone reports
    assert json.loads((out / "final.json").read_text())["environment"]["world_size"] == 2


def test_compare_refuses_torchrun(monkeypatch, capsys):
    from discograd.experiments.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["compare", "--quick", "--methods", "imle", "--seeds", "0", "--no-progress"]) == 2
    assert "--executor ray" in capsys.readouterr().err
