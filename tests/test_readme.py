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
