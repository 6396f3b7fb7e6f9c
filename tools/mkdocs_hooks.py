"""MkDocs hooks (mkdocs.yml `hooks:`): the pages generated at every build, so they cannot drift.

- `index.md` is README.md, its links to `docs/...` made relative to the site;
- `reference/configuration.md` is `bridge.runtime.config_reference.render_reference()`, the
  settings models as tables (the same source as `ddb-bridge init`'s template).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

from bridge.runtime.config_reference import render_reference

ROOT = Path(__file__).resolve().parents[1]


def readme_as_home() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.sub(r"\]\(docs/", "](", text)


def on_files(files: Files, config: Any) -> Files:
    for uri, content in (
        ("index.md", readme_as_home()),
        ("reference/configuration.md", render_reference()),
    ):
        files.append(File.generated(config, uri, content=content))
    return files
