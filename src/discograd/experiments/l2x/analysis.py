"""Post-hoc analyses of finished L2X runs (the numbers of ``docs/l2x.md`` that are not in ``final.json``).

Each function reads a run folder (``config.json`` and ``checkpoints/best.pt`` or ``last.pt``), rebuilds the
data and the model, and evaluates; nothing is trained.

- :func:`selection_counts` (``reviews``): per test review, how many of the rating's deciding words, distractor
  words and other tokens inside or outside the spans ``TopK(k)(θ)`` selects;
- :func:`upstream_gradients` (tabular): the mean and mean absolute ``g_i = ∂L/∂z_i`` at the MAP selection, by
  group (relevant or not × selected or not);
- :func:`theta_gradients` (tabular): the mean gradient on ``θ`` that several estimators return at the
  checkpoint, by the same groups.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...solvers import TopK
from .data import TABULAR_TASKS
from .train import L2XConfig, _losses, build_model, build_selector, load_data

__all__ = ["selection_counts", "theta_gradients", "upstream_gradients"]

GROUPS = ("relevant, selected", "relevant, not selected", "irrelevant, selected", "irrelevant, not selected")


def _load(run: str | os.PathLike, checkpoint: str) -> tuple[L2XConfig, Any, torch.nn.Module, int]:
    run = Path(run)
    config = L2XConfig(**json.loads((run / "config.json").read_text(encoding="utf-8")))
    data = load_data(config).split_heldout(config.seed)
    model = build_model(config, data)
    state = torch.load(run / "checkpoints" / f"{checkpoint}.pt", map_location=config.device, weights_only=True)
    model.load_state_dict(state["model"])
    model.eval()
    return config, data, model, int(state["epoch"])


def selection_counts(run: str | os.PathLike, checkpoint: str = "best") -> dict[str, float]:
    """``reviews`` runs (default generator sizes): the mean count per test review of the selected deciding
    ("aroma") words, distractor words, other tokens inside the annotated spans and other tokens outside them."""
    config, data, model, epoch = _load(run, checkpoint)
    if config.task != "reviews":
        raise ValueError(f"selection_counts needs a reviews run; got task {config.task!r}")
    words = 100  # generate_reviews' num_aspect_words: ids 1..100 target words, 101..200 distractors
    test = data.test
    with torch.no_grad():
        z = TopK(config.k)(model.scores(torch.as_tensor(test.tokens, device=config.device))).cpu().numpy() > 0.5
    target = (test.tokens >= 1) & (test.tokens <= words)
    distractor = (test.tokens > words) & (test.tokens <= 2 * words)
    return {"epoch": epoch, "deciding_words_selected": float((z & target).sum(1).mean()),
            "deciding_words": float(target.sum(1).mean()), "distractors_selected": float((z & distractor).sum(1).mean()),
            "other_in_spans": float((z & test.spans & ~target).sum(1).mean()),
            "other_outside_spans": float((z & ~test.spans & ~distractor).sum(1).mean())}


def _groups(relevant: np.ndarray, selected: np.ndarray) -> dict[str, np.ndarray]:
    masks = (relevant & selected, relevant & ~selected, ~relevant & selected, ~relevant & ~selected)
    return dict(zip(GROUPS, masks))


def upstream_gradients(run: str | os.PathLike, checkpoint: str = "best") -> dict[str, dict[str, float]]:
    """Tabular runs: ``g = ∂L/∂z`` of the per-sample loss at ``z = TopK(k)(θ)`` on the training set; per group,
    the count, the mean ``g_i`` and the mean ``|g_i|`` (``nan`` for an empty group)."""
    config, data, model, _ = _load(run, checkpoint)
    if config.task not in TABULAR_TASKS:
        raise ValueError(f"upstream_gradients needs a tabular run; got task {config.task!r}")
    x, p = torch.as_tensor(data.train.x), torch.as_tensor(data.train.prob)
    with torch.no_grad():
        z = TopK(config.k)(model.scores(x)).unsqueeze(0)
    z.requires_grad_(True)
    _losses(config, model.predict(x, z), p).sum().backward()
    g, selected = z.grad[0].numpy(), z.detach()[0].numpy() > 0.5
    out = {}
    for name, mask in _groups(data.train.relevant, selected).items():
        values = g[mask]
        out[name] = {"count": int(mask.sum()), "mean": float(values.mean()) if values.size else float("nan"),
                     "mean_abs": float(np.abs(values).mean()) if values.size else float("nan")}
    return out


def theta_gradients(run: str | os.PathLike, estimators: dict[str, dict[str, Any]], checkpoint: str = "best", *,
                    draws: int = 5) -> dict[str, dict[str, float]]:
    """Tabular runs: for each estimator (a name → ``L2XConfig`` overrides, e.g. ``{"method": "imle",
    "imle_two_sided": True}``), the gradient on ``θ`` of the per-sample loss summed over the training set,
    averaged over ``draws`` noise draws (one for ``exact``), then its mean per group of the MAP selection
    (positive: gradient descent lowers ``θ_i``)."""
    config, data, model, _ = _load(run, checkpoint)
    if config.task not in TABULAR_TASKS:
        raise ValueError(f"theta_gradients needs a tabular run; got task {config.task!r}")
    x, p = torch.as_tensor(data.train.x), torch.as_tensor(data.train.prob)
    with torch.no_grad():
        theta0 = model.scores(x)
    groups = _groups(data.train.relevant, TopK(config.k)(theta0).numpy() > 0.5)
    out = {}
    for name, overrides in estimators.items():
        estimator = replace(config, **overrides).resolve()
        grads = []
        for draw in range(1 if estimator.method == "exact" else draws):
            selector = build_selector(estimator, torch.Generator().manual_seed(100 + draw))
            theta = theta0.clone().requires_grad_(True)
            z = selector(theta)
            loss = selector.combine(_losses(estimator, model.predict(x, z), p), theta).sum()
            grads.append(torch.autograd.grad(loss, theta)[0].numpy())
        g = np.mean(grads, axis=0)
        out[name] = {group: float(g[mask].mean()) if mask.any() else float("nan") for group, mask in groups.items()}
    return out
