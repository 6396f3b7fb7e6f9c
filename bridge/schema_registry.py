"""A minimal Confluent Schema Registry client (REST, stdlib only): register and fetch by id."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from bridge.avro_codec import EventCodec, load_schema_text
from bridge.errors import PermanentError, TransientError

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class SchemaRegistry:
    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": CONTENT_TYPE}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            if exc.code >= 500:
                raise TransientError(
                    f"schema registry {method} {path}: {exc.code} {detail}"
                ) from exc
            raise PermanentError(f"schema registry {method} {path}: {exc.code} {detail}") from exc
        except (urllib.error.URLError, TimeoutError) as exc:
            raise TransientError(f"schema registry {self.url} unreachable: {exc}") from exc

    def register(self, subject: str, schema_text: str) -> int:
        result = self._call("POST", f"/subjects/{subject}/versions", {"schema": schema_text})
        return int(result["id"])

    def schema_by_id(self, schema_id: int) -> str:
        return str(self._call("GET", f"/schemas/ids/{schema_id}")["schema"])


def make_codec(registry_url: str | None, subjects: list[str]) -> EventCodec:
    """Single-object framing without a registry; Confluent framing registered under `subjects`."""
    if not registry_url:
        return EventCodec()
    registry = SchemaRegistry(registry_url)
    text = load_schema_text()
    ids = {registry.register(subject, text) for subject in subjects} or {
        registry.register("ddb-bridge-change-event", text)
    }
    if len(ids) != 1:
        raise PermanentError(
            f"the change-event schema got different ids per subject: {sorted(ids)}"
        )
    return EventCodec(
        "confluent", writer_schema_id=ids.pop(), schema_id_lookup=registry.schema_by_id
    )
