"""Builds DynamoDB export folders in AWS's documented layout, for tests and benchmarks.

    <base>/<prefix>/AWSDynamoDB/<export id>/manifest-summary.json
                                            manifest-files.json   (one JSON line per file)
                                            data/<name>.json.gz

`manifest-files.json` lines carry `itemCount`, `md5Checksum` (base64 of the MD5 of the
compressed bytes), `etag` and `dataFileS3Key` (from the bucket root, prefix included). An
empty partition is an empty (0-byte) data file, as in real exports. Helpers break an export
in the ways real ones break (checksum mismatch, truncated gzip, missing file) and upload it
to an S3 bucket with the same keys.
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


@dataclass
class ExportFolder:
    base: Path  # what maps to the bucket root
    root: Path  # the export's folder (manifests)
    root_key: str  # the export's folder as a key from the bucket root
    export_arn: str
    files: list[dict[str, Any]] = field(default_factory=list)  # manifest-files entries

    def data_path(self, index: int) -> Path:
        return self.base / self.files[index]["dataFileS3Key"]

    def write_manifest_files(self) -> None:
        text = "".join(json.dumps(f) + "\n" for f in self.files)
        (self.root / "manifest-files.json").write_text(text)

    def refresh_checksum(self, index: int) -> None:
        """Recompute a file's md5 after editing it (so the edit is met as bad content)."""
        data = self.data_path(index).read_bytes()
        self.files[index]["md5Checksum"] = base64.b64encode(hashlib.md5(data).digest()).decode()
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
) -> ExportFolder:
    """Write an export: one data file per partition (a list/iterable of lines).

    Full-export lines are usually `{"Item": item}`; incremental ones `{"Keys": …,
    "NewImage": …, "OldImage": …}`. A partition with no lines becomes a 0-byte file.
    """
    export_time = export_time or datetime.now(UTC)
    export_id = f"{int(export_time.timestamp() * 1000):014d}-{uuid.uuid4().hex[:8]}"
    root_key = f"{prefix}/AWSDynamoDB/{export_id}"
    root = base / root_key
    (root / "data").mkdir(parents=True)
    folder = ExportFolder(base, root, root_key, f"{table_arn}/export/{export_id}")
    total = 0
    for lines in partitions:
        name = f"{uuid.uuid4().hex[:26]}.json.gz"
        key = f"{root_key}/data/{name}"
        path = base / key
        count = 0
        iterator = iter(lines)
        first = next(iterator, None)
        if first is None:
            path.write_bytes(b"")  # an empty partition: an empty file
        else:
            with gzip.open(path, "wb", compresslevel=compresslevel) as gz:
                for line in _chain(first, iterator):
                    gz.write(line if isinstance(line, bytes) else _dumps(line) + b"\n")
                    count += 1
        data = path.read_bytes()
        folder.files.append(
            {
                "itemCount": count,
                "md5Checksum": base64.b64encode(hashlib.md5(data).digest()).decode(),
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
        "s3Bucket": "bucket",
        "s3Prefix": prefix,
        "s3SseAlgorithm": "AES256",
        "s3SseKmsKeyId": None,
        "manifestFilesS3Key": f"{root_key}/manifest-files.json",
        "billedSizeBytes": 0,
        "itemCount": total,
        "outputFormat": output_format,
    }
    if incremental:
        summary.update(
            exportType="INCREMENTAL_EXPORT",
            exportFromTime=_iso(incremental[0]),
            exportToTime=_iso(incremental[1]),
            outputView="NEW_AND_OLD_IMAGES",
        )
    else:
        summary.update(exportType="FULL_EXPORT", exportTime=_iso(export_time))
    (root / "manifest-summary.json").write_text(json.dumps(summary, indent=2))
    folder.write_manifest_files()
    (root / "_started").write_bytes(b"")
    return folder


def _chain(first: Line, rest: Iterable[Line]) -> Iterable[Line]:
    yield first
    yield from rest


def _dumps(line: dict[str, Any]) -> bytes:
    return orjson.dumps(line)
