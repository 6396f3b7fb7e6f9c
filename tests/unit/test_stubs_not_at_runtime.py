"""boto3-stubs types the AWS clients for mypy only: a plain `pip install ddb-bridge` (without
the test extra) has no `mypy_boto3_*` packages, so no module may import them at run time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Imports every module of the three packages with the stub packages made unimportable, as on
# a plain install; prints the modules that failed and exits 1 if any did.
_PROBE = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys, traceback

    class NoStubs(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0].startswith("mypy_boto3"):
                raise ModuleNotFoundError(f"No module named {name!r} (stubs absent)", name=name)
            return None

    sys.meta_path.insert(0, NoStubs())
    failed = []
    for package in ("bridge", "connectors", "ddb_bridge"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            try:
                importlib.import_module(info.name)
            except Exception:
                failed.append(info.name + ": " + traceback.format_exc(limit=-1))
    print("\\n".join(failed))
    sys.exit(1 if failed else 0)
    """
)


def test_every_module_imports_without_the_boto3_stubs() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"modules that need the stubs at run time:\n{proc.stdout}"
    assert "mypy_boto3" not in proc.stderr
