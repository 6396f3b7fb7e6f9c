"""`make test`'s installer of the Debian packages the suite needs besides Java and promtool
(tools/ensure-test-packages.sh): PostgreSQL's server binaries, headless Chromium (the
dashboard test) and docker-compose (the compose file's check). Fakes on a fake PATH stand in
for the machine, so no package is ever touched."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.unit.test_ensure_java_maven import write_tool

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "ensure-test-packages.sh"
ALL = "postgresql chromium docker-compose"


def run(bindir: Path, pglib: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(SCRIPT)],
        # POSTGRES_LIB: where Debian puts the server binaries (/usr/lib/postgresql/<v>/bin).
        env={"PATH": str(bindir), "POSTGRES_LIB": str(pglib), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def machine(tmp_path: Path) -> tuple[Path, Path, Path]:
    bindir, pglib = tmp_path / "bin", tmp_path / "pglib"
    bindir.mkdir()
    pglib.mkdir()
    calls = tmp_path / "calls.log"
    # apt-get records its calls and "installs" each package as the file the script looks for.
    write_tool(
        bindir,
        "apt-get",
        f'echo "apt-get $*" >> {calls}\n'
        'for p in "$@"; do case "$p" in '
        f"postgresql) /bin/mkdir -p {pglib}/15/bin; "
        f"printf '#!/bin/sh\\n' > {pglib}/15/bin/initdb ;; "
        f"chromium|docker-compose) printf '#!/bin/sh\\n' > {bindir}/$p; "
        f"/bin/chmod +x {bindir}/$p ;; esac; done",
    )
    return bindir, pglib, calls


def test_all_present_installs_nothing(machine: tuple[Path, Path, Path]) -> None:
    bindir, pglib, calls = machine
    (pglib / "15" / "bin").mkdir(parents=True)
    (pglib / "15" / "bin" / "initdb").write_text("")
    write_tool(bindir, "chromium", "exit 0")
    write_tool(bindir, "docker-compose", "exit 0")
    write_tool(bindir, "id", "echo 0")
    done = run(bindir, pglib)
    assert done.returncode == 0, done.stderr
    assert not calls.exists()


def test_missing_packages_are_installed_from_debian_as_root(
    machine: tuple[Path, Path, Path],
) -> None:
    bindir, pglib, calls = machine
    write_tool(bindir, "id", "echo 0")
    done = run(bindir, pglib)
    assert done.returncode == 0, done.stderr
    installs = [c for c in calls.read_text().splitlines() if " install " in c]
    assert installs == [f"apt-get install -y -qq --no-install-recommends {ALL}"]
    assert (pglib / "15" / "bin" / "initdb").exists()


def test_without_root_it_stops_at_once_naming_every_missing_package(
    machine: tuple[Path, Path, Path],
) -> None:
    bindir, pglib, calls = machine
    write_tool(bindir, "id", "echo 1000")
    done = run(bindir, pglib)
    assert done.returncode == 1
    assert f"Missing here: {ALL}." in done.stderr
    assert f"sudo apt-get install --no-install-recommends {ALL}" in done.stderr
    assert not calls.exists()


def test_an_external_postgresql_needs_no_server_binaries(
    machine: tuple[Path, Path, Path],
) -> None:
    bindir, pglib, calls = machine
    write_tool(bindir, "chromium", "exit 0")
    write_tool(bindir, "docker-compose", "exit 0")
    write_tool(bindir, "id", "echo 1000")
    done = run(bindir, pglib, PG_DSN="postgresql://db/x")
    assert done.returncode == 0, done.stderr
    assert not calls.exists()


def test_make_test_runs_it_before_pytest() -> None:
    dry = subprocess.run(
        ["make", "-n", "test", "VENV=/nonexistent-venv", "STAMP=Makefile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = dry.stdout.splitlines()
    ensure = [i for i, line in enumerate(lines) if "ensure-test-packages.sh" in line]
    pytest_at = [i for i, line in enumerate(lines) if "-m pytest" in line]
    assert ensure and pytest_at and ensure[0] < pytest_at[0], dry.stdout + dry.stderr
