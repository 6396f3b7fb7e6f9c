"""benchmarks/bench_latency.py end to end, small: the real `stream` and `apply` processes
against the session's Apache Kafka, moto and PostgreSQL. What it must prove whatever the
figures: every write is found in Kafka and in the target, with the version its event
carried, and the results file holds the stages and the settings beside them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_latency, report


def test_every_write_is_timed_through_kafka_into_postgres(
    kafka_bootstrap: str,
    dynamodb_endpoint: str,
    pg_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    bench_latency.main(
        [
            *("--bootstrap", kafka_bootstrap, "--endpoint", dynamodb_endpoint),
            *("--pg-dsn", pg_dsn, "--target", "postgres"),
            *("--rate", "20", "--seconds", "4", "--warmup-s", "2", "--keys", "30"),
            *("--poll-ms", "100", "--name", "latency_smoke"),
        ]
    )
    out = json.loads((tmp_path / "latency_smoke.json").read_text())
    extra = out["extra"]
    assert extra["target"] == "postgres"
    assert extra["missing_writes"] == 0 and extra["version_mismatches"] == 0
    assert extra["measured_writes"] >= 40  # ~4 s at 20/s
    # Updates as well as puts: 30 keys, so past the first 30 writes every other is an update.
    assert extra["puts"] > 0 and extra["updates"] > 0
    for stage in ("end_to_end_ms", "dynamodb_to_kafka_ms", "kafka_to_target_ms", "floor_ms"):
        assert extra[stage]["count"] == extra["measured_writes"], stage
        assert extra[stage]["p50"] <= extra[stage]["p99"] <= extra[stage]["max"]
    # A row cannot be in the target before its write returned.
    assert extra["end_to_end_ms"]["p50"] > 0
    assert extra["settings"]["stream.poll_interval_ms"] == 100
    assert extra["exit_codes"] == {"stream": 0, "apply": 0}
    paths = [f["path"] for f in out["figures"]]
    assert any(p.startswith("end-to-end p50") for p in paths)
    seen = next(f for f in out["figures"] if f["path"].startswith("measured writes seen"))
    assert seen["ratio"] == 1.0
