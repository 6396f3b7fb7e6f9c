"""Export reading rules that need no service: where data keys may point, checksum files."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from connectors.sources.backfill.export_manifest import (
    BadInputError,
    DataFile,
    ExportKeys,
    LocalExport,
    _md5_matches,
    read_manifest,
)
from tests.export_layout import EMPTY_GZIP, build_export

KEYS = ExportKeys.from_summary(
    {"manifestFilesS3Key": "exports/2026/AWSDynamoDB/01700000000000-abcd1234/manifest-files.json"},
    "here",
)


def test_keys_of_the_export_and_of_the_shared_data_folder_are_placed() -> None:
    assert KEYS.area_key == "exports/2026/AWSDynamoDB"
    assert KEYS.export_id == "01700000000000-abcd1234"
    assert KEYS.below_area("exports/2026/AWSDynamoDB/data/x.json.gz") == "data/x.json.gz"
    own = "exports/2026/AWSDynamoDB/01700000000000-abcd1234/data/y.json.gz"
    assert KEYS.below_area(own) == "01700000000000-abcd1234/data/y.json.gz"


@pytest.mark.parametrize(
    "key",
    [
        "exports/2026/AWSDynamoDB/data/../../../etc/passwd",
        "exports/2026/AWSDynamoDB/./data/x.json.gz",
        "exports/2026/AWSDynamoDB//x.json.gz",
        "/etc/passwd",
        "exports/AWSDynamoDB/data/x.json.gz",  # another prefix
        "exports/2026/AWSDynamoDBX/data/x.json.gz",
        "exports/2026/AWSDynamoDB",
    ],
)
def test_keys_leaving_the_export_prefix_are_refused(key: str) -> None:
    with pytest.raises(BadInputError, match="outside the export's prefix"):
        KEYS.below_area(key)


@pytest.mark.parametrize(
    "files_key", [None, "manifest-files.json", "x/manifest-files.json", "a/b/manifest-files.json"]
)
def test_a_manifest_files_key_not_in_dynamodbs_layout_is_refused(files_key: str | None) -> None:
    with pytest.raises(BadInputError, match="manifestFilesS3Key"):
        ExportKeys.from_summary({"manifestFilesS3Key": files_key}, "here")


def test_checksum_texts_base64_and_hex() -> None:
    digest = hashlib.md5(b"manifest").digest()
    assert _md5_matches(base64.b64encode(digest), digest) is True
    assert _md5_matches(digest.hex().upper().encode() + b"\n", digest) is True
    assert _md5_matches(base64.b64encode(b"\x00" * 16), digest) is False
    assert _md5_matches(b"not a checksum", digest) is None


def test_real_layout_fixture_reads_with_an_empty_prefix(tmp_path: Path) -> None:
    folder = build_export(tmp_path, [[{"Item": {"pk": {"S": "a"}}}], []], prefix="")
    assert folder.root_key.startswith("AWSDynamoDB/")
    assert folder.data_path(1).read_bytes() == EMPTY_GZIP and len(EMPTY_GZIP) == 20
    assert "exportType" not in folder.summary and folder.summary["version"] == "2020-06-30"
    location = LocalExport(tmp_path)
    manifest = read_manifest(location)
    assert manifest.export_type == "FULL_EXPORT" and manifest.item_count == 1
    assert location.locate(DataFile(folder.files[0]["dataFileS3Key"], None, None)) == str(
        folder.data_path(0)
    )
