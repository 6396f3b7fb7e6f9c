"""Commands the CLI prints for the user run as printed: `ddb-bridge` only when that name
finds this installation on PATH, else the script's absolute path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ddb_bridge.invocation import command_line, program

SCRIPT = Path(sys.executable).parent / "ddb-bridge"


def test_off_path_the_script_is_named_by_its_absolute_path() -> None:
    assert program(path_env="/usr/bin:/bin") == os.path.abspath(SCRIPT)


def test_on_path_the_bare_name_is_enough() -> None:
    assert program(path_env=f"{SCRIPT.parent}:/usr/bin") == "ddb-bridge"


def test_a_printed_command_runs_from_another_directory_without_the_venv(tmp_path: Path) -> None:
    line = command_line("config", "--help")
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        ["sh", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "usage: ddb-bridge config" in done.stdout
