"""Scan back-fill of a 20,000-item moto table (all attribute types) into Kafka.

One SNAPSHOT event per item, with the key bytes the stream producer's conversion gives the
same item; TTL-expired items skipped and counted; and the command line killed with SIGKILL
mid-scan, then re-run: every item arrives, segments finished before the kill are not read
again (their claim records show one claim, by the killed worker).
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from bridge.model import attrs
from bridge.model.errors import PermanentError
from bridge.model.event import ChangeEvent, Op, Origin
from connectors.sources.backfill.run_plan import BackfillRequest
from connectors.sources.backfill.runner import run_backfill
from connectors.sources.backfill.runs import RunStore
from connectors.sources.backfill.scan import ScanBackfill
from tests import services
from tests.backfill_helpers import (
    backfill_settings,
    create_table,
    decode_all,
    duplicates,
    say_nothing,
    write_items,
)
from tests.kafka_helpers import consume_all, drain_more

pytestmark = pytest.mark.integration

N_ITEMS = 20_000


def slim_item(i: int) -> dict[str, Any]:
    """All ten DynamoDB types (nesting included) in few attribute values: moto's response
    serializer costs about 15 µs per attribute value, which dominates this test's runtime."""
    return {
        "pk": {"S": f"user#{i:07d} Zoë"},
        "sk": {"N": str(i % 97)},
        "amount": {"N": "12345678901234567890.123456789012345678"},
        "blob": {"B": base64.b64encode(bytes([i % 256, 0, 255])).decode()},
        "active": {"BOOL": i % 2 == 0},
        "nothing": {"NULL": True},
        "tags": {"SS": ["a", f"t{i % 7}"]},
        "scores": {"NS": ["1", "2.5", str(i)]},
        "bins": {"BS": [base64.b64encode(b"\x00\x01").decode()]},
        "hist": {"L": [{"S": "x" * 150}, {"M": {"deep": {"N": "-1.5E-3"}}}]},
    }


def key_of(item: dict[str, Any]) -> bytes:
    return attrs.canonical_key({"pk": item["pk"], "sk": item["sk"]})


@pytest.fixture(scope="module")
def big_table(dynamodb_endpoint: str) -> tuple[str, list[dict[str, Any]], set[bytes]]:
    def client() -> Any:
        return boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1")

    ddb = client()
    name = services.unique("scan20k")
    create_table(ddb, name, stream=False)
    ddb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    now = int(time.time())
    items, expired = [], set()
    for i in range(N_ITEMS):
        item = slim_item(i)
        if i % 1000 == 7:
            item["expires"] = {"N": str(now - 3600)}
            expired.add(key_of(item))
        elif i % 1000 == 8:
            item["expires"] = {"N": str(now + 86_400)}
        elif i % 1000 == 9:
            item["expires"] = {"N": str(now - 6 * 365 * 86_400)}  # too old: never deleted
        items.append(item)
    write_items(client, name, [attrs.to_boto(it) for it in items])
    return name, items, expired


def stream_key_bytes(table: str, items: list[dict[str, Any]]) -> set[bytes]:
    """Key bytes the stream producer's conversion gives each item, from INSERT records in
    the shape GetRecords returns (boto3 form: binary as bytes)."""
    out: set[bytes] = set()
    for n, item in enumerate(items):
        boto = attrs.to_boto(item)
        record = {
            "eventID": str(n),
            "eventName": "INSERT",
            "dynamodb": {
                "Keys": {"pk": boto["pk"], "sk": boto["sk"]},
                "NewImage": boto,
                "SequenceNumber": str(n),
            },
        }
        out.add(ChangeEvent.from_stream_record(table, record, 1, "shardId-1").key_bytes())
    return out


def test_scan_publishes_one_snapshot_per_item(
    big_table: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
) -> None:
    table, items, expired = big_table
    # Key schema and TTL attribute come from DescribeTable / DescribeTimeToLive here.
    settings = backfill_settings(
        dynamodb_endpoint, kafka_bootstrap, unique_name("leases"), table, declared_keys=False
    )
    outcome = run_backfill(
        settings,
        BackfillRequest(table=table, segments=4, no_stream=True),
        ScanBackfill(),
        say_nothing,
    )
    expected = N_ITEMS - len(expired)
    assert outcome.complete
    assert (outcome.stats.published, outcome.stats.skipped_ttl) == (expected, len(expired))
    got = decode_all(consume_all(kafka_bootstrap, settings.kafka.changes_topic(table), expected))
    keys = [k for k, _ in got]
    assert not duplicates(keys)
    assert len(keys) == expected
    all_keys = {key_of(it) for it in items}
    assert set(keys) == all_keys - expired
    # Same key bytes as the stream producer's conversion of the same items.
    assert stream_key_bytes(table, items) == all_keys
    events = dict(got)
    assert {(e.op, e.origin, e.version) for e in events.values()} == {
        (Op.SNAPSHOT, Origin.SCAN, outcome.run.version)
    }
    for i in (0, 8, 9, 4242, N_ITEMS - 1):
        event = events[key_of(items[i])]
        assert attrs.items_equal(event.new_image or {}, items[i])


def _parts(ddb: Any, lease_table: str, table: str) -> list[Any]:
    store = RunStore(ddb, lease_table, table, "observer")
    try:
        run_id = store.current_run("scan")
    except PermanentError:
        return []  # the lease table does not exist yet
    if run_id is None:
        return []
    run = store.load_run(run_id)
    return store.parts(run) if run else []


@pytest.mark.e2e
def test_kill_9_mid_scan_then_rerun_resumes(
    big_table: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    ddb_client: Any,
    tmp_path: Path,
) -> None:
    table, items, expired = big_table
    lease_table = unique_name("leases")
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'[aws]\nendpoint_url = "{dynamodb_endpoint}"\n'
        f'[kafka]\nbootstrap_servers = "{kafka_bootstrap}"\npartitions = 4\n'
        "replication_factor = 1\n"
        f'[stream]\nlease_table = "{lease_table}"\nlease_duration_ms = 2000\n'
    )
    base = [
        sys.executable,
        "-m",
        "ddb_bridge.cli.main",
        "backfill",
        "--config",
        str(config),
        "--table",
        table,
        "--from",
        "scan",
        "--no-stream",
        "--no-progress",
        # One process, killed and re-run: this test counts what one process saved. Several
        # processes of one command: tests/integration/test_backfill_processes.py.
        "--processes",
        "1",
    ]
    env = dict(os.environ)
    first = subprocess.Popen(
        [
            *base,
            "--segments",
            "8",
            "--threads",
            "4",
            "--page-size",
            "250",
            "--max-items-per-second",
            "2500",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + 90
    done_before: dict[int, Any] = {}
    try:
        while time.monotonic() < deadline:
            parts = _parts(ddb_client, lease_table, table)
            finished = [p for p in parts if p.done]
            # Kill once some segments are finished and another is part-way (has a cursor).
            midway = [p for p in parts if not p.done and p.cursor and p.items > 0]
            if parts and 2 <= len(finished) < len(parts) and midway:
                first.send_signal(signal.SIGKILL)
                done_before = {p.index: p for p in finished}
                break
            assert first.poll() is None, (
                first.stderr.read().decode()[-2000:] if first.stderr else ""
            )
            time.sleep(0.1)
    finally:
        if first.poll() is None and not done_before:
            first.kill()
        first.wait(10)
    assert done_before, "no segment finished before the deadline"
    # What was finished at kill time may have grown in the instant before SIGKILL landed.
    state = _parts(ddb_client, lease_table, table)
    at_kill = {p.index: p for p in state if p.done}
    assert len(at_kill) < 8
    # Unfinished segments keep their cursor (LastEvaluatedKey) and the items acknowledged
    # before it; the loop above killed only once some segment was part-way.
    saved_items = sum(p.items for p in state)

    second = subprocess.run(base, capture_output=True, env=env, timeout=150)
    out = second.stdout.decode()
    assert second.returncode == 0, second.stderr.decode()[-3000:]
    assert "complete" in out
    assert f"{len(at_kill)} finished before this process" in out
    published = int(re.search(r"items published\s+([\d,]+)", out).group(1).replace(",", ""))  # type: ignore[union-attr]
    expected = N_ITEMS - len(expired)
    # Finished segments were not read again, unfinished ones resumed at their cursors: the
    # re-run published exactly what no saved cursor covered.
    assert published == expected - saved_items

    after = {p.index: p for p in _parts(ddb_client, lease_table, table)}
    assert all(p.done for p in after.values())
    for index, before in at_kill.items():
        assert after[index].claims == 1
        assert after[index].finished_by == before.finished_by
    assert sum(p.items for p in after.values()) == expected

    # Every item is in Kafka (segments unfinished at the kill may appear twice).
    topic = f"ddb.{table}.changes"
    records = drain_more(kafka_bootstrap, topic, timeout_s=4)
    keys = {m.key() for m in records}
    assert keys == {key_of(it) for it in items} - expired
    assert len(records) >= expected
