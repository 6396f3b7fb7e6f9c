"""Confluent framing through confluent-kafka's SchemaRegistryClient, against an HTTP double.

The registry here is `tests/registry_double.py`, an in-test double of the REST API (no
Schema Registry or Karapace is installable here: SERVICES.md).
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from typing import Any

import fastavro
import pytest
from pydantic import SecretStr

from bridge.codec.avro import EventCodec, load_schema_text
from bridge.kafka.schema_registry import make_codec, registry_codec, subject_for
from bridge.model.errors import ConfigError, DecodeError, PermanentError, TransientError
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.runtime.settings import KafkaSettings
from tests.registry_double import RegistryState, registry_double

pytestmark = pytest.mark.integration

USER_INFO = "bridge-key:registry-S3cret"


@pytest.fixture
def registry() -> Iterator[tuple[str, RegistryState]]:
    with registry_double(USER_INFO) as found:
        yield found


def kafka(url: str, user_info: str | None = USER_INFO) -> KafkaSettings:
    return KafkaSettings(
        schema_registry_url=url,
        schema_registry_user_info=SecretStr(user_info) if user_info else None,
    )


def event(table: str, n: int) -> ChangeEvent:
    return ChangeEvent(
        table=table,
        op=Op.INSERT,
        keys={"id": {"N": str(n)}},
        version=7 + n,
        origin=Origin.STREAM,
        new_image={"id": {"N": str(n)}, "b": {"B": "AAEC"}},
    )


def test_topic_name_strategy_confluent_framing_and_both_framings_decode(
    registry: tuple[str, RegistryState],
) -> None:
    url, state = registry
    codec = make_codec(kafka(url), ["orders", "users"])
    assert state.subjects == {"ddb.orders.changes-value": [1], "ddb.users.changes-value": [1]}
    assert subject_for("ddb.orders.changes") == "ddb.orders.changes-value"
    confluent = codec.encode(event("orders", 1))
    assert confluent[:5] == b"\x00\x00\x00\x00\x01"
    # A table first seen at publish time is registered under its own subject then.
    codec.encode(event("late", 2))
    assert state.subjects["ddb.late.changes-value"] == [1]

    # What a consumer of the README uses; it reads records written before the registry too.
    reader = registry_codec(url, {"basic.auth.user.info": USER_INFO})
    single_object = EventCodec().encode(event("orders", 3))
    assert reader.decode(confluent) == event("orders", 1)
    assert reader.decode(single_object) == event("orders", 3)
    assert reader.decode_generic(confluent) == event("orders", 1)
    # The registry's copy of our schema is recognised: the fast decoder serves it.
    assert reader._by_id[1] is reader.schema
    # Exactly the endpoints the double implements, each schema fetched once (cached).
    assert state.endpoints() == {
        ("POST", "/subjects/{subject}/versions"),
        ("GET", "/schemas/ids/{id}"),
    }
    reader.decode(confluent)
    assert sum(1 for m, _ in state.requests if m == "GET") == 1
    assert state.rejected_auth == 0


def test_unknown_schema_id_is_a_decode_error_for_the_dlq(
    registry: tuple[str, RegistryState],
) -> None:
    url, _state = registry
    reader = make_codec(kafka(url))  # a consumer: registers nothing
    with pytest.raises(DecodeError, match="schema id 99 is not in the schema registry"):
        reader.decode(b"\x00\x00\x00\x00\x63" + b"\x00" * 20)


def test_wrong_credentials_stop_at_start_up_and_the_secret_is_not_in_the_message(
    registry: tuple[str, RegistryState],
) -> None:
    url, state = registry
    with pytest.raises(PermanentError, match="401") as caught:
        make_codec(kafka(url, "bridge-key:wrong-S3cret"), ["orders"])
    assert "wrong-S3cret" not in str(caught.value)
    assert state.rejected_auth >= 1
    # A decoder that cannot authenticate stops apply (PermanentError is not dead-lettered).
    reader = make_codec(kafka(url, None))
    with pytest.raises(PermanentError, match="401"):
        reader.decode(b"\x00\x00\x00\x00\x01" + b"\x00" * 20)


def test_unreachable_registry_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    settings = kafka(f"http://user:Url-S3cret@127.0.0.1:{port}", None)
    settings.schema_registry_extra["max.retries"] = 0
    with pytest.raises(TransientError, match="unreachable") as caught:
        make_codec(settings, ["orders"])
    assert "Url-S3cret" not in str(caught.value)


def test_bad_registry_options_are_a_config_error() -> None:
    settings = kafka("http://127.0.0.1:1", None)
    settings.schema_registry_extra["no.such.option"] = 1
    with pytest.raises(ConfigError, match="no.such.option"):
        make_codec(settings)


def test_without_registry_single_object_framing_and_a_clear_error_for_confluent() -> None:
    codec = make_codec(KafkaSettings())
    assert codec.framing == "single-object"
    assert codec.encode(event("t", 1))[:2] == b"\xc3\x01"
    with pytest.raises(DecodeError, match=r"registry_codec"):
        codec.decode(b"\x00\x00\x00\x00\x01" + b"\x00" * 20)


# --- A locked-down registry: the bridge may not register, only use what is registered. ---


def locked_kafka(url: str, auto_register: bool = False) -> KafkaSettings:
    settings = kafka(url)
    settings.schema_registry_auto_register = auto_register
    return settings


def same_schema_other_text() -> str:
    """The bridge's schema as an operator may have registered it: docs dropped, re-indented.
    A different text, the same Parsing Canonical Form: the same bytes on the wire."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "doc"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return json.dumps(strip(json.loads(load_schema_text())), indent=4)


def evolved_schema() -> str:
    """A later schema: one more field, with a default (what a newer bridge could register)."""
    schema = json.loads(load_schema_text())
    schema["fields"].append({"name": "region", "type": ["null", "string"], "default": None})
    return json.dumps(schema)


def test_a_locked_registry_refuses_registration_and_the_error_says_what_to_set(
    registry: tuple[str, RegistryState],
) -> None:
    url, state = registry
    state.locked = True
    with pytest.raises(ConfigError) as caught:
        make_codec(locked_kafka(url, auto_register=True), ["orders"])
    said = str(caught.value)
    assert "ddb.orders.changes-value" in said and url in said
    assert "schema_registry_auto_register = false" in said and "\n" not in said
    assert state.subjects == {}


def test_without_auto_register_a_missing_subject_stops_at_start_naming_it(
    registry: tuple[str, RegistryState],
) -> None:
    url, state = registry
    state.locked = True
    with pytest.raises(ConfigError) as caught:
        make_codec(locked_kafka(url), ["orders"])
    said = str(caught.value)
    assert "no schema is registered under subject ddb.orders.changes-value" in said
    assert url in said and "change_event.avsc" in said and "\n" not in said
    assert not [r for r in state.requests if r[0] == "POST"], "it tried to register"


def test_without_auto_register_the_latest_registered_schema_is_used_when_it_is_ours(
    registry: tuple[str, RegistryState],
) -> None:
    url, state = registry
    state.locked = True
    state.preload("ddb.orders.changes-value", evolved_schema())  # an older version ...
    registered = state.preload("ddb.orders.changes-value", same_schema_other_text())  # latest
    codec = make_codec(locked_kafka(url), ["orders"])
    framed = codec.encode(event("orders", 1))
    assert framed[:5] == b"\x00" + registered.to_bytes(4, "big")
    assert not [r for r in state.requests if r[0] == "POST"], "it tried to register"
    # Anyone decoding with the registered schema as the writer's reads the event back.
    as_registered = fastavro.parse_schema(json.loads(state.schemas[registered]))
    decoded = fastavro.schemaless_reader(io.BytesIO(framed[5:]), as_registered, None)
    assert decoded["table"] == "orders" and decoded["version"] == 8
    assert registry_codec(url, {"basic.auth.user.info": USER_INFO}).decode(framed) == event(
        "orders", 1
    )


def test_without_auto_register_a_latest_schema_that_differs_on_the_wire_is_refused(
    registry: tuple[str, RegistryState],
) -> None:
    url, state = registry
    state.locked = True
    state.preload("ddb.orders.changes-value", same_schema_other_text())
    newer = state.preload("ddb.orders.changes-value", evolved_schema())  # latest
    # Avro schema resolution would accept it (our schema as the writer's, the registered one
    # as the reader's) ...
    ours = fastavro.parse_schema(json.loads(load_schema_text()))
    theirs = fastavro.parse_schema(json.loads(state.schemas[newer]))
    body = EventCodec().encode(event("orders", 1))[10:]  # single-object: 2 magic + 8 fp
    assert fastavro.schemaless_reader(io.BytesIO(body), ours, theirs)["region"] is None
    # ... but a record framed with the registered id claims that schema as its writer's, and
    # our bytes do not decode with it: that is what "cannot carry" means here.
    with pytest.raises(EOFError):
        fastavro.schemaless_reader(io.BytesIO(body), theirs, None)
    with pytest.raises(ConfigError) as caught:
        make_codec(locked_kafka(url), ["orders"])
    said = str(caught.value)
    assert "ddb.orders.changes-value" in said and url in said and f"id {newer}" in said
    assert "cannot carry the bridge's events" in said and "\n" not in said
