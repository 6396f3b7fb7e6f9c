"""An HTTP endpoint that records each AWS request it receives (who signed it, for which
service) and forwards it to a real server (moto), or answers every request itself.

Tests put one in front of moto per service to see which endpoint a client called and with
which credentials: the access key id and service name come from the SigV4 `Authorization`
header, which botocore writes from the credentials it actually used.
"""

from __future__ import annotations

import contextlib
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/aws4_request")


@dataclass(frozen=True)
class Seen:
    access_key_id: str
    service: str
    session_token: str | None
    target: str  # X-Amz-Target ("DynamoDBStreams_20120810.ListStreams"), "" for S3
    body: str

    @property
    def api(self) -> str:
        """Which API was called: the X-Amz-Target's prefix, else the signing service
        (DynamoDB Streams is signed as "dynamodb"; its target tells it apart)."""
        return self.target.split(".", 1)[0] if self.target else self.service


class RecordingEndpoint:
    def __init__(self, upstream: str | None, answer: tuple[int, str] | None = None) -> None:
        self.upstream = upstream
        self.answer = answer
        self.seen: list[Seen] = []
        self._lock = threading.Lock()

    def apis(self) -> set[str]:
        with self._lock:
            return {s.api for s in self.seen}

    def access_keys(self) -> set[str]:
        with self._lock:
            return {s.access_key_id for s in self.seen}

    def record(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        found = _CREDENTIAL.search(handler.headers.get("Authorization", ""))
        seen = Seen(
            access_key_id=found.group(1) if found else "",
            service=found.group(2) if found else "",
            session_token=handler.headers.get("X-Amz-Security-Token"),
            target=handler.headers.get("X-Amz-Target", ""),
            body=body.decode("utf-8", "replace"),
        )
        with self._lock:
            self.seen.append(seen)


def _handler(endpoint: RecordingEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            endpoint.record(self, body)
            if endpoint.answer is not None:
                status, text = endpoint.answer
                self._reply(status, {"Content-Type": "text/xml"}, text.encode())
                return
            request = urllib.request.Request(
                f"{endpoint.upstream}{self.path}",
                data=body if self.command not in ("GET", "HEAD") else None,
                method=self.command,
                headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    self._reply(response.status, dict(response.headers), response.read())
            except urllib.error.HTTPError as exc:
                self._reply(exc.code, dict(exc.headers), exc.read())

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        def log_message(self, *_args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def recording_endpoint(
    upstream: str | None, answer: tuple[int, str] | None = None
) -> Iterator[tuple[str, RecordingEndpoint]]:
    """(its URL, its record); forwards to `upstream`, or answers `answer` to everything."""
    endpoint = RecordingEndpoint(upstream, answer)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(endpoint))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", endpoint
    finally:
        server.shutdown()
        server.server_close()
