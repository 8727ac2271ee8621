"""Every command's --help: the top level, each subcommand and each sub-subcommand prints its help and exits 0."""

import argparse

import pytest

from discograd.experiments.cli import build_parser, main


def _walk(parser, path=()):
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(build_parser()))


def test_the_walk_finds_the_nested_commands():
    assert () in COMMANDS and ("table2",) in COMMANDS and ("dvae", "train") in COMMANDS and ("l2x", "compare") in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "discograd")
def test_help(path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*path, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: discograd") and len(out) > 100
