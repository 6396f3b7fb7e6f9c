"""S3 as an audit archive destination (`ddb-bridge audit --root s3://bucket/prefix`).

Files are staged on local disk and uploaded whole when a segment is published: an S3 object
appears under its key completely or not at all, and a PUT to an existing key replaces it, which
is the rename the exactly-once argument of `bridge/audit` needs. Every call returns only after
S3 acknowledged it (S3 is strongly consistent for reads after writes).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from bridge.model.errors import ConfigError, TransientError
from bridge.runtime.settings import AwsSettings
from connectors.dynamodb.aws import client, error_code, translate

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, prefix without slashes at the ends)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigError(f"--root {url}: expected s3://BUCKET[/PREFIX]")
    return parsed.netloc, parsed.path.strip("/")


class S3Destination:
    def __init__(
        self, url: str, aws: AwsSettings, staging: Path | None = None, s3: S3Client | None = None
    ) -> None:
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        self._s3 = s3 or client("s3", aws)
        self._staging = staging or Path(tempfile.gettempdir()) / "ddb-bridge-audit"
        self._staging.mkdir(parents=True, exist_ok=True)
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"audit archive {url}: bucket {self.bucket}") from exc

    @property
    def staging_dir(self) -> Path:
        return self._staging

    def describe(self) -> str:
        return self.url

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def publish(self, local_path: Path, key: str) -> None:
        try:
            self._s3.upload_file(str(local_path), self.bucket, self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"upload of s3://{self.bucket}/{self._key(key)}") from exc
        except S3UploadFailedError as exc:  # boto3's transfer manager wraps the cause
            raise TransientError(f"upload of s3://{self.bucket}/{self._key(key)}: {exc}") from exc
        os.remove(local_path)

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self._s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"put of s3://{self.bucket}/{self._key(key)}") from exc

    def get_bytes(self, key: str) -> bytes | None:
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            return body.read()
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise translate(exc, f"get of s3://{self.bucket}/{self._key(key)}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"get of s3://{self.bucket}/{self._key(key)}") from exc
