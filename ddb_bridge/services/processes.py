"""The plumbing every launcher shares: a free loopback port, waiting for a port to listen,
stopping a child process, and a child process whose output goes to a log file."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s}s")


def stop_process(proc: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kill_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL, for a child whose data is thrown away: a graceful stop buys nothing there,
    and costs seconds at the end of every test session and demo."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@contextlib.contextmanager
def logged_process(argv: list[str], port: int, name: str) -> Iterator[subprocess.Popen[bytes]]:
    """Runs `argv` until the context exits (then kills it: what it served is thrown away),
    its output in a temp log; ready once `port` listens (else an error with the log's tail)."""
    log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        try:
            wait_port("127.0.0.1", port)
        except TimeoutError as exc:
            log.flush()
            tail = open(log.name, errors="replace").read()[-2000:]  # noqa: SIM115
            raise RuntimeError(f"{name} did not start: {tail}") from exc
        yield proc
    finally:
        kill_process(proc)
        log.close()
        os.unlink(log.name)
