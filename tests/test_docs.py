"""The documentation: a short README, links that resolve, and an API table that matches `labkit.__all__`.

README.md stays at most 150 lines and links to every page of docs/; every relative Markdown link
in README.md and docs/*.md points at a file or folder that exists; the public API table of
docs/labkit.md lists each name of `labkit.__all__` (but `__version__`) exactly once, and nothing else.
"""
import re

import pytest

import labkit
from autograder import ROOT

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
MAX_README_LINES = 150

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)  # fenced code blocks
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)           # `inline code`, ``with `backticks` ``
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^(https?:|mailto:)", re.I)
API_HEADING = re.compile(r"^##\s+The public API\b", re.M)


def rel(path) -> str:
    return str(path.relative_to(ROOT))


def links(path) -> list:
    """The targets of the Markdown links of ``path``, outside code blocks and code spans."""
    text = CODE_SPAN.sub("", FENCE.sub("", path.read_text()))
    return LINK.findall(text)


def test_there_are_docs_pages():
    assert DOCS, "no docs/*.md found"


def test_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, \
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move reference material into docs/"


def test_readme_links_to_every_docs_page():
    linked = {(README.parent / target.split("#")[0]).resolve() for target in links(README)
              if not EXTERNAL.match(target)}
    missing = [rel(page) for page in DOCS if page.resolve() not in linked]
    assert not missing, f"README.md does not link to {missing} (add them under 'Where to go next')"


def test_readme_points_at_nothing_outside_the_repository():
    text = README.read_text()
    assert "../shared" not in text
    assert "steering folder" not in text.lower()


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(page):
        if EXTERNAL.match(target):
            continue
        path = target.split("#", 1)[0]
        if not path:  # a link to an anchor of the same page
            continue
        if not (page.parent / path).exists():
            broken.append(target)
    assert not broken, f"{rel(page)} links to files that do not exist: {broken}"


def api_table_names() -> list:
    """The first column of the rows of the table under '## The public API' in docs/labkit.md."""
    text = (ROOT / "docs" / "labkit.md").read_text()
    match = API_HEADING.search(text)
    assert match, "docs/labkit.md has no '## The public API' section"
    section = text[match.end():]
    following = re.search(r"^##\s", section, re.M)
    section = section[:following.start()] if following else section
    names = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.strip().startswith("|") or not cells:
            continue
        first = re.fullmatch(r"`([A-Za-z_][A-Za-z0-9_]*)`", cells[0])
        if first:
            names.append(first.group(1))
    return names


def test_the_api_table_lists_exactly_labkit_all():
    listed = api_table_names()
    duplicated = sorted({name for name in listed if listed.count(name) > 1})
    public = set(labkit.__all__) - {"__version__"}
    missing = sorted(public - set(listed))
    extra = sorted(set(listed) - public)
    problems = []
    if missing:
        problems.append(f"in labkit.__all__ but not in the table of docs/labkit.md: {missing}")
    if extra:
        problems.append(f"in the table of docs/labkit.md but not in labkit.__all__: {extra}")
    if duplicated:
        problems.append(f"listed more than once in docs/labkit.md: {duplicated}")
    assert not problems, "; ".join(problems)
