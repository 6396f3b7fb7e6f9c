"""Back-fill from a DynamoDB export to S3 (full or incremental), from S3 or a local copy.

Reads DynamoDB's own layout: `manifest-summary.json` (export time, type, format, item
count), `manifest-files.json` (one JSON line per data file: `dataFileS3Key`, `md5Checksum`
as base64 of the MD5 of the `.json.gz` bytes, `itemCount`), and gzip'd DYNAMODB_JSON data
files — full exports `{"Item": …}`, incremental exports `{"Keys": …, "NewImage": …,
"OldImage": …}` (no NewImage: the item was deleted → REMOVE). Each data file is a part of
the run, claimed through the lease table so several workers share the files.

Where data files are: `dataFileS3Key` is a key from the bucket root. A full export keeps its
files in `<prefix>/AWSDynamoDB/<export id>/data/`; an incremental export in the folder that
every export under the prefix shares, `<prefix>/AWSDynamoDB/data/`. Keys are resolved against
the place the manifests were found (the bucket, or the local folder standing for it: the
manifest's own `manifestFilesS3Key` names where it sits), and any key that leaves
`<prefix>/AWSDynamoDB/` (`..`, an absolute path, another prefix, a symlink out of the local
folder) is refused: a manifest must not make the reader open files it does not own.

Completeness: an export copied or synced in part must not read as a whole one. The
manifests are checked against their checksum files (`.md5` / `.checksum`, base64 or hex MD5,
where present), the per-file `itemCount`s must add up to the summary's `itemCount`, and
each file must hold exactly its `itemCount` lines; otherwise the back-fill stops, naming
what disagrees. A file's line count is checked before it is recorded as done.

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
import binascii
import gzip
import hashlib
import logging
import re
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

import orjson

from bridge import attrs
from bridge.errors import AttributeTypeError, ConfigError, PermanentError
from bridge.event import ChangeEvent, Op, Origin
from bridge.ttl import pending_deletion
from bridge.versioning import to_micros
from connectors.dynamodb.aws import error_code, translate
from connectors.sources.backfill.claim_loop import BackfillJob, StoppedError
from connectors.sources.backfill.item_check import fast_item_ok
from connectors.sources.backfill.runs import Part

log = logging.getLogger(__name__)

SUMMARY = "manifest-summary.json"
FILES = "manifest-files.json"
AREA = "AWSDynamoDB"  # the folder DynamoDB writes below the export prefix
# The manifests' checksum files: `.md5` in the exports seen (24 bytes: base64 of the MD5),
# `.checksum` in AWS's documentation (content unspecified: base64 or hex MD5 accepted).
CHECKSUM_SUFFIXES = (".md5", ".checksum")
STATS_EVERY = 4096  # lines between shared-counter updates (keeps the hot loop lock-free)


class BadInputError(PermanentError):
    """An export file or line that cannot be published: names the file and line."""


@dataclass(frozen=True)
class DataFile:
    key: str  # dataFileS3Key as the manifest gives it (from the bucket root)
    md5: str | None  # base64 MD5 of the compressed bytes
    item_count: int | None


@dataclass(frozen=True)
class ExportKeys:
    """Where the manifests say the export lives, as keys from the bucket root."""

    export_key: str  # <prefix>/AWSDynamoDB/<export id>: the manifests' folder
    area_key: str  # <prefix>/AWSDynamoDB: every data file of the export lies below it

    @property
    def export_id(self) -> str:
        return self.export_key.rsplit("/", 1)[-1]

    @classmethod
    def from_summary(cls, summary: dict[str, Any], where: str) -> ExportKeys:
        files_key = summary.get("manifestFilesS3Key")
        if not isinstance(files_key, str) or not files_key.endswith(f"/{FILES}"):
            raise BadInputError(
                f"{where}/{SUMMARY}: manifestFilesS3Key {files_key!r} is missing or does not "
                f"name a {FILES}; without it the data files cannot be located"
            )
        export_key = files_key[: -len(FILES) - 1]
        area_key, _, export_id = export_key.rpartition("/")
        if area_key.rsplit("/", 1)[-1] != AREA or not export_id:
            raise BadInputError(
                f"{where}/{SUMMARY}: manifestFilesS3Key {files_key!r} is not "
                f"<prefix>/{AREA}/<export id>/{FILES}, the layout DynamoDB writes"
            )
        return cls(export_key, area_key)

    def below_area(self, key: str) -> str:
        """A data file's path below `<prefix>/AWSDynamoDB/`; refuses any key that leaves it."""
        parts = key.split("/")
        if not key.startswith(self.area_key + "/") or any(p in ("", ".", "..") for p in parts):
            raise BadInputError(
                f"{key}: data file listed in {FILES} lies outside the export's prefix "
                f"{self.area_key}/; refused (a manifest may only name files of its own export)"
            )
        return key[len(self.area_key) + 1 :]


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
    """Reads manifests and verified data files of one export (its root: the manifests' folder).

    The manifests' folder is found first; `bind` then gives the keys the manifest names for
    it, so that a data key (from the bucket root) can be placed relative to where the
    manifests really are: the export's own folder maps to the root, `<prefix>/AWSDynamoDB/`
    to the root's parent. In an uncopied bucket this is the key itself; in a local copy it is
    the folder standing for the bucket root (or for the prefix, when only the prefix was
    copied); a renamed export folder still finds its own data.
    """

    description: str
    keys: ExportKeys | None = None

    def read(self, name: str) -> bytes:
        raise NotImplementedError

    def read_optional(self, name: str) -> bytes | None:
        """A file of the manifests' folder, or None when it is not there."""
        raise NotImplementedError

    def open_verified(self, data: DataFile) -> tuple[IO[bytes], int]:
        """The file's compressed bytes, checked against the manifest's MD5, and their size."""
        raise NotImplementedError

    def locate(self, data: DataFile) -> str:
        """Where a data file is read from; refuses a file outside the export's prefix."""
        raise NotImplementedError

    def bind(self, keys: ExportKeys) -> None:
        self.keys = keys

    def placed(self, key: str) -> tuple[bool, str]:
        """(below the export's own folder?, path below it or below `<prefix>/AWSDynamoDB/`)."""
        assert self.keys is not None, "bind() the manifest's keys first"
        rel = self.keys.below_area(key)
        head, _, rest = rel.partition("/")
        if head == self.keys.export_id and rest:
            return True, rest
        return False, rel


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

    def read(self, name: str) -> bytes:
        path = self.root / name
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise BadInputError(f"{path}: missing from the export") from exc

    def read_optional(self, name: str) -> bytes | None:
        path = self.root / name
        return path.read_bytes() if path.is_file() else None

    def locate(self, data: DataFile) -> str:
        return str(self.path_of(data))

    def path_of(self, data: DataFile) -> Path:
        own, rel = self.placed(data.key)
        area = self.root.parent
        path = (self.root if own else area) / rel
        # A symlink (of the file or of a folder on the way) may not lead out of the folder
        # that stands for <prefix>/AWSDynamoDB/.
        resolved, allowed = path.resolve(), area.resolve()
        if not resolved.is_relative_to(allowed):
            raise BadInputError(
                f"{data.key}: data file listed in {FILES} resolves to {resolved}, outside the "
                f"export's prefix ({allowed}); refused"
            )
        return path

    def open_verified(self, data: DataFile) -> tuple[IO[bytes], int]:
        path = self.path_of(data)
        try:
            md5 = hashlib.md5(usedforsecurity=False)
            with path.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    md5.update(chunk)
            _check_md5(data, md5.digest())
            return path.open("rb"), path.stat().st_size
        except FileNotFoundError as exc:
            raise BadInputError(
                f"{data.key}: data file listed in {FILES} is missing ({path}; copy the "
                f"export's keys as they are in the bucket, below one folder: an incremental "
                f"export's data is in {AREA}/data/, beside the export's own folder)"
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
        body = self.read_optional(name)
        if body is None:
            raise BadInputError(f"s3://{self.bucket}/{self._key(name)}: missing from the export")
        return body

    def read_optional(self, name: str) -> bytes | None:
        key = self._key(name)
        try:
            body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            return body
        except Exception as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise translate(exc, f"GetObject s3://{self.bucket}/{key}") from exc

    def locate(self, data: DataFile) -> str:
        return f"s3://{self.bucket}/{self.key_of(data)}"

    def key_of(self, data: DataFile) -> str:
        own, rel = self.placed(data.key)
        if own:
            return self._key(rel)
        area = self.prefix.rpartition("/")[0]
        return f"{area}/{rel}" if area else rel

    def open_verified(self, data: DataFile) -> tuple[IO[bytes], int]:
        key = self.key_of(data)
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


def _md5_matches(expected_text: bytes, digest: bytes) -> bool | None:
    """Whether a checksum file's text is this MD5 (base64 or hex); None: not an MD5 text."""
    text = expected_text.strip().decode("ascii", "replace")
    if re.fullmatch(r"[0-9a-fA-F]{32}", text):
        return text.lower() == digest.hex()
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded == digest if len(decoded) == 16 else None


def _check_manifest(location: ExportLocation, name: str, content: bytes) -> None:
    """Check a manifest against its checksum files, where the copy has them."""
    digest = hashlib.md5(content, usedforsecurity=False).digest()
    stem = name.removesuffix(".json")
    for suffix in CHECKSUM_SUFFIXES:
        checksum_name = stem + suffix
        expected = location.read_optional(checksum_name)
        if expected is None:
            continue
        verdict = _md5_matches(expected, digest)
        if verdict is None:
            log.warning(
                "manifest checksum file not understood; manifest not verified by it",
                extra={"file": f"{location.description}/{checksum_name}"},
            )
        elif not verdict:
            raise BadInputError(
                f"{location.description}/{name}: its MD5 "
                f"{base64.b64encode(digest).decode('ascii')} does not match {checksum_name} "
                f"({expected.strip().decode('ascii', 'replace')[:64]}): the manifest is "
                f"incomplete or altered (a partial copy or sync?); nothing was published"
            )


def _count(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise BadInputError(f"{what}: itemCount {value!r} is not a count")
    return value


def read_manifest(location: ExportLocation) -> ExportManifest:
    summary_bytes = location.read(SUMMARY)
    _check_manifest(location, SUMMARY, summary_bytes)
    try:
        summary = orjson.loads(summary_bytes)
    except orjson.JSONDecodeError as exc:
        raise BadInputError(f"{location.description}/{SUMMARY}: not JSON: {exc}") from exc
    if type(summary) is not dict:
        raise BadInputError(f"{location.description}/{SUMMARY}: not a JSON object")
    fmt = summary.get("outputFormat", "DYNAMODB_JSON")
    if fmt != "DYNAMODB_JSON":
        raise BadInputError(
            f"{location.description}: export format {fmt} is not supported; request the "
            f"export with ExportFormat DYNAMODB_JSON"
        )
    # Full exports' summaries carry no exportType (version 2020-06-30); incremental ones do.
    export_type = summary.get("exportType") or "FULL_EXPORT"
    if export_type == "INCREMENTAL_EXPORT":
        start_us = _parse_time(summary.get("exportToTime"), "exportToTime")
    elif export_type == "FULL_EXPORT":
        start_us = _parse_time(summary.get("exportTime"), "exportTime")
    else:
        raise BadInputError(f"{location.description}/{SUMMARY}: unknown exportType {export_type!r}")
    location.bind(ExportKeys.from_summary(summary, location.description))
    files_bytes = location.read(FILES)
    _check_manifest(location, FILES, files_bytes)
    files: list[DataFile] = []
    for n, line in enumerate(files_bytes.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = orjson.loads(line)
            key = entry["dataFileS3Key"]
            if type(key) is not str:
                raise TypeError(f"dataFileS3Key {key!r} is not a string")
            files.append(
                DataFile(
                    key=key,
                    md5=entry.get("md5Checksum"),
                    item_count=_count(entry.get("itemCount"), f"{FILES} line {n}"),
                )
            )
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise BadInputError(f"{FILES} line {n}: not a data-file entry: {exc}") from exc
    for data in files:
        location.locate(data)  # every file inside the export's prefix, before any is read
    item_count = _count(summary.get("itemCount"), f"{location.description}/{SUMMARY}")
    counts = [f.item_count for f in files]
    if None in counts:
        log.warning(
            "some manifest entries have no itemCount: the export's completeness is not checked",
            extra={"export": location.description},
        )
    else:
        listed = sum(c or 0 for c in counts)
        if item_count is None:
            item_count = listed
        elif listed != item_count:
            raise BadInputError(
                f"{location.description}/{FILES} lists {len(files)} files with {listed} items "
                f"in all, but {SUMMARY}'s itemCount is {item_count}: the export is incomplete "
                f"(a partial copy or sync?); nothing was published"
            )
    return ExportManifest(
        export_arn=str(summary.get("exportArn") or location.description),
        export_type=export_type,
        start_us=start_us,
        item_count=item_count,
        files=files,
        location=location.description,
    )


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
        from connectors.sources.backfill.invocation import BackfillRequest, run_backfill

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
        key_checks = tuple(zip(job.key_names, job.key_types, strict=False))
        ttl_attr = job.ttl_attribute if not self.manifest.incremental else None
        now_s = job.now_s
        publish = job.publisher.publish
        loads = orjson.loads
        snapshot = Op.SNAPSHOT
        stats = job.stats
        lineno = published = ttl_skipped = blank = 0
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
                            blank += 1
                            continue
                        self._bad(data, lineno, f"not JSON: {exc}", line)
                        continue
                    item = doc.get("Item") if type(doc) is dict else None
                    try:
                        if item is not None:
                            if not fast_item_ok(item):
                                attrs.validate(item, "Item")
                            keys = attrs.extract_keys(item, key_names, "Item")
                            _check_key(keys, key_checks)
                            if ttl_attr is not None and pending_deletion(item, ttl_attr, now_s):
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
                            _check_key(event.keys, key_checks)
                        # Inside the try: the key is normalized here, and a key that cannot
                        # be is a bad line like any other (never a crash of the back-fill).
                        publish(event)
                    except AttributeTypeError as exc:
                        self._bad(data, lineno, str(exc), line)
                        continue
                    except ArithmeticError as exc:
                        reason = f"a key number out of DynamoDB's range ({type(exc).__name__})"
                        self._bad(data, lineno, reason, line)
                        continue
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
        lines = lineno - blank
        if data.item_count is not None and lines != data.item_count:
            # Before the file is recorded as done: what was published stays published (a
            # re-run publishes the same records again), but the run does not end "complete".
            job.publisher.flush()
            raise BadInputError(
                f"{data.key}: {lines} lines read, manifest itemCount {data.item_count}: the "
                f"file is incomplete or not the one the manifest lists"
            )
        return published
