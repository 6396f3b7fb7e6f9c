"""The pure parts of benchmarks/bench_latency.py: percentiles, and matching sightings in Kafka
and in the target to the writes that caused them."""

from __future__ import annotations

import pytest

from benchmarks.latency_ledger import Ledger
from benchmarks.latency_stats import percentile, summary


def test_nearest_rank_percentiles_are_samples_and_p100_is_the_max() -> None:
    samples = [float(v) for v in range(100, 0, -1)]  # 1..100, unordered
    assert percentile(samples, 50) == 50
    assert percentile(samples, 95) == 95
    assert percentile(samples, 99) == 99
    assert percentile(samples, 100) == 100
    assert percentile([0.3, 0.1, 0.2], 50) == 0.2
    # Few samples: p99 of 10 is the largest, not an interpolation past it.
    assert percentile([float(v) for v in range(10)], 99) == 9
    assert percentile([7.0], 1) == 7.0


def test_percentile_refuses_no_samples_and_bad_ranks() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)
    for bad in (0, -1, 101):
        with pytest.raises(ValueError, match="percentile must be"):
            percentile([1.0], bad)


def test_summary() -> None:
    s = summary([0.1, 0.2, 0.3, 0.4])
    assert s["count"] == 4 and s["p50"] == 0.2 and s["p99"] == 0.4 and s["max"] == 0.4
    assert s["mean"] == pytest.approx(0.25)
    assert summary([]) == {"count": 0}


def test_stages_of_a_write_seen_in_kafka_then_in_the_target() -> None:
    ledger = Ledger()
    ledger.sent("k1", 1, at=10.0)
    ledger.returned("k1", 1, at=10.01)
    ledger.kafka_event("k1", 1, version=555, at=10.31, record_ts=10.005)
    ledger.floor_record("k1", 1, at=10.2)
    ledger.floor_record("k1", 1, at=10.4)  # a re-read: the first counts
    ledger.floor_record("k1", None, at=10.4)  # not a write of this run
    assert [w.seq for w in ledger.missing()] == [1]  # not yet in the target
    assert ledger.waiting_keys() == ["k1"]
    assert ledger.target_row("k1", 1, version=555, at=10.61) == 1
    assert ledger.missing() == [] and ledger.waiting_keys() == []
    st = ledger.stages()
    assert st.end_to_end == [pytest.approx(0.60)]
    assert st.to_kafka == [pytest.approx(0.30)]
    assert st.kafka_to_target == [pytest.approx(0.30)]
    assert st.stamp_to_kafka == [pytest.approx(0.305)]
    assert st.put == [pytest.approx(0.01)]
    assert st.floor == [pytest.approx(0.19)]
    assert st.over_floor == [pytest.approx(0.11)]
    assert ledger.version_mismatches() == []


def test_a_row_holding_a_later_write_shows_the_earlier_ones_superseded() -> None:
    ledger = Ledger()
    for seq in (1, 2, 3):
        ledger.sent("k", seq, at=float(seq))
        ledger.returned("k", seq, at=seq + 0.01)
        ledger.kafka_event("k", seq, version=100 + seq, at=seq + 0.2, record_ts=None)
    ledger.sent("other", 4, at=4.0)
    assert ledger.target_row("k", 2, version=102, at=3.5) == 2  # writes 1 and 2, not 3
    w1, w2, w3 = (ledger.writes[("k", s)] for s in (1, 2, 3))
    assert w1.superseded and w1.target_version is None and w1.target_seen == 3.5
    assert not w2.superseded and w2.target_version == 102
    assert w3.target_seen is None
    assert sorted(ledger.waiting_keys()) == ["k", "other"]
    # A row seen again at the same write shows nothing new.
    assert ledger.target_row("k", 2, version=102, at=3.6) == 0
    assert [w.seq for w in ledger.missing()] == [3, 4]


def test_duplicates_unknown_events_warm_up_and_version_mismatch() -> None:
    ledger = Ledger()
    ledger.sent("w", 0, at=0.0, measured=False)  # warm-up: must arrive, not counted
    ledger.returned("w", 0, at=0.1)
    ledger.sent("k", 1, at=1.0)
    ledger.returned("k", 1, at=1.1)
    ledger.kafka_event("k", 1, version=7, at=1.5, record_ts=None)
    ledger.kafka_event("k", 1, version=7, at=1.9, record_ts=None)  # re-published
    ledger.kafka_event("k", None, version=8, at=2.0, record_ts=None)  # no seq in the image
    ledger.kafka_event("nobody", 9, version=9, at=2.0, record_ts=None)
    assert ledger.duplicate_events == 1 and ledger.unmatched_events == 2
    assert ledger.writes[("k", 1)].kafka_seen == 1.5  # the first sighting counts
    ledger.kafka_event("w", 0, version=1, at=0.3, record_ts=None)
    ledger.target_row("w", 0, version=1, at=0.4)
    ledger.target_row("k", 1, version=6, at=1.8)
    assert [w.seq for w in ledger.version_mismatches()] == [1]
    st = ledger.stages()
    assert len(st.end_to_end) == 1  # the warm-up write is not a sample
    assert st.stamp_to_kafka == []  # no record timestamp given
    assert st.floor == []  # no floor reader ran
    assert st.kafka_to_target == [pytest.approx(0.3)]
    with pytest.raises(ValueError, match="recorded twice"):
        ledger.sent("k", 1, at=3.0)
