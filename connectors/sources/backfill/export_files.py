"""Back-fill from a DynamoDB export (full or incremental): its data files' lines into Kafka.

Each data file listed in the export's manifest (`export_manifest`) is a part of the run,
claimed through the lease table so several workers share the files. Lines are DYNAMODB_JSON:
full exports `{"Item": …}`, incremental exports `{"Keys": …, "NewImage": …, "OldImage": …}`
(no NewImage: the item was deleted → REMOVE). The run id derives from the export's ARN, so
the same export always resumes the same run.

Delivery guarantee: at-least-once, per file. A file's checksum is verified before any of
its lines is published; lines are streamed (gunzip + one line at a time), never loaded
whole; a file is marked DONE only after Kafka acknowledged all of its records (the producer
is flushed at each file's end), so a re-run after a crash re-publishes at most the
unfinished files, with identical records. Each file must hold exactly its manifest
`itemCount` lines, checked before it is recorded as done. Bad input stops the back-fill
with an error naming the file and line, after everything before it was delivered — or,
with `skip_bad_lines`, goes to the table's DLQ topic with file, line and reason headers.

TTL: items whose TTL has passed are skipped (and counted) in full exports. In incremental
exports they are published: skipping an expired new image would leave the item's older
image live in the target until the stream's TTL delete arrives.
"""

from __future__ import annotations

import gzip
import io
import logging
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from bridge.codec import compiled
from bridge.codec.json_names import member_count, names_at_most, repeat_in, repeated_name
from bridge.codec.json_names import message as name_message
from bridge.codec.source_text import PENDING, SourceTextEvent
from bridge.model import attrs
from bridge.model.errors import AttributeTypeError, ConfigError
from bridge.model.event import ChangeEvent, Origin, snapshot_event
from bridge.model.ttl import pending_deletion
from bridge.model.versioning import backfill_version, to_micros
from connectors.dynamodb import aws
from connectors.sources.backfill.export_manifest import (
    BadInputError,
    DataFile,
    ExportLocation,
    ExportManifest,
    LocalExport,
    S3Export,
    read_manifest,
    run_id_for,
)
from connectors.sources.backfill.export_request import manifest_uri, start_export
from connectors.sources.backfill.item_check import item_members
from connectors.sources.backfill.part_loop import BackfillJob, RunParts
from connectors.sources.backfill.run_plan import (
    BackfillRequest,
    PlannedRun,
    RunSetup,
    from_us,
    now_whole_ms,
)
from connectors.sources.backfill.runs import Part, RunInfo

log = logging.getLogger(__name__)

STATS_EVERY = 4096  # lines per batch: shared counters and the stop flag are seen this often


class ExportBackfill:
    """`ddb-bridge backfill --from export`: finds the export and its run; one thread reads."""

    name = "export"
    # A stopped file is read again from its start; only DONE is saved. Its publisher is
    # untracked (runner.py), so its readers must say the same (ExportFileReader).
    checkpoints = False

    def check_request(self, req: BackfillRequest) -> None:
        if not (req.s3_uri or req.dir or req.start_export):
            raise ConfigError("--from export needs --s3-uri, --dir or --start-export")

    def plan(self, setup: RunSetup) -> PlannedRun:
        req, store = setup.req, setup.store
        location, manifest = _export_location(setup)
        setup.check_safety(manifest.start_us)
        run_id = req.run_id or run_id_for(manifest)
        if req.new_run:
            run_id = f"{run_id}-{int(time.time())}"
        margin_s = setup.settings.backfill.skew_margin_s
        run = store.load_run(run_id) or store.create_run(
            RunInfo(
                table=req.table,
                run_id=run_id,
                kind="export",
                start_us=manifest.start_us,
                version=backfill_version(from_us(manifest.start_us), margin_s),
                parts=len(manifest.files),
                source=f"{manifest.export_type} {manifest.location}",
                total_items=manifest.item_count,
            ),
            [f.key for f in manifest.files],
        )
        labels = [p.label for p in store.parts(run)]
        if labels != [f.key for f in manifest.files]:
            # Parts are files by position: a run recorded from another manifest (an earlier,
            # partial copy of this export) would read the wrong files under the right names.
            raise BadInputError(
                f"back-fill run {run.run_id} of {req.table} was recorded from a manifest "
                f"listing {len(labels)} files, but {manifest.location} lists "
                f"{len(manifest.files)} (or others): the export changed since; "
                f"start over with --new-run"
            )
        setup.stats.total_items = manifest.item_count

        # Parsing is CPU-bound: one reading thread per process (more processes scale it).
        return PlannedRun(run, 1, lambda job: ExportFiles(job, location, manifest))


def _export_location(setup: RunSetup) -> tuple[ExportLocation, ExportManifest]:
    req, settings, ddb = setup.req, setup.settings, setup.ddb
    location: ExportLocation
    if req.dir:
        location = LocalExport(req.dir)
    else:
        s3 = aws.client("s3", settings.aws)
        uri = req.s3_uri
        if req.start_export:
            if not req.s3_bucket:
                raise ConfigError("--start-export needs --s3-bucket")
            desc = aws.describe_table(ddb, req.table)
            incremental = None
            if req.incremental_from is not None:
                incremental = (req.incremental_from, req.incremental_to or datetime.now(UTC))
            # The export's own time is checked later; refuse early when capture is missing.
            setup.check_safety(to_micros(now_whole_ms()))
            done = start_export(
                ddb,
                desc["TableArn"],
                req.s3_bucket,
                req.s3_prefix,
                incremental,
                on_status=lambda state, waited: setup.say(f"export {state} after {waited:.0f}s"),
                poll_s=req.export_poll_s,
            )
            uri = manifest_uri(done)
        if not uri:
            raise ConfigError("--from export needs --s3-uri, --dir or --start-export")
        location = S3Export(s3, uri)
    return location, read_manifest(location)


class ExportFiles(RunParts):
    """The data files of an export run."""

    def __init__(self, job: BackfillJob, location: ExportLocation, manifest: ExportManifest):
        super().__init__(job)
        self.location = location
        self.manifest = manifest

    def open(self, part: Part) -> ExportFileReader:
        return ExportFileReader(self.job, self.location, self.manifest, part)


# A full export's line as DynamoDB writes it: `{"Item":` + the item's compact JSON + `}`.
_ITEM_PREFIX = b'{"Item":'
_PREFIX_LEN = len(_ITEM_PREFIX)


def item_text(line: bytes, doc: dict[str, Any], item: Any, members: int) -> bytes:
    """The item's DynamoDB JSON text, byte for byte what the full path writes into the
    envelope (`orjson.dumps` of the parsed item), sliced from the line when that is provable.

    `members` is `item_members(item)`: the item was parsed from `line` and is valid. The
    slice after `{"Item":` is exactly the item's text when the line is `{"Item":…}` with a
    single member (the `"Item"` prefix, a closing brace). It equals the re-serialised item
    when, besides, the text is compact and spelled as orjson spells it: no backslash (so no
    escape at all, and every `"` delimits a string: strings are their UTF-8 bytes, which is
    how orjson writes anything but quotes, backslashes and control characters; raw control
    characters do not parse), no whitespace byte anywhere (so none between tokens), and as
    many `":` as members (a duplicate name, which parsing drops, or a string starting with
    `:` makes more). Other lines (whitespace in strings included) get the parsed item
    serialised, which is the full path's own text.
    """
    end = len(line) - 1 if line[-1:] == b"\n" else len(line)
    if (
        len(doc) == 1
        and line.startswith(_ITEM_PREFIX)
        and line[end - 1 : end] == b"}"
        and b"\\" not in line
        and b" " not in line
        and b"\r" not in line
        and b"\t" not in line
        and line.count(b'":') == members + 1
    ):
        return line[_PREFIX_LEN : end - 1]
    return _dumps(item)


_dumps = orjson.dumps  # a name of its own: tests count the items re-serialised


def _check_names(line: bytes, doc: dict[str, Any], members: int | None) -> None:
    """Refuse a line that writes a name twice in one object (bridge/codec/json_names.py), on both
    the pass-through and the full path. `members` (`item_members` of the valid item) spares
    serialising the line to count the names its parsed form holds."""
    if members is None or len(doc) != 1:
        repeat = repeat_in(line, doc)
    elif names_at_most(line) == members + 1 or member_count(line) == members + 1:
        return  # as many names as the item's members and "Item": none twice
    else:
        name = repeated_name(line)
        repeat = None if name is None else name_message(name)
    if repeat is not None:
        raise AttributeTypeError(repeat)


def _check_key(keys: dict[str, Any], checks: tuple[tuple[str, str], ...]) -> None:
    """Key attributes must have the table's key types and be non-empty, as DynamoDB's are."""
    for name, want in checks:
        av = keys[name]
        value = av.get(want) if type(av) is dict and len(av) == 1 else None
        if type(value) is not str or not value:
            raise AttributeTypeError(
                f"key attribute {name!r} must be a non-empty {want}, got "
                f"{orjson.dumps(av).decode('utf-8', 'replace')[:200]}"
            )


class Lines:
    """Up to `STATS_EVERY` lines of a file, parsed one at a time as the loop publishes them:
    events never pile up in memory (nor in the garbage collector's young generations)."""

    __slots__ = ("_reader", "records")

    def __init__(self, reader: ExportFileReader) -> None:
        self._reader = reader
        self.records: Iterator[ChangeEvent] = reader._events()

    @property
    def end(self) -> bool:
        """Read once `records` is consumed: the file was read to its last line."""
        return self._reader._at_end


class ExportFileReader:
    """One verified data file, `STATS_EVERY` lines per `read` (gunzip, one line at a time)."""

    checkpoints = ExportBackfill.checkpoints
    position: str | None = None
    # Full-export items go into the envelope as the line's own text (see `item_text`);
    # False takes the full path (re-serialise the parsed item), for comparison in tests.
    passthrough = True

    def __init__(
        self, job: BackfillJob, location: ExportLocation, manifest: ExportManifest, part: Part
    ) -> None:
        self.job = job
        self.data: DataFile = manifest.files[part.index]
        self.where = self.data.key
        self.origin = Origin.INCREMENTAL_EXPORT if manifest.incremental else Origin.EXPORT
        self.ttl_attribute = job.ttl_attribute if not manifest.incremental else None
        self.key_checks = tuple(zip(job.key_names, job.key_types, strict=False))
        self._fileobj, self._size = location.open_verified(self.data)
        # Lines are split by a C buffered reader over the gzip stream: GzipFile's own line
        # iteration runs a Python method per line.
        self._gz = io.BufferedReader(gzip.GzipFile(fileobj=self._fileobj, mode="rb"), 1 << 16)
        self._lineno = self._blank = self._ttl_skipped = 0
        self._current: tuple[int, bytes] = (0, b"")  # line number and text of the last event
        self._at_end = False

    def read(self) -> Lines:
        return Lines(self)

    def _events(self) -> Iterator[ChangeEvent]:
        job, data = self.job, self.data
        table, version, origin = job.table, job.run.version, self.origin
        key_names, key_checks = tuple(job.key_names), self.key_checks
        ttl_attr, now_s = self.ttl_attribute, job.now_s
        loads, extract_keys, build = orjson.loads, attrs.extract_keys, snapshot_event
        passthrough = self.passthrough
        lineno, raw = self._lineno, 0
        event: ChangeEvent | None
        # The compiled core makes a plain full-export line's event, key and envelope in one
        # call: read as text (the item's image left unparsed, source_text.SourceTextEvent),
        # else parsed; any other line (or a machine without the core) takes the Python path
        # below.
        compiled.notice()
        core = compiled.CORE.export_line if compiled.CORE is not None else None
        text_core = compiled.CORE.export_text if compiled.CORE is not None and passthrough else None
        key_types = tuple(job.key_types)
        try:
            for line in self._gz:
                lineno += 1
                raw += len(line)
                if core is not None:
                    event = None
                    if text_core is not None:
                        event = text_core(
                            line,
                            table,
                            key_names,
                            key_types,
                            version,
                            origin,
                            SourceTextEvent,
                            PENDING,
                        )
                    if event is None:
                        event = core(
                            line, table, key_names, key_types, version, origin, passthrough
                        )
                    if event is not None:
                        if ttl_attr is not None and pending_deletion(
                            event.new_image, ttl_attr, now_s
                        ):
                            self._ttl_skipped += 1
                        else:
                            self._current = (lineno, line)
                            yield event
                        if lineno % STATS_EVERY == 0:
                            return
                        continue
                try:
                    doc = loads(line)
                except orjson.JSONDecodeError as exc:
                    if not line.strip():
                        self._blank += 1
                    else:
                        self._bad(lineno, f"not JSON: {exc}", line)
                    if lineno % STATS_EVERY == 0:
                        return
                    continue
                item = doc.get("Item") if type(doc) is dict else None
                try:
                    if item is not None:
                        members = item_members(item)
                        text = None
                        if members < 0:
                            attrs.validate(item, "Item")  # raises, naming the attribute
                            _check_names(line, doc, None)
                        else:
                            _check_names(line, doc, members)
                            if passthrough:
                                text = item_text(line, doc, item, members)
                        keys = extract_keys(item, key_names, "Item")
                        _check_key(keys, key_checks)
                        if ttl_attr is not None and pending_deletion(item, ttl_attr, now_s):
                            self._ttl_skipped += 1
                            if lineno % STATS_EVERY == 0:
                                return
                            continue
                        event = build(table, keys, version, origin, item, None, text)
                    else:
                        if type(doc) is not dict:
                            raise AttributeTypeError("a line must be a JSON object")
                        _check_names(line, doc, None)
                        event = ChangeEvent.from_export_line(table, doc, key_names, version, "line")
                        _check_key(event.keys, key_checks)
                except AttributeTypeError as exc:
                    self._bad(lineno, str(exc), line)
                else:
                    self._current = (lineno, line)
                    yield event
                if lineno % STATS_EVERY == 0:
                    return
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            reason = f"truncated or corrupt gzip data after line {lineno}: {exc}"
            self._bad(lineno + 1, reason, b"")
        finally:
            self._lineno = lineno
            job.stats.add(bytes_uncompressed=raw)
        lines = lineno - self._blank
        if data.item_count is not None and lines != data.item_count:
            # Before the file is recorded as done: what was published stays published (a
            # re-run publishes the same records again), but the run does not end "complete".
            job.publisher.flush()
            raise BadInputError(
                f"{data.key}: {lines} lines read, manifest itemCount {data.item_count}: the "
                f"file is incomplete or not the one the manifest lists"
            )
        self._at_end = True

    def _bad(self, lineno: int, reason: str, raw: bytes) -> None:
        job, data = self.job, self.data
        if not job.skip_bad_lines:
            # Deliver everything before the bad line, then stop: the file stays unfinished.
            job.publisher.flush()
            raise BadInputError(f"{data.key} line {lineno}: {reason}")
        job.publisher.produce_raw(
            job.publisher.kafka.dlq_topic(job.table),
            f"{data.key}:{lineno}".encode(),
            raw,
            headers=[
                ("ddb.file", data.key.encode()),
                ("ddb.line", str(lineno).encode()),
                ("ddb.reason", reason.encode()),
                ("ddb.table", job.table.encode()),
                ("ddb.run", job.run.run_id.encode()),
            ],
        )
        job.stats.add(skipped_bad=1)
        log.warning(
            "bad export line sent to the DLQ",
            extra={"file": data.key, "line": lineno, "reason": reason},
        )

    def refuse(self, index: int, exc: Exception) -> None:
        # Called before the next line is parsed: the refused event is the last one handed out.
        lineno, line = self._current
        if isinstance(exc, ArithmeticError):
            self._bad(lineno, f"a key number out of DynamoDB's range ({type(exc).__name__})", line)
        else:
            self._bad(lineno, str(exc), line)

    def close(self) -> None:
        try:
            self._gz.close()
        finally:
            self._fileobj.close()
            self.job.stats.add(bytes_read=self._size, skipped_ttl=self._ttl_skipped)
