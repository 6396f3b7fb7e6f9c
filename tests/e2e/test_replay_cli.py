"""`ddb-bridge replay` end to end: the command line against Apache Kafka, apply and verify.

Dry runs print each partition's current and new offset and how many events will be processed
again, for every mode, and change nothing; `--execute` is refused while an apply worker is
in the group; `--to-datetime` starts at the first change at or after the time (record
timestamps are DynamoDB change times); replaying an apply group leaves an intact target as it
was and repairs a damaged one until `verify` finds no difference.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from bridge.apply.app import group_id
from bridge.codec.avro import EventCodec
from bridge.kafka.lag import caught_up, group_lag
from bridge.model import attrs
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.runtime.config_file import write_config as write_settings_file
from bridge.runtime.settings import KafkaSettings
from ddb_bridge.services import kafka_jars
from tests.apply_harness import (
    ApplyProcess,
    produce,
    random_history,
    write_config,
)
from tests.backfill_helpers import create_table, write_items
from tests.kafka_helpers import consume_all
from tests.replay_helpers import (
    apply_until_caught_up,
    offsets,
    replay_json,
    rows,
    run_replay,
)
from tests.samples import sample_item
from tests.stream_helpers import cli_env
from tests.support.daemon import run_bridge

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

T0_MS = 1_760_000_000_000  # the first change (2025-10-09); one change a second after it
N_EVENTS = 120


def timed_events(table: str, n: int = N_EVENTS) -> list[ChangeEvent]:
    """Stream events of 30 keys, the i-th changed at T0 + i seconds."""
    out = []
    for i in range(n):
        keys = {"pk": {"S": f"k{i % 30:02d}"}, "sk": {"N": "1"}}
        out.append(
            ChangeEvent(
                table=table,
                op=Op.INSERT if i < 30 else Op.MODIFY,
                keys=keys,
                version=(T0_MS + i * 1000) * 1000,
                origin=Origin.STREAM,
                new_image=keys | {"n": {"N": str(i)}},
                shard_id="shardId-0001",
                sequence_number=str(i),
                approximate_creation_time_ms=T0_MS + i * 1000,
            )
        )
    return out


def change_times(bootstrap: str, topic: str, n: int) -> dict[int, list[tuple[int, int]]]:
    """Per partition, (offset, change time) of every record, the time read from the decoded
    event (not from the record's Kafka timestamp, which is what is under test)."""
    codec = EventCodec()
    out: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for msg in consume_all(bootstrap, topic, n):
        event = codec.decode(msg.value())
        assert event.approximate_creation_time_ms is not None
        out[msg.partition()].append((msg.offset(), event.approximate_creation_time_ms))
    return {p: sorted(v) for p, v in out.items()}


def commit(bootstrap: str, group: str, topic: str, at: dict[int, int]) -> None:
    """Commit offsets for `group` without joining it (as a stopped worker left them)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in at.items()], asynchronous=False
        )
    finally:
        consumer.close()


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def by_partition(plan: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {p["partition"]: p for p in plan["partitions"]}


@pytest.fixture
def timed_topic(kafka_bootstrap: str, unique_name: Any, tmp_path: Path) -> dict[str, Any]:
    """A 4-partition change topic of `timed_events`, a config naming it, a null target."""
    table, target = unique_name("rp").replace("-", "_"), unique_name("null")
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=4, replication_factor=1)
    produce(kafka, timed_events(table))
    topic = kafka.changes_topic(table)
    config = write_config(
        tmp_path / "bridge.toml", kafka_bootstrap, target, {"type": "null"}, [table]
    )
    times = change_times(kafka_bootstrap, topic, N_EVENTS)
    assert sorted(times) == [0, 1, 2, 3], "every partition should hold some events"
    return {
        "table": table,
        "target": target,
        "kafka": kafka,
        "topic": topic,
        "config": config,
        "group": group_id(target),
        "times": times,
        "end": {p: len(v) for p, v in times.items()},
    }


def test_dry_run_prints_current_new_and_reprocess_for_each_mode_and_changes_nothing(
    kafka_bootstrap: str, timed_topic: dict[str, Any]
) -> None:
    t = timed_topic
    config, group, topic, end = t["config"], t["group"], t["topic"], t["end"]
    # A stopped worker got halfway through partitions 0-2 and never committed on 3.
    at = {p: end[p] // 2 for p in (0, 1, 2)}
    at[1] = 1  # near the start: a shift back by 3 runs into the low watermark
    commit(kafka_bootstrap, group, topic, at)
    current = at | {3: 0}
    before = offsets(group_lag(t["kafka"], group, [topic]))

    plan = by_partition(replay_json(config, "--target", t["target"], "--to-earliest"))
    assert sorted(plan) == [0, 1, 2, 3]
    for p, row in plan.items():
        assert (row["current"], row["new"], row["low"], row["high"]) == (current[p], 0, 0, end[p])
        assert row["reprocess"] == current[p] and row["skip"] == 0
    assert plan[3]["committed"] is None

    plan = by_partition(replay_json(config, "--group", group, "--to-latest"))
    for p, row in plan.items():
        assert (row["new"], row["reprocess"], row["skip"]) == (end[p], 0, end[p] - current[p])

    plan = by_partition(replay_json(config, "--target", t["target"], "--shift-by=-3"))
    for p, row in plan.items():
        assert row["new"] == max(current[p] - 3, 0)
        assert row["reprocess"] == current[p] - row["new"]
    assert "before the low watermark: clamped to 0" in plan[1]["clamped"]
    assert plan[0]["clamped"] is None

    whole = replay_json(config, "--target", t["target"], "--to-offset", "0:2,2:100000")
    plan = by_partition(whole)
    assert sorted(plan) == [0, 2]  # only the partitions named
    assert (plan[0]["new"], plan[0]["reprocess"]) == (2, current[0] - 2)
    assert (plan[2]["new"], plan[2]["skip"]) == (end[2], end[2] - current[2])
    assert "past the high watermark" in plan[2]["clamped"]
    assert whole["total_reprocess"] == current[0] - 2
    assert whole["total_skip"] == end[2] - current[2]

    # --to-datetime: the first record of each partition changed at or after T.
    when = T0_MS + 60_000
    plan = by_partition(
        replay_json(
            config, "--target", t["target"], "--to-datetime", iso(when), "--partitions", "1,3"
        )
    )
    assert sorted(plan) == [1, 3]
    for p, row in plan.items():
        expected = next(o for o, ms in t["times"][p] if ms >= when)
        assert row["new"] == expected
        assert row["skip"] == max(0, expected - current[p])

    # The table for people: one line per partition and the total.
    code, out, err = run_replay(config, "--target", t["target"], "--to-earliest")
    assert code == 0, err
    assert "dry run" in out
    for p in range(4):
        assert re.search(rf"^{re.escape(topic)}\s+{p}\s+{current[p]}\s+0\s+0\s+{end[p]}\s+"
                         rf"{current[p]}\b", out, re.M), out  # fmt: skip
    assert f"total: {sum(current.values())} events to re-process" in out

    assert offsets(group_lag(t["kafka"], group, [topic])) == before


def test_to_datetime_starts_each_partition_at_its_first_change_at_or_after_the_time(
    timed_topic: dict[str, Any],
) -> None:
    t = timed_topic
    times: dict[int, list[tuple[int, int]]] = t["times"]
    last = T0_MS + (N_EVENTS - 1) * 1000
    exact = times[2][3][1]  # the change time of partition 2's fourth record
    cases = {
        T0_MS - 3_600_000: {p: 0 for p in times},  # before everything: the start
        exact: None,  # exactly a change time: that change is included
        T0_MS + 45_500: None,  # between two changes: the later one
        last + 1: dict(t["end"]),  # after everything: the end
    }
    for when, expected in cases.items():
        if expected is None:
            expected = {p: next(o for o, ms in v if ms >= when) for p, v in times.items()}
        plan = by_partition(
            replay_json(t["config"], "--target", t["target"], "--to-datetime", iso(when))
        )
        assert {p: row["new"] for p, row in plan.items()} == expected, iso(when)
    assert (
        by_partition(
            replay_json(t["config"], "--target", t["target"], "--to-datetime", iso(exact))
        )[2]["new"]
        == 3
    )
    # A time with an offset means the same instant as its UTC spelling.
    plus_two = datetime.fromtimestamp(exact / 1000, timezone(timedelta(hours=2))).isoformat()
    assert plus_two.endswith("+02:00")
    whole = replay_json(t["config"], "--target", t["target"], "--to-datetime", plus_two)
    assert by_partition(whole)[2]["new"] == 3
    assert whole["warnings"] == []  # the bridge's topics carry change times (CreateTime)
    code, _, err = run_replay(t["config"], "--target", t["target"], "--to-datetime", "yesterday")
    assert code == 2 and "not an ISO 8601 time" in err


def test_to_datetime_warns_about_a_topic_stamped_with_kafkas_receive_time(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    """A topic made by hand with LogAppendTime holds the broker's clock, not change times."""
    from confluent_kafka.admin import AdminClient, NewTopic

    table, target = unique_name("rpl").replace("-", "_"), unique_name("null")
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=2, replication_factor=1)
    topic = kafka.changes_topic(table)
    new = NewTopic(topic, 2, 1, config={"message.timestamp.type": "LogAppendTime"})
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([new])[topic].result(30)
    produce(kafka, timed_events(table, 10))
    config = write_config(
        tmp_path / "bridge.toml", kafka_bootstrap, target, {"type": "null"}, [table]
    )
    code, _, err = run_replay(config, "--target", target, "--to-datetime", iso(T0_MS))
    assert code == 0, err
    assert f"topic {topic} has message.timestamp.type=LogAppendTime" in err


def test_execute_is_refused_while_an_apply_worker_is_in_the_group_naming_it(
    kafka_bootstrap: str, timed_topic: dict[str, Any]
) -> None:
    t = timed_topic
    group, topic = t["group"], t["topic"]
    proc = ApplyProcess(t["config"])
    proc.wait_joined()
    try:
        proc.wait_until(lambda: caught_up(group_lag(t["kafka"], group, [topic])))
        before = offsets(group_lag(t["kafka"], group, [topic]))
        # Kafka's own tool names the member, its client id and host: replay must name the same.
        described = kafka_jars.run_tool(
            kafka_jars.CONSUMER_GROUP_COMMAND,
            "--bootstrap-server", kafka_bootstrap, "--describe", "--members", "--group", group,
        )  # fmt: skip
        fields = next(line.split() for line in described.splitlines() if line.startswith(group))
        member_id, host, client_id = fields[1], fields[2].lstrip("/"), fields[3]

        code, out, err = run_replay(
            t["config"], "--target", t["target"], "--to-earliest", "--execute"
        )
        assert code == 1, out + err
        assert f"consumer group {group} has 1 active member(s)" in err
        assert member_id in err and client_id in err and host in err, (described, err)
        assert "No offset was changed" in err
        assert offsets(group_lag(t["kafka"], group, [topic])) == before

        # A dry run still shows the plan, and says that --execute would be refused.
        code, out, err = run_replay(t["config"], "--target", t["target"], "--to-earliest")
        assert code == 0, err
        assert "total:" in out and member_id in err and "--execute is refused" in err
        assert offsets(group_lag(t["kafka"], group, [topic])) == before
    finally:
        assert proc.terminate() == 0, proc.output


def test_replay_to_an_earlier_time_then_apply_leaves_the_target_unchanged(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    """Done when: an apply group replayed to an earlier time, then apply again: not a row of
    the target changes (SQLite, compared as stored: item text, version, tombstone)."""
    table, target = unique_name("rpt").replace("-", "_"), unique_name("local")
    db = tmp_path / "target.db"
    history = random_history(table, seed=41, n_keys=60, n_ops=600)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=4, replication_factor=1)
    produce(kafka, history.events)  # in change order, as the stream publishes them
    topic, group = kafka.changes_topic(table), group_id(target)
    config = write_config(
        tmp_path / "bridge.toml",
        kafka_bootstrap,
        target,
        {"type": "sqlite", "path": db},
        [table],
    )
    apply_until_caught_up(config, kafka, group, topic)
    applied = rows(db, table)
    end = {p.partition: p.end for p in group_lag(kafka, group, [topic])}
    assert offsets(group_lag(kafka, group, [topic])) == end

    # Halfway through the stream's changes (the history's versions are its change times).
    stream = [e for e in history.events if e.origin is Origin.STREAM]
    when = stream[len(stream) // 2].change_time_ms
    code, out, err = run_replay(config, "--target", target, "--to-datetime", iso(when), "--execute")
    assert code == 0, err
    assert f"group {group}: moved to the first change at or after" in out
    moved = offsets(group_lag(kafka, group, [topic]))
    assert all(0 < moved[p] < end[p] for p in end), (moved, end)
    total = sum(end[p] - moved[p] for p in end)
    assert f"total: {total} events to re-process" in out

    apply_until_caught_up(config, kafka, group, topic)
    assert offsets(group_lag(kafka, group, [topic])) == end
    assert rows(db, table) == applied


def test_replay_to_earliest_repairs_a_damaged_target_until_verify_finds_no_difference(
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    ddb_client: Any,
    unique_name: Any,
    tmp_path: Path,
) -> None:
    """Done when: rows of the target deleted or set back to an older version by hand; replay
    the apply group to the earliest offset with --execute, run apply: `verify` says 0."""
    table, lease_table = unique_name("rpv").replace("-", "_"), unique_name("leases")
    db = tmp_path / "target.db"
    create_table(ddb_client, table, stream=False)
    items = [attrs.to_boto(sample_item(i)) for i in range(30)]
    write_items(lambda: ddb_client, table, items, 1)
    config = write_settings_file(
        tmp_path / "bridge.toml",
        aws={"endpoint_url": dynamodb_endpoint},
        kafka={"bootstrap_servers": kafka_bootstrap, "partitions": 3, "replication_factor": 1},
        tables=[{"name": table}],
        stream={"lease_table": lease_table},
        backfill={"skew_margin_s": 0, "segments": 2},
        apply={"target": "local", "batch_window_ms": 50, "commit_interval_ms": 200},
        targets={"local": {"type": "sqlite", "path": db}},
    )
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    topic, group = kafka.changes_topic(table), group_id("local")

    def cli(*args: str) -> tuple[int, str]:
        proc = run_bridge(args, config, env=env, timeout_s=300)
        return proc.returncode, proc.stdout + proc.stderr

    code, output = cli(
        "backfill", "--table", table, "--from", "scan", "--no-stream", "--no-progress"
    )
    assert code == 0, output
    apply_until_caught_up(config, kafka, group, topic)
    code, output = cli("verify", "--table", table)
    assert code == 0 and output.rstrip().endswith("0 differences"), output

    # Damage: one row deleted, one set back to an older version with a stale image.
    with sqlite3.connect(db) as conn:
        stored = sorted(conn.execute(f'SELECT pk, sk, item, version FROM "{table}"').fetchall())
        conn.execute(f'DELETE FROM "{table}" WHERE pk = ? AND sk = ?', stored[0][:2])
        pk, sk, item, version = stored[1]
        stale = json.dumps(json.loads(item) | {"payload": {"S": "stale"}})
        conn.execute(
            f'UPDATE "{table}" SET item = ?, version = ? WHERE pk = ? AND sk = ?',
            (stale, version - 1, pk, sk),
        )
    code, output = cli("verify", "--table", table)
    assert code == 1 and "2 differences" in output, output

    code, output = cli("replay", "--target", "local", "--to-earliest", "--execute")
    assert code == 0, output
    assert "total: 30 events to re-process" in output
    assert offsets(group_lag(kafka, group, [topic])) == {0: 0, 1: 0, 2: 0}

    apply_until_caught_up(config, kafka, group, topic)
    code, output = cli("verify", "--table", table)
    assert code == 0 and output.rstrip().endswith("0 differences"), output
