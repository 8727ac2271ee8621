r"""Data-parallel training with ``torch.distributed``: what the estimators and the trainers need.

Every estimator of discograd works under :class:`torch.nn.parallel.DistributedDataParallel` as it is: each
rank perturbs and solves its own shard of the batch. Three things need care, and this module provides them:

- **Noise streams.** Each rank must draw its own noise, reproducibly from one seed:
  :func:`rank_generator` derives rank ``r``'s ``torch.Generator`` from ``(seed, r)`` (rank 0 of a one-process
  run gets the plain ``seed``, so a single process draws what it always drew).
- **Statistics shared across ranks.** :class:`~discograd.targets.AdaptiveTarget` (AIMLE) steers β by the
  number of non-zero gradient entries; with a process group initialised it all-reduces that count (and, with
  ``norm="batch"``, the norms), so β stays identical on every rank (``distributed=False`` keeps it local).
- **The loss scale.** DDP *averages* gradients over ranks. A per-rank objective ``Σ_{i in shard} l_i / B``
  (``B`` the global batch) and summed gradients give exactly the gradient of the global ``Σ_i l_i / B``; the
  upstream gradient ``∂L/∂z`` each instance sees (and so the targets of I-MLE and blackbox, which depend on
  its scale) is then the same as in one process. :func:`sum_gradients_hook` is the DDP communication hook
  that sums instead of averaging: ``ddp.register_comm_hook(None, sum_gradients_hook)``.

The helpers below work without a process group too (one rank, nothing to communicate), so code that calls
them runs unchanged in one process. :func:`init_from_env` starts the process group that ``torchrun`` describes
in the environment (gloo on the CPU, NCCL with CUDA).

Example (one process: rank 0 of 1):
    >>> from discograd import distributed
    >>> distributed.rank(), distributed.world_size()
    (0, 1)
    >>> distributed.shard(list(range(10)))
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = ["all_gather_object", "all_reduce_sum", "barrier", "broadcast_object", "init_from_env", "is_distributed",
           "rank", "rank_generator", "rank_seed", "shard", "sum_gradients_hook", "world_size"]

T = TypeVar("T")


def is_distributed() -> bool:
    """Whether a ``torch.distributed`` process group is initialised with more than one rank."""
    return torch.distributed.is_available() and torch.distributed.is_initialized() and \
        torch.distributed.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def world_size() -> int:
    """The number of ranks (1 without a process group)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def init_from_env(backend: str | None = None) -> bool:
    """Initialise the default process group from ``torchrun``'s environment (``WORLD_SIZE``, ``RANK``,
    ``MASTER_ADDR``, ``MASTER_PORT``) when it names more than one rank and no group exists yet. ``backend``:
    ``None`` picks ``"nccl"`` when CUDA is available, else ``"gloo"``. Returns whether a group is initialised."""
    if torch.distributed.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not torch.distributed.is_available():  # pragma: no cover - builds without distributed support
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    torch.distributed.init_process_group(backend)
    return True


def rank_seed(seed: int, rank_index: int | None = None) -> int:
    """The seed of rank ``rank_index`` (default: this process's rank) derived from ``seed``: ``seed`` itself
    for rank 0, a well-mixed 63-bit seed from NumPy's ``SeedSequence((seed, rank))`` for the others."""
    r = rank() if rank_index is None else int(rank_index)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0; got {seed!r}")
    if r < 0:
        raise ValueError(f"rank_index must be >= 0; got {r}")
    if r == 0:
        return seed
    return int(np.random.SeedSequence([seed, r]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def rank_generator(seed: int, device: str | torch.device = "cpu", rank_index: int | None = None) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`rank_seed`: one noise stream per rank, all from
    one seed.

    Example:
        >>> from discograd.distributed import rank_generator
        >>> a, b = rank_generator(7, rank_index=0), rank_generator(7, rank_index=1)
        >>> bool(torch.rand(3, generator=a).ne(torch.rand(3, generator=b)).all())
        True
    """
    return torch.Generator(device=device).manual_seed(rank_seed(seed, rank_index))


def shard(items: Sequence[T] | np.ndarray | torch.Tensor, rank_index: int | None = None,
          num_ranks: int | None = None) -> Any:
    """Rank ``rank_index``'s share of ``items``: the contiguous block ``[lo, hi)`` of ``len(items)`` split as
    evenly as possible (the first ``len % num_ranks`` ranks get one more). Contiguous blocks keep a batch's
    order, so the shards concatenated in rank order are the batch."""
    r = rank() if rank_index is None else rank_index
    n = world_size() if num_ranks is None else num_ranks
    lo, hi = shard_bounds(len(items), r, n)
    return items[lo:hi]


def shard_bounds(length: int, rank_index: int, num_ranks: int) -> tuple[int, int]:
    """``(lo, hi)`` of :func:`shard`."""
    if num_ranks < 1 or not 0 <= rank_index < num_ranks:
        raise ValueError(f"need 0 <= rank_index < num_ranks; got rank_index {rank_index}, num_ranks {num_ranks}")
    base, extra = divmod(length, num_ranks)
    lo = rank_index * base + min(rank_index, extra)
    return lo, lo + base + (1 if rank_index < extra else 0)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``tensor`` over ranks (a new tensor; ``tensor`` itself without a group)."""
    if not is_distributed():
        return tensor
    total = tensor.detach().clone()
    torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
    return total


def all_gather_object(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order (``[obj]`` without a group)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * world_size()
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank (``obj`` itself without a group)."""
    if not is_distributed():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    """Wait for every rank (nothing without a group)."""
    if is_distributed():
        torch.distributed.barrier()


def sum_gradients_hook(state, bucket):  # type: ignore[no-untyped-def]  # DDP rejects other annotations
    """A DDP communication hook that **sums** the gradients over ranks (DDP's default averages them): with a
    per-rank objective normalised by the global batch, the summed gradient is the single-process gradient.
    ``ddp.register_comm_hook(None, sum_gradients_hook)``."""
    group = state if state is not None else torch.distributed.group.WORLD
    future = torch.distributed.all_reduce(bucket.buffer(), group=group, async_op=True).get_future()
    return future.then(lambda fut: fut.value()[0])
