"""Where archive files go: the protocol, and a local folder.

A destination makes a finished local file visible under its final name in one step
(`publish`), and stores small control objects whole (`put_bytes` / `get_bytes`). Both must be
durable when they return: the worker commits Kafka offsets right after. The S3 destination
lives in `connectors/s3_archive.py`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Protocol


class ArchiveDestination(Protocol):
    """Somewhere archive files become visible atomically, under keys relative to a root."""

    @property
    def staging_dir(self) -> Path:
        """A local folder for files being written (for a local root: on the same file system,
        so that publishing is a rename)."""
        ...

    def publish(self, local_path: Path, key: str) -> None:
        """Make the finished file `local_path` visible as `key`, durably; `local_path` is gone
        afterwards. Replaces an existing `key`."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store `data` whole as `key`, durably (readers see the old or the new object)."""
        ...

    def get_bytes(self, key: str) -> bytes | None:
        """The object `key`, or None when there is none."""
        ...

    def describe(self) -> str: ...


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable (POSIX: the directory entry itself)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalDestination:
    """A local folder: files are written under `<root>/_staging/`, fsynced, then renamed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._staging = root / "_staging"
        self._staging.mkdir(parents=True, exist_ok=True)

    @property
    def staging_dir(self) -> Path:
        return self._staging

    def describe(self) -> str:
        return str(self.root)

    def publish(self, local_path: Path, key: str) -> None:
        final = self.root / key
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local_path, final)
        # The new name is durable only once its directory is; the staging directory too, so
        # the old name does not come back after a crash.
        fsync_dir(final.parent)
        fsync_dir(local_path.parent)

    def put_bytes(self, key: str, data: bytes) -> None:
        final = self.root / key
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.with_name(f".{final.name}.tmp")
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, final)
        fsync_dir(final.parent)

    def get_bytes(self, key: str) -> bytes | None:
        with contextlib.suppress(FileNotFoundError):
            return (self.root / key).read_bytes()
        return None
