"""The note of skipped ranges kept in the commit metadata (bridge/kafka/skipped_offsets.py)."""

from __future__ import annotations

import pytest

from bridge.kafka.skipped_offsets import END, MAX_NOTE, SkippedRange, decode, encode


def test_a_note_reads_back_as_written_and_ends_in_a_nul() -> None:
    ranges = [SkippedRange(3, 10, 19, 1_000), SkippedRange(3, 40, 40, None)]
    note = encode(ranges)
    assert note.endswith(END)
    assert decode(note, 3, "g on t/3") == ranges
    assert encode([]) == ""


def test_too_many_ranges_merge_into_one_covering_them_all() -> None:
    ranges = [SkippedRange(0, i * 10, i * 10 + 1, 5_000 + i) for i in range(1000)]
    note = encode(ranges)
    assert len(note) <= MAX_NOTE + 1
    assert decode(note, 0, "g") == [SkippedRange(0, 0, 9991, 5_999)]


def test_other_metadata_is_not_a_note_and_a_broken_note_is_an_error_naming_where() -> None:
    assert decode("", 0, "g") == []
    assert decode("written by another tool", 0, "g") == []
    with pytest.raises(ValueError, match="group g on t/0"):
        decode("ddb-bridge:skipped=[[1,2", 0, "group g on t/0")
