"""A griffe extension that turns discograd's reStructuredText-flavoured docstrings into the Markdown that
mkdocstrings renders.

discograd's docstrings are Google-style (``Args:``, ``Returns:``, ``Example:``) but use a few Sphinx
constructs, which Markdown would show literally or mangle:

- cross-reference roles ``:func:`imle```, ``:class:`~discograd.noise.Gumbel```, ``:mod:`discograd.exact```,
  ``:meth:``, ``:attr:``, ``:data:``, ``:exc:``, ``:obj:``: resolved in the scope of the documented object
  (as Sphinx does) and written as an *optional* mkdocs-autorefs cross-reference, i.e. a link when the target
  is rendered on some page of the site, plain code otherwise (a private helper, a torch class);
- ``:math:`...``` and the ``.. math::`` directive: KaTeX maths through ``pymdownx.arithmatex`` (generic mode:
  ``\\(...\\)`` and ``\\[...\\]``);
- literal blocks introduced by ``::``: fenced code blocks (Python when the block compiles, else text);
- an ``Example:`` header becomes ``Examples:``, the Google section whose doctests griffe renders as code
  (it reads ``Example:`` as a note); doctest blocks (``>>>``) outside such a section: ``pycon`` fences;
- a bullet list right after a paragraph line: Python-Markdown needs a blank line before it;
- asterisks that Markdown would pair into emphasis: the postfix star of unicode maths (``θ*``) and the
  unpacking star of a shape outside code (``[S, *batch]``) are escaped;
- attribute documentation comments ``#: text`` above an assignment (Sphinx's autodoc convention, which griffe
  does not read): they become the attribute's docstring.

Used from ``mkdocs.yml`` (``plugins: mkdocstrings: handlers: python: options: extensions:``). The text
conversion is :func:`convert`, a pure function tested in ``tests/test_docs_site.py``.
"""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Callable

import griffe

__all__ = ["RstDocstrings", "convert", "escape_stray_stars", "parse_role", "resolve_in_scope"]

ROLES = ("func", "class", "mod", "meth", "attr", "data", "exc", "obj", "const")
_ROLE = re.compile(r":(?:py:)?(?P<role>" + "|".join(ROLES) + r"|math):`(?P<text>[^`]+)`")
_MATH_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. math::\s*(?P<rest>.*)$")
_LIST_ITEM = re.compile(r"^(?P<indent>\s*)(?:[-*+]|\d+\.)\s+\S")
_EXAMPLES_HEADER = re.compile(r"^(?P<indent>\s*)Examples?\s*:\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_TABLE_BORDER = re.compile(r"^\s*=+(?: +=+)+\s*$")

Resolver = Callable[[str, str], "str | None"]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def parse_role(text: str) -> tuple[str, str, bool]:
    """``(shown text, target, linkable)`` of a role's content, with Sphinx's rules: ``title <target>`` shows the
    title; ``~a.b.c`` shows ``c``; ``!name`` is never linked; a trailing ``()`` is kept in the shown text only."""
    text = text.strip()
    match = re.fullmatch(r"(?P<title>.+?)\s*<(?P<target>[^<>]+)>", text, flags=re.DOTALL)
    if match:
        return match["title"], match["target"].strip(), True
    linkable = not text.startswith("!")
    text = text.lstrip("!")
    target = text.lstrip("~").removesuffix("()")
    shown = target.rsplit(".", 1)[-1] + ("()" if text.endswith("()") else "") if text.startswith("~") else text
    return shown, target, linkable


def _block_end(lines: list[str], start: int, base_indent: int) -> int:
    """Index just past the block that starts at ``start``: lines that are blank or indented deeper than
    ``base_indent`` (trailing blank lines excluded)."""
    end = start
    for i in range(start, len(lines)):
        if lines[i].strip() and _indent(lines[i]) <= base_indent:
            break
        if lines[i].strip():
            end = i + 1
    return end


def _simple_table(lines: list[str], start: int) -> tuple[list[str], int] | None:
    """A reStructuredText simple table starting at the border line ``lines[start]`` as Markdown table lines,
    and the index past it; ``None`` when the lines there are not a complete simple table."""
    border = lines[start]
    indent = _indent(border)
    starts = [m.start() for m in re.finditer(r"=+", border)]
    borders = [start]
    i = start + 1
    while i < len(lines) and lines[i].strip() and len(borders) < 3:
        if _TABLE_BORDER.match(lines[i]):
            borders.append(i)
        i += 1
    if len(borders) == 2:  # a table without a header: border, rows, border
        header_end, end = None, borders[1]
    elif len(borders) == 3:
        header_end, end = borders[1], borders[2]
    else:
        return None

    def cells(line: str) -> list[str]:
        # a column's text should start at its border's column; when it starts a little earlier or later
        # (docutils would reject the table), cut at the nearest gap of two spaces instead of inside a word
        cuts = []
        for b in starts[1:]:
            if b < len(line) and line[b - 1] != " " and line[b] != " ":
                near = [p for p in range(max(2, b - 8), min(len(line), b + 9))
                        if line[p - 2:p] == "  " and line[p] != " "]
                b = min(near, key=lambda p: abs(p - b)) if near else b
            cuts.append(b)
        return [line[a:b].strip() for a, b in zip([starts[0], *cuts], [*cuts, None])]

    rows: list[list[str]] = []
    header_rows = 0
    for j in range(start + 1, end):
        if j == header_end:
            header_rows = len(rows)
            continue
        row = cells(lines[j])
        if rows and not row[0] and j - 1 != header_end:  # a continuation line: the first column is blank
            rows[-1] = [(a + " " + b).strip() for a, b in zip(rows[-1], row)]
        else:
            rows.append(row)
    if not rows:
        return None
    if header_rows == 0:
        header_rows = 1
    header = [" ".join(column).strip() for column in zip(*rows[:header_rows])]
    pad = " " * indent

    def line_of(row: list[str]) -> str:
        return pad + "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"

    table = [line_of(header), pad + "|" + "---|" * len(header)] + [line_of(row) for row in rows[header_rows:]]
    return table, end + 1


def _looks_like_python(code: str) -> bool:
    try:
        compile(code, "<docstring>", "exec")
    except SyntaxError:
        return False
    return True


_ARGS_HEADER = re.compile(r"^(?P<indent>\s*)(?:Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|"
                          r"Other Parameters|Attributes)\s*:\s*$")
_JOINT_ITEM = re.compile(r"^(?P<indent>\s*)(?P<names>[A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)+)(?P<type>\s*\([^)]*\))?:"
                         r"(?P<rest>\s.*|)$")


def _split_joint_params(lines: list[str]) -> list[str]:
    """``a, b: text`` in an ``Args:`` (or ``Attributes:``) section, two parameters described together, becomes
    one item per name, each with the text: griffe would otherwise look for a parameter called ``"a, b"``."""
    out: list[str] = []
    header_indent: int | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() and header_indent is not None and _indent(line) <= header_indent:
            header_indent = None
        header = _ARGS_HEADER.match(line)
        if header:
            header_indent = len(header["indent"])
            out.append(line)
            i += 1
            continue
        item = _JOINT_ITEM.match(line) if header_indent is not None else None
        if item:
            end = _block_end(lines, i + 1, len(item["indent"]))
            continuation = lines[i + 1:end]
            for name in re.split(r"\s*,\s*", item["names"]):
                out += [item["indent"] + name + (item["type"] or "") + ":" + item["rest"], *continuation]
            i = end
            continue
        out.append(line)
        i += 1
    return out


def _blank_before_next(out: list[str], lines: list[str], index: int) -> None:
    """End a converted block with a blank line unless the text goes on with one (or ends)."""
    if index < len(lines) and lines[index].strip():
        out.append("")


def _convert_blocks(text: str) -> str:
    """The line-based conversions: ``.. math::``, ``::`` literal blocks, doctests, blank lines before lists."""
    lines = _split_joint_params(text.splitlines())
    out: list[str] = []
    examples_indent: int | None = None  # indentation of the enclosing "Example:" header, if any
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if _FENCE.match(line):
            in_fence = not in_fence
            out.append(line)
            i += 1
            continue
        if in_fence:
            out.append(line)
            i += 1
            continue
        if stripped and examples_indent is not None and _indent(line) <= examples_indent:
            examples_indent = None
        if _EXAMPLES_HEADER.match(line):
            examples_indent = _indent(line)
            out.append(" " * examples_indent + "Examples:")  # griffe reads "Example:" as an admonition
            i += 1
            continue

        if _TABLE_BORDER.match(line):
            converted = _simple_table(lines, i)
            if converted is not None:
                table, i = converted
                if out and out[-1].strip():
                    out.append("")
                out += table
                _blank_before_next(out, lines, i)
                continue

        math = _MATH_DIRECTIVE.match(line)
        if math:
            indent = math["indent"]
            end = _block_end(lines, i + 1, len(indent))
            body = [math["rest"]] if math["rest"].strip() else []
            body += textwrap.dedent("\n".join(lines[i + 1:end])).splitlines()
            # as in Sphinx, paragraphs of the directive (separated by blank lines) are separate equations
            equations = [e.strip("\n").splitlines() for e in re.split(r"\n\s*\n", "\n".join(body)) if e.strip()]
            if out and out[-1].strip():
                out.append("")
            for number, equation in enumerate(equations):
                out += ([""] if number else []) + [indent + "\\["] + [indent + b for b in equation] + [indent + "\\]"]
            i = end
            _blank_before_next(out, lines, i)
            continue

        if stripped.endswith("::") and not stripped.startswith(".. "):
            end = _block_end(lines, i + 1, _indent(line))
            block = textwrap.dedent("\n".join(lines[i + 1:end])).strip("\n")
            if block:
                indent = " " * _indent(line)
                head = stripped[:-2].rstrip()
                if head:
                    out.append(indent + head + (":" if not head.endswith(":") else ""))
                language = "python" if _looks_like_python(block) else "text"
                out += ["", indent + "```" + language] + [indent + b if b else "" for b in block.splitlines()]
                out.append(indent + "```")
                i = end
                _blank_before_next(out, lines, i)
                continue

        if stripped.startswith(">>>") and examples_indent is None:
            j = i
            while j < len(lines) and lines[j].strip():
                j += 1
            indent = " " * _indent(line)
            block = textwrap.dedent("\n".join(lines[i:j]))
            if out and out[-1].strip():
                out.append("")
            out += [indent + "```pycon"] + [indent + b for b in block.splitlines()] + [indent + "```"]
            i = j
            continue

        if _LIST_ITEM.match(line) and out and out[-1].strip():
            previous = out[-1]
            if not _LIST_ITEM.match(previous) and _indent(previous) <= _indent(line) and not previous.rstrip().endswith("```"):
                out.append("")
        out.append(line)
        i += 1
    return "\n".join(out)


_TOKENS = re.compile(r"(?P<fence>```.*?```)|(?P<display>\\\[.*?\\\])|(?P<role>:(?:py:)?[a-z]+:`[^`]+`)|"
                     r"(?P<code>``.+?``|`[^`]+`)", flags=re.DOTALL)


def _convert_roles(text: str, resolve: Resolver | None) -> str:
    """Roles and inline maths, outside code spans, fenced blocks and display maths (scanned left to right, so a
    role's own backquotes are never taken for a code span, even when the role spans two lines, and the
    backquotes of a TeX quotation inside display maths never start one); stray asterisks of the plain text
    between them are escaped (:func:`escape_stray_stars`)."""
    out, position = [], 0
    for match in _TOKENS.finditer(text):
        out.append(escape_stray_stars(text[position:match.start()]))
        role = match["role"]
        out.append(_ROLE.sub(lambda m: _role(m, resolve), role) if role is not None else match.group(0))
        position = match.end()
    out.append(escape_stray_stars(text[position:]))
    return "".join(out)


def escape_stray_stars(text: str) -> str:
    r"""Escape the single asterisks that Markdown would pair into emphasis although they are not meant as such:
    the postfix star of unicode maths (``θ*``, ``z*``) and the unpacking star of a shape written outside code
    (``[S, *batch]``). A star *opens* emphasis when it follows a space, an opening bracket or the start of the
    text and precedes a non-space; it *closes* the open one when it follows a non-space. Paired stars stay
    emphasis (``*word*``); double stars (``**bold**``) and list bullets are left alone.

    Example:
        >>> escape_stray_stars("q(z; θ*) with θ* per call, *not* [S, *batch]")
        'q(z; θ\\*) with θ\\* per call, *not* [S, \\*batch]'
    """
    stars = [m.start() for m in re.finditer(r"(?<![*\\])\*(?!\*)", text)]
    escape, opened = [], None
    for index in stars:
        before = text[index - 1] if index > 0 else "\n"
        after = text[index + 1] if index + 1 < len(text) else "\n"
        at_line_start = before == "\n" or (before == " " and text[:index].rsplit("\n", 1)[-1].strip() == "")
        if at_line_start and after == " ":  # a list bullet
            continue
        if opened is not None and not before.isspace():
            opened = None  # closes the pending opener: an emphasis pair
        elif (before.isspace() or before in "([{\"'") and not after.isspace():
            if opened is not None:
                escape.append(opened)
            opened = index
        else:
            escape.append(index)
    if opened is not None:
        escape.append(opened)
    for index in sorted(escape, reverse=True):
        text = text[:index] + "\\" + text[index:]
    return text


def _role(match: re.Match, resolve: Resolver | None) -> str:
    role, content = match["role"], match["text"]
    if role == "math":
        return "\\(" + " ".join(content.split("\n")) + "\\)"
    shown, target, linkable = parse_role(content)
    identifier = resolve(role, target) if (linkable and resolve is not None) else None
    if identifier is None:
        return f"`{shown}`"
    return f'<autoref identifier="{html.escape(identifier)}" optional><code>{html.escape(shown)}</code></autoref>'


def convert(text: str, resolve: Resolver | None = None) -> str:
    r"""Markdown for a docstring written with discograd's reStructuredText habits.

    ``resolve(role, target)`` returns the identifier to link a role to (an object's path), or ``None`` for
    plain code; without it no role is linked.

    Example:
        >>> print(convert(r"Uses :func:`imle` and :math:`\theta`.", lambda role, target: "discograd." + target))
        Uses <autoref identifier="discograd.imle" optional><code>imle</code></autoref> and \(\theta\).
    """
    return _convert_roles(_convert_blocks(text), resolve)


def _target(obj: griffe.Object | griffe.Alias) -> griffe.Object | None:
    try:
        return obj.final_target if obj.is_alias else obj  # type: ignore[union-attr]
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def resolve_in_scope(obj: griffe.Object, target: str, package: str = "discograd", role: str | None = None) -> str | None:
    """The canonical path of ``target`` as Sphinx would resolve it from ``obj``'s docstring: a member of
    ``obj``, of its parents (class, module, package), or an absolute path; ``None`` when it is not found or
    lies outside ``package`` (torch, the standard library).

    A role other than ``:mod:`` that lands on a module with a member of the same name (``imle`` in
    ``discograd.estimators``, where griffe lets the submodule ``imle.py`` shadow the function it exports)
    resolves to that member, as Python's own attribute lookup would."""
    found = None
    scope: griffe.Object | None = obj
    while scope is not None and found is None:
        try:
            found = scope[target]
        except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            scope = scope.parent
    if found is None:
        try:
            found = obj.modules_collection[target]
        except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None
    resolved = _target(found)
    if resolved is None:
        return None
    if role not in (None, "mod") and resolved.is_module and resolved.name in resolved.members:
        inner = _target(resolved.members[resolved.name])
        resolved = inner if inner is not None else resolved
    path = resolved.path
    return path if path == package or path.startswith(package + ".") else None


def _comment_docstring(attr: griffe.Object) -> str | None:
    """The ``#:`` comment lines right above an attribute's assignment, joined."""
    if attr.lineno is None or attr.filepath is None:
        return None
    try:
        lines = attr.lines_collection[attr.filepath]  # type: ignore[index]
    except KeyError:
        return None
    collected = []
    i = attr.lineno - 2
    while i >= 0 and lines[i].strip().startswith("#:"):
        collected.append(lines[i].strip()[2:].strip())
        i -= 1
    return " ".join(reversed(collected)) or None


class RstDocstrings(griffe.Extension):
    """Convert the docstrings of a package once it is loaded (see the module docstring).

    Args:
        package: the top-level package whose docstrings are converted and within which roles are linked.
    """

    def __init__(self, package: str = "discograd") -> None:
        super().__init__()
        self.package = package

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: object) -> None:
        if pkg.path != self.package:
            return
        seen: set[int] = set()
        self._walk(pkg, loader, seen)

    def _walk(self, obj: griffe.Object, loader: griffe.GriffeLoader, seen: set[int]) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if obj.docstring is None and obj.is_attribute:
            comment = _comment_docstring(obj)
            if comment:
                obj.docstring = griffe.Docstring(comment, lineno=obj.lineno, endlineno=obj.lineno, parent=obj,
                                                 parser=loader.docstring_parser,
                                                 parser_options=loader.docstring_options)
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value,
                                          lambda role, target: resolve_in_scope(obj, target, self.package, role))
        for member in list(obj.members.values()):
            if not member.is_alias:
                self._walk(member, loader, seen)  # type: ignore[arg-type]
