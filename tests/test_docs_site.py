"""The documentation site: ``mkdocs build --strict`` passes, every page of the nav exists, the API pages
document every public name, no link or image is broken, nothing is loaded from the network, and the two
build hooks (docs/_hooks/griffe_rst.py, docs/_hooks/site.py) convert what they claim to.

The build needs the ``docs`` extra (part of ``test``); without it the module is skipped with that reason.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import textwrap
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

for _module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "griffe", "yaml"):
    pytest.importorskip(_module, reason=f"{_module} is missing: the site needs the docs extra "
                                        "(pip install -e '.[docs]', included in '.[test]')")

import griffe
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HOOKS = DOCS / "_hooks"

#: the modules whose ``__all__`` the API reference must cover, with the page that documents them
API_MODULES = {
    "discograd.estimators": "api/estimators.md",
    "discograd.noise": "api/noise.md",
    "discograd.targets": "api/targets.md",
    "discograd.solvers": "api/solvers.md",
    "discograd.exact": "api/exact.md",
    "discograd.losses": "api/losses.md",
    "discograd.metrics": "api/metrics.md",
    "discograd.pool": "api/pool.md",
    "discograd.pto": "api/pto.md",
    "discograd.testing": "api/testing.md",
    "discograd.distributed": "api/distributed.md",
    "discograd.experiments.harness": "api/experiments.md",
    "discograd.experiments.executors": "api/experiments.md",
    "discograd.experiments.cli": "api/experiments.md",
    "discograd.experiments.synthetic": "api/experiments-studies.md",
    "discograd.experiments.gradient_quality": "api/experiments-studies.md",
    "discograd.experiments.warcraft": "api/experiments-warcraft.md",
    "discograd.experiments.l2x": "api/experiments-l2x.md",
    "discograd.experiments.dvae": "api/experiments-dvae.md",
}


def _load_hook(name: str):
    spec = importlib.util.spec_from_file_location(f"_docs_hook_{name}", HOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(HOOKS))  # site.py imports griffe_rst from its own folder
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(HOOKS))
    return module


rst = _load_hook("griffe_rst")
site_hooks = _load_hook("site")


# ---------------------------------------------------------------------------------------------------------
# the build


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Build the site once into a temporary folder; returns (folder, build output, seconds)."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    seconds = time.perf_counter() - start
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{output[-6000:]}"
    return out, output, seconds


class _Page(HTMLParser):
    """The ids, links, images, scripts and stylesheets of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.resources: list[str] = []  # src of img / script, href of stylesheets and icons

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href") is not None:
            self.links.append(a["href"])
        if tag in ("img", "script", "source") and a.get("src"):
            self.resources.append(a["src"])
        if tag == "link" and a.get("href") and a.get("rel") in ("stylesheet", "icon", "preload"):
            self.resources.append(a["href"])


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _nav_pages(nav) -> list[str]:
    pages = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            pages += _nav_pages(value)
        else:
            pages.append(value)
    return pages


def _config() -> dict:
    class Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml may use MkDocs' !ENV / !relative tags; none matters here
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)


def test_site_builds_strict_without_warnings_in_a_minute(site):
    out, output, seconds = site
    warnings = [line for line in output.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert not warnings, "\n".join(warnings)
    assert (out / "index.html").is_file()
    assert seconds < 120, f"the build took {seconds:.0f} s"


def test_every_page_is_in_the_nav_and_built(site):
    out, _, _ = site
    nav = _nav_pages(_config()["nav"])
    for page in nav:
        assert (DOCS / page).is_file(), f"mkdocs.yml's nav names docs/{page}, which does not exist"
        assert (out / page).with_suffix(".html").is_file(), f"docs/{page} was not built"
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "_hooks" not in p.parts}
    assert on_disk - set(nav) == set(), f"pages missing from mkdocs.yml's nav: {sorted(on_disk - set(nav))}"
    for expected in ("index.md", "getting-started.md", "choosing-an-estimator.md", "bring-your-own-solver.md",
                     "migrating.md", "scaling.md", "warcraft.md", "l2x.md", "dvae.md", "gallery.md",
                     "benchmarks.md", "api/index.md"):
        assert expected in nav, expected


def _all_ids(out: Path, prefix: str = "api/") -> dict[str, str]:
    ids = {}
    for html in sorted(out.rglob("*.html")):
        rel = html.relative_to(out).as_posix()
        if rel.startswith(prefix):
            for anchor in _parse(html).ids:
                ids.setdefault(anchor, rel)
    return ids


def _documented_at(module_name: str, name: str, ids: dict[str, str]) -> str | None:
    """The id under which ``module_name.name`` is rendered: the path through the module, or the canonical
    path of the object (the module that defines it), or, for a constant, the path through any submodule."""
    candidates = [f"{module_name}.{name}"]
    obj = getattr(importlib.import_module(module_name), name)
    if inspect.ismodule(obj):
        candidates.append(obj.__name__)
    elif hasattr(obj, "__module__") and hasattr(obj, "__qualname__") and str(obj.__module__).startswith("discograd"):
        candidates.append(f"{obj.__module__}.{obj.__qualname__}")
    for candidate in candidates:
        if candidate in ids:
            return candidate
    pattern = re.compile(re.escape(module_name) + r"(\.\w+)*\." + re.escape(name) + "$")
    return next((anchor for anchor in ids if pattern.match(anchor)), None)


@pytest.mark.parametrize("module_name", sorted(API_MODULES))
def test_api_pages_document_every_name_in_all(site, module_name):
    out, _, _ = site
    ids = _all_ids(out)
    module = importlib.import_module(module_name)
    missing = [name for name in module.__all__ if _documented_at(module_name, name, ids) is None]
    assert not missing, (
        f"{module_name}.__all__ names {missing}, which no API page renders: add a `::: <module>` block for the module "
        f"that defines them to docs/{API_MODULES[module_name]} (objects without a docstring are not rendered)")


def test_every_public_subpackage_has_an_api_page():
    """Every module of ``discograd.__all__`` (and the two documented outside it) is rendered by some page; a
    new subpackage added to ``__all__`` fails here until docs/api/ has its ``::: discograd.<name>`` block."""
    import discograd

    blocks = set()
    for page in (DOCS / "api").glob("*.md"):
        blocks |= set(re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), flags=re.MULTILINE))
    modules = {f"discograd.{name}" for name in discograd.__all__ if inspect.ismodule(getattr(discograd, name))}
    modules |= {"discograd.distributed", "discograd.experiments"}
    assert modules - blocks == set(), (
        f"no page of docs/api/ has a `::: X` block for {sorted(modules - blocks)}: add docs/api/<name>.md with it "
        f"(and a line in mkdocs.yml's nav)")
    assert set(API_MODULES) >= {m for m in modules if m != "discograd.experiments"}


def test_api_index_links_every_top_level_name(site):
    import discograd

    out, _, _ = site
    text = (out / "api" / "index.html").read_text(encoding="utf-8")
    page = _parse(out / "api" / "index.html")
    linked = set(re.findall(r'<a class="autorefs autorefs-internal"[^>]*><code>(\w+)</code></a>', text))
    names = {name for name in discograd.__all__ if not name.startswith("__")}
    assert names - linked == set(), f"api/index.html has no link for {sorted(names - linked)}"
    assert len(page.links) > len(names)


def test_no_broken_links_or_images(site):
    out, _, _ = site
    pages = {html.relative_to(out).as_posix(): _parse(html) for html in out.rglob("*.html")}
    broken = []
    for rel, page in pages.items():
        if rel == "404.html":  # served at any missing path, so its links are absolute by design
            continue
        for link in page.links + page.resources:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
                continue
            target = (out / rel).parent / unquote(parts.path) if parts.path else out / rel
            target = target.resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{rel}: {link} (no file)")
                continue
            if parts.fragment and target.suffix == ".html":
                target_rel = target.relative_to(out.resolve()).as_posix()
                if parts.fragment not in pages[target_rel].ids and parts.fragment != "__skip":
                    broken.append(f"{rel}: {link} (no id {parts.fragment!r} in {target_rel})")
    assert not broken, "\n".join(broken[:40])


def test_the_site_loads_nothing_from_the_network(site):
    """Scripts, stylesheets, fonts and images are served from the site itself (these machines, and many
    readers' machines, have no internet): KaTeX is shipped in docs/assets/katex/, Material's web fonts are off."""
    out, _, _ = site
    external = []
    for html in out.rglob("*.html"):
        for resource in _parse(html).resources:
            if urlsplit(resource).scheme or resource.startswith("//"):
                external.append(f"{html.relative_to(out)}: {resource}")
    assert not external, "\n".join(sorted(set(external))[:20])
    css = (out / "assets" / "katex" / "katex.min.css").read_text(encoding="utf-8")
    fonts = re.findall(r"url\(([^)]+)\)", css)
    assert len(fonts) >= 20
    for font in fonts:
        assert (out / "assets" / "katex" / font).is_file(), font
    for script in ("katex.min.js", "auto-render.min.js"):
        assert (out / "assets" / "katex" / script).stat().st_size > 1000


def test_docstring_maths_and_roles_are_converted(site):
    out, _, _ = site
    leftovers = []
    for html in out.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        for pattern in (r":(?:func|class|mod|meth|attr|data|exc|math):<code>", r":(?:func|class|mod|meth|math):`",
                        r"\.\. math::"):
            if re.search(pattern, text):
                leftovers.append(f"{html.relative_to(out)}: {pattern}")
    assert not leftovers, "\n".join(leftovers)
    estimators = (out / "api" / "estimators.html").read_text(encoding="utf-8")
    # the I-MLE gradient of discograd/estimators/imle.py's module docstring, as display maths for KaTeX
    assert re.search(r'<div class="arithmatex">\\\[\s*\\nabla_\\theta L', estimators)
    solvers = (out / "api" / "solvers.html").read_text(encoding="utf-8")
    assert r'<span class="arithmatex">\(z = \arg\max' in solvers
    # a role in a docstring became a link: the IMLE docstring's :class:`~discograd.targets.KnownTarget`
    assert re.search(r'<a class="autorefs autorefs-internal"[^>]*href="targets\.html#discograd\.targets\.known\.KnownTarget"',
                     estimators)


def test_readme_parts_are_included(site):
    out, _, _ = site
    home = (out / "index.html").read_text(encoding="utf-8")
    assert "Quickstart: a number you can check" in home and "tensor([0.6105, 0.2217, 0.1377, 0.0302])" in home
    assert "<!-- readme:" not in home
    started = (out / "getting-started.html").read_text(encoding="utf-8")
    assert "The pieces" in started and "Two commands on a fresh machine" in started


def test_the_gallery_shows_every_plot_the_cli_writes():
    text = (DOCS / "gallery.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\((img/[^)]+)\)", text)
    assert len(images) >= 10
    for image in images:
        path = DOCS / image
        assert path.is_file(), image
        assert path.stat().st_size < 300_000, f"{image} is {path.stat().st_size} bytes: keep the repository small"
    for plot in ("curves", "paths", "compare", "table2", "grid", "quality", "reconstructions", "samples"):
        assert any(plot in image for image in images), plot


# ---------------------------------------------------------------------------------------------------------
# docs/_hooks/griffe_rst.py


def test_roles_follow_sphinx_display_rules():
    assert rst.parse_role("imle") == ("imle", "imle", True)
    assert rst.parse_role("~discograd.noise.Gumbel") == ("Gumbel", "discograd.noise.Gumbel", True)
    assert rst.parse_role("the layer <discograd.IMLE>") == ("the layer", "discograd.IMLE", True)
    assert rst.parse_role("!imle") == ("imle", "imle", False)
    assert rst.parse_role("~discograd.imle()") == ("imle()", "discograd.imle", True)


def test_roles_become_optional_cross_references_and_maths():
    seen = []

    def resolve(role, target):
        seen.append((role, target))
        return None if target == "torch.Tensor" else "pkg." + target

    text = rst.convert(r"See :func:`imle`, :class:`~a.B`, :class:`torch.Tensor` and :math:`\theta + 1`; "
                       r"``:func:`not_a_role``` stays code.", resolve)
    assert '<autoref identifier="pkg.imle" optional><code>imle</code></autoref>' in text
    assert '<autoref identifier="pkg.a.B" optional><code>B</code></autoref>' in text
    assert "`torch.Tensor`" in text and r"\(\theta + 1\)" in text
    assert "``:func:`not_a_role```" in text
    assert seen == [("func", "imle"), ("class", "a.B"), ("class", "torch.Tensor")]
    # a role whose text spans two lines, next to code spans
    two_lines = rst.convert("since ``z``, :math:`a +\n    b`, so ``{i, j}``")
    assert two_lines == r"since ``z``, \(a +     b\), so ``{i, j}``"


def test_math_directive_becomes_display_maths_at_its_indentation():
    text = "Backward:\n\n.. math::\n\n    a = b\n    + c\n\nwith the same noise.\n"
    assert rst.convert(text) == "Backward:\n\n\\[\na = b\n+ c\n\\]\n\nwith the same noise."
    two = ".. math::\n\n    a = 1\n\n    b = 2\n\nafter"
    assert rst.convert(two) == "\\[\na = 1\n\\]\n\n\\[\nb = 2\n\\]\n\nafter"  # one equation per paragraph
    quoted = ".. math::\n\n    a \\text{``quoted''}\n\nthen :func:`f` and ``code``."
    assert rst.convert(quoted, lambda role, target: target) == (
        "\\[\na \\text{``quoted''}\n\\]\n\nthen <autoref identifier=\"f\" optional><code>f</code></autoref> and ``code``.")
    nested = "Args:\n    x: the input,\n\n        .. math:: y = x\n\n        done.\n"
    assert "        \\[\n        y = x\n        \\]" in rst.convert(nested)


def test_literal_blocks_and_doctests_become_fences():
    text = "Use it in a test::\n\n    check_solver(s, 6)\n\nDisk layout::\n\n    data/\n      x.npy\n\nafter"
    converted = rst.convert(text)
    assert "Use it in a test:\n\n```python\ncheck_solver(s, 6)\n```" in converted
    assert "Disk layout:\n\n```text\ndata/\n  x.npy\n```" in converted
    assert "::" not in converted
    doctest = "Module text.\n\n>>> 1 + 1\n2\n\nMore."
    assert "```pycon\n>>> 1 + 1\n2\n```" in rst.convert(doctest)
    # inside an Example: section griffe renders doctests itself; the header becomes "Examples:"
    example = "Text.\n\nExample:\n    >>> 1 + 1\n    2\n"
    assert rst.convert(example) == "Text.\n\nExamples:\n    >>> 1 + 1\n    2"


def test_lists_get_the_blank_line_markdown_needs():
    assert rst.convert("Two kinds:\n- one\n- two\n  continued\n- three") == \
        "Two kinds:\n\n- one\n- two\n  continued\n- three"


def test_stray_stars_are_escaped_and_emphasis_kept():
    text = rst.convert("q(z; θ*) with θ* per call, *not* [S, *batch] nor ``[S, *batch]``; **bold**, a * b;\n"
                       "- a bullet\n* another, :math:`\\theta^*`")
    assert text == ("q(z; θ\\*) with θ\\* per call, *not* [S, \\*batch] nor ``[S, *batch]``; **bold**, a \\* b;\n\n"
                    "- a bullet\n* another, \\(\\theta^*\\)")


def test_the_hooks_docstring_examples_run():
    import doctest

    for module in (rst, site_hooks):
        failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert failed == 0 and attempted >= (1 if module is site_hooks else 2), module.__name__


def test_simple_tables_become_markdown_tables():
    text = textwrap.dedent("""\
        Solvers:

        ======  ============  =====
        solver  theta         z
        ======  ============  =====
        ``A``   ``[*b, n]``   one
        ``B``   ``[n]``       a | b
                (vector)
        ======  ============  =====

        after""")
    converted = rst.convert(text)
    assert "| solver | theta | z |\n|---|---|---|\n| ``A`` | ``[*b, n]`` | one |\n" \
           "| ``B`` | ``[n]`` (vector) | a \\| b |" in converted
    assert converted.endswith("after") and "=====" not in converted
    # a cell that starts two characters before its column's border (docutils would refuse it) is still cut
    # at the gap between the columns, not inside its first word
    shifted = ("======  ========  =====\nname    what      z\n======  ========  =====\n"
               "``a``   ``longerx``  ``c``\n``b``   ``lon``  ``cc``\n======  ========  =====")
    assert "| ``a`` | ``longerx`` | ``c`` |\n| ``b`` | ``lon`` | ``cc`` |" in rst.convert(shifted)


def test_joint_parameters_are_split():
    text = "Args:\n    a, b: the bounds,\n        both inclusive.\n    c (int): other.\n\nReturns:\n    x, y: kept."
    assert rst.convert(text) == ("Args:\n    a: the bounds,\n        both inclusive.\n    b: the bounds,\n"
                                 "        both inclusive.\n    c (int): other.\n\nReturns:\n    x, y: kept.")


@pytest.fixture
def toy_package(tmp_path):
    package = tmp_path / "toy"
    (package / "core").mkdir(parents=True)
    (package / "__init__.py").write_text('"""Toy: see :func:`make` and :mod:`toy.core`."""\n'
                                         "from .core import make, Thing\n__all__ = ['make', 'Thing']\n")
    (package / "core" / "__init__.py").write_text('"""Core."""\nfrom .make import make\nfrom .thing import Thing\n')
    (package / "core" / "make.py").write_text(
        '"""The module make.py."""\n__all__ = ["make"]\n\n'
        'def make():\n    """Make a :class:`Thing` (see :meth:`Thing.size`, :data:`LIMIT`, :func:`Missing`)."""\n\n'
        "#: the largest size\nLIMIT = 3\n")
    (package / "core" / "thing.py").write_text(
        '"""Things."""\n\nclass Thing:\n    """A thing; :meth:`size` and :func:`torch.cat`."""\n\n'
        "    #: how many\n    #: parts\n    parts = 2\n\n"
        '    def size(self):\n        """Its size, :attr:`parts`."""\n')
    loader = griffe.GriffeLoader(search_paths=[str(tmp_path)], docstring_parser=griffe.Parser.google,
                                 extensions=griffe.load_extensions(rst.RstDocstrings("toy")))
    root = loader.load("toy")
    loader.resolve_aliases(implicit=False, external=False)
    return root


def test_roles_resolve_in_scope_like_sphinx(toy_package):
    root = toy_package
    make = root["core.make.make"]
    thing = root["core.thing.Thing"]
    assert rst.resolve_in_scope(make, "Thing", "toy") == "toy.core.thing.Thing"  # found in a parent's scope (core)
    assert rst.resolve_in_scope(make, "Missing", "toy") is None
    assert rst.resolve_in_scope(root, "Thing", "toy") == "toy.core.thing.Thing"  # through two aliases
    assert rst.resolve_in_scope(thing, "size", "toy") == "toy.core.thing.Thing.size"
    assert rst.resolve_in_scope(thing["size"], "parts", "toy") == "toy.core.thing.Thing.parts"
    assert rst.resolve_in_scope(make, "toy.core.thing.Thing.size", "toy") == "toy.core.thing.Thing.size"
    assert rst.resolve_in_scope(thing, "torch.cat", "toy") is None  # outside the package
    assert rst.resolve_in_scope(thing, "size") is None  # package="discograd": toy is outside it
    # core/__init__.py's `make` is shadowed by the submodule make.py (griffe keeps the module); a :func: role
    # resolves to the function inside it, a :mod: role to the module
    assert rst.resolve_in_scope(root, "toy.core.make", "toy", role="func") == "toy.core.make.make"
    assert rst.resolve_in_scope(root, "toy.core.make", "toy", role="mod") == "toy.core.make"


def test_the_extension_converts_docstrings_and_reads_comment_docstrings(toy_package):
    root = toy_package
    assert root.docstring.value == ('Toy: see <autoref identifier="toy.core.make.make" optional><code>make</code>'
                                    '</autoref> and <autoref identifier="toy.core" optional><code>toy.core</code>'
                                    "</autoref>.")
    make = root["core.make"]
    assert make["LIMIT"].docstring.value == "the largest size"
    assert 'identifier="toy.core.make.LIMIT"' in make["make"].docstring.value
    assert 'identifier="toy.core.thing.Thing.size"' in make["make"].docstring.value
    assert "`Missing`" in make["make"].docstring.value  # unresolvable: plain code
    thing = root["core.thing.Thing"]
    assert thing["parts"].docstring.value == "how many parts"
    assert 'identifier="toy.core.thing.Thing.size"' in thing.docstring.value
    assert "`torch.cat`" in thing.docstring.value


# ---------------------------------------------------------------------------------------------------------
# docs/_hooks/site.py

README = """# title

Opening text.

```bash
## not a heading (inside a fence)
```

## First

one

## Second: with a colon

two
"""


def test_readme_parts():
    assert site_hooks.readme_part(README, "opening") == "# title\n\nOpening text.\n\n```bash\n## not a heading " \
                                                        "(inside a fence)\n```\n"
    assert site_hooks.readme_part(README, "## First") == "## First\n\none\n"
    assert site_hooks.readme_part(README, "## Second: with a colon") == "## Second: with a colon\n\ntwo\n"
    with pytest.raises(ValueError, match=r"README.md has no section '## Third'.*'## First', '## Second: with a colon'"):
        site_hooks.readme_part(README, "## Third")
    page = "Intro\n\n<!-- readme: ## First -->\n\nOutro"
    assert site_hooks.include_readme(page, README) == "Intro\n\n## First\n\none\n\n\nOutro"


def test_the_readme_has_every_section_the_pages_include():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in DOCS.rglob("*.md"):
        for part in re.findall(r"^<!-- readme: (.+?) -->", page.read_text(encoding="utf-8"), flags=re.MULTILINE):
            site_hooks.readme_part(readme, part)  # raises with the list of sections when a heading moved


def test_repository_files_become_links():
    pages = {"scaling.md", "benchmarks.md", "benchmarks-solvers.md", "api/index.md"}
    text = "See `docs/scaling.md`, `docs/missing.md`, `benchmarks/README.md` and [`docs/scaling.md`](x).\n" \
           "```bash\ncat `docs/scaling.md`\n```\n"
    assert site_hooks.link_repo_files(text, pages) == (
        "See [`docs/scaling.md`](scaling.md), `docs/missing.md`, [`benchmarks/README.md`](benchmarks.md) and "
        "[`docs/scaling.md`](x).\n```bash\ncat `docs/scaling.md`\n```\n")
    assert site_hooks.link_repo_files("`docs/scaling.md`", pages, "api/index.md") == "[`docs/scaling.md`](../scaling.md)"


def test_api_summary_lists_every_exported_name(tmp_path):
    package = tmp_path / "toy2"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text('"""Toy."""\nfrom . import sub\nfrom .sub import Thing, make\n'
                                         "__all__ = ['Thing', 'make', 'sub', '__version__']\n__version__ = '1'\n")
    (package / "sub" / "__init__.py").write_text('"""The sub package.\n\nMore."""\nfrom .impl import Thing, make\n')
    (package / "sub" / "impl.py").write_text('class Thing:\n    """A :func:`make`-made thing.\n\n    More."""\n\n'
                                             'def make():\n    """Make one."""\n')
    table = site_hooks.api_summary("toy2", (str(tmp_path),))
    assert "### From `toy2.sub`" in table and "### Subpackages" in table
    assert "| [`Thing`][toy2.sub.impl.Thing] | class | A " in table
    assert 'identifier="toy2.sub.impl.make"' in table  # the role inside the summary, resolved
    assert "| [`make`][toy2.sub.impl.make] | function | Make one. |" in table
    assert "| [`sub`][toy2.sub] | module | The sub package. |" in table
    assert "__version__" not in table
