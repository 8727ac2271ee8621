"""Command-line helpers shared by the experiments: one option per field of a config dataclass."""

from __future__ import annotations

import argparse
import typing
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

__all__ = ["add_dataclass_options", "apply_options", "check_threads", "option_type"]


def option_type(hint: Any) -> tuple[Any, bool]:
    """``(item type, is_list)`` of a config field's type hint (``X | None`` gives ``X``)."""
    if typing.get_origin(hint) is list:
        return typing.get_args(hint)[0], True
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return (args[0] if args else hint), False


def add_dataclass_options(parser: argparse.ArgumentParser, config_cls: type, help_texts: Mapping[str, str], *,
                          choices: Mapping[str, list[str]] | None = None, skip: tuple[str, ...] = (),
                          aliases: Mapping[str, list[str]] | None = None) -> None:
    """Add ``--field-name`` for every field of ``config_cls`` (except ``skip``), each defaulting to ``None``
    (= keep the config's or the preset's value); the help shows the text and the default. Booleans become
    ``--x/--no-x``, lists take any number of values, ``choices`` restricts a field's values."""
    choices = choices or {}
    aliases = aliases or {}
    defaults = config_cls()
    hints = typing.get_type_hints(config_cls)
    for f in fields(config_cls):
        if f.name in skip:
            continue
        option = f"--{f.name.replace('_', '-')}"
        default = getattr(defaults, f.name)
        if default is None:
            shown: Any = "unset"
        elif isinstance(default, list):
            shown = " ".join(map(str, default)) or "none"
        else:
            shown = default
        text = f"{help_texts[f.name]} (default: {shown})"
        item, is_list = option_type(hints[f.name])
        if item is bool:
            parser.add_argument(option, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif is_list:
            parser.add_argument(option, nargs="*", type=item, default=None, metavar="N", help=text)
        else:
            metavar = {int: "N", float: "X"}.get(item, "PATH" if f.name.endswith("_dir") else f.name.upper())
            parser.add_argument(option, *aliases.get(f.name, []), type=item, default=None,
                                choices=choices.get(f.name), help=text,
                                metavar=None if f.name in choices else metavar)


def apply_options(config: Any, args: argparse.Namespace) -> Any:
    """Set every config field whose option was given (not ``None``) on ``config``; paths become strings."""
    for f in fields(config):
        value = getattr(args, f.name, None)
        if value is not None:
            setattr(config, f.name, str(value) if f.name.endswith("_dir") else value)
    return config


def check_threads(args: argparse.Namespace) -> None:
    """``--num-threads`` is unset or an integer >= 1."""
    if args.num_threads is not None and args.num_threads < 1:
        raise ValueError(f"--num-threads must be an integer >= 1; got {args.num_threads}")


def announce_run(out: Any) -> bool:
    """Before a run: say on stderr when it resumes from a checkpoint. Returns whether the run folder
    already holds a finished run (its result is then reused; say so with :func:`reused_message`)."""
    import sys
    from pathlib import Path

    out = Path(out)
    finished = (out / "final.json").exists()
    if not finished and (out / "checkpoints" / "last.pt").exists():
        print(f"resuming the run in {out}/ from its last checkpoint", file=sys.stderr)
    return finished


def reused_message(out: Any) -> str:
    return f"reused the finished run in {out}/ (same config; delete the folder to train it again)"


def add_run_options(parser: argparse.ArgumentParser, default_out: str, quick_help: str, *,
                    threads_default: int | None = None, threads_help: str = "torch threads (default: torch's choice)",
                    cache_dir: str | None = None) -> None:
    """The options every experiment command shares: ``--quick``, ``--out``, (``--cache-dir``),
    ``--num-threads``, ``--no-progress``, ``--no-plot``."""
    from pathlib import Path

    parser.add_argument("--quick", action="store_true", help=f"{quick_help}; other options still override it")
    parser.add_argument("--out", type=Path, default=None, help=f"run folder (default: {default_out})")
    if cache_dir is not None:
        parser.add_argument("--cache-dir", type=Path, default=Path(cache_dir),
                            help=f"where generated data is cached (default: {cache_dir})")
    parser.add_argument("--num-threads", type=int, default=threads_default, help=threads_help)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNGs (no matplotlib needed)")


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """``--executor {local,ray}``, ``--ray-address`` and ``--ray-num-cpus`` of the comparison commands."""
    from .executors import EXECUTORS

    group = parser.add_argument_group("where the runs execute")
    group.add_argument("--executor", choices=list(EXECUTORS), default="local",
                       help="local: one run after the other in this process; ray: one Ray task per run (needs "
                            "discograd[distributed]; the output folder must be on a path every node shares) "
                            "(default: local)")
    group.add_argument("--ray-address", default=None, metavar="ADDRESS",
                       help="with --executor ray: the cluster to join ('auto', 'ray://HOST:10001'; default: start a "
                            "Ray instance on this machine for the duration of the command)")
    group.add_argument("--ray-num-cpus", type=int, default=None, metavar="N",
                       help="with --executor ray and no --ray-address: CPUs of the local Ray instance (default: all); "
                            "each run asks for --num-threads CPUs (1 when unset)")


def executor_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of a comparison function from :func:`add_executor_options`' options."""
    if args.executor == "local" and (args.ray_address is not None or args.ray_num_cpus is not None):
        raise ValueError("--ray-address and --ray-num-cpus need --executor ray")
    if args.ray_num_cpus is not None and args.ray_num_cpus < 1:
        raise ValueError(f"--ray-num-cpus must be an integer >= 1; got {args.ray_num_cpus}")
    return {"executor": args.executor, "ray_address": args.ray_address, "ray_num_cpus": args.ray_num_cpus}


def run_command(name: str, handler: Any, args: argparse.Namespace,
                errors: tuple[type[BaseException], ...] = (ValueError, ImportError)) -> int:
    """Run a subcommand's handler: ``errors`` print ``discograd NAME: error: ...`` and return 2; Ctrl-C
    returns 130 with how to resume."""
    import sys

    try:
        return handler(args)
    except errors as exc:
        print(f"discograd {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ndiscograd {name}: interrupted; run the same command again to resume from the last finished epoch",
              file=sys.stderr)
        return 130
