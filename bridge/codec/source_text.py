"""Events a source made from its input's JSON text with the compiled core: images unparsed.

The core (bridge/codec/_core.c) reads an export line or a GetRecords body as text: it checks
every image on its text as the reference checks the parsed image, and copies the text into
the envelope. The event keeps that text (`new_image_json` / `old_image_json`) and parses an
image only when something reads it (a TTL check, a test), through `TextImageEvent`'s
properties, so the map read is always the one the reference makes.
"""

from __future__ import annotations

from bridge.codec.image_text import PENDING, TextImageEvent

__all__ = ["PENDING", "SourceTextEvent"]


class SourceTextEvent(TextImageEvent):
    """A source's event whose images are its input's JSON text, parsed on first read.

    Its own class, not apply's `TextImageEvent`, whose text a sink may store as the item
    (`image_text.stored_text` trusts apply's screening, which a source does not run)."""

    __slots__ = ()
