r"""Where the runs of a comparison execute: here, one after the other, or as tasks on a Ray cluster.

A comparison (``discograd compare``, ``table2``, ``l2x compare``, ``dvae compare``) is a list of
:class:`RunTask`\ s (an experiment's name, its config, a run folder) given to :func:`run_tasks`:

- ``executor="local"``: the runs execute in this process, in order, with one bar over the runs and each run's
  own bars below it; data sets are loaded once and shared by the runs that use them (``data_for``).
- ``executor="ray"``: every run is one Ray task asking for ``num_threads`` CPUs (and ``num_gpus`` GPUs), all
  submitted at once. ``ray_address=None`` starts a Ray instance on this machine (``ray_num_cpus`` CPUs, default
  all) and stops it afterwards; an address (``"auto"``, ``"ray://head:10001"``) joins a running cluster. The
  tasks write into the same run-folder layout, so the folder must be on a path every node shares; finished
  runs are reused and interrupted ones resume, as with the local executor. Each task loads its own data
  (generated deterministically from the config's seeds, or read from ``cache_dir`` / ``data_dir`` on the shared
  path), so the numbers are those of the local executor for the same runs and thread counts. Ray is the
  optional extra ``discograd[distributed]``.

Results come back in the order of the tasks, whichever finishes first.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EXECUTORS", "EXPERIMENTS", "RunTask", "run_task", "run_tasks"]

#: where the runs of a comparison can execute: ``"local"`` (one after the other here) or ``"ray"`` (Ray tasks)
EXECUTORS = ("local", "ray")
#: experiment name -> (module, config class, run function)
EXPERIMENTS = {
    "warcraft": ("discograd.experiments.warcraft.train", "WarcraftConfig", "run_warcraft"),
    "l2x": ("discograd.experiments.l2x.train", "L2XConfig", "run_l2x"),
    "dvae": ("discograd.experiments.dvae.train", "DVAEConfig", "run_dvae"),
    "pto": ("discograd.experiments.pto.train", "PTOConfig", "run_pto"),
}


@dataclass(frozen=True)
class RunTask:
    """One run: ``experiment`` (a key of :data:`EXPERIMENTS`), its config as a dict of the config dataclass's
    fields, the run folder ``out``, the torch threads (also the CPUs a Ray task asks for), the GPUs a Ray task
    asks for (``None``: one when the config's ``device`` is CUDA, else none), and further keyword arguments of
    the experiment's run function (``plot``, ``cache_dir``)."""

    experiment: str
    config: dict[str, Any]
    out: str
    num_threads: int | None = None
    num_gpus: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        if self.experiment not in EXPERIMENTS:
            raise ValueError(f"experiment must be one of {list(EXPERIMENTS)}; got {self.experiment!r}")

    @property
    def gpus(self) -> float:
        """The GPUs a Ray task for this run asks for."""
        if self.num_gpus is not None:
            return float(self.num_gpus)
        return 1.0 if str(self.config.get("device", "cpu")).startswith("cuda") else 0.0


def _parts(experiment: str) -> tuple[type, Callable[..., dict[str, Any]]]:
    module_name, config_name, run_name = EXPERIMENTS[experiment]
    module = importlib.import_module(module_name)
    return getattr(module, config_name), getattr(module, run_name)


def run_task(task: RunTask, *, data: Any = None, progress: bool = False, bar_position: int = 0) -> dict[str, Any]:
    """Run ``task`` in this process and return its final numbers (``final.json``)."""
    config_cls, run = _parts(task.experiment)
    config = config_cls(**task.config)
    return run(config, task.out, data=data, progress=progress, num_threads=task.num_threads,
               bar_position=bar_position, **task.options)


def run_tasks(tasks: Sequence[RunTask], executor: str = "local", *, ray_address: str | None = None,
              ray_num_cpus: int | None = None, data_for: Callable[[RunTask], Any] | None = None,
              progress: bool = True, desc: str = "runs") -> list[dict[str, Any]]:
    """Run every task with ``executor`` (``"local"`` or ``"ray"``) and return their final numbers in task order.
    ``data_for(task)``: the data a local run uses (``None``: each run loads its own); Ray tasks always load
    their own. ``ray_address`` / ``ray_num_cpus``: see the module docstring."""
    tasks = list(tasks)
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {list(EXECUTORS)}; got {executor!r}")
    if executor == "local":
        if ray_address is not None:
            raise ValueError("ray_address (--ray-address) needs the ray executor (--executor ray)")
        return _run_local(tasks, data_for, progress, desc)
    return _run_ray(tasks, ray_address, ray_num_cpus, progress, desc)


def _bar(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="run", position=0)


def _run_local(tasks: list[RunTask], data_for: Callable[[RunTask], Any] | None, progress: bool,
               desc: str) -> list[dict[str, Any]]:
    bar = _bar(len(tasks), desc, progress)
    finals = []
    try:
        for task in tasks:
            if bar is not None and task.label:
                bar.set_postfix_str(task.label)
            data = None if data_for is None else data_for(task)
            finals.append(run_task(task, data=data, progress=progress, bar_position=1))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return finals


def import_ray() -> Any:
    """``ray``, or an ImportError naming the extra."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError("the ray executor needs Ray: pip install 'discograd[distributed]'") from exc
    return ray


def _run_ray(tasks: list[RunTask], address: str | None, num_cpus: int | None, progress: bool,
             desc: str) -> list[dict[str, Any]]:
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False}
        if address is not None:
            kwargs["address"] = address
        elif num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        # the workers must import this discograd: pass on the path it was imported from
        source = str(Path(__file__).resolve().parents[2])
        python_path = os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": python_path}} if address is None else None
        ray.init(**kwargs)
    try:
        remote = ray.remote(_ray_entry)
        refs = [remote.options(num_cpus=task.num_threads or 1, num_gpus=task.gpus,
                               name=task.label or task.out).remote(task) for task in tasks]
        position = {ref: i for i, ref in enumerate(refs)}
        finals: list[dict[str, Any] | None] = [None] * len(tasks)
        bar = _bar(len(tasks), f"{desc} (ray)", progress)
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        finals[position[ref]] = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        for other in pending:
                            ray.cancel(other)
                        # an instance of both RayTaskError and the task's own exception type (a ValueError
                        # stays a ValueError for the CLI), with the worker's traceback in its message
                        raise exc.as_instanceof_cause() from None
                    if bar is not None:
                        bar.set_postfix_str(tasks[position[ref]].label or tasks[position[ref]].out)
                        bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return [f for f in finals if f is not None]
    finally:
        if started_here:
            ray.shutdown()


def _ray_entry(task: RunTask) -> dict[str, Any]:  # pragma: no cover - runs in a Ray worker process
    """A Ray task: one run, without progress bars (the driver shows one over the tasks)."""
    sys.stderr.flush()
    return run_task(task, progress=False)
