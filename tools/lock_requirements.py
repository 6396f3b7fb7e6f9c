"""Regenerate requirements.lock: every package `pip install '.[kcl]'` installs, pinned.

    python3 tools/lock_requirements.py        (Python 3.11, as the Dockerfile's base image)

pip's own resolver picks the versions (`pip install --dry-run --ignore-installed --report`),
as it would in a clean environment, so the lock does not depend on what is installed here.
The Dockerfile installs the project with the lock as constraints (`pip install -c`), so an
image built today and one built next year hold the same packages; the KCL extra is locked too
for the image variant with Java. tests/unit/test_requirements_lock.py checks the lock covers
pyproject.toml's dependencies.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
EXTRAS = "kcl"
PROJECT = "ddb-bridge"


def resolve() -> dict[str, str]:
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            "-",
            f".[{EXTRAS}]",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    pins = {}
    for item in json.loads(report)["install"]:
        meta = item["metadata"]
        if meta["name"] != PROJECT:
            pins[meta["name"].lower().replace("_", "-")] = meta["version"]
    return pins


def main() -> None:
    pins = resolve()
    python = ".".join(platform.python_version_tuple()[:2])
    lines = [
        "# Every package of `pip install '.[kcl]'`, pinned: the Dockerfile's constraints.",
        f"# Resolved for Python {python} on Linux by: python3 tools/lock_requirements.py",
        "",
        *(f"{name}=={version}" for name, version in sorted(pins.items())),
    ]
    LOCK.write_text("\n".join(lines) + "\n")
    print(f"{LOCK.name}: {len(pins)} packages pinned for Python {python}")


if __name__ == "__main__":
    main()
