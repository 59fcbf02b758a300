"""Every document the project names exists in the project.

Code comments, docstrings, the README and the docs cite pages as `docs/<page>.md`, and the
docs link each other relatively (`[errors.md](errors.md)`). A reader has only this checkout,
so each such page must be in it, and nothing may point at design notes kept outside it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tests.support.processes import ROOT

SKIPPED_DIRS = {".git", ".venv", "node_modules", ".sandbox", ".devhost", ".audit", ".keys"}
TEXT_SUFFIXES = {".py", ".md", ".sh", ".json", ".yaml", ".yml", ".bicep", ".toml", ".txt"}
TEXT_NAMES = {"Makefile"}

DOCS_PAGE = re.compile(r"\bdocs/([A-Za-z0-9_.-]+\.md)\b")
RELATIVE_LINK = re.compile(r"\]\((?!https?:|mailto:|#)([^)\s#]+\.md)(?:#[^)]*)?\)")
# Design notes live beside the repository, not in it: no user has them.
OUTSIDE = re.compile(r"(?:\.\./)+shared/design/|\bshared/design/[A-Za-z0-9_-]+\.md")


def project_files() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT)
        if any(part in SKIPPED_DIRS or part == "__pycache__" for part in relative.parts):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES):
            yield path


def citations() -> Iterator[tuple[Path, int, str, Path]]:
    """(file, line, what it says, the page it means) for every cited page."""
    for path in project_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            for match in DOCS_PAGE.finditer(line):
                yield path, number, match.group(0), ROOT / "docs" / match.group(1)
            if path.suffix == ".md":
                for match in RELATIVE_LINK.finditer(line):
                    yield path, number, match.group(1), path.parent / match.group(1)


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def test_every_cited_page_exists() -> None:
    missing = [
        f"{where(path, line)} cites {cited}"
        for path, line, cited, page in citations()
        if not page.resolve().is_file()
    ]
    assert missing == []


def test_nothing_points_at_design_notes_outside_the_repository() -> None:
    outside = [
        where(path, number)
        for path in project_files()
        if path != Path(__file__)
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert outside == []


def test_the_scan_finds_the_citations_it_is_for() -> None:
    # Guards the test itself: a pattern that matched nothing would pass vacuously.
    cited = {cited for _, _, cited, _ in citations()}
    assert "docs/api.md" in cited and "errors.md" in cited
