"""The documentation site builds with `mkdocs build --strict` (a broken link or anchor, a page
missing from the nav, a nav entry without a page all fail it), and its generated pages hold
what they are generated from: the README as the home page, every setting in the reference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bridge.runtime.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]


def test_the_site_builds_strict_with_the_readme_home_and_the_generated_reference(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "Two commands" in home and "make demo" in home
    reference = (site / "reference" / "configuration" / "index.html").read_text(encoding="utf-8")
    for key in KafkaSettings.model_fields:
        assert f"<code>{key}</code>" in reference, f"kafka.{key} is not in the reference"
    for page in ("runbook", "guarantees", "operating/status", "performance", "limitations"):
        assert (site / page / "index.html").is_file(), f"{page} was not built"


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """The strictness is real: the same build over a copy of docs/ with one dead link fails."""
    docs = tmp_path / "docs"
    subprocess.run(["cp", "-r", str(ROOT / "docs"), str(docs)], check=True)
    page = docs / "runbook.md"
    page.write_text(page.read_text(encoding="utf-8") + "\n[gone](no-such-page.md)\n")
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    config = config.replace("docs_dir: docs", f"docs_dir: {docs}")
    config = config.replace("tools/mkdocs_hooks.py", str(ROOT / "tools" / "mkdocs_hooks.py"))
    (tmp_path / "mkdocs.yml").write_text(config, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "s")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode != 0
    assert "no-such-page.md" in done.stdout + done.stderr
