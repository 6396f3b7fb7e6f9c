"""`ddb-bridge backfill` end to end (in-process CLI): the stream-capture safety check.

Refused without a capture record, accepted with one that covers T - margin, refused after a
data-loss alarm and for an export older than the capture; `--force` and `--no-stream`
override with a warning. The published keys equal those of the real stream records.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge import attrs
from bridge.cli.main import main
from bridge.event import ChangeEvent
from connectors.sources.capture import ensure_lease_table, record_capture_start, record_data_loss
from tests.backfill_helpers import create_table, write_items
from tests.export_layout import build_export
from tests.kafka_helpers import consume_all
from tests.samples import sample_item

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def stream_keys(streams: Any, ddb: Any, table: str) -> set[bytes]:
    """Kafka key bytes of every record in the table's (moto) stream, as the producer makes them."""
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    out: set[bytes] = set()
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            resp = streams.get_records(ShardIterator=iterator, Limit=1000)
            for rec in resp["Records"]:
                event = ChangeEvent.from_stream_record(table, rec, 1, shard["ShardId"])
                out.add(event.key_bytes())
            if not resp["Records"]:
                break
            iterator = resp.get("NextShardIterator")
    return out


def test_safety_check_refuses_and_accepts(
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    ddb_client: Any,
    streams_client: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    table, lease_table = unique_name("safe"), unique_name("leases")
    create_table(ddb_client, table, stream=True)
    write_items(lambda: ddb_client, table, [attrs.to_boto(sample_item(i)) for i in range(40)], 1)
    time.sleep(1.2)  # T - margin (0 s here) must not precede the stream's creation
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'[aws]\nendpoint_url = "{dynamodb_endpoint}"\n'
        f'[kafka]\nbootstrap_servers = "{kafka_bootstrap}"\npartitions = 2\n'
        "replication_factor = 1\n"
        f'[stream]\nlease_table = "{lease_table}"\nlease_duration_ms = 2000\n'
        "[backfill]\nskew_margin_s = 0\nsegments = 2\n"
    )
    base = ["backfill", "--config", str(config), "--table", table, "--no-progress"]

    def run(*extra: str) -> tuple[int, str, str]:
        code = main([*base, *extra])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, _, err = run("--from", "scan")
    assert code == 1
    assert "is not being captured" in err and "--no-stream" in err

    code, out, err = run("--from", "scan", "--force")
    assert code == 0, err
    assert "--force overrides the stream-capture check" in err
    assert "items published                      40" in out
    # Key bytes equal those the stream producer's conversion gives the real stream records.
    published = {m.key() for m in consume_all(kafka_bootstrap, f"ddb.{table}.changes", 40)}
    assert published == stream_keys(streams_client, ddb_client, table)

    arn = ddb_client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    ensure_lease_table(ddb_client, lease_table)
    record_capture_start(ddb_client, lease_table, table, arn, "TRIM_HORIZON")
    code, out, err = run("--from", "scan")  # the forced run is complete: a new run starts
    assert code == 0, err
    assert "override" not in err
    assert "complete" in out

    # An export taken an hour before the stream existed cannot be made consistent by it.
    old = build_export(
        tmp_path / "old",
        [[{"Item": sample_item(1)}]],
        export_time=datetime.now(UTC) - timedelta(hours=1),
    )
    code, _, err = run("--from", "export", "--dir", str(old.root))
    assert code == 1
    assert "this back-fill's version needs every change from" in err

    record_data_loss(ddb_client, lease_table, arn, "shardId-0001", "checkpoint behind trim horizon")
    code, _, err = run("--from", "scan", "--new-run")
    assert code == 1
    assert "trimmed gap" in err

    # Back-fill-only migration, with a read budget: 40 items at 20/s (a 20-item burst).
    started = time.monotonic()
    code, out, err = run(
        "--from",
        "scan",
        "--new-run",
        "--no-stream",
        "--max-items-per-second",
        "20",
        "--consistent-read",
    )
    assert code == 0, err
    assert "items published                      40" in out
    assert time.monotonic() - started >= 0.9
