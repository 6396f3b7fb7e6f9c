"""`make test`'s installer of promtool (tools/ensure-promtool.sh), on a fake PATH: fakes of
promtool, id, sudo and apt-get stand in for the machine, so no package is ever touched."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.unit.test_ensure_java_maven import write_tool

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "ensure-promtool.sh"


def run(bindir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(SCRIPT)],
        env={"PATH": str(bindir)},
        capture_output=True,
        text=True,
        timeout=30,
    )


def fake_apt_get(bindir: Path, calls: Path) -> None:
    """apt-get that records its calls and "installs" prometheus as a promtool in the PATH."""
    write_tool(
        bindir,
        "apt-get",
        f'echo "apt-get $*" >> {calls}\n'
        f'case "$*" in *"install"*prometheus*) '
        f"printf '#!/bin/sh\\nexit 0\\n' > {bindir}/promtool; /bin/chmod +x {bindir}/promtool ;; "
        "esac",
    )


def test_present_promtool_installs_nothing(tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    write_tool(tmp_path, "promtool", "exit 0")
    fake_apt_get(tmp_path, calls)
    write_tool(tmp_path, "id", "echo 0")
    result = run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert not calls.exists()


def test_missing_promtool_is_installed_from_debian_as_root(tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    fake_apt_get(tmp_path, calls)
    write_tool(tmp_path, "id", "echo 0")
    result = run(tmp_path)
    assert result.returncode == 0, result.stderr
    installs = [c for c in calls.read_text().splitlines() if " install " in c]
    assert installs == ["apt-get install -y -qq --no-install-recommends prometheus"]
    assert (tmp_path / "promtool").exists()


def test_missing_promtool_without_root_fails_naming_the_package(tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    fake_apt_get(tmp_path, calls)
    write_tool(tmp_path, "id", "echo 1000")
    write_tool(tmp_path, "sudo", "echo 'sudo: a password is required' >&2; exit 1")
    result = run(tmp_path)
    assert result.returncode == 1
    assert "apt-get install --no-install-recommends prometheus" in result.stderr
    assert not calls.exists()
