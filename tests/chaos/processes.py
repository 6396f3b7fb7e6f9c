"""The bridge's own processes, as an operator's supervisor runs them: real `ddb-bridge`
commands with one config file, each logging to its own file, SIGKILLed on schedule and started
again; every exit the run did not cause is recorded with its code and the log's last words."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# `ddb-bridge`'s documented "a service did not answer at start-up: run me again" (EX_TEMPFAIL).
EXIT_UNAVAILABLE = 75
# A process younger than this may still be loading Python's modules, before any handler of
# ours exists (the CLI takes ~1 s on an idle machine, more under the run's load): SIGTERM then
# ends it by the signal, Python's default, not a stop the bridge could have made clean.
# From argument parsing on, SIGTERM exits 0 (ddb_bridge/cli/starting.py).
LOADING_S = 5.0


@dataclass
class Exit:
    name: str
    code: int
    at_s: float
    reason: str
    # The back-fill finishing (0), a stop the run asked for (SIGTERM -> 0), or exit 75 (the
    # supervisor restarts it); any other exit fails the run.
    expected: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "process": self.name,
            "code": self.code,
            "at_s": round(self.at_s, 1),
            "reason": self.reason,
            "expected": self.expected,
        }


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    finished: bool = False  # exited 0 on its own (the back-fill), never restarted
    started_at: float = 0.0  # time.monotonic() of the last start


@dataclass
class Supervisor:
    workdir: Path
    config: Path
    env: dict[str, str]
    started_at: float = field(default_factory=time.monotonic)
    children: dict[str, Child] = field(default_factory=dict)
    exits: list[Exit] = field(default_factory=list)

    def add(self, name: str, command: str, *args: str) -> Child:
        argv = [sys.executable, "-m", "ddb_bridge.cli.main", command]
        argv += ["--config", str(self.config), *args]
        child = Child(name, argv)
        self.children[name] = child
        return child

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start(self, name: str, *extra: str) -> None:
        child = self.children[name]
        log = self.log_path(name).open("ab")
        log.write(f"\n==== start #{child.starts + 1} at {self.now():.1f}s ====\n".encode())
        log.flush()
        child.proc = subprocess.Popen(
            [*child.argv, *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
        )
        log.close()
        child.starts += 1
        child.started_at = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.started_at

    def running(self, name: str) -> bool:
        proc = self.children[name].proc
        return proc is not None and proc.poll() is None

    def kill(self, name: str) -> None:
        """SIGKILL, reaped at once: the kill is ours, not an exit to report."""
        child = self.children[name]
        assert child.proc is not None
        child.proc.send_signal(signal.SIGKILL)
        child.proc.wait(30)
        child.proc = None
        child.kills += 1

    def reap(self) -> list[Exit]:
        """Exits since the last call (processes we did not kill)."""
        found = []
        for child in self.children.values():
            proc = child.proc
            if proc is None or proc.poll() is None:
                continue
            child.proc = None
            child.finished = child.name == "backfill" and proc.returncode == 0
            expected = child.finished or proc.returncode == EXIT_UNAVAILABLE
            found.append(
                Exit(child.name, proc.returncode, self.now(), self.reason(child.name), expected)
            )
        self.exits.extend(found)
        return found

    def reason(self, name: str) -> str:
        """The last lines of a process's log that say why it stopped."""
        lines = self.log_tail(name, 20_000).splitlines()
        wanted = [ln for ln in lines if "error" in ln.lower() or "traceback" in ln.lower()]
        return (wanted or lines or ["(empty log)"])[-1][-400:]

    def log_tail(self, name: str, chars: int = 4000) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop_all(self, timeout_s: float = 60.0) -> None:
        """SIGTERM to every running process; each must exit 0 (recorded as expected when so)."""
        running = [c for c in self.children.values() if c.proc is not None]
        youngest = max((c.started_at for c in running), default=0.0)
        time.sleep(max(0.0, youngest + LOADING_S - time.monotonic()))
        for child in self.children.values():
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        for child in self.children.values():
            proc = child.proc
            if proc is None:
                continue
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            child.proc = None
            self.exits.append(
                Exit(
                    child.name,
                    proc.returncode,
                    self.now(),
                    self.reason(child.name),
                    proc.returncode == 0,
                )
            )

    def tracebacks(self) -> list[str]:
        return [
            name
            for name in self.children
            if "Traceback" in self.log_path(name).read_text(errors="replace")
        ]
