"""The README and the CLI tell how to install ddb-bridge as it can be installed: from a
clone (it is not on PyPI), and how to run the command `make install` put in .venv/bin."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_no_install_from_an_index_that_does_not_have_it() -> None:
    texts = {"README.md": README}
    for folder in ("bridge", "connectors", "ddb_bridge"):
        for path in (ROOT / folder).rglob("*.py"):
            texts[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    wrong = {
        name: found
        for name, text in texts.items()
        if (found := re.findall(r"pip install '?ddb-bridge\b[^`'\n]*", text))
    }
    assert wrong == {}


def test_readme_says_how_to_install_from_a_clone_and_run_the_venv_command() -> None:
    assert "`pip install .`" in README and "`pip install '.[kcl]'`" in README
    assert ".venv/bin/ddb-bridge" in README and ". .venv/bin/activate" in README
