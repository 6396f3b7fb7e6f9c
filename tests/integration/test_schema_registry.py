"""Confluent framing against a small HTTP double of the Schema Registry REST API.

(No Schema Registry or Karapace package is installable here: SERVICES.md.)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bridge.avro_codec import EventCodec
from bridge.errors import PermanentError
from bridge.event import ChangeEvent, Op, Origin
from bridge.schema_registry import SchemaRegistry, make_codec


class RegistryDouble(BaseHTTPRequestHandler):
    schemas: dict[int, str] = {}
    subjects: dict[str, int] = {}

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
            self._reply(404, {"error_code": 404, "message": "not found"})
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["schema"]
        schema_id = next((i for i, t in self.schemas.items() if t == text), None)
        if schema_id is None:
            schema_id = len(self.schemas) + 1
            self.schemas[schema_id] = text
        self.subjects[parts[1]] = schema_id
        self._reply(200, {"id": schema_id})

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if parts[:2] == ["schemas", "ids"] and int(parts[2]) in self.schemas:
            self._reply(200, {"schema": self.schemas[int(parts[2])]})
        else:
            self._reply(404, {"error_code": 40403, "message": "Schema not found"})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def registry_url() -> Iterator[str]:
    RegistryDouble.schemas = {}
    RegistryDouble.subjects = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), RegistryDouble)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_confluent_framing_through_registry(registry_url: str) -> None:
    codec = make_codec(registry_url, ["ddb.orders.changes-value", "ddb.users.changes-value"])
    assert RegistryDouble.subjects == {"ddb.orders.changes-value": 1, "ddb.users.changes-value": 1}
    event = ChangeEvent(
        table="orders",
        op=Op.INSERT,
        keys={"id": {"N": "1"}},
        version=7,
        origin=Origin.STREAM,
        new_image={"id": {"N": "1"}},
    )
    data = codec.encode(event)
    assert data[:5] == b"\x00\x00\x00\x00\x01"
    # A fresh reader fetches the writer schema by id from the registry.
    reader = EventCodec(
        "confluent", writer_schema_id=1, schema_id_lookup=SchemaRegistry(registry_url).schema_by_id
    )
    assert reader.decode(data) == event


def test_unknown_schema_id_is_a_clear_error(registry_url: str) -> None:
    registry = SchemaRegistry(registry_url)
    with pytest.raises(PermanentError, match="404"):
        registry.schema_by_id(99)


def test_without_registry_single_object_framing() -> None:
    assert make_codec(None, ["x"]).framing == "single-object"
