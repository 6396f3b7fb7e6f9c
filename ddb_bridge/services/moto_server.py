"""A moto server (DynamoDB, DynamoDB Streams, S3) in its own process. Needs moto[server]
(the `demo` and `test` extras)."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator

from bridge.model.errors import ConfigError
from ddb_bridge.services.processes import free_port, logged_process


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server (DynamoDB, Streams, S3) in its own process; yields its endpoint URL."""
    # This interpreter's moto (the version the project pins, never the first `moto_server` on
    # PATH: the tests ran another Python's older moto that way), answering one request at a
    # time, as DynamoDB makes each conditional write atomic (moto_server_atomic.py).
    if importlib.util.find_spec("moto") is None:
        raise ConfigError(
            "the embedded DynamoDB needs moto[server]: pip install '.[demo]' in the clone"
        )
    argv = [sys.executable, "-m", "ddb_bridge.services.moto_server_atomic"]
    port = free_port()
    with logged_process([*argv, "-H", "127.0.0.1", "-p", str(port)], port, "moto"):
        yield f"http://127.0.0.1:{port}"
