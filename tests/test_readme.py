"""The README's Python examples run as written and print the numbers the README shows."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_examples_run_and_match_their_comments():
    blocks = _python_blocks()
    assert len(blocks) >= 2
    for block in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(README), "exec"), {})
        printed = out.getvalue()
        # every "# tensor([...])" comment in the block is what the line printed
        for expected in re.findall(r"# (tensor\(\[.*?\])", block):
            assert expected in printed, (expected, printed)


DOCS = sorted((README.parent / "docs").glob("*.md"))  # the site's pages (docs/api/ holds no code blocks)


def test_docs_python_blocks_run_and_print_what_they_say():
    """Every ```python block of docs/*.md runs as written; a "# text" line right after a print() line
    is what that print wrote."""
    blocks = [(page, block) for page in DOCS
              for block in re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)]
    assert any(page.name == "migrating.md" for page, _ in blocks)
    for page, block in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(page), "exec"), {"__name__": "__docs__"})
        printed = out.getvalue().splitlines()
        for expected in re.findall(r"print\(.*\n# (.+)", block):
            assert expected in printed, (page.name, expected, printed)


def _fenced_blocks(text, languages):
    """The contents of the fenced code blocks of ``text`` whose info string is one of ``languages`` ("" for none),
    with opening and closing fences paired line by line (a regex over the whole text would pair a block's
    closing fence with the next block's opening one, and read the prose between them as a block)."""
    blocks, current, language = [], None, None
    for line in text.splitlines(keepends=True):
        fence = re.match(r"^\s*```(\S*)\s*$", line)
        if current is None and fence:
            current, language = [], fence.group(1)
        elif current is not None and fence and not fence.group(1):
            if language in languages:
                blocks.append("".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def _shell_commands():
    """Every ``discograd ...`` (or ``... -m discograd ...``) command line in a code block of the README or a docs page (backslash
    continuations joined, comments dropped)."""
    found = []
    for page in [README, *DOCS]:
        for block in _fenced_blocks(page.read_text(encoding="utf-8"), ("bash", "sh", "console", "")):
            text = block.replace("\\\n", " ")
            for line in text.splitlines():
                line = line.strip()
                for prefix in (".venv/bin/discograd ", "discograd "):
                    if line.startswith(prefix):
                        found.append((page.name, line[len(prefix):]))
                        break
                else:
                    if "&& .venv/bin/discograd " in line:
                        found.append((page.name, line.split("&& .venv/bin/discograd ", 1)[1]))
                    elif " -m discograd " in line:  # python -m discograd, torchrun ... -m discograd
                        found.append((page.name, line.split(" -m discograd ", 1)[1]))
    return found


def test_every_documented_command_parses():
    """The commands the README and docs/ give exist with the options they use (parsed, not run: most train for
    minutes to hours; their --help runs in test_cli_help.py)."""
    import shlex

    from discograd.experiments.cli import build_parser

    commands = _shell_commands()
    assert len(commands) >= 5 and any(page == "README.md" for page, _ in commands)
    parser = build_parser()
    for page, command in commands:
        try:
            parser.parse_args(shlex.split(command, comments=True))
        except SystemExit as exc:  # argparse reports the bad option on stderr and exits 2
            raise AssertionError(f"{page}: `discograd {command}` does not parse") from exc
