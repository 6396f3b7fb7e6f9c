"""How to spell `ddb-bridge` in a command printed for the user to type.

`make install` and `make demo` put the command in `.venv/bin`, which is not on PATH until the
environment is activated: a hint saying plain `ddb-bridge` would fail as printed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

NAME = "ddb-bridge"


def command_name(path_env: str | None = None, cwd: Path | None = None) -> str:
    """`ddb-bridge` when PATH finds this installation's script; else the script's path
    (relative to `cwd` when below it, e.g. `.venv/bin/ddb-bridge`); else `python -m`."""
    script = Path(sys.executable).parent / NAME
    found = shutil.which(NAME, path=path_env if path_env is not None else os.environ.get("PATH"))
    if found is not None and script.exists() and Path(found).resolve() == script.resolve():
        return NAME
    if script.exists():
        here = (cwd or Path.cwd()).resolve()
        absolute = script.absolute()
        try:
            return shlex.quote(str(absolute.relative_to(here)))
        except ValueError:
            return shlex.quote(str(absolute))
    return f"{shlex.quote(sys.executable)} -m ddb_bridge.cli.main"
