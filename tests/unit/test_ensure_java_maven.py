"""`make test`'s installer of Java 17+ and Maven (tools/ensure-java-maven.sh), on a fake PATH.

Fakes of java, mvn, id, sudo and apt-get stand in for the machine: apt-get records how it was
called and "installs" by copying prepared fakes into the PATH, so no package is ever touched.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "ensure-java-maven.sh"
JAVA_17 = "echo 'openjdk version \"17.0.15\" 2025-04-15' >&2"
JAVA_11 = "echo 'openjdk version \"11.0.2\" 2019-01-15' >&2"


def write_tool(bindir: Path, name: str, script: str) -> None:
    path = bindir / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@dataclass
class Machine:
    bin: Path
    installable: Path  # what apt-get "installs": fakes copied into bin
    calls: Path

    def has(self, name: str, script: str = "exit 0") -> None:
        write_tool(self.bin, name, script)

    def apt_get(self, fail: bool = False) -> None:
        write_tool(self.installable, "java", JAVA_17)
        write_tool(self.installable, "mvn", "exit 0")
        self.has(
            "apt-get",
            f'echo "apt-get $*" >> {self.calls}\n'
            + ("exit 100\n" if fail else "")
            + f'case "$*" in *install*) '
            f'for p in "$@"; do case "$p" in '
            f"default-jre-headless) /bin/cp {self.installable}/java {self.bin}/ ;; "
            f"maven) /bin/cp {self.installable}/mvn {self.bin}/ ;; esac; done ;; esac",
        )

    def root(self, yes: bool) -> None:
        self.has("id", f"echo {0 if yes else 1000}")

    def sudo(self, works: bool) -> None:
        # `sudo -n CMD...`: runs CMD when it may without a password, else fails as sudo does.
        body = (
            f'echo "sudo $*" >> {self.calls}; shift; [ "$1" = true ] && exit 0; exec "$@"'
            if works
            else "echo 'sudo: a password is required' >&2; exit 1"
        )
        self.has("sudo", body)

    def run(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["/bin/sh", str(SCRIPT)],
            env={"PATH": str(self.bin)},
            capture_output=True,
            text=True,
            timeout=30,
        )

    def called(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    for d in ("bin", "installable"):
        (tmp_path / d).mkdir()
    return Machine(tmp_path / "bin", tmp_path / "installable", tmp_path / "calls.log")


def test_nothing_is_installed_when_java_17_and_maven_are_there(machine: Machine) -> None:
    machine.has("java", JAVA_17)
    machine.has("mvn")
    machine.apt_get()
    machine.root(True)
    done = machine.run()
    assert done.returncode == 0, done.stderr
    assert machine.called() == []


def test_as_root_with_apt_get_both_are_installed(machine: Machine) -> None:
    machine.apt_get()
    machine.root(True)
    done = machine.run()
    assert done.returncode == 0, done.stderr
    assert machine.called() == [
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends default-jre-headless maven",
    ]


def test_an_old_java_is_replaced_and_maven_left_alone(machine: Machine) -> None:
    machine.has("java", JAVA_11)
    machine.has("mvn")
    machine.apt_get()
    machine.root(True)
    done = machine.run()
    assert done.returncode == 0, done.stderr
    assert machine.called()[-1] == (
        "apt-get install -y -qq --no-install-recommends default-jre-headless"
    )


def test_not_root_but_passwordless_sudo_installs_through_sudo(machine: Machine) -> None:
    machine.has("java", JAVA_17)
    machine.apt_get()
    machine.root(False)
    machine.sudo(works=True)
    done = machine.run()
    assert done.returncode == 0, done.stderr
    assert "sudo -n apt-get install -y -qq --no-install-recommends maven" in machine.called()


@pytest.mark.parametrize("sudo", ["missing", "asks for a password"])
def test_not_root_without_usable_sudo_says_what_to_install_and_fails(
    machine: Machine, sudo: str
) -> None:
    machine.has("java", JAVA_11)
    machine.apt_get()
    machine.root(False)
    if sudo != "missing":
        machine.sudo(works=False)
    done = machine.run()
    assert done.returncode == 1
    assert "Missing here: default-jre-headless maven." in done.stderr
    assert "sudo apt-get install --no-install-recommends default-jre-headless maven" in done.stderr
    assert machine.called() == []


def test_without_apt_get_even_root_gets_instructions_and_a_failure(machine: Machine) -> None:
    machine.has("java", JAVA_17)
    machine.root(True)
    done = machine.run()
    assert done.returncode == 1
    assert "Missing here: maven." in done.stderr
    assert "Java 17+ JRE and Apache Maven from your package manager" in done.stderr


def test_a_failing_apt_get_fails_the_run(machine: Machine) -> None:
    machine.apt_get(fail=True)
    machine.root(True)
    done = machine.run()
    assert done.returncode == 1
    assert "apt-get install default-jre-headless maven failed" in done.stderr


def test_the_script_needs_no_tool_beyond_the_shell(machine: Machine) -> None:
    """The fakes above are the whole PATH: any other external command would be 'not found'."""
    machine.apt_get()
    machine.root(True)
    done = machine.run()
    assert "not found" not in done.stderr, done.stderr
    assert shutil.which("sh", path=str(machine.bin)) is None


def test_make_test_runs_the_installer_before_pytest() -> None:
    if shutil.which("make") is None:
        pytest.fail("make is not installed (apt-get install make)", pytrace=False)
    # -n prints the recipe without running it; STAMP=Makefile stands in for an installed venv.
    # -o Makefile: make remakes an out-of-date makefile even under -n, and with STAMP=Makefile
    # that is the venv install (pyproject.toml newer than the Makefile, as after an edit).
    shown = subprocess.run(
        ["make", "-n", "-C", str(SCRIPT.parents[1]), "test", "STAMP=Makefile", "-o", "Makefile"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    installer = next(i for i, line in enumerate(lines) if "tools/ensure-java-maven.sh" in line)
    pytest_line = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    assert installer < pytest_line
