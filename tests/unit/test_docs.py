"""The README and docs/ hold together: every relative link lands on a file and, with an anchor, on
one of its headings (as GitHub names it); every repository path quoted in backticks exists; the
README stays short, links to every file of docs/, and each of those opens with what it covers."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from local.template import ROOT

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
README_MAX_LINES = 250

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
QUOTED = re.compile(r"`([^`\s]+)`")
FENCE = re.compile(r"^\s*```")
TOP_LEVEL = (
    "src/",
    "tests/",
    "local/",
    "benchmarks/",
    "statemachine/",
    "events/",
    "docs/",
    "lock_janitor_cli/",
)
ROOT_FILES = re.compile(
    r"^(template\.yaml|samconfig\.toml|Makefile|pyproject\.toml|requirements-[\w-]+\.(in|txt))$"
)


def prose(page: Path) -> list[str]:
    """The page's lines outside fenced code blocks (code is shown, not linked)."""
    lines, fenced = [], False
    for line in page.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose(page):
        found = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not found:
            continue
        base = slug(found.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return frozenset(out)


def links(page: Path) -> list[str]:
    return [m for line in prose(page) for m in LINK.findall(line)]


def test_slugs_are_githubs() -> None:
    assert slug("The state machine (`statemachine/locking.asl.json`)") == (
        "the-state-machine-statemachinelockingasljson"
    )
    assert slug("Pacing, Retry-After, and when Slack is down") == (
        "pacing-retry-after-and-when-slack-is-down"
    )
    assert slug("moto's bridges") == "motos-bridges"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        landing = (page.parent / path).resolve() if path else page
        if not landing.exists():
            broken.append(f"{target}: no such file")
        elif anchor and landing.suffix == ".md" and anchor not in anchors(landing):
            broken.append(f"{target}: no heading #{anchor} in {landing.relative_to(ROOT)}")
    assert not broken, broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_quoted_repository_path_exists(page: Path) -> None:
    missing = []
    for line in prose(page):
        for quoted in QUOTED.findall(line):
            path = quoted.split("::", 1)[0].rstrip(".,:;")
            if re.search(r"[<>*{}$]", path):
                continue
            in_repository = path.startswith(TOP_LEVEL) or ROOT_FILES.match(path)
            if in_repository and not (ROOT / path).exists():
                missing.append(quoted)
    assert not missing, missing


def test_the_readme_is_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_doc_opens_with_its_two_line_summary(page: Path) -> None:
    """A title saying what it covers, then one line of prose saying it in full, then a blank."""
    title, summary, blank = page.read_text().splitlines()[:3]
    assert re.match(r"^# \S", title), title
    assert summary.strip(), "the title is followed by a line of prose"
    assert not summary.startswith(("#", "|", "-", "`")), summary
    assert not blank.strip(), "the summary is two lines: a blank line follows it"


def test_the_readme_links_every_doc() -> None:
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for target in links(README)
        if target.startswith("docs/")
    }
    assert DOCS, "docs/ holds the documentation"
    unlinked = [p.name for p in DOCS if p.resolve() not in linked]
    assert not unlinked, unlinked
