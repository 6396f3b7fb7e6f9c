"""Back-fill from a DynamoDB export to S3 (full or incremental), from S3 or a local copy.

Reads DynamoDB's own layout: `manifest-summary.json` (export time, type, format, item
count), `manifest-files.json` (one JSON line per data file: `dataFileS3Key`, `md5Checksum`
as base64 of the MD5 of the `.json.gz` bytes, `itemCount`), and gzip'd DYNAMODB_JSON data
files — full exports `{"Item": …}`, incremental exports `{"Keys": …, "NewImage": …,
"OldImage": …}` (no NewImage: the item was deleted → REMOVE). Each data file is a part of
the run, claimed through the lease table so several workers share the files.

Delivery guarantee: at-least-once, per file. A file's checksum is verified before any of
its lines is published; lines are streamed (gunzip + one line at a time), never loaded
whole; a file is marked DONE only after Kafka acknowledged all of its records (the producer
is flushed at each file's end), so a re-run
after a crash re-publishes at most the unfinished files, with identical records. Bad input
stops the back-fill with an error naming the file and line, after everything before it was
delivered — or, with `skip_bad_lines`, goes to the table's DLQ topic with file, line and
reason headers.

TTL: items whose TTL has passed are skipped (and counted) in full exports. In incremental
exports they are published: skipping an expired new image would leave the item's older
image live in the target until the stream's TTL delete arrives.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import logging
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urlparse

import orjson

from bridge import attrs
from bridge.errors import AttributeTypeError, ConfigError, PermanentError
from bridge.event import ChangeEvent, Op, Origin
from bridge.versioning import to_micros
from connectors.aws import error_code, translate
from connectors.sources.backfill_claims import Part
from connectors.sources.backfill_common import fast_item_ok, ttl_expired
from connectors.sources.backfill_run import BackfillJob, StoppedError

log = logging.getLogger(__name__)

SUMMARY = "manifest-summary.json"
FILES = "manifest-files.json"
STATS_EVERY = 4096  # lines between shared-counter updates (keeps the hot loop lock-free)


class BadInputError(PermanentError):
    """An export file or line that cannot be published: names the file and line."""


@dataclass(frozen=True)
class DataFile:
    key: str  # dataFileS3Key as the manifest gives it (from the bucket root)
    md5: str | None  # base64 MD5 of the compressed bytes
    item_count: int | None


@dataclass(frozen=True)
class ExportManifest:
    export_arn: str
    export_type: str  # FULL_EXPORT or INCREMENTAL_EXPORT
    start_us: int  # T: exportTime (full) or exportToTime (incremental)
    item_count: int | None
    files: list[DataFile]
    location: str

    @property
    def incremental(self) -> bool:
        return self.export_type == "INCREMENTAL_EXPORT"


def _parse_time(value: Any, what: str) -> int:
    if isinstance(value, (int, float)):
        return to_micros(value)  # epoch seconds
    if not isinstance(value, str):
        raise BadInputError(f"{SUMMARY}: {what} is missing or not a timestamp: {value!r}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadInputError(f"{SUMMARY}: {what} {value!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_micros(moment)


# ---------------------------------------------------------------------------------------------
# Where an export lives: a local folder or an S3 prefix


class ExportLocation:
    """Reads manifests and verified data files of one export (its root: the manifests' folder)."""

    description: str
    root_key: str  # the export's root as a key from the bucket root (from manifestFilesS3Key)

    def read(self, name: str) -> bytes:
        raise NotImplementedError

    def open_verified(self, data: DataFile) -> tuple[IO[bytes], int]:
        """The file's compressed bytes, checked against the manifest's MD5, and their size."""
        raise NotImplementedError

    def relative(self, key: str) -> str:
        """A data file's path below the export root (the export may have been copied)."""
        root = self.root_key.rstrip("/")
        if root and key.startswith(root + "/"):
            return key[len(root) + 1 :]
        return "data/" + PurePosixPath(key).name


def _check_md5(data: DataFile, digest: bytes) -> None:
    if data.md5 is None:
        log.warning("no md5Checksum in manifest; file not verified", extra={"file": data.key})
        return
    actual = base64.b64encode(digest).decode("ascii")
    if actual != data.md5:
        raise BadInputError(
            f"{data.key}: checksum mismatch (manifest md5 {data.md5}, file md5 {actual}); "
            f"the file is corrupt or incomplete, nothing of it was published"
        )


class LocalExport(ExportLocation):
    def __init__(self, folder: str | Path) -> None:
        base = Path(folder)
        if not base.is_dir():
            raise ConfigError(f"--dir {folder}: not a directory")
        if (base / SUMMARY).is_file():
            self.root = base
        else:
            found = sorted(base.glob(f"**/{SUMMARY}"))
            if len(found) != 1:
                what = "no" if not found else f"{len(found)} exports with a"
                raise ConfigError(
                    f"--dir {folder}: {what} {SUMMARY} below it"
                    + (f" ({', '.join(str(p.parent) for p in found)}); pick one" if found else "")
                )
            self.root = found[0].parent
        self.description = str(self.root)
        self.root_key = ""

    def read(self, name: str) -> bytes:
        path = self.root / name
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise BadInputError(f"{path}: missing from the export") from exc

    def open_verified(self, data: DataFile) -> tuple[IO[bytes], int]:
        path = self.root / self.relative(data.key)
        try:
            md5 = hashlib.md5(usedforsecurity=False)
            with path.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    md5.update(chunk)
            _check_md5(data, md5.digest())
            return path.open("rb"), path.stat().st_size
        except FileNotFoundError as exc:
            raise BadInputError(
                f"{data.key}: data file listed in {FILES} is missing ({path})"
            ) from exc


class S3Export(ExportLocation):
    def __init__(self, s3: Any, uri: str) -> None:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ConfigError(f"--s3-uri {uri}: expected s3://bucket/prefix")
        self.s3 = s3
        self.bucket = parsed.netloc
        prefix = parsed.path.lstrip("/")
        if prefix.endswith(SUMMARY):
            prefix = prefix[: -len(SUMMARY)]
        prefix = prefix.rstrip("/")
        if not self._exists(f"{prefix}/{SUMMARY}" if prefix else SUMMARY):
            found = self._find_summaries(prefix)
            if len(found) != 1:
                raise ConfigError(
                    f"--s3-uri {uri}: "
                    + (
                        f"no {SUMMARY} below it"
                        if not found
                        else f"{len(found)} exports below it ({', '.join(found)}); pick one"
                    )
                )
            prefix = found[0][: -len(SUMMARY)].rstrip("/")
        self.prefix = prefix
        self.root_key = prefix
        self.description = f"s3://{self.bucket}/{prefix}"

    def _exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
            return True
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise translate(exc, f"HeadObject s3://{self.bucket}/{key}") from exc

    def _find_summaries(self, prefix: str) -> list[str]:
        out: list[str] = []
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{prefix}/" if prefix else ""
            )
            for page in pages:
                out.extend(
                    o["Key"] for o in page.get("Contents", []) if o["Key"].endswith("/" + SUMMARY)
                )
        except Exception as exc:
            raise translate(exc, f"ListObjectsV2 s3://{self.bucket}/{prefix}") from exc
        return out

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def read(self, name: str) -> bytes:
        key = self._key(name)
        try:
            body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            return body
        except Exception as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                raise BadInputError(f"s3://{self.bucket}/{key}: missing from the export") from exc
            raise translate(exc, f"GetObject s3://{self.bucket}/{key}") from exc

    def open_verified(self, data: DataFile) -> tuple[IO[bytes], int]:
        key = self._key(self.relative(data.key))
        # Spooled to a temporary file on disk while the MD5 is computed: memory stays flat,
        # and no line is published before the whole file is known to be intact.
        spool = tempfile.TemporaryFile(prefix="ddb-bridge-export-")  # noqa: SIM115
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
            md5 = hashlib.md5(usedforsecurity=False)
            size = 0
            for chunk in body.iter_chunks(1 << 20):
                md5.update(chunk)
                spool.write(chunk)
                size += len(chunk)
            _check_md5(data, md5.digest())
            spool.seek(0)
            return spool, size
        except Exception as exc:
            spool.close()
            if isinstance(exc, PermanentError):
                raise
            if error_code(exc) in ("NoSuchKey", "404"):
                raise BadInputError(
                    f"{data.key}: data file listed in {FILES} is missing (s3://{self.bucket}/{key})"
                ) from exc
            raise translate(exc, f"GetObject s3://{self.bucket}/{key}") from exc


def read_manifest(location: ExportLocation) -> ExportManifest:
    try:
        summary = orjson.loads(location.read(SUMMARY))
    except orjson.JSONDecodeError as exc:
        raise BadInputError(f"{location.description}/{SUMMARY}: not JSON: {exc}") from exc
    fmt = summary.get("outputFormat", "DYNAMODB_JSON")
    if fmt != "DYNAMODB_JSON":
        raise BadInputError(
            f"{location.description}: export format {fmt} is not supported; request the "
            f"export with ExportFormat DYNAMODB_JSON"
        )
    export_type = summary.get("exportType", "FULL_EXPORT")
    if export_type == "INCREMENTAL_EXPORT":
        start_us = _parse_time(summary.get("exportToTime"), "exportToTime")
    else:
        start_us = _parse_time(summary.get("exportTime"), "exportTime")
    files_key = summary.get("manifestFilesS3Key")
    if isinstance(files_key, str) and "/" in files_key and not location.root_key:
        location.root_key = files_key.rsplit("/", 1)[0]
    files: list[DataFile] = []
    for n, line in enumerate(location.read(FILES).splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = orjson.loads(line)
            files.append(
                DataFile(
                    key=entry["dataFileS3Key"],
                    md5=entry.get("md5Checksum"),
                    item_count=entry.get("itemCount"),
                )
            )
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise BadInputError(f"{FILES} line {n}: not a data-file entry: {exc}") from exc
    item_count = summary.get("itemCount")
    if item_count is None and all(f.item_count is not None for f in files):
        item_count = sum(f.item_count or 0 for f in files)
    return ExportManifest(
        export_arn=str(summary.get("exportArn") or location.description),
        export_type=export_type,
        start_us=start_us,
        item_count=item_count,
        files=files,
        location=location.description,
    )


def run_id_for(manifest: ExportManifest) -> str:
    """The same export gives the same run id, so a re-run resumes it."""
    digest = hashlib.sha256(manifest.export_arn.encode()).hexdigest()[:16]
    return f"export-{digest}"


# ---------------------------------------------------------------------------------------------
# Requesting an export


def start_export(
    ddb: Any,
    table_arn: str,
    bucket: str,
    prefix: str | None,
    incremental: tuple[datetime, datetime] | None,
    on_status: Callable[[str, float], None] | None = None,
    poll_s: float = 10.0,
    timeout_s: float = 24 * 3600,
) -> dict[str, Any]:
    """ExportTableToPointInTime, then wait until it completes; returns DescribeExport."""
    request: dict[str, Any] = {
        "TableArn": table_arn,
        "S3Bucket": bucket,
        "ExportFormat": "DYNAMODB_JSON",
    }
    if prefix:
        request["S3Prefix"] = prefix
    if incremental is not None:
        request["ExportType"] = "INCREMENTAL_EXPORT"
        request["IncrementalExportSpecification"] = {
            "ExportFromTime": incremental[0],
            "ExportToTime": incremental[1],
            "ExportViewType": "NEW_AND_OLD_IMAGES",
        }
    try:
        desc = ddb.export_table_to_point_in_time(**request)["ExportDescription"]
    except Exception as exc:
        raise translate(exc, f"ExportTableToPointInTime {table_arn}") from exc
    arn = desc["ExportArn"]
    log.info("export requested", extra={"export": arn, "bucket": bucket})
    started = time.monotonic()
    while True:
        status = desc.get("ExportStatus", "IN_PROGRESS")
        if on_status is not None:
            on_status(status, time.monotonic() - started)
        if status == "COMPLETED":
            return dict(desc)
        if status == "FAILED":
            raise PermanentError(
                f"export {arn} failed: {desc.get('FailureCode')}: {desc.get('FailureMessage')}"
            )
        if time.monotonic() - started > timeout_s:
            raise PermanentError(f"export {arn} still {status} after {timeout_s:.0f}s")
        time.sleep(poll_s)
        try:
            desc = ddb.describe_export(ExportArn=arn)["ExportDescription"]
        except Exception as exc:
            raise translate(exc, f"DescribeExport {arn}") from exc


def manifest_uri(desc: dict[str, Any]) -> str:
    """Where a completed export's manifest summary is (DescribeExport's ExportManifest)."""
    key = desc.get("ExportManifest")
    if not key:
        raise PermanentError(
            f"export {desc.get('ExportArn')} completed, but DescribeExport gives no "
            f"ExportManifest: this endpoint does not write DynamoDB's export layout "
            f"(manifest-summary.json, manifest-files.json), so the export cannot be read "
            f"with checksums. Its files are under s3://{desc.get('S3Bucket')}/"
            f"{desc.get('S3Prefix') or ''}"
        )
    return f"s3://{desc['S3Bucket']}/{key}"


# ---------------------------------------------------------------------------------------------
# Reading: one worker thread per process (parsing is CPU-bound; more processes scale it)


class ExportBackfill:
    """Reads the claimed files of an export run, one after the other, into Kafka."""

    @staticmethod
    def backfill(settings: Any, options: dict[str, Any], say: Any, watch: Any = None) -> Any:
        """Registry entry point (`ddb-bridge backfill --from export`)."""
        from connectors.sources.backfill_main import BackfillRequest, run_backfill

        return run_backfill(settings, BackfillRequest(**options), say, watch)

    def __init__(self, job: BackfillJob, location: ExportLocation, manifest: ExportManifest):
        self.job = job
        self.location = location
        self.manifest = manifest
        self.origin = Origin.INCREMENTAL_EXPORT if manifest.incremental else Origin.EXPORT

    def run(self) -> None:
        self.job.claim_loop(self._file)

    def _file(self, part: Part) -> None:
        try:
            published = self._publish_file(self.manifest.files[part.index])
            # A file is DONE only once Kafka acknowledged every record of it. One flush per
            # file (a real export file holds up to millions of lines) costs far less than
            # tracking each record's acknowledgement on the hot path.
            self.job.publisher.flush()
            self.job.store.finish(self.job.run.run_id, part.index, published)
            self.job.stats.add(parts_done=1)
            log.info("export file finished", extra={"file": part.label, "items": published})
        except StoppedError:
            # Asked to stop mid-file: hand the file back now rather than at lease expiry.
            self.job.store.release(self.job.run.run_id, part.index)
            raise
        finally:
            self.job.release(part)

    def _bad(self, data: DataFile, lineno: int, reason: str, raw: bytes) -> None:
        job = self.job
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

    def _publish_file(self, data: DataFile) -> int:
        """Publish one verified file's lines; returns how many events were published."""
        job = self.job
        fileobj, size = self.location.open_verified(data)
        table, version, origin = job.table, job.run.version, self.origin
        key_names = job.key_names
        ttl_attr = job.ttl_attribute if not self.manifest.incremental else None
        now_s = job.now_s
        publish = job.publisher.publish
        loads = orjson.loads
        snapshot = Op.SNAPSHOT
        stats = job.stats
        lineno = published = ttl_skipped = 0
        raw_bytes = pending_raw = 0
        pending_pub = 0
        try:
            gz = gzip.GzipFile(fileobj=fileobj, mode="rb")
            try:
                for line in gz:
                    lineno += 1
                    pending_raw += len(line)
                    if lineno % STATS_EVERY == 0:
                        stats.add(published=pending_pub, bytes_uncompressed=pending_raw)
                        raw_bytes += pending_raw
                        pending_pub = pending_raw = 0
                        if job.stop.is_set():
                            raise StoppedError(f"{data.key}: stopped at line {lineno}")
                    try:
                        doc = loads(line)
                    except orjson.JSONDecodeError as exc:
                        if not line.strip():
                            continue
                        self._bad(data, lineno, f"not JSON: {exc}", line)
                        continue
                    item = doc.get("Item") if type(doc) is dict else None
                    try:
                        if item is not None:
                            if not fast_item_ok(item):
                                attrs.validate(item, "Item")
                            keys = attrs.extract_keys(item, key_names, "Item")
                            if ttl_attr is not None and ttl_expired(item, ttl_attr, now_s):
                                ttl_skipped += 1
                                continue
                            event = ChangeEvent(
                                table, snapshot, keys, version, origin, new_image=item
                            )
                        else:
                            if type(doc) is not dict:
                                raise AttributeTypeError("a line must be a JSON object")
                            event = ChangeEvent.from_export_line(
                                table, doc, key_names, version, "line"
                            )
                    except AttributeTypeError as exc:
                        self._bad(data, lineno, str(exc), line)
                        continue
                    publish(event)
                    published += 1
                    pending_pub += 1
            except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
                reason = f"truncated or corrupt gzip data after line {lineno}: {exc}"
                self._bad(data, lineno + 1, reason, b"")
            finally:
                gz.close()
        finally:
            fileobj.close()
            stats.add(
                published=pending_pub,
                bytes_uncompressed=pending_raw,
                bytes_read=size,
                skipped_ttl=ttl_skipped,
            )
        return published
