"""A DynamoDB export to S3 (full or incremental) as it lies in S3 or in a local copy.

Reads DynamoDB's own layout: `manifest-summary.json` (export time, type, format, item
count), `manifest-files.json` (one JSON line per data file: `dataFileS3Key`, `md5Checksum`
as base64 of the MD5 of the `.json.gz` bytes, `itemCount`), and hands out each data file's
bytes once their MD5 is verified. Reading the files' lines is `export_files`.

Where data files are: `dataFileS3Key` is a key from the bucket root. A full export keeps its
files in `<prefix>/AWSDynamoDB/<export id>/data/`; an incremental export in the folder that
every export under the prefix shares, `<prefix>/AWSDynamoDB/data/`. Keys are resolved against
the place the manifests were found (the bucket, or the local folder standing for it: the
manifest's own `manifestFilesS3Key` names where it sits), and any key that leaves
`<prefix>/AWSDynamoDB/` (`..`, an absolute path, another prefix, a symlink out of the local
folder) is refused: a manifest must not make the reader open files it does not own.

Completeness: an export copied or synced in part must not read as a whole one. The
manifests are checked against their checksum files (`.md5` / `.checksum`, base64 or hex MD5,
where present), and the per-file `itemCount`s must add up to the summary's `itemCount`;
otherwise the back-fill stops, naming what disagrees.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlparse

import orjson

from bridge.model.errors import ConfigError, PermanentError
from bridge.model.versioning import to_micros
from connectors.dynamodb.aws import error_code, translate

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

SUMMARY = "manifest-summary.json"
FILES = "manifest-files.json"
AREA = "AWSDynamoDB"  # the folder DynamoDB writes below the export prefix
# The manifests' checksum files: `.md5` in the exports seen (24 bytes: base64 of the MD5),
# `.checksum` in AWS's documentation (content unspecified: base64 or hex MD5 accepted).
CHECKSUM_SUFFIXES = (".md5", ".checksum")


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
    def __init__(self, s3: S3Client, uri: str) -> None:
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


def run_id_for(manifest: ExportManifest) -> str:
    """The same export gives the same run id, so a re-run resumes it."""
    digest = hashlib.sha256(manifest.export_arn.encode()).hexdigest()[:16]
    return f"export-{digest}"
