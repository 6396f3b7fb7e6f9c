# apply's compiled batch screen (bridge/codec/_apply_core.c); see bridge/codec/compiled.py
# and bridge/apply/screening.py. A record it is not certain of gives None: "take Screen.check".
from collections.abc import Callable
from typing import Any

def configure(
    build_event: Callable[..., Any], event_type: type, pending: Any, remove: Any, /
) -> None: ...
def screen_batch(
    records: list[Any],
    topics: dict[str, Any],
    prefix: bytes,
    decode_at: Callable[[bytes, int], Any],
    decode: Callable[[bytes], Any],
    /,
) -> list[Any]: ...
def image_ok(text: bytes, /) -> bool: ...
