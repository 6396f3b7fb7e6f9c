"""The `status --serve` dashboard's HTTP server on a free port, for tests that ask it for
pages: `serve(sampler)` starts one and gives its URL; all are shut down when the test ends."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from ddb_bridge.dashboard.server import Sampler, make_server


@pytest.fixture
def serve() -> Iterator[Callable[[Sampler], str]]:
    servers = []

    def start(sampler: Sampler) -> str:
        server = make_server("127.0.0.1", 0, sampler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
