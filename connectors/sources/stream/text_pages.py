"""GetRecords bodies read as text by the compiled core: no Python object per image.

`read_text_page` is `get_records.read_page` for the worker's reader. With the compiled core
(bridge/codec/_core.c), a raw body the core's scanner proves it reads exactly as the
reference would comes back as `TextRecords`: a summary of each record (eventName, eventID,
dynamodb.SequenceNumber and ApproximateCreationDateTime, which the reader and the processor
read of a page), the body itself and the core's reading of it (slices of the body, so it
is scanned once). `processor.stream_events` then makes the page's events in one call: each
record versioned, checked and encoded as `_core.stream_record` does, with its images kept
as their JSON text (`source_text.SourceTextEvent`, parsed only if something reads them).
A body the scanner cannot prove, and every body without the core, takes `read_page` and
the record-by-record path, which decide and name any problem
(tests/unit/test_stream_text_pages.py, and the "compiled core" entry of
tests/contracts/test_fast_slow.py, hold the two paths to the same bytes and refusals).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.codec import compiled
from bridge.codec.source_text import PENDING, SourceTextEvent
from bridge.model.event import ChangeEvent
from bridge.model.versioning import StreamVersioner
from connectors.sources.stream.get_records import RAW_BODY, WireRecords, read_page


class TextRecords(WireRecords):
    """The records of a GetRecords body the core scanned: one summary per record, and the
    body (`body`), from which `events` makes the page's events."""

    body: bytes = b""
    where: str = ""
    scanned: Any = None  # the core's reading of the body (slices of it), for `events`

    def events(self, table: str, shard_id: str, versioner: StreamVersioner) -> list[ChangeEvent]:
        """The page's events versioned along the shard (advancing `versioner`), in one
        call; `NotScanned` when the core does not make them (a key number to normalise, a
        version past 64 bits, the core switched off since): the caller takes `parsed()`."""
        core = compiled.CORE
        events: list[ChangeEvent] | None = (
            None
            if core is None
            else core.stream_page(
                self.scanned, table, shard_id, versioner.last, SourceTextEvent, PENDING
            )
        )
        if events is None:
            raise NotScanned
        if events:
            versioner.last = events[-1].version
        return events

    def parsed(self) -> WireRecords:
        """The same page as `read_page` reads it."""
        records, _ = read_page({RAW_BODY: self.body}, self.where)
        assert isinstance(records, WireRecords)
        return records


class NotScanned(Exception):
    """The core did not make the page's events: the caller takes `TextRecords.parsed()`."""


def read_text_page(page: Mapping[str, Any], where: str) -> tuple[list[Any], str | None]:
    """(records, NextShardIterator) of one GetRecords page: `TextRecords` when the core
    reads its raw body, else `read_page`'s records. `where` names the stream and shard."""
    body = page.get(RAW_BODY)
    core = compiled.CORE
    if core is not None and type(body) is bytes:
        scanned = core.page_records(body)
        if scanned is not None:
            summaries, next_iterator, records_scanned = scanned
            records = TextRecords(summaries)
            records.body = body
            records.where = where
            records.scanned = records_scanned
            return records, next_iterator
    return read_page(page, where)
