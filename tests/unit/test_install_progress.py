"""`make install` shows progress instead of a silent minute (tools/install_progress.py wraps
pip: a line as packages are collected and installed, pip's whole log kept in a file, its tail
shown and its exit code kept when it fails)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "install_progress.py"

# What pip prints while it installs, shortened.
PIP_LINES = [
    "Obtaining file:///src",
    *[f"Collecting package-{i}>=1.0 (from ddb-bridge==0.1)" for i in range(25)],
    "  Downloading package-3-1.0-py3-none-any.whl (10 kB)",
    "Installing collected packages: " + ", ".join(f"package-{i}" for i in range(25)),
    "Successfully installed " + " ".join(f"package-{i}-1.0" for i in range(25)),
]


def fake_pip(tmp_path: Path, code: int) -> list[str]:
    script = tmp_path / "fake_pip.py"
    body = "".join(f"print({line!r}, flush=True)\n" for line in PIP_LINES)
    if code:
        body += (
            "import sys\nprint('ERROR: No matching distribution for nothing', file=sys.stderr)\n"
        )
    script.write_text(body + f"raise SystemExit({code})\n")
    return [sys.executable, str(script)]


def run(tmp_path: Path, code: int) -> subprocess.CompletedProcess[str]:
    log = tmp_path / "pip.log"
    return subprocess.run(
        [sys.executable, str(TOOL), "--log", str(log), "--", *fake_pip(tmp_path, code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_progress_is_shown_in_a_few_lines_and_the_log_is_kept(tmp_path: Path) -> None:
    done = run(tmp_path, 0)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("collected 10 packages" in line for line in lines), done.stdout
    assert any("installing 25 packages" in line for line in lines), done.stdout
    assert lines[-1].startswith("installed 25 packages in "), done.stdout
    assert len(lines) < 10, "a progress line per package is a wall of text"
    assert "Collecting package-24" in (tmp_path / "pip.log").read_text()


def test_a_failing_pip_keeps_its_exit_code_and_shows_its_error(tmp_path: Path) -> None:
    done = run(tmp_path, 1)
    assert done.returncode == 1
    assert "ERROR: No matching distribution for nothing" in done.stderr
    assert str(tmp_path / "pip.log") in done.stderr


def test_make_install_goes_through_it() -> None:
    dry = subprocess.run(
        ["make", "-n", "-B", "install", "VENV=/nonexistent-venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    recipe = dry.stdout.replace("\\\n", " ")  # a command continued over lines is one
    pip_lines = [line for line in recipe.splitlines() if "pip install" in line]
    main = [line for line in pip_lines if ".[test,kcl]" in line]
    assert main and "tools/install_progress.py" in main[0], dry.stdout + dry.stderr
    assert "--quiet" not in main[0], main[0]
