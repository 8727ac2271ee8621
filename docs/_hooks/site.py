"""MkDocs hooks of discograd's documentation site (``hooks:`` in ``mkdocs.yml``).

- ``<!-- readme: opening -->`` and ``<!-- readme: ## Some heading -->`` in a page are replaced by that part
  of the repository's README.md (the text before its first ``##`` heading, or one ``##`` section up to the
  next), so the site's home page and getting-started guide show the README's text without a copy of it. A
  heading that is not in the README fails the build (:class:`ValueError`) instead of leaving a hole.
- ``<!-- api-summary -->`` is replaced by a table of every name in ``discograd.__all__``: what it is (the first
  line of its docstring) and a link to its entry in the API reference. The table is built from the source by
  griffe, so a name added to ``__all__`` appears by itself, and a name whose entry no API page renders fails
  the strict build (its link cannot be resolved).
- Mentions of the repository's Markdown files as inline code (```docs/scaling.md```,
  ```benchmarks/README.md```) become links to their pages on the site.

The functions are pure and tested in ``tests/test_docs_site.py``.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

__all__ = ["README_PAGES", "api_summary", "include_readme", "link_repo_files", "on_page_markdown", "readme_part"]

ROOT = Path(__file__).resolve().parents[2]
#: repository Markdown files that are pages of the site: repository path -> page (relative to docs/)
README_PAGES = {"benchmarks/README.md": "benchmarks.md", "benchmarks/SOLVERS.md": "benchmarks-solvers.md"}
_DIRECTIVE = re.compile(r"^<!-- readme: (?P<part>.+?) -->[ \t]*$", flags=re.MULTILINE)
_FENCED = re.compile(r"(^```.*?^```[ \t]*$)", flags=re.MULTILINE | re.DOTALL)


def readme_part(readme: str, part: str) -> str:
    """``part`` of the README text: ``"opening"`` (everything before the first ``## `` heading, the ``# ``
    title included) or a ``"## Heading"`` line (that section, its heading included, up to the next ``## ``
    heading). Fenced code blocks are skipped when looking for headings."""
    spans = []  # (start, heading) of every level-2 heading outside fenced code
    fenced = [(m.start(), m.end()) for m in _FENCED.finditer(readme)]
    for match in re.finditer(r"^## .*$", readme, flags=re.MULTILINE):
        if not any(start <= match.start() < end for start, end in fenced):
            spans.append((match.start(), match.group(0).strip()))
    if part == "opening":
        end = spans[0][0] if spans else len(readme)
        return readme[:end].strip() + "\n"
    for index, (start, heading) in enumerate(spans):
        if heading == part.strip():
            end = spans[index + 1][0] if index + 1 < len(spans) else len(readme)
            return readme[start:end].strip() + "\n"
    headings = ", ".join(repr(h) for _, h in spans)
    raise ValueError(f"README.md has no section {part!r} (a docs page includes it with <!-- readme: {part} -->); "
                     f"its sections are {headings}")


def api_summary(package: str = "discograd", search_paths: tuple[str, ...] = (str(ROOT / "src"),)) -> str:
    """A Markdown table of every name in ``package.__all__``, grouped by the subpackage that defines it:
    ``name`` (linked to its canonical path), kind, and the first line of its docstring."""
    import sys

    import griffe

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from griffe_rst import RstDocstrings, resolve_in_scope
    finally:
        sys.path.pop(0)
    loader = griffe.GriffeLoader(search_paths=list(search_paths), docstring_parser=griffe.Parser.google,
                                 extensions=griffe.load_extensions(RstDocstrings(package)))
    root = loader.load(package)
    loader.resolve_aliases(implicit=False, external=False)
    if root.exports is None:
        raise ValueError(f"{package} has no __all__")
    rows: dict[str, list[str]] = {}
    for name in (e if isinstance(e, str) else e.name for e in root.exports):
        if name.startswith("__"):
            continue
        path = resolve_in_scope(root, name, package, role="obj")
        if path is None:
            raise ValueError(f"{package}.{name} (in {package}.__all__) cannot be resolved in the source")
        obj = loader.modules_collection[path]
        group = "modules" if obj.is_module else path.split(".")[1]
        summary = obj.docstring.value.strip().split("\n\n")[0].replace("\n", " ") if obj.docstring else ""
        rows.setdefault(group, []).append(f"| [`{name}`][{path}] | {obj.kind.value} | {summary} |")
    lines = []
    for group in sorted(rows, key=lambda g: (g == "modules", g)):
        title = "Subpackages" if group == "modules" else f"From `{package}.{group}`"
        lines += [f"### {title}", "", "| `discograd.` | kind | what |", "|---|---|---|", *rows[group], ""]
    return "\n".join(lines)


def include_readme(markdown: str, readme: str) -> str:
    """Replace every ``<!-- readme: PART -->`` line of ``markdown`` by :func:`readme_part` of ``readme``."""
    return _DIRECTIVE.sub(lambda m: readme_part(readme, m["part"]), markdown)


def link_repo_files(markdown: str, pages: set[str], page_uri: str = "index.md") -> str:
    """Turn ```docs/NAME.md``` (when ``NAME.md`` is one of ``pages``) and the files of :data:`README_PAGES`,
    written as inline code outside fenced blocks and not already inside a link, into links to their pages,
    relative to the page ``page_uri`` (its path under docs/).

    Example:
        >>> link_repo_files("See `docs/scaling.md`.", {"scaling.md"}, "api/index.md")
        'See [`docs/scaling.md`](../scaling.md).'
    """

    def link(match: re.Match) -> str:
        path = match["path"]
        page = README_PAGES.get(path) or (path.removeprefix("docs/") if path.startswith("docs/") else None)
        if page is None or page not in pages:
            return match.group(0)
        return f"[`{path}`]({posixpath.relpath(page, posixpath.dirname(page_uri) or '.')})"

    parts = _FENCED.split(markdown)
    pattern = re.compile(r"(?<!\[)`(?P<path>(?:docs|benchmarks)/[\w./-]+\.md)`(?!\])")
    return "".join(part if part.startswith("```") else pattern.sub(link, part) for part in parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if "<!-- api-summary -->" in markdown:
        markdown = markdown.replace("<!-- api-summary -->", api_summary())
    if "<!-- readme:" in markdown:
        markdown = include_readme(markdown, (ROOT / "README.md").read_text(encoding="utf-8"))
    pages = {f.src_uri for f in files.documentation_pages()}
    return link_repo_files(markdown, pages, page.file.src_uri)
