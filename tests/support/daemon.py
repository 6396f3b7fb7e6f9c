"""`ddb-bridge <command>` run by the tests: one-shot (`run_bridge`) or as a daemon
(`BridgeDaemon`: output to a log file, readiness by a log line, SIGTERM/SIGKILL, exit code,
the log in every failure message).

The command runs as `python -m ddb_bridge.cli.main` with this interpreter, so the tests need
no installed entry point and always run the code of this checkout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from tests.support.wait import wait_until

CLI = (sys.executable, "-m", "ddb_bridge.cli.main")
LOG_TAIL = 3000  # characters of log a failure message carries


def bridge_argv(command: str | Sequence[str], config: Path | None, *args: str) -> list[str]:
    """The command line: `ddb-bridge COMMAND... [--config CONFIG] ARGS...`.

    `command` is its words: "dlq list", or a list of them.
    """
    words = command.split() if isinstance(command, str) else list(command)
    return [*CLI, *words, *(("--config", str(config)) if config is not None else ()), *args]


def bridge_env(env: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The child's environment: `env` (default: this process's) plus `extra`, unbuffered."""
    base = dict(os.environ if env is None else env)
    return {**base, "PYTHONUNBUFFERED": "1", **extra}


def run_bridge(
    command: str | Sequence[str],
    config: Path | None,
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout_s: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run a one-shot command to its end; its exit code, stdout and stderr (text).

    It runs in this process's directory unless `cwd` is given (a config's relative paths,
    e.g. a SQLite file, resolve against it).
    """
    return subprocess.run(
        bridge_argv(command, config, *args),
        env=bridge_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )


class BridgeDaemon:
    """A long-running `ddb-bridge COMMAND` (stream, apply, audit, backfill ...).

    stdout and stderr go to `log_path` (default: next to the config, named by command and a
    clock reading so that two daemons of one test never share a log). `ready`, when given, is
    the log line `wait_ready` waits for.
    """

    def __init__(
        self,
        command: str,
        config: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        ready: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        self.command = command
        self.ready = ready
        name = command.replace(" ", "-")
        self.log_path = log_path or config.with_suffix(f".{name}-{time.monotonic_ns()}.log")
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            bridge_argv(command, config, *args),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=bridge_env(env),
            cwd=cwd if cwd is not None else config.parent,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def poll(self) -> int | None:
        return self.proc.poll()

    def _alive(self) -> bool:
        """False once the daemon has exited: waiting for it any longer is pointless."""
        code = self.proc.poll()
        if code is not None:
            raise AssertionError(f"{self.command} exited {code}:\n{self.output[-LOG_TAIL:]}")
        return True

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until the `ready` line is in the log; fails at once if the daemon exits."""
        if self.ready is None:
            raise ValueError(f"{self.command}: no readiness line given")
        line = self.ready
        self.wait_until(lambda: line in self.output, timeout_s, f"{self.command}: {line!r}")

    def wait_until(
        self, condition: Callable[[], object], timeout_s: float = 90.0, what: str = "condition"
    ) -> None:
        """Until `condition()` holds while the daemon runs; its exit fails the wait."""
        wait_until(
            lambda: self._alive() and condition(),
            timeout_s,
            f"{what} ({self.command} running)",
            details=lambda: self.output[-LOG_TAIL:],
        )

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM (the graceful stop), then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def kill(self) -> int:
        """SIGKILL (a crash): no chance to flush or commit."""
        if self.proc.poll() is None:
            self.proc.kill()
        return self.wait(10)

    def wait(self, timeout_s: float = 30.0) -> int:
        """The exit code; a daemon still running after `timeout_s` is killed and fails."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"{self.command} did not exit in {timeout_s}s:\n{self.output[-LOG_TAIL:]}"
            ) from None
        finally:
            with contextlib.suppress(OSError):
                self._log.close()

    def stop(self) -> None:
        """Whatever state it is in, gone: for clean-up paths (SIGTERM, SIGKILL after 10 s)."""
        with contextlib.suppress(AssertionError):
            self.terminate(10)

    def __enter__(self) -> BridgeDaemon:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
