"""Key-column names of the SQL targets: natural where possible, never two columns in one."""

from __future__ import annotations

import pytest

from bridge.model.errors import ConfigError
from bridge.ports.sink import TableSpec
from connectors.sinks.sql_names import exact, key_columns, plan, sqlite_fold

LAYOUT = ("item", "item_exact", "version", "deleted")


def spec(hash_key: str, range_key: str | None = None, target: str = "t") -> TableSpec:
    return TableSpec("t", target, hash_key, "S", range_key, "S" if range_key else None)


@pytest.mark.parametrize(
    ("keys", "fold", "max_bytes", "expected"),
    [
        (("pk", "sk"), exact, None, ("pk", "sk")),
        (("version", None), exact, None, ("key_version",)),
        (("Version", "deleted"), exact, None, ("Version", "key_deleted")),
        (("Version", "deleted"), sqlite_fold, None, ("key_Version", "key_deleted")),
        # The rename never takes a name a key attribute has by itself.
        (("version", "key_version"), exact, None, ("key_key_version", "key_version")),
        (("id", "ID"), sqlite_fold, None, ("id", "key_ID")),
        (("id", "ID"), exact, None, ("id", "ID")),
        # SQLite folds ASCII only: É and é are two names there.
        (("É", "é"), sqlite_fold, None, ("É", "é")),
    ],
)
def test_key_columns(
    keys: tuple[str, str | None], fold: object, max_bytes: int | None, expected: tuple[str, ...]
) -> None:
    assert key_columns(spec(*keys), LAYOUT, fold, max_bytes) == expected  # type: ignore[arg-type]


def test_long_and_nul_names_are_shortened_distinctly_within_the_limit() -> None:
    a, b = "é" * 40 + "a", "é" * 40 + "b"
    columns = key_columns(spec(a, b), LAYOUT, exact, 63)
    assert len(set(columns)) == 2
    assert all(len(c.encode()) <= 63 and c.startswith("key_ééé") for c in columns)
    assert columns == key_columns(spec(a, b), LAYOUT, exact, 63)  # the same in every run
    (nul,) = key_columns(spec("a\x00b"), LAYOUT, exact, 63)
    assert "\x00" not in nul and nul.startswith("key_ab_")


def test_table_names_the_target_would_truncate_are_refused() -> None:
    with pytest.raises(ConfigError, match="target_table"):
        plan(spec("pk", target="x" * 60), LAYOUT, exact, 63)  # its view is 65 bytes
    assert plan(spec("pk", target="x" * 58), LAYOUT, exact, 63).view == "x" * 58 + "_live"
