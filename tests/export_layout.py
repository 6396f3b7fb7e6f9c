"""Builds DynamoDB export folders in the layout DynamoDB writes, for tests and benchmarks.

Full export (summary `"version": "2020-06-30"`, no `exportType`, has `exportTime`):

    <base>/<prefix>/AWSDynamoDB/<export id>/manifest-summary.json
                                            manifest-summary.md5
                                            manifest-files.json   (one JSON line per file)
                                            manifest-files.md5
                                            _started
                                            data/<name>.json.gz

Incremental export (summary `"version": "2023-08-01"`, `"exportType": "INCREMENTAL_EXPORT"`,
`exportFromTime`, `exportToTime`, `outputView`, no `exportTime`): the manifests sit in the
export's own folder, but the data files sit in a folder shared by every export under the
prefix, `<base>/<prefix>/AWSDynamoDB/data/<name>.json.gz`.

`<base>` stands for the bucket root; `<prefix>` may be empty, then keys start `AWSDynamoDB/`.
`manifest-files.json` lines carry `itemCount`, `md5Checksum` (base64 of the MD5 of the
compressed bytes), `etag` and `dataFileS3Key` (from the bucket root, prefix included). The
`.md5` files hold the base64 MD5 of their manifest (24 bytes, no newline), as in real exports.
An empty partition is a 20-byte empty gzip stream, as in real exports (not a 0-byte file).
Helpers break an export the ways real ones break (checksum mismatch, truncated gzip, missing
file, a partial copy of a manifest) and upload it to an S3 bucket with the same keys.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

Line = dict[str, Any] | bytes  # a dict is JSON-encoded; bytes are written as they are
EMPTY_GZIP = gzip.compress(b"", mtime=0)  # what DynamoDB writes for an empty partition


def b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


@dataclass
class ExportFolder:
    base: Path  # what maps to the bucket root
    root: Path  # the export's folder (manifests)
    root_key: str  # the export's folder as a key from the bucket root
    export_arn: str
    summary: dict[str, Any] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)  # manifest-files entries
    checksum_suffix: str | None = ".md5"  # the manifests' checksum files (None: none)

    @property
    def incremental(self) -> bool:
        return self.summary.get("exportType") == "INCREMENTAL_EXPORT"

    def data_path(self, index: int) -> Path:
        return self.base / self.files[index]["dataFileS3Key"]

    def _write_checked(self, name: str, text: str, checksum: bool) -> None:
        (self.root / name).write_text(text)
        if self.checksum_suffix and checksum:
            stem = name.removesuffix(".json")
            (self.root / f"{stem}{self.checksum_suffix}").write_text(b64md5(text.encode()))

    def write_manifest_files(self, checksum: bool = True) -> None:
        """Rewrite manifest-files.json (and its checksum file unless `checksum` is False)."""
        text = "".join(json.dumps(f) + "\n" for f in self.files)
        self._write_checked("manifest-files.json", text, checksum)

    def write_summary(self, checksum: bool = True) -> None:
        self._write_checked("manifest-summary.json", json.dumps(self.summary, indent=2), checksum)

    def refresh_checksum(self, index: int) -> None:
        """Recompute a file's md5 after editing it (so the edit is met as bad content)."""
        self.files[index]["md5Checksum"] = b64md5(self.data_path(index).read_bytes())
        self.write_manifest_files()

    def corrupt_checksum(self, index: int) -> None:
        self.files[index]["md5Checksum"] = base64.b64encode(b"\x00" * 16).decode()
        self.write_manifest_files()

    def truncate(self, index: int, keep: float = 0.6) -> None:
        """Cut the gzip file short (checksum updated: the gzip reader must notice)."""
        path = self.data_path(index)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
        self.refresh_checksum(index)

    def remove(self, index: int) -> None:
        self.data_path(index).unlink()

    def drop_entry(self, index: int) -> None:
        """A partial copy: one line of manifest-files.json is gone, its checksum file is not."""
        del self.files[index]
        self.write_manifest_files(checksum=False)

    def upload(self, s3: Any, bucket: str) -> str:
        """Put every file under its key; returns the export's s3:// URI."""
        for path in sorted(self.base.rglob("*")):
            if path.is_file():
                s3.put_object(
                    Bucket=bucket,
                    Key=path.relative_to(self.base).as_posix(),
                    Body=path.read_bytes(),
                )
        return f"s3://{bucket}/{self.root_key}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_export(
    base: Path,
    partitions: Iterable[Iterable[Line]],
    *,
    prefix: str = "exports",
    export_time: datetime | None = None,
    incremental: tuple[datetime, datetime] | None = None,
    table_arn: str = "arn:aws:dynamodb:us-east-1:123456789012:table/source",
    output_format: str = "DYNAMODB_JSON",
    compresslevel: int = 6,
    checksum_suffix: str | None = ".md5",
) -> ExportFolder:
    """Write an export: one data file per partition (a list/iterable of lines).

    Full-export lines are usually `{"Item": item}`; incremental ones `{"Metadata": …,
    "Keys": …, "NewImage": …, "OldImage": …}`. A partition with no lines becomes an empty
    gzip file. Several exports may share one `base` and `prefix` (incremental ones then share
    the data folder). `checksum_suffix` names the manifests' checksum files (".md5",
    ".checksum", or None for none).
    """
    export_time = export_time or datetime.now(UTC)
    export_id = f"{int(export_time.timestamp() * 1000):014d}-{uuid.uuid4().hex[:8]}"
    area_key = f"{prefix.strip('/')}/AWSDynamoDB" if prefix.strip("/") else "AWSDynamoDB"
    root_key = f"{area_key}/{export_id}"
    data_key = f"{area_key}/data" if incremental else f"{root_key}/data"
    root = base / root_key
    root.mkdir(parents=True)
    (base / data_key).mkdir(parents=True, exist_ok=True)
    folder = ExportFolder(
        base, root, root_key, f"{table_arn}/export/{export_id}", checksum_suffix=checksum_suffix
    )
    total = 0
    for lines in partitions:
        key = f"{data_key}/{uuid.uuid4().hex[:26]}.json.gz"
        path = base / key
        count = 0
        iterator = iter(lines)
        first = next(iterator, None)
        if first is None:
            path.write_bytes(EMPTY_GZIP)
        else:
            with gzip.open(path, "wb", compresslevel=compresslevel) as gz:
                for line in _chain(first, iterator):
                    gz.write(line if isinstance(line, bytes) else _dumps(line) + b"\n")
                    count += 1
        data = path.read_bytes()
        folder.files.append(
            {
                "itemCount": count,
                "md5Checksum": b64md5(data),
                "etag": hashlib.md5(data).hexdigest(),
                "dataFileS3Key": key,
            }
        )
        total += count
    summary: dict[str, Any] = {
        "version": "2023-08-01" if incremental else "2020-06-30",
        "exportArn": folder.export_arn,
        "startTime": _iso(export_time),
        "endTime": _iso(export_time),
        "tableArn": table_arn,
        "tableId": str(uuid.uuid4()),
    }
    if incremental:
        summary.update(
            exportFromTime=_iso(incremental[0]),
            exportToTime=_iso(incremental[1]),
        )
    else:
        summary.update(exportTime=_iso(export_time))
    summary.update(
        {
            "s3Bucket": "bucket",
            "s3Prefix": prefix or None,
            "s3SseAlgorithm": "AES256",
            "s3SseKmsKeyId": None,
            "manifestFilesS3Key": f"{root_key}/manifest-files.json",
            "billedSizeBytes": 0,
            "itemCount": total,
            "outputFormat": output_format,
        }
    )
    if incremental:
        summary.update(exportType="INCREMENTAL_EXPORT", outputView="NEW_AND_OLD_IMAGES")
    folder.summary = summary
    folder.write_summary()
    folder.write_manifest_files()
    (root / "_started").write_bytes(b"")
    return folder


def _chain(first: Line, rest: Iterable[Line]) -> Iterable[Line]:
    yield first
    yield from rest


def _dumps(line: dict[str, Any]) -> bytes:
    return orjson.dumps(line)
