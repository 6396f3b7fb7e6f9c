# The compiled per-item core (bridge/codec/_core.c); see bridge/codec/compiled.py. Every
# function but configure and build_event returns None for "take the Python path".
from collections.abc import Callable
from typing import Any

def configure(
    event_type: type,
    field_names: tuple[str, ...],
    ops: tuple[Any, ...],
    origins: tuple[Any, ...],
    loads: Callable[[bytes], Any],
    dumps: Callable[..., bytes],
    sort_keys_option: int,
    ttl_principal: str,
    /,
) -> None: ...
def export_line(
    line: bytes,
    table: str,
    key_names: tuple[str, ...],
    key_types: tuple[str, ...],
    version: int,
    origin: Any,
    passthrough: bool,
    /,
) -> Any: ...
def stream_record(record: Any, table: str, shard_id: str, last_version: int, /) -> Any: ...
def scan_item(raw: Any, table: str, key_names: tuple[str, ...], version: int, /) -> Any: ...
def encode_event(event: Any, /) -> bytes | None: ...
def decode_text(data: bytes, start: int, /) -> tuple[Any, ...] | None: ...
def build_event(cls: type, /, *fields: Any) -> Any: ...
def stream_page(
    scanned: Any,
    table: str,
    shard_id: str,
    last_version: int,
    event_type: type,
    pending: Any,
    /,
) -> list[Any] | None: ...
def page_records(body: bytes, /) -> tuple[list[dict[str, Any]], str | None, Any] | None: ...
def export_text(
    line: bytes,
    table: str,
    key_names: tuple[str, ...],
    key_types: tuple[str, ...],
    version: int,
    origin: Any,
    event_type: type,
    pending: Any,
    /,
) -> Any: ...
def scan_text(
    raw: Any,
    table: str,
    key_names: tuple[str, ...],
    version: int,
    event_type: type,
    pending: Any,
    /,
) -> tuple[Any, int] | None: ...
