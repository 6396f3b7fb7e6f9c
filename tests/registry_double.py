"""An in-test double of the Confluent Schema Registry REST API (no registry is installable here).

It is a double, not a registry: it speaks exactly the endpoints confluent-kafka's
`SchemaRegistryClient` calls for what the bridge does (checked in its source,
`confluent_kafka/schema_registry/_sync/schema_registry_client.py`):
- `register_schema` -> `POST /subjects/{subject}/versions?normalize=False`, body
  `{"schema": text, "schemaType": "AVRO", "references": []}`, reply `{"id": n}`;
- `get_schema` -> `GET /schemas/ids/{id}`, reply `{"schema": text}` (no `schemaType` means Avro),
  `404 {"error_code": 40403}` for an unknown id;
- `get_latest_version` -> `GET /subjects/{subject}/versions/latest`, reply `{"subject", "id",
  "version", "schema"}`, `404 {"error_code": 40401}` for a subject with no version.
Locked (`state.locked`), it refuses registration as a registry whose operators register
schemas themselves does: `403 {"error_code": 40301}` (Confluent's "user is denied operation
Write on Subject"); `state.preload` registers as those operators would.
An identical schema text gets the same id under every subject, as in the real registry.
Anything else is answered 404, so a client that starts calling another endpoint fails the
tests instead of passing against a double that guessed. Optional basic auth: 401 without it.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class RegistryState:
    user_info: str | None = None  # "user:password" required in Authorization, when set
    schemas: dict[int, str] = field(default_factory=dict)
    subjects: dict[str, list[int]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path?query)
    rejected_auth: int = 0
    locked: bool = False  # registration refused with 403 / 40301
    lock: threading.Lock = field(default_factory=threading.Lock)

    def preload(self, subject: str, text: str) -> int:
        """Register `text` under `subject` as a new latest version (the same text gets the same
        id, as in the registry): what POST does, and what an operator's own pipeline does."""
        with self.lock:
            schema_id = next((i for i, t in self.schemas.items() if t == text), None)
            if schema_id is None:
                schema_id = len(self.schemas) + 1
                self.schemas[schema_id] = text
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id

    def endpoints(self) -> set[tuple[str, str]]:
        """Requests with the subject / id replaced by a placeholder."""
        out = set()
        for method, target in self.requests:
            parts = urlsplit(target).path.strip("/").split("/")
            if parts[:1] == ["subjects"] and len(parts) in (3, 4):
                parts[1] = "{subject}"
            if parts[:2] == ["schemas", "ids"] and len(parts) == 3:
                parts[2] = "{id}"
            out.add((method, "/" + "/".join(parts)))
        return out


def _handler(state: RegistryState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if state.user_info is None:
                return True
            expected = "Basic " + base64.b64encode(state.user_info.encode()).decode()
            if self.headers.get("Authorization") == expected:
                return True
            state.rejected_auth += 1
            self._reply(401, {"error_code": 401, "message": "Unauthorized"})
            return False

        def do_POST(self) -> None:
            with state.lock:
                state.requests.append(("POST", self.path))
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if not self._authorized():
                return
            url = urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
                self._reply(404, {"error_code": 404, "message": f"no endpoint {url.path}"})
                return
            if body.get("schemaType", "AVRO") != "AVRO" or "schema" not in body:
                self._reply(422, {"error_code": 42201, "message": "Invalid schema"})
                return
            assert parse_qs(url.query).get("normalize", ["False"]) == ["False"]
            subject = unquote(parts[1])
            if state.locked:
                self._reply(
                    403,
                    {
                        "error_code": 40301,
                        "message": f"User is denied operation Write on Subject: {subject}",
                    },
                )
                return
            schema_id = state.preload(subject, body["schema"])
            self._reply(200, {"id": schema_id})

        def do_GET(self) -> None:
            with state.lock:
                state.requests.append(("GET", self.path))
            if not self._authorized():
                return
            parts = urlsplit(self.path).path.strip("/").split("/")
            if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
                text = state.schemas.get(int(parts[2]))
                if text is not None:
                    self._reply(200, {"schema": text})
                    return
                self._reply(404, {"error_code": 40403, "message": "Schema not found"})
                return
            if len(parts) == 4 and parts[0] == "subjects" and parts[2:] == ["versions", "latest"]:
                subject = unquote(parts[1])
                with state.lock:
                    versions = list(state.subjects.get(subject, []))
                if not versions:
                    self._reply(
                        404, {"error_code": 40401, "message": f"Subject '{subject}' not found."}
                    )
                    return
                self._reply(
                    200,
                    {
                        "subject": subject,
                        "id": versions[-1],
                        "version": len(versions),
                        "schema": state.schemas[versions[-1]],
                    },
                )
                return
            self._reply(404, {"error_code": 404, "message": f"no endpoint {self.path}"})

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def registry_double(user_info: str | None = None) -> Iterator[tuple[str, RegistryState]]:
    """(base URL, state) of a running double on a free local port."""
    state = RegistryState(user_info=user_info)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
