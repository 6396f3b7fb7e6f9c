"""A moto server (DynamoDB, DynamoDB Streams, S3) in its own process. Needs moto[server]
(the `demo` and `test` extras)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator

from bridge.model.errors import ConfigError
from ddb_bridge.services.processes import free_port, logged_process


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server (DynamoDB, Streams, S3) in its own process; yields its endpoint URL."""
    # This interpreter's moto (the version the project pins), never the first `moto_server`
    # on PATH: the tests ran another Python's older moto (5.2.1 for a pinned 5.2.6) that way.
    script = os.path.join(os.path.dirname(sys.executable), "moto_server")
    if os.path.exists(script):
        argv = [script]
    elif importlib.util.find_spec("moto") is not None:
        argv = [sys.executable, "-m", "moto.server"]
    else:
        raise ConfigError(
            "the embedded DynamoDB needs moto[server]: pip install '.[demo]' in the clone"
        )
    port = free_port()
    with logged_process([*argv, "-H", "127.0.0.1", "-p", str(port)], port, "moto"):
        yield f"http://127.0.0.1:{port}"
