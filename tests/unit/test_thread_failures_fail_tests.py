"""The suite's own pytest configuration turns a failure pytest would only warn about into a
test failure: an exception in a helper thread (a watcher's failed assertion) or one Python
could not raise (in `__del__`, a weakref callback) must not let a test pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

BODIES = {
    "thread": "t = threading.Thread(target=lambda: 1 / 0)\n    t.start()\n    t.join()",
    "unraisable": (
        "class Bad:\n        def __del__(self):\n            raise ValueError('in __del__')\n"
        "    Bad()\n    gc.collect()"
    ),
}


@pytest.mark.parametrize("kind", list(BODIES))
def test_an_exception_pytest_only_warns_about_fails_the_test(tmp_path: Path, kind: str) -> None:
    test = tmp_path / "test_inner.py"
    test.write_text(f"import gc\nimport threading\n\n\ndef test_inner():\n    {BODIES[kind]}\n")
    # The project's pytest configuration (-c), applied to a test outside the project.
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["-c", str(PYPROJECT), "--rootdir", str(tmp_path), str(test)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed" in done.stdout, done.stdout
