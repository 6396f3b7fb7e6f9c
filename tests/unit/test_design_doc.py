"""docs/design.md stays true to the code, and every citation of it lands on a section.

Code, tests and the README cite the design by section number (`docs/design.md §5`; in the
package `docs/design.md, section 5`, since nothing there may carry a `§`). Sections are never
renumbered, so a citation keeps its meaning; these tests catch a citation of a section that
does not exist, a leftover citation of the old design document outside the repository, and
a path or dotted name in the design that the code no longer has (a module moved or renamed).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"
CITING = ("bridge", "connectors", "ddb_bridge", "tests", "benchmarks")
CITATION = re.compile(r"docs/design\.md(?:\s*§\s*|,? sections? )(\d+)")


def design_text() -> str:
    return DESIGN.read_text(encoding="utf-8")


def sections() -> dict[int, str]:
    return {
        int(number): title
        for number, title in re.findall(r"^## (\d+)\. (.+)$", design_text(), re.MULTILINE)
    }


def citing_files() -> list[Path]:
    files = [ROOT / "README.md"]
    # the documentation site's pages cite the design too (all but the design itself)
    files += [p for p in sorted((ROOT / "docs").rglob("*.md")) if p.name != "design.md"]
    for folder in CITING:
        files += sorted((ROOT / folder).rglob("*.py"))
    return [path for path in files if path != Path(__file__).resolve()]


def test_sections_are_numbered_one_to_n() -> None:
    numbers = sorted(sections())
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    assert len(numbers) >= 10, "the design lost its sections"


def test_every_citation_names_an_existing_section() -> None:
    known = sections()
    found = []
    for path in citing_files():
        text = path.read_text(encoding="utf-8")
        for match in CITATION.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", int(match.group(1))))
    assert len(found) >= 5, f"expected the code, tests and README to cite the design: {found}"
    dangling = [(where, n) for where, n in found if n not in known]
    assert dangling == [], f"citations of sections docs/design.md does not have: {dangling}"


def test_nothing_cites_the_design_document_outside_the_repository() -> None:
    old_citation = re.compile(r"\bDESIGN(?:\.md)? ?§ ?\d")
    stale = []
    for path in citing_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if old_citation.search(line):
                stale.append(f"{path.relative_to(ROOT)}:{n}")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stale += [f"README.md: {m}" for m in re.findall(r".{0,30}\bDESIGN\b.{0,30}", readme)]
    assert stale == [], f"cite docs/design.md instead: {stale}"


def test_every_path_the_design_names_exists() -> None:
    paths = re.findall(
        r"`((?:bridge|connectors|ddb_bridge|schemas|tests|benchmarks|docs)/[^`\s]*)`",
        design_text(),
    )
    assert len(paths) >= 20, paths
    missing = []
    for name in sorted(set(paths)):
        if (ROOT / name).exists():
            continue
        # `bridge/apply/batching._rank`: a module file and a name in it.
        module, dot, attr = name.rpartition(".")
        if dot and not name.endswith(".py") and (ROOT / f"{module}.py").exists():
            source = (ROOT / f"{module}.py").read_text(encoding="utf-8")
            if re.search(rf"^(?:def|class) {re.escape(attr)}\b", source, re.MULTILINE):
                continue
        missing.append(name)
    assert missing == [], f"docs/design.md names paths the repository does not have: {missing}"


def _resolve(dotted: str) -> object:
    """Import the longest module prefix of `a.b.c:d` / `a.b.C.d`, then walk the attributes."""
    dotted = dotted.replace(":", ".")
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            found = getattr(found, attr)
        return found
    raise ModuleNotFoundError(dotted)


def test_every_dotted_name_the_design_names_exists() -> None:
    names = re.findall(
        r"`((?:bridge|connectors|ddb_bridge)(?:\.[A-Za-z_]\w*)+(?::[A-Za-z_]\w*)?)`",
        design_text(),
    )
    assert len(names) >= 5, names
    missing = []
    for name in sorted(set(names)):
        try:
            _resolve(name)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{name} ({exc})")
    assert missing == [], f"docs/design.md names what the code does not have: {missing}"
