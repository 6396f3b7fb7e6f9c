"""`ddb-bridge backfill` end to end (in-process CLI): the stream-capture safety check.

Refused without a capture record, accepted with one that covers T - margin, refused after a
data-loss alarm and for an export older than the capture; `--force` and `--no-stream`
override with a warning. The published keys equal those of the real stream records. A full
and an incremental export in DynamoDB's own layout, read from a folder and from S3 and
applied into SQLite, leave the target equal to the source.
"""

from __future__ import annotations

import base64
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from bridge.model import attrs
from bridge.model.event import ChangeEvent
from bridge.runtime.config_file import write_config as write_settings_file
from bridge.runtime.settings import SqliteTarget
from connectors.dynamodb.capture import ensure_lease_table, record_capture_start, record_data_loss
from connectors.sinks.sqlite import SqliteSink
from ddb_bridge.cli.main import main
from tests.apply_harness import ApplyProcess, table_spec, write_config
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
    config = write_settings_file(
        tmp_path / "bridge.toml",
        aws={"endpoint_url": dynamodb_endpoint},
        kafka={"bootstrap_servers": kafka_bootstrap, "partitions": 2, "replication_factor": 1},
        stream={"lease_table": lease_table, "lease_duration_ms": 2000},
        backfill={"skew_margin_s": 0, "segments": 2},
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


def _change(new: dict[str, Any] | None, old: dict[str, Any] | None, at_us: int) -> dict[str, Any]:
    """An incremental-export line as DynamoDB writes it (a delete has no NewImage)."""
    image = new if new is not None else old
    assert image is not None
    line: dict[str, Any] = {
        "Metadata": {"WriteTimestampMicros": {"N": str(at_us)}},
        "Keys": {"pk": image["pk"], "sk": image["sk"]},
    }
    if new is not None:
        line["NewImage"] = new
    if old is not None:
        line["OldImage"] = old
    return line


@pytest.mark.slow
def test_full_then_incremental_export_in_aws_layout_from_dir_and_s3_into_sqlite(
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    s3_client: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A full and an incremental export, laid out as DynamoDB writes them (user prefix,
    shared incremental data folder, empty partitions, md5 files), read through the CLI from
    a local copy and from S3, applied into SQLite: the target is the source after both."""
    t1 = datetime.now(UTC) - timedelta(hours=2)
    t2 = t1 + timedelta(hours=1)
    full_items = [sample_item(i, pad=20) for i in range(60)]
    state = {attrs.canonical_key({"pk": it["pk"], "sk": it["sk"]}): it for it in full_items}
    changes: list[dict[str, Any]] = []
    for i, old in enumerate(full_items[:10]):  # modified
        new = {**old, "name": {"S": f"renamed {i}"}}
        changes.append(_change(new, old, 1_000 + i))
    for i, old in enumerate(full_items[10:15]):  # deleted
        changes.append(_change(None, old, 2_000 + i))
    for i in range(100, 105):  # inserted
        changes.append(_change(sample_item(i, pad=5), None, 3_000 + i))
    for line in changes:
        key = attrs.canonical_key(line["Keys"])
        if "NewImage" in line:
            state[key] = line["NewImage"]
        else:
            state.pop(key)

    base = tmp_path / "bucket"
    lines = [{"Item": it} for it in full_items]
    full = build_export(base, [lines[:25], [], lines[25:]], prefix="exports/2026", export_time=t1)
    incremental = build_export(
        base, [changes[:12], changes[12:], []], prefix="exports/2026", incremental=(t1, t2)
    )
    bucket = unique_name("bucket")
    s3_client.create_bucket(Bucket=bucket)
    full.upload(s3_client, bucket)  # every key under the bucket root: both exports

    from_dir, from_s3 = (unique_name(n).replace("-", "_") for n in ("expdir", "exps3"))
    db = tmp_path / "target.db"
    config = write_config(
        tmp_path / "bridge.toml",
        kafka_bootstrap,
        "local",
        {"type": "sqlite", "path": db},
        [from_dir, from_s3],
        sections={
            "aws": {"endpoint_url": dynamodb_endpoint},
            "stream": {"lease_table": unique_name("leases"), "lease_duration_ms": 2000},
            "backfill": {"skew_margin_s": 0},
        },
    )

    def backfill(table: str, *where: str) -> tuple[int, str, str]:
        code = main(
            [
                *("backfill", "--config", str(config), "--table", table, "--from", "export"),
                *(*where, "--no-stream", "--no-progress"),
            ]
        )
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    for table, where in (
        (from_dir, ("--dir", str(full.root))),
        (from_dir, ("--dir", str(incremental.root))),
        (from_s3, ("--s3-uri", f"s3://{bucket}/{full.root_key}")),
        (from_s3, ("--s3-uri", f"s3://{bucket}/{incremental.root_key}")),
    ):
        code, out, err = backfill(table, *where)
        assert code == 0, err
        # The summary wraps at the terminal's width, and the export's path (longer under a
        # pytest-xdist worker's tmp dir) can push ": complete" onto the next line.
        assert ": complete" in " ".join(out.split()), out

    # A partial copy of the full export (one manifest line lost) exits non-zero, naming it.
    partial = build_export(tmp_path / "partial", [lines[:30], lines[30:]], export_time=t1)
    partial.drop_entry(0)
    code, _, err = backfill(from_dir, "--dir", str(partial.root), "--new-run")
    assert code == 1
    assert "manifest-files.json" in err and "manifest-files.md5" in err

    apply = ApplyProcess(config, "--create-schema")
    apply.wait_joined()
    reader = SqliteSink(SqliteTarget(type="sqlite", path=str(db)))
    reader.open([table_spec(from_dir), table_spec(from_s3)])
    every_key = [
        {"pk": it["pk"], "sk": it["sk"]}
        for it in [*full_items, *(sample_item(i, pad=5) for i in range(100, 105))]
    ]

    def differences(table: str) -> list[str]:
        got = reader.read_items(table, every_key)
        problems = []
        for key, item in zip(every_key, got, strict=True):
            expected = state.get(attrs.canonical_key(key))
            if (item is None) != (expected is None) or (
                item is not None and expected is not None and not attrs.items_equal(item, expected)
            ):
                problems.append(f"{table} {attrs.dumps(key)}: {item!r}, expected {expected!r}")
        live = {attrs.canonical_key(k) for k in reader.scan_keys(table)}
        if live != set(state):
            problems.append(f"{table}: live keys differ ({len(live)} vs {len(state)})")
        return problems

    try:
        apply.wait_until(lambda: not differences(from_dir) and not differences(from_s3))
        assert differences(from_dir) == differences(from_s3) == []
        assert len(state) == 60 - 5 + 5
        assert apply.terminate() == 0, apply.output
    finally:
        reader.close()
        if apply.proc.poll() is None:
            apply.kill()


def test_an_export_record_kafka_refuses_stops_the_file_named_and_not_done(
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An export's producer reports failed deliveries only (a delivered record costs no
    callback): the broker refusing one record must still stop the back-fill, naming the
    file, the key and the topic setting, and leave the file not DONE, so that once the limit
    is raised the same run publishes it again."""
    table = unique_name("refused").replace("-", "_")
    topic = f"ddb.{table}.changes"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics(
        [NewTopic(topic, 1, 1, config={"max.message.bytes": "20000"})], request_timeout=30
    )[topic].result(30)
    big = {**sample_item(7, pad=5), "blob": {"S": base64.b64encode(os.urandom(45_000)).decode()}}
    lines = [{"Item": sample_item(i, pad=5)} for i in range(20)]
    export = build_export(tmp_path / "bucket", [lines[:10], [*lines[10:], {"Item": big}]])
    config = write_config(
        tmp_path / "bridge.toml",
        kafka_bootstrap,
        "local",
        {"type": "null"},
        [table],
        sections={
            "aws": {"endpoint_url": dynamodb_endpoint},
            "stream": {"lease_table": unique_name("leases"), "lease_duration_ms": 2000},
        },
    )
    args = ["backfill", "--config", str(config), "--table", table, "--from", "export"]
    args += ["--dir", str(export.root), "--no-stream", "--no-progress"]

    code = main(args)
    err = capsys.readouterr().err
    assert code == 1, err
    assert export.data_path(1).name in err, err  # the file
    assert '"pk":{"S":"user#0000007"}' in err, err  # the key
    assert f"--entity-name {topic} --add-config max.message.bytes=" in err, err

    raised = ConfigResource(
        ConfigResource.Type.TOPIC, topic, set_config={"max.message.bytes": "200000"}
    )
    for future in admin.alter_configs([raised]).values():
        future.result(30)
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert ": complete" in " ".join(out.split()), out
    blobs = [m for m in consume_all(kafka_bootstrap, topic, 21) if len(m.value()) > 40_000]
    assert len(blobs) == 1, "the refused record was not published again once it fit"
