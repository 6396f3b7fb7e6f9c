"""The documentation as the tests read it: README.md and every page of the site under docs/.

What the docs promise (commands, options, settings, metric names) is checked wherever it is
written, so moving a passage between the README and a page never hides it from the tests."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def corpus() -> str:
    """Every page, one after the other."""
    return "\n\n".join(path.read_text(encoding="utf-8") for path in pages())


def section(title: str) -> str:
    """The text under the one heading titled `title` (any level, any page), up to the next
    heading of the same or a higher level; fenced code is not searched for headings."""
    found = []
    for path in pages():
        lines = path.read_text(encoding="utf-8").splitlines()
        fence = False
        start: tuple[int, int] | None = None
        for n, line in enumerate(lines):
            if line.lstrip().startswith("```"):
                fence = not fence
            match = None if fence else re.match(r"^(#{1,6}) (.+?)\s*$", line)
            if not match:
                continue
            level = len(match.group(1))
            if start is not None and level <= start[0]:
                found.append("\n".join(lines[start[1] : n]))
                start = None
            if match.group(2) == title:
                start = (level, n + 1)
        if start is not None:
            found.append("\n".join(lines[start[1] :]))
    if len(found) != 1:
        raise LookupError(f"{len(found)} headings titled {title!r} in README.md and docs/")
    return found[0]
