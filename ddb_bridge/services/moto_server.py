"""A moto server (DynamoDB, DynamoDB Streams, S3) in its own process. Needs moto[server]
(the `demo` and `test` extras)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator

from bridge.model.errors import ConfigError
from ddb_bridge.services.processes import free_port, logged_process


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server (DynamoDB, Streams, S3) in its own process; yields its endpoint URL."""
    binary = shutil.which("moto_server") or os.path.join(
        os.path.dirname(sys.executable), "moto_server"
    )
    if not os.path.exists(binary):
        raise ConfigError(
            "the embedded DynamoDB needs moto[server]: pip install '.[demo]' in the clone"
        )
    port = free_port()
    with logged_process([binary, "-H", "127.0.0.1", "-p", str(port)], port, "moto"):
        yield f"http://127.0.0.1:{port}"
