"""How to spell a `ddb-bridge` command so that it runs as printed, from the user's shell.

`make install` puts the `ddb-bridge` script in `.venv/bin`, which is not on PATH until the
environment is activated; a bare `ddb-bridge …` printed by the demo would then fail. Every
command the CLI prints for the user to run goes through `command_line`, so there is one place
that decides how it is spelled.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path


def program(path_env: str | None = None) -> str:
    """`ddb-bridge` when that name finds this installation on PATH; else the script's absolute
    path (it works from any directory, e.g. another terminal); else `python -m`."""
    script = Path(sys.executable).parent / "ddb-bridge"
    if not script.exists():
        return f"{shlex.quote(sys.executable)} -m ddb_bridge.cli.main"
    path = path_env if path_env is not None else os.environ.get("PATH")
    found = shutil.which("ddb-bridge", path=path)
    if found is not None and Path(found).resolve() == script.resolve():
        return "ddb-bridge"
    # Not resolved: a venv's bin/python is a symlink, its bin/ddb-bridge is not.
    return shlex.quote(os.path.abspath(script))


def command_line(*args: str | Path) -> str:
    """A shell line running `ddb-bridge ARGS…` with this installation, arguments quoted."""
    return " ".join([program(), *(shlex.quote(str(a)) for a in args)])
