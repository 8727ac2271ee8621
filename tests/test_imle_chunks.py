"""The backward pass solves the target side in chunks of samples on large problems: the gradients, the
zero-gradient watch and AIMLE's statistics are those of one call (CHUNK_ELEMENTS lowered so that small
problems are chunked)."""

from __future__ import annotations

import importlib

import pytest
import torch

import discograd
from discograd.noise import SumOfGamma
from discograd.solvers import TopK
from discograd.targets import AdaptiveTarget, KnownTarget, LabelTarget, PerturbedTarget

imle_module = importlib.import_module("discograd.estimators.imle")  # the module, not the function of that name


class CountingTopK(TopK):
    """TopK that counts its calls."""

    def __init__(self, k):
        super().__init__(k)
        self.calls = 0

    def __call__(self, theta, *args, **kwargs):
        self.calls += 1
        return super().__call__(theta, *args, **kwargs)


TARGETS = {
    "perturbed": lambda: PerturbedTarget(1.5),
    "two_sided": lambda: PerturbedTarget(1.5, two_sided=True),
    "label": lambda: LabelTarget(2.0),
    "known": lambda: KnownTarget(1.0),
    "aimle": lambda: AdaptiveTarget(4.0, update_step=0.1, initial_beta=0.2),
    "aimle_two_sided": lambda: AdaptiveTarget(4.0, update_step=0.1, initial_beta=0.2, two_sided=True),
    "aimle_batch": lambda: AdaptiveTarget(4.0, update_step=0.1, initial_beta=0.2, norm="batch"),
}


def _run(name, recompute, chunk_elements, monkeypatch, steps=3):
    monkeypatch.setattr(imle_module, "CHUNK_ELEMENTS", chunk_elements)
    g = torch.Generator().manual_seed(3)
    theta = torch.randn(6, 12, generator=g, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(6, 12, generator=g, dtype=torch.float64)
    star = torch.randn(6, 12, generator=g, dtype=torch.float64)
    solver, target = CountingTopK(3), TARGETS[name]()
    layer = discograd.imle(solver, noise=SumOfGamma(3), target=target, num_samples=7,
                           generator=torch.Generator().manual_seed(11), recompute_noise=recompute)
    grads, betas = [], []
    for _ in range(steps):
        theta.grad = None
        z = layer(theta, target_theta=star) if name == "known" else layer(theta)
        (z * weights).sum().backward()
        grads.append(theta.grad.clone())
        betas.append(getattr(target, "beta", None))
    return grads, betas, solver.calls


@pytest.mark.parametrize("recompute", [False, True])
@pytest.mark.parametrize("name", list(TARGETS))
def test_chunked_backward_equals_one_call(name, recompute, monkeypatch):
    whole = _run(name, recompute, 1 << 40, monkeypatch)
    chunked = _run(name, recompute, 24, monkeypatch)  # 2 samples of [6, 12] per chunk
    for a, b in zip(whole[0], chunked[0]):
        assert torch.equal(a, b)
    assert any(bool(a.any()) for a in whole[0]), "all gradients zero: a vacuous comparison"
    assert whole[1] == chunked[1]
    if name == "aimle_batch":  # whole-batch norms need every sample at once: never chunked
        assert chunked[2] == whole[2]
    else:
        assert chunked[2] > whole[2]


def test_small_problems_are_not_chunked(monkeypatch):
    assert imle_module._sample_chunk(torch.zeros(10, 70, 144), PerturbedTarget(), 10) is None  # Warcraft's size
    chunk = imle_module._sample_chunk(torch.zeros(10, 128, 10_000), PerturbedTarget(), 10)
    assert chunk == 1
    assert imle_module._sample_chunk(torch.zeros(10, 128, 10_000), PerturbedTarget(), None) is None

    class Stateful:  # a user target with observe() but no observe_counts(): it sees the whole gradient
        samplewise = True

        def params(self, theta, grad_z, *, event_dims):
            raise AssertionError

        def observe(self, gradient, *, event_dims):
            pass

    assert imle_module._sample_chunk(torch.zeros(10, 128, 10_000), Stateful(), 10) is None
