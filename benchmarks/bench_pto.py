"""discograd against PyEPO on PyEPO's own benchmarks: the same data, model, optimiser and methods, side by side.

For every method both libraries have, and every seed, one run of PyEPO (its ``optModel`` on Gurobi, its
``pyepo.func`` module trained the way its notebook trains it, its ``pyepo.metric.regret``) and one run of
``discograd pto`` (:func:`discograd.experiments.pto.train.run_pto`) on the identical data (our generators are
bit-identical to PyEPO's ``genData``; the same sklearn split), alternating PyEPO / discograd / discograd / PyEPO
from seed to seed so that a change of machine load hits both. Each side has its own initialisation and batch
order from the seed (the libraries draw their noise differently, so runs cannot be made identical step for
step): the regrets are compared as distributions over seeds (mean ± std), the times per training epoch
(medians over epochs, then over seeds; one thread each: PyEPO ``processes=1``, torch one thread) as ratios.

Needs ``pyepo`` and ``gurobipy`` (pip's size-limited license is enough for these problems); neither is a
dependency of discograd.

    python benchmarks/bench_pto.py [--problem shortest_path|knapsack] [--methods ...] [--seeds 0 1 2]
                                   [--epochs 20] [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    RESULTS_DIR,
    environment,
    format_table,
    load_average,
    median,
    write_json,
)

from discograd.experiments._format import mean_std  # noqa: E402
from discograd.experiments.pto.train import PTOConfig, load_data, run_pto

#: the methods both libraries have, with PyEPO's module for each
COMMON = ("spo_plus", "dbb", "nid", "dpo", "pfy", "imle", "aimle", "nce", "cmap", "ltr_pointwise", "ltr_pairwise",
          "ltr_listwise")


def _pyepo_optmodel(config: PTOConfig, data: Any) -> Any:
    from pyepo.model.grb import knapsackModel, shortestPathModel

    if config.problem == "shortest_path":
        return shortestPathModel((config.grid, config.grid))
    if config.problem == "knapsack":
        return knapsackModel(data.weights, [config.capacity] * config.dim)
    raise ValueError(f"no PyEPO model wired for {config.problem!r}")


def _pyepo_loss(method: str, config: PTOConfig, optmodel: Any, dataset: Any) -> Any:
    """PyEPO's module for ``method`` with the hyperparameters of the resolved ``config``, and the way its
    notebook turns the module's output into the training loss."""
    import pyepo
    from torch import nn

    l1 = nn.L1Loss()
    f = pyepo.func
    if method == "spo_plus":
        spop = f.SPOPlus(optmodel, processes=1)
        return lambda cp, c, w, z: spop(cp, c, w, z)
    if method in ("dbb", "nid"):
        layer = f.blackboxOpt(optmodel, lambd=config.lambd, processes=1) if method == "dbb" else \
            f.negativeIdentity(optmodel, processes=1)
        return lambda cp, c, w, z: l1((layer(cp) * c).sum(1).view(-1, 1), z)
    if method == "dpo":
        ptb = f.perturbedOpt(optmodel, n_samples=config.num_samples, sigma=config.sigma, processes=1,
                             seed=config.seed)
        return lambda cp, c, w, z: l1(ptb(cp), w)
    if method == "pfy":
        pfy = f.perturbedFenchelYoung(optmodel, n_samples=config.num_samples, sigma=config.sigma, processes=1,
                                      seed=config.seed)
        return lambda cp, c, w, z: pfy(cp, w)
    if method == "imle":
        imle = f.implicitMLE(optmodel, n_samples=config.num_samples, sigma=config.sigma, lambd=config.lambd,
                             distribution=pyepo.func.utils.sumGammaDistribution(kappa=config.kappa, seed=config.seed),
                             processes=1)
        return lambda cp, c, w, z: l1(imle(cp), w)
    if method == "aimle":
        aimle = f.adaptiveImplicitMLE(optmodel, n_samples=config.num_samples, sigma=config.sigma,
                                      distribution=pyepo.func.utils.sumGammaDistribution(kappa=config.kappa,
                                                                                         seed=config.seed),
                                      processes=1)
        return lambda cp, c, w, z: l1(aimle(cp), w)
    pool = {"nce": f.NCE, "cmap": f.contrastiveMAP, "ltr_pointwise": f.ptLTR, "ltr_pairwise": f.prLTR,
            "ltr_listwise": f.lsLTR}[method]
    module = pool(optmodel, processes=1, solve_ratio=config.solve_ratio, dataset=dataset)
    if method in ("nce", "cmap"):
        return lambda cp, c, w, z: module(cp, w)
    return lambda cp, c, w, z: module(cp, c)


def run_pyepo(config: PTOConfig, data: Any) -> dict[str, Any]:
    """One PyEPO run of ``config`` (resolved): regret after every epoch, seconds per training epoch."""
    import pyepo
    from torch import nn
    from torch.utils.data import DataLoader

    optmodel = _pyepo_optmodel(config, data)
    train_set = pyepo.data.dataset.optDataset(optmodel, data.x_train, data.c_train)
    test_set = pyepo.data.dataset.optDataset(optmodel, data.x_test, data.c_test)
    torch.manual_seed(config.seed)
    model = nn.Linear(config.num_features, train_set.costs.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loss_fn = _pyepo_loss(config.method, config, optmodel, train_set)
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(config.seed))
    test_loader = DataLoader(test_set, batch_size=config.eval_batch_size)
    curve = [100.0 * pyepo.metric.regret(model, optmodel, test_loader)]
    seconds = []
    for _ in range(config.epochs):
        model.train()
        started = time.perf_counter()
        for x, c, w, z in loader:
            loss = loss_fn(model(x), c, w, z)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - started)
        curve.append(100.0 * pyepo.metric.regret(model, optmodel, test_loader))
    return {"test_regret_pct": curve[-1], "regret_curve_pct": curve, "epoch_seconds_median": median(seconds)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problem", choices=["shortest_path", "knapsack"], default="shortest_path")
    parser.add_argument("--methods", nargs="+", choices=list(COMMON), default=list(COMMON))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the notebook's 20)")
    parser.add_argument("--quick", action="store_true", help="200/200 instances, 2 epochs, one seed (a smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default: benchmarks/results/pto-<problem>.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    base = PTOConfig.quick(problem=args.problem) if args.quick else PTOConfig(problem=args.problem)
    seeds = args.seeds[:1] if args.quick else args.seeds
    if args.epochs is not None:
        base = replace(base, epochs=args.epochs)
    base = base.resolve_problem()  # the problem's PyEPO notebook setting
    data = load_data(base)
    rows, results = [], []
    load_start = load_average()
    for method in args.methods:
        ours, theirs = [], []
        for i, seed in enumerate(seeds):
            config = replace(base, method=method, seed=seed).resolve()
            order = ("pyepo", "ours") if i % 2 == 0 else ("ours", "pyepo")
            for side in order:
                if side == "pyepo":
                    theirs.append(run_pyepo(config, data))
                else:
                    ours.append(run_pto(config, data=data, progress=False, plot=False, num_threads=1))
        regret_theirs = mean_std([r["test_regret_pct"] for r in theirs])
        regret_ours = mean_std([r["test_regret_pct"] for r in ours])
        t_theirs = median([r["epoch_seconds_median"] for r in theirs])
        t_ours = median([r["epoch_seconds_median"] for r in ours])
        within = abs(regret_ours[0] - regret_theirs[0]) <= max(regret_ours[1], regret_theirs[1]) if len(seeds) > 1 \
            else None
        rows.append([method, f"{regret_theirs[0]:.2f} ± {regret_theirs[1]:.2f}", f"{regret_ours[0]:.2f} ± {regret_ours[1]:.2f}",
                     "" if within is None else ("yes" if within else "NO"), f"{t_theirs:.4f}", f"{t_ours:.4f}",
                     f"{t_theirs / t_ours:.1f}"])
        results.append({"method": method, "pyepo": theirs, "ours": ours, "pyepo_regret_pct": regret_theirs,
                        "ours_regret_pct": regret_ours, "pyepo_epoch_seconds": t_theirs, "ours_epoch_seconds": t_ours,
                        "speedup": t_theirs / t_ours, "within_one_std": within})
        print(format_table(["method", "PyEPO regret %", "discograd regret %", "within 1 std", "PyEPO s/epoch",
                            "discograd s/epoch", "speed-up"], rows[-1:]), flush=True)
    print(f"\n{args.problem}, {len(seeds)} seed(s), {base.epochs} epochs, {base.num_train} training / {base.num_test} test, "
          f"load average {load_start} -> {load_average()}")
    print(format_table(["method", "PyEPO regret %", "discograd regret %", "within 1 std", "PyEPO s/epoch",
                        "discograd s/epoch", "speed-up"], rows))
    out = args.out if args.out is not None else RESULTS_DIR / f"pto-{args.problem}{'-quick' if args.quick else ''}.json"
    write_json(out, {"environment": environment(torch.device("cpu")), "base_config": asdict(base), "seeds": seeds,
                     "load_average": [load_start, load_average()], "results": results})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
