"""Data-parallel problems for tests/test_distributed.py, run under ``torchrun --nproc_per_node 2`` (and, for the
single-process reference, imported by the test itself).

``python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_worker.py gradients OUT`` writes
``OUT/gradients-rank{r}.pt``; ``... warcraft OUT RUN_FOLDER [STOP]`` trains a tiny Warcraft run (stopping after
``STOP`` epochs when given).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from discograd import AdaptiveTarget, PerturbedTarget, TopK, blackbox, distributed, imle
from discograd.losses import FenchelYoungLoss

METHODS = ("imle", "aimle", "aimle_batch", "blackbox", "perturbed_fy")
B, D, N, K, S, STEPS = 8, 5, 6, 2, 2, 4


class ShardNoise:
    """Noise that returns this rank's rows of a noise tensor drawn for the whole batch (so every rank
    perturbs its instances exactly as one process perturbs the whole batch)."""

    def __init__(self, eps: torch.Tensor, lo: int, hi: int) -> None:
        self.eps, self.lo, self.hi = eps, lo, hi

    def sample(self, shape, *, generator=None, device=None, dtype=None):
        part = self.eps[:, self.lo:self.hi]
        assert tuple(shape) == tuple(part.shape), (shape, part.shape)
        return part.to(device=device, dtype=dtype).clone()


def gradients(method: str) -> dict[str, list]:
    """``STEPS`` SGD steps of a linear scorer through top-k with ``method``, this rank holding its shard of
    every batch; the gradients of every step and (AIMLE) β after every step."""
    rank, world = distributed.rank(), distributed.world_size()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, D, generator=g, dtype=torch.float64)
    y = TopK(K)(torch.randn(B, N, generator=g, dtype=torch.float64))
    model = torch.nn.Linear(D, N).double()
    with torch.no_grad():
        model.weight.copy_(0.5 * torch.randn(N, D, generator=g, dtype=torch.float64))
        model.bias.zero_()
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
        net.register_comm_hook(None, distributed.sum_gradients_hook)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    target = {"imle": PerturbedTarget(2.0), "aimle": AdaptiveTarget(3.0, update_step=0.2, initial_beta=0.3),
              "aimle_batch": AdaptiveTarget(3.0, update_step=0.2, initial_beta=0.3, norm="batch"),
              "blackbox": None, "perturbed_fy": None}[method]
    lo, hi = distributed.shard_bounds(B, rank, world)
    grads, betas = [], []
    for _ in range(STEPS):
        eps = torch.randn(S, B, N, generator=g, dtype=torch.float64)  # the whole batch's noise, on every rank
        if method == "perturbed_fy":  # a loss on the scores, no z
            loss = FenchelYoungLoss(TopK(K), noise=ShardNoise(eps, lo, hi), noise_scale=0.5, num_samples=S,
                                    reduction="none")
            per_instance = loss(net(x[lo:hi]), y[lo:hi])
        else:
            if method == "blackbox":
                layer = blackbox(TopK(K), step_size=2.0)
            else:
                layer = imle(TopK(K), noise=ShardNoise(eps, lo, hi), target=target, num_samples=S)
            z = layer(net(x[lo:hi]))
            z = z if z.dim() == 3 else z.unsqueeze(0)
            per_instance = ((z - y[lo:hi]) ** 2).sum(-1).sum(0)
        optimizer.zero_grad()
        (per_instance.sum() / B).backward()  # the whole batch's mean: shards sum to it
        grads.append([p.grad.detach().clone() for p in model.parameters()])
        optimizer.step()
        betas.append(None if target is None or not hasattr(target, "beta") else target.beta)
    return {"grads": grads, "betas": betas}


def warcraft_config():
    from discograd.experiments.warcraft.train import WarcraftConfig

    return WarcraftConfig.quick(method="aimle", num_train=24, num_val=10, num_test=11, epochs=2, batch_size=8,
                                width=8, grid_size=6, eval_batch_size=4, lr_milestones=[1])


def main(argv: list[str]) -> None:
    distributed.init_from_env()
    torch.set_num_threads(1)
    what, out = argv[0], Path(argv[1])
    if what == "gradients":
        result = {method: gradients(method) for method in METHODS}
        torch.save(result, out / f"gradients-rank{distributed.rank()}.pt")
    elif what == "warcraft":
        from discograd.experiments.warcraft.train import run_warcraft

        stop = int(argv[3]) if len(argv) > 3 else None
        run_warcraft(warcraft_config(), argv[2], progress=False, plot=False, cache_dir=out / "data", num_threads=1,
                     stop_after_epochs=stop)
    else:
        raise SystemExit(f"unknown problem {what!r}")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
