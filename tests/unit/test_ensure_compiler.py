"""`make install`'s check for what builds the compiled core (tools/ensure-compiler.sh), on a
fake PATH: fakes of gcc, python, id and apt-get stand in for the machine, so no package is
ever touched. It installs from Debian where it can and never fails the install."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.unit.test_ensure_java_maven import write_tool

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "ensure-compiler.sh"


def run(bindir: Path, headers: bool) -> subprocess.CompletedProcess[str]:
    include = bindir / "include"
    include.mkdir(exist_ok=True)
    if headers:
        (include / "Python.h").write_text("/* fake */\n")
    write_tool(bindir, "python", f"echo {include}")
    return subprocess.run(
        ["/bin/sh", str(SCRIPT), str(bindir / "python")],
        env={"PATH": str(bindir)},
        capture_output=True,
        text=True,
        timeout=30,
    )


def fake_apt_get(bindir: Path, calls: Path) -> None:
    """apt-get that records its calls and "installs" gcc as a gcc in the PATH."""
    write_tool(
        bindir,
        "apt-get",
        f'echo "apt-get $*" >> {calls}\n'
        f'case "$*" in *"install"*gcc*) '
        f"printf '#!/bin/sh\\nexit 0\\n' > {bindir}/gcc; /bin/chmod +x {bindir}/gcc ;; "
        "esac",
    )


def test_a_compiler_and_headers_install_nothing(tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    write_tool(tmp_path, "gcc", "exit 0")
    fake_apt_get(tmp_path, calls)
    write_tool(tmp_path, "id", "echo 0")
    result = run(tmp_path, headers=True)
    assert result.returncode == 0, result.stderr
    assert not calls.exists() and result.stderr == ""


def test_a_missing_gcc_is_installed_from_debian_as_root(tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    fake_apt_get(tmp_path, calls)
    write_tool(tmp_path, "id", "echo 0")
    result = run(tmp_path, headers=True)
    assert result.returncode == 0, result.stderr
    installs = [c for c in calls.read_text().splitlines() if " install " in c]
    assert installs == ["apt-get install -y -qq --no-install-recommends gcc"]
    assert (tmp_path / "gcc").exists()


def test_without_root_the_install_goes_on_saying_why_and_what_to_install(tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    fake_apt_get(tmp_path, calls)
    write_tool(tmp_path, "id", "echo 1000")  # no sudo in the PATH either
    result = run(tmp_path, headers=False)
    assert result.returncode == 0  # never fails: the Python implementation runs instead
    assert not calls.exists()
    assert "no gcc python3-dev here, so the compiled core is not built" in result.stderr
    assert "Python implementation" in result.stderr
    assert "sudo apt-get install --no-install-recommends gcc python3-dev" in result.stderr
