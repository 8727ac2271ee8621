r"""One harness for every experiment: a config in, a run folder out.

An experiment file holds only what is particular to it (its data, model, methods and metrics) as a
:class:`Trainer`; :func:`train` runs the epochs of a trainer in a :class:`RunFolder`, with everything the
experiments share:

- the run folder: ``config.json`` (a folder holding another config is an error naming the fields that
  differ), ``metrics.jsonl`` and ``metrics.csv`` (one row per epoch, epoch 0 = before training),
  ``checkpoints/last.pt`` after every epoch, the trainer's plots, then ``final.json``, which marks a
  finished run (calling again returns it without training). Every write is atomic.
- resume: a checkpoint of the same config continues after its last epoch and ends with exactly the numbers
  of an uninterrupted run; it is refused under another torch thread count or another number of
  data-parallel ranks (:mod:`discograd.distributed`), which would change the numbers.
- progress bars (tqdm): one over epochs and one over the batches of the epoch (and of the evaluation).
- data parallelism: under ``torch.distributed`` only rank 0 writes; every rank reads the checkpoint; each
  rank's own state (its noise generator) is gathered into the checkpoint and handed back on resume.

:class:`RunTask` and :func:`run_tasks` are the other half: a list of runs (``experiment``, config, run
folder) executed here one after the other (``executor="local"``) or as Ray tasks on a cluster
(``executor="ray"``, :mod:`discograd.experiments.executors`), with one progress bar over the runs.
"""

from __future__ import annotations

import contextlib
import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .. import distributed as dist_utils
from ._io import (
    atomic_write_text,
    check_resume_threads,
    load_checkpoint,
    open_run_folder,
    save_checkpoint,
    write_json,
    write_jsonl,
)

__all__ = ["RunFolder", "Trainer", "open_run", "torch_threads", "train", "write_metrics"]


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the block with ``num_threads`` torch threads (``None``: leave them), restored afterwards."""
    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                    or num_threads < 1):
        raise ValueError(f"num_threads must be an integer >= 1; got {num_threads!r}")
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def write_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    """``metrics.jsonl`` (one JSON object per epoch) and ``metrics.csv`` (columns in order of appearance;
    ``None`` as an empty cell)."""
    write_jsonl(out / "metrics.jsonl", history)
    columns = list(history[0])
    for row in history[1:]:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    atomic_write_text(out / "metrics.csv", buffer.getvalue())


class RunFolder:
    """The folder of one run: its config, checkpoint, metrics and final numbers. Under
    ``torch.distributed`` only rank 0 writes (every rank may read)."""

    def __init__(self, path: str | Path, config: dict[str, Any]) -> None:
        self.path = Path(path)
        self.config = config
        self.writer = dist_utils.rank() == 0

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    def open(self, *, finished_ok: bool = True) -> dict[str, Any] | None:
        """Create the folder and check or write ``config.json``; the saved ``final.json`` when the run has
        finished (and ``finished_ok``), else ``None``."""
        if self.writer:
            finished = open_run_folder(self.path, self.config, finished_ok=finished_ok)
        else:
            finished = None
        finished = dist_utils.broadcast_object(finished)
        return finished

    def load(self, map_location: Any = "cpu") -> dict[str, Any] | None:
        """The checkpoint (``None`` when there is none), checked against this process's thread count and
        number of ranks."""
        if not self.checkpoint_path.exists():
            return None
        state = load_checkpoint(self.checkpoint_path, map_location=map_location)
        check_resume_threads(state, self.path)
        saved = int(state.get("world_size", 1))
        if saved != dist_utils.world_size():
            raise ValueError(f"the run in {self.path} was trained on {saved} data-parallel rank(s); resuming it "
                             f"on {dist_utils.world_size()} would change its result: resume it with "
                             f"{'torchrun --nproc_per_node ' + str(saved) if saved > 1 else 'a single process'}")
        return state

    def save(self, state: dict[str, Any], history: list[dict[str, Any]]) -> None:
        if self.writer:
            save_checkpoint(self.checkpoint_path, state)
            write_metrics(self.path, history)

    def write_history(self, history: list[dict[str, Any]]) -> None:
        if self.writer:
            write_metrics(self.path, history)

    def write_final(self, final: dict[str, Any]) -> None:
        if self.writer:
            write_json(self.path / "final.json", final)


def open_run(out: Path | None, config: dict[str, Any],
             stop_after_epochs: int | None = None) -> tuple[RunFolder | None, dict[str, Any] | None]:
    """The run folder for ``config`` (``None`` when ``out`` is) and, when it holds the finished run, its
    ``final.json`` (not when ``stop_after_epochs`` is set: the caller wants a checkpoint, not the result)."""
    if out is None:
        return None, None
    folder = RunFolder(out, config)
    return folder, folder.open(finished_ok=stop_after_epochs is None)


class Trainer:
    """What is particular to one experiment's run. Subclasses set ``num_batches`` (training batches per
    epoch), ``eval_batches`` (batches of one evaluation, for the progress bar) and ``desc`` (the bar's
    label), and implement the methods below. :func:`train` calls them in this order: ``load_state_dict``
    (on resume), ``evaluate(0)``, then per epoch ``train_epoch``, ``evaluate``, ``epoch_extras`` and
    ``after_epoch``; at the end ``final`` and, for a finished run with a folder, ``plot``.

    The default checkpoint state is that of the attributes ``model``, ``optimizer`` and ``layer`` (the
    estimator module holding state such as AIMLE's β, or ``None``), and per rank ``generator`` (the noise
    stream); subclasses with more state extend :meth:`state_dict` and :meth:`load_state_dict`."""

    num_batches: int = 0
    eval_batches: int = 0
    desc: str = "train"
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    layer: torch.nn.Module | None = None
    generator: torch.Generator | None = None

    def state_dict(self) -> dict[str, Any]:
        """What the checkpoint holds besides the epoch, the history, the config and the thread count (model,
        optimiser, the estimator's state); per-rank state goes in :meth:`rank_state_dict`."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "layer": None if self.layer is None else self.layer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.layer is not None and state.get("layer") is not None:
            self.layer.load_state_dict(state["layer"])

    def rank_state_dict(self) -> dict[str, Any]:
        """This rank's own state (its noise generator): saved for every rank."""
        return {} if self.generator is None else {"generator": self.generator.get_state()}

    def load_rank_state_dict(self, state: dict[str, Any]) -> None:
        if self.generator is not None:
            self.generator.set_state(state["generator"])

    def untrained_fields(self) -> dict[str, Any]:
        """The training columns of the epoch-0 row (before ``train_seconds``)."""
        return {"train_loss": None}

    def train_epoch(self, epoch: int, on_batch: Any) -> dict[str, Any]:
        """Train one epoch (call ``on_batch(loss)`` after every batch); return its training columns (at least
        ``train_loss``, the mean per-instance loss)."""
        raise NotImplementedError

    def evaluate(self, epoch: int, on_batch: Any) -> dict[str, Any]:
        """The evaluation columns after ``epoch`` (0: the untrained model); ``{}`` when this epoch is not
        evaluated."""
        raise NotImplementedError

    def epoch_extras(self) -> dict[str, Any]:
        """Columns appended to an epoch's row after the evaluation (an estimator's β, a temperature)."""
        return {}

    def after_epoch(self, folder: RunFolder, history: list[dict[str, Any]]) -> None:
        """Called after every epoch's row is recorded, before the checkpoint (e.g. to keep a best model)."""

    def postfix(self, row: dict[str, Any]) -> dict[str, str]:
        """What the epoch bar shows after an epoch."""
        return {}

    def final(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        """The run's final numbers (``final.json``)."""
        raise NotImplementedError

    def plot(self, out: Path, history: list[dict[str, Any]]) -> None:
        """The run's figures, written before ``final.json``."""


class _Bars:
    """An epoch bar and a batch bar (tqdm), or nothing."""

    def __init__(self, enabled: bool, desc: str, epochs: int, start_epoch: int, num_batches: int, eval_batches: int,
                 position: int) -> None:
        self.enabled = enabled and dist_utils.rank() == 0
        self.batches = self.epochs = None
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        self._tqdm, self.num_batches, self.eval_batches, self.position = tqdm, num_batches, eval_batches, position
        self.epochs = tqdm(total=epochs, initial=start_epoch - 1, desc=desc, unit="epoch", position=position,
                           leave=position == 0)

    def _new(self, total: int, desc: str) -> None:
        if self.batches is not None:
            self.batches.close()
        self.batches = self._tqdm(total=total, desc=desc, unit="batch", leave=False, position=self.position + 1)

    def start_epoch(self, epoch: int) -> None:
        if self.enabled:
            self._new(self.num_batches, f"epoch {epoch}")

    def start_eval(self) -> None:
        if self.enabled and self.eval_batches:
            self._new(self.eval_batches, "evaluating")

    def batch_done(self, loss: float | None = None) -> None:
        if self.batches is not None:
            self.batches.update(1)
            if loss is not None:
                self.batches.set_postfix(loss=f"{loss:.4g}", refresh=False)

    def epoch_done(self, postfix: dict[str, str]) -> None:
        if self.epochs is not None:
            self.epochs.update(1)
            if postfix:
                self.epochs.set_postfix(postfix)

    def close(self) -> None:
        for bar in (self.batches, self.epochs):
            if bar is not None:
                bar.close()
        self.batches = self.epochs = None


def train(trainer: Trainer, folder: RunFolder | None, epochs: int, *, stop_after_epochs: int | None = None,
          progress: bool = True, plot: bool = True, bar_position: int = 0,
          map_location: Any = "cpu") -> dict[str, Any]:
    """Run ``trainer`` for ``epochs`` epochs in ``folder`` (``None``: nothing is written or resumed) and return
    its final numbers. The caller has opened the folder (:meth:`RunFolder.open`) and returned a finished run's
    ``final.json`` itself. ``stop_after_epochs`` stops once that many epochs are done (with a checkpoint), as
    an interruption would; calling again resumes."""
    history: list[dict[str, Any]] = []
    start_epoch = 1
    state = None if folder is None else folder.load(map_location)
    if state is not None:
        trainer.load_state_dict(state)
        ranks = state.get("ranks")  # one entry per rank; a one-process checkpoint holds its rank state flat
        trainer.load_rank_state_dict(state if ranks is None else ranks[dist_utils.rank()])
        history = list(state["history"])
        start_epoch = int(state["epoch"]) + 1

    bars = _Bars(progress, trainer.desc, epochs, start_epoch, trainer.num_batches, trainer.eval_batches,
                 bar_position)
    try:
        if not history:  # epoch 0: the untrained model
            bars.start_eval()
            history.append({"epoch": 0, **trainer.untrained_fields(), "train_seconds": 0.0,
                            **trainer.evaluate(0, bars.batch_done)})
            if folder is not None:
                folder.write_history(history)
        for epoch in range(start_epoch, epochs + 1):
            if stop_after_epochs is not None and epoch > stop_after_epochs:
                break
            bars.start_epoch(epoch)
            started = time.perf_counter()
            fields = trainer.train_epoch(epoch, bars.batch_done)
            seconds = time.perf_counter() - started
            bars.start_eval()
            row = {"epoch": epoch, **fields, "train_seconds": seconds, **trainer.evaluate(epoch, bars.batch_done),
                   **trainer.epoch_extras()}
            history.append(row)
            bars.epoch_done(trainer.postfix(row))
            if folder is not None:
                trainer.after_epoch(folder, history)
                checkpoint = {**trainer.state_dict(), "epoch": epoch, "history": history, "config": folder.config,
                              "num_threads": torch.get_num_threads()}
                ranks = dist_utils.all_gather_object(trainer.rank_state_dict())
                if dist_utils.world_size() > 1:
                    checkpoint["world_size"] = dist_utils.world_size()
                    checkpoint["ranks"] = ranks
                else:
                    checkpoint.update(ranks[0])
                folder.save(checkpoint, history)
                dist_utils.barrier()
    finally:
        bars.close()

    final = trainer.final(history)
    if folder is not None and history[-1]["epoch"] == epochs:
        # the plots first: final.json marks a finished run (a later call returns it without training)
        if plot and folder.writer:
            trainer.plot(folder.path, history)
        folder.write_final(final)
        dist_utils.barrier()
    return final
