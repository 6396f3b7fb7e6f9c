"""An HTTP/2-cleartext front for moto, for the Java Kinesis client.

The KCL forces its Kinesis client onto HTTP/2 (netty); against an `http://` endpoint that
means HTTP/2 with prior knowledge, which moto's HTTP/1.1 server answers with an HTML page
("First received frame was not SETTINGS"). Hypercorn speaks h2c with prior knowledge; this
ASGI app forwards every request to moto over HTTP/1.1 and streams the answer back.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import aiohttp
from hypercorn.asyncio import serve
from hypercorn.config import Config

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]

# Hop-by-hop or recomputed headers that must not be copied across.
_SKIP = {"host", "connection", "content-length", "transfer-encoding", "keep-alive"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Forward:
    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        if self.session is None:
            self.session = aiohttp.ClientSession(auto_decompress=False)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.decode("latin-1").lower() not in _SKIP
        ]
        url = self.target + scope["raw_path"].decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        async with self.session.request(
            scope["method"], url, data=body, headers=headers, allow_redirects=False
        ) as response:
            payload = await response.read()
            out = [
                (k.encode("latin-1"), v.encode("latin-1"))
                for k, v in response.headers.items()
                if k.lower() not in _SKIP
            ]
            out.append((b"content-length", str(len(payload)).encode()))
            await send({"type": "http.response.start", "status": response.status, "headers": out})
            await send({"type": "http.response.body", "body": payload})


@contextmanager
def h2c_front(target: str) -> Iterator[str]:
    """Serve `target` (an HTTP/1.1 URL) over h2c and HTTP/1.1 on a free port; yield its URL."""
    port = _free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    app = _Forward(target)
    started = threading.Event()

    async def main() -> None:
        started.set()
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
        if app.session is not None:
            await app.session.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(10)
    deadline = 100
    while deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            deadline -= 1
            threading.Event().wait(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
