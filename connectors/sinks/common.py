"""What every sink does the same way: find a table's spec, validate keys, coalesce a batch.

Which event wins is `bridge.model.versioning.rank`: the higher version, and at an equal version a
delete over a write. Each sink applies it twice: here, in Python, to the events of one batch;
and in its target's own language for what is already stored (SQL `WHERE`, CQL
`USING TIMESTAMP`, DynamoDB `ConditionExpression`), which `tests/integration/
test_sink_contract.py` holds to the same rule.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bridge.codec.image_text import stored_text
from bridge.model import attrs
from bridge.model.attrs import Item
from bridge.model.errors import ConfigError, PermanentError, TargetError, TransientError
from bridge.model.event import ChangeEvent
from bridge.model.versioning import wins
from bridge.ports.sink import KeyType, TableSpec

KeyValue = str | bytes
"""A key attribute as the sinks compare it: S as text, N as canonical text, B as bytes."""


class Tables:
    """The opened tables, addressable by source name (events) or target name (operators)."""

    def __init__(self, specs: Sequence[TableSpec]) -> None:
        self.specs = list(specs)
        self._by_name: dict[str, TableSpec] = {}
        for spec in specs:
            self._by_name[spec.target] = spec
        # Source names win over target names: events always carry the source name.
        for spec in specs:
            self._by_name[spec.source] = spec

    def get(self, table: str) -> TableSpec:
        try:
            return self._by_name[table]
        except KeyError as exc:
            known = ", ".join(sorted(self._by_name)) or "none"
            raise PermanentError(
                f"table {table!r} is not opened by this sink (opened: {known})"
            ) from exc


def key_value(av: Any, expected: KeyType, where: str) -> KeyValue:
    """One key attribute as its identity: equal keys (1 and 1.0, any base64 spelling) are equal."""
    if not isinstance(av, dict) or len(av) != 1:
        raise PermanentError(f"{where}: malformed key attribute {av!r}")
    ((tag, value),) = av.items()
    if tag != expected:
        raise PermanentError(
            f"{where}: key attribute has type {tag}, the table's key is {expected}"
        )
    if not isinstance(value, str):
        raise PermanentError(f"{where}: malformed key attribute {av!r}")
    if tag == "S":
        if not value:
            raise PermanentError(f"{where}: empty string key")
        return value
    if tag == "N":
        try:
            return attrs.normalize_number(value)
        except PermanentError as exc:
            raise PermanentError(f"{where}: {exc}") from exc
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PermanentError(f"{where}: invalid base64 in binary key") from exc
    if not raw:
        raise PermanentError(f"{where}: empty binary key")
    return raw


def key_identity(spec: TableSpec, keys: Item) -> tuple[KeyValue, ...]:
    """The identity of an event's key, validated against the table's key schema."""
    try:
        return _key_identity(spec, keys, "")
    except PermanentError:
        # Again, to name the table and key: built only now, as this runs per written row.
        return _key_identity(spec, keys, f"table {spec.source} key {_show(keys)}")


def _key_identity(spec: TableSpec, keys: Item, where: str) -> tuple[KeyValue, ...]:
    if len(keys) != len(spec.key_names):
        raise PermanentError(f"{where}: expected key attributes {', '.join(spec.key_names)}")
    out = []
    for name, typ in key_types(spec):
        if name not in keys:
            raise PermanentError(f"{where}: key attribute {name!r} is missing")
        out.append(key_value(keys[name], typ, where))
    return tuple(out)


def key_types(spec: TableSpec) -> list[tuple[str, KeyType]]:
    out: list[tuple[str, KeyType]] = [(spec.hash_key, spec.hash_type)]
    if spec.range_key is not None:
        out.append((spec.range_key, spec.range_type or "S"))
    return out


def wire_key(spec: TableSpec, values: Sequence[KeyValue]) -> Item:
    """Key identities back to a wire-form key (scan_keys)."""
    out: Item = {}
    for (name, typ), value in zip(key_types(spec), values, strict=True):
        if typ == "B":
            out[name] = {"B": base64.b64encode(bytes(value)).decode("ascii")}  # type: ignore[arg-type]
        else:
            out[name] = {typ: str(value)}
    return out


def full_image(event: ChangeEvent) -> Item:
    """The image to store: the new image, with the key attributes present even if it lacked them."""
    image = event.new_image
    if image is None:
        raise PermanentError(
            f"table {event.table} key {_show(event.keys)}: {event.op} without image"
        )
    if all(name in image for name in event.keys):
        return image
    return {**image, **event.keys}


def item_text(event: ChangeEvent) -> str:
    """The DynamoDB JSON text to store as the item of a non-delete event: the event's own
    checked text when apply read it as text (bridge.codec.image_text.stored_text: it holds the
    key attributes, so it is the full image), else the serialized full image."""
    text = stored_text(event)
    if text is not None:
        return text.decode("utf-8")
    return attrs.dumps(full_image(event))


def coalesce(
    events: Iterable[ChangeEvent], tables: Tables
) -> dict[str, dict[tuple[KeyValue, ...], ChangeEvent]]:
    """The winning event per key, grouped by target table name.

    Besides saving writes, this keeps a multi-row upsert from touching one row twice, which
    PostgreSQL refuses (`ON CONFLICT DO UPDATE command cannot affect row a second time`).
    """
    out: dict[str, dict[tuple[KeyValue, ...], ChangeEvent]] = {}
    for event in events:
        spec = tables.get(event.table)
        ident = key_identity(spec, event.keys)
        rows = out.setdefault(spec.target, {})
        held = rows.get(ident)
        if held is None or wins(event, held):
            rows[ident] = event
    return out


def raise_failures(
    failures: Sequence[tuple[ChangeEvent, Exception]],
    total: int,
    translate: Callable[[Exception, str], Exception],
) -> None:
    """After a batch was tried in full: raise for its failed writes, if any.

    TargetError first when the target refused any write as a whole (access denied, a table
    gone): no event is to blame, whatever else failed. Then TransientError when any failure
    is transient — retrying the whole batch is safe (the writes are idempotent) and may
    clear the others too; else the first PermanentError, naming its table and key.
    """
    if not failures:
        return
    errors = [
        (translate(exc, f"write table {event.table} key {_show(event.keys)}"), exc)
        for event, exc in failures
    ]
    for (error, cause), (event, _) in zip(errors, failures, strict=True):
        if isinstance(error, TargetError):
            if error.table is None:
                error.table = event.table
            raise error from cause
    for error, cause in errors:
        if isinstance(error, TransientError):
            raise TransientError(
                f"{len(failures)} of {total} writes failed, e.g. {error}"
            ) from cause
    error, cause = errors[0]
    raise error from cause


def check_names(spec: TableSpec, reserved: Iterable[str], what: str, fix: str) -> None:
    """A key attribute must not collide with a sink's own bookkeeping column or attribute."""
    clash = sorted(set(spec.key_names) & set(reserved))
    if clash:
        raise ConfigError(
            f"table {spec.source}: key attribute(s) {', '.join(clash)} collide with the "
            f"{what} ddb-bridge keeps next to the item: {fix}"
        )


def _show(keys: Item) -> str:
    try:
        return attrs.dumps(keys)
    except TypeError:
        return repr(keys)
