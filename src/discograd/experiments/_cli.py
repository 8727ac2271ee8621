"""Command-line helpers shared by the experiments: one option per field of a config dataclass."""

from __future__ import annotations

import argparse
import typing
from dataclasses import fields
from typing import Any, Mapping

__all__ = ["option_type", "add_dataclass_options", "apply_options", "check_threads"]


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
