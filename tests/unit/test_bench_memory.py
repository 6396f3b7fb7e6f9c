"""The pure parts of benchmarks/bench_memory.py and the CPU shares of the process benchmarks:
reading /proc, the RSS-against-items curve and its flatness, and the generated DynamoDB
data the million-item stream and scan are served from (which the bridge must accept as
it accepts AWS's)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from benchmarks import procfs
from benchmarks.fake_dynamodb import ScanData, StreamData, index_of
from benchmarks.memory_curve import (
    RssSampler,
    Sample,
    flatness,
    growth_mb_per_100k,
    peak,
    rss_at,
)
from bridge.model.event import ChangeEvent

STATUS = """Name:\tpython
Umask:\t0022
State:\tS (sleeping)
VmPeak:\t  912340 kB
VmRSS:\t   83412 kB
RssAnon:\t   60000 kB
Threads:\t9
"""


def test_vmrss_is_read_in_kb_and_absent_for_a_zombie() -> None:
    assert procfs.parse_vmrss_kb(STATUS) == 83412
    assert procfs.parse_vmrss_kb("Name:\tx\nState:\tZ (zombie)\n") is None
    with pytest.raises(ValueError, match="VmRSS"):
        procfs.parse_vmrss_kb("VmRSS:\t  12 MB\n")


def test_stat_fields_are_counted_after_the_last_parenthesis() -> None:
    # A command name holding spaces and ')' must not shift utime/stime.
    fields = ["S", "77"] + ["0"] * 9 + ["250", "150"] + ["0"] * 30
    line = "4242 (my (odd) name) " + " ".join(fields)
    comm, ppid, cpu = procfs.parse_stat(line)
    assert comm == "my (odd) name"
    assert ppid == 77
    assert cpu == pytest.approx(400 / procfs.CLOCK_TICKS)
    with pytest.raises(ValueError):
        procfs.parse_stat("4242 no parentheses")


def test_this_process_is_read_from_proc() -> None:
    rss = procfs.rss_mb(os.getpid())
    cpu = procfs.cpu_seconds(os.getpid())
    assert rss is not None and rss > 5
    assert cpu is not None and cpu > 0
    assert procfs.parents()[os.getpid()] == os.getppid()


def test_machine_cpu_from_proc_stat_counts_iowait_as_idle() -> None:
    text = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n"
    busy, total = procfs.machine_cpu_seconds(text)
    assert busy == pytest.approx(150 / procfs.CLOCK_TICKS)
    assert total == pytest.approx(1000 / procfs.CLOCK_TICKS)


def test_descendants_and_roles() -> None:
    parent_of = {10: 1, 11: 10, 12: 11, 13: 10, 20: 1}
    assert sorted(procfs.descendants(10, parent_of)) == [10, 11, 12, 13]
    assert procfs.role_of("java -Xmx512m -cp /x/* kafka.Kafka server.properties") == "broker"
    assert procfs.role_of("/v/bin/moto_server -H 127.0.0.1 -p 5000") == "moto"
    assert procfs.role_of("python -m ddb_bridge.cli.main backfill --config c") == "bridge"
    assert procfs.role_of("python -m benchmarks.bench_x", bench_pid=5, pid=5) == "bench"
    assert procfs.role_of("sleep 1") == "other"


def curve(points: list[tuple[int, float]]) -> list[Sample]:
    return [Sample(float(i), items, rss) for i, (items, rss) in enumerate(points)]


def test_flat_memory_has_a_ratio_near_one() -> None:
    samples = curve([(0, 60), (100_000, 80), (200_000, 82), (600_000, 83), (1_000_000, 84)])
    assert rss_at(samples, 200_000) == 82
    assert rss_at(samples, 1_000_000) == 84
    assert flatness(samples, 200_000, 1_000_000) == pytest.approx(84 / 82)
    assert growth_mb_per_100k(samples, 200_000, 1_000_000) == pytest.approx(0.25)
    assert peak(samples) == 84


def test_memory_growing_with_items_shows_in_the_ratio_and_slope() -> None:
    # A dict entry per key: ~100 bytes per item on top of a 60 MB floor.
    samples = curve([(n, 60 + n * 100 / 2**20) for n in range(0, 1_000_001, 50_000)])
    ratio = flatness(samples, 200_000, 1_000_000)
    assert ratio is not None and ratio > 1.5
    slope = growth_mb_per_100k(samples, 200_000, 1_000_000)
    assert slope == pytest.approx(100_000 * 100 / 2**20)


def test_rss_at_takes_the_first_sample_at_or_past_the_count() -> None:
    samples = curve([(150_000, 70), (230_000, 75), (1_000_000, 90)])
    assert rss_at(samples, 200_000) == 75
    assert rss_at(samples, 1_000_001) is None
    assert flatness(samples, 200_000, 2_000_000) is None


def test_sampler_reads_a_child_and_counts_past_its_exit() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.2)"])
    started = time.monotonic()
    sampler = RssSampler(child.pid, progress=lambda: int((time.monotonic() - started) * 1000))
    sampler.interval_s = 0.2
    try:
        sampler.run(done=lambda s: False, alive=lambda: child.poll() is None)
    finally:
        child.wait(10)
    assert len(sampler.samples) >= 3
    # (The very first sample may catch the child between fork and exec, nearly empty.)
    assert peak(sampler.samples) > 5
    # The count read after the exit is kept, with the last RSS seen alive.
    assert sampler.samples[-1].items >= 1200
    assert sampler.samples[-1].rss_mb == sampler.samples[-2].rss_mb


def read_shard(data: StreamData, shard: int, start: dict[str, str]) -> list[dict[str, object]]:
    iterator = data.iterator({"ShardId": data.shard_id(shard), **start})["ShardIterator"]
    out: list[dict[str, object]] = []
    while True:
        page = data.get_records({"ShardIterator": iterator, "Limit": 1000})
        if not page["Records"]:
            return out
        out.extend(page["Records"])
        iterator = page["NextShardIterator"]


def test_generated_stream_serves_every_record_once_in_sequence_order() -> None:
    data = StreamData(2_503, 4)
    seen: set[str] = set()
    for shard in range(4):
        records = read_shard(data, shard, {"ShardIteratorType": "TRIM_HORIZON"})
        seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]  # type: ignore[index]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        seen.update(r["dynamodb"]["Keys"]["pk"]["S"] for r in records)  # type: ignore[index]
        # Resuming after a checkpoint reads exactly the rest.
        middle = records[len(records) // 2]["dynamodb"]["SequenceNumber"]  # type: ignore[index]
        rest = read_shard(
            data, shard, {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": middle}
        )
        assert rest == records[len(records) // 2 + 1 :]
    assert len(seen) == 2_503
    assert (
        data.describe("arn:aws:dynamodb:us-east-1:1:table/t/stream/x")["StreamDescription"][
            "TableName"
        ]
        == "t"
    )


def test_generated_stream_records_are_accepted_as_aws_wire_records() -> None:
    data = StreamData(10, 2)
    for position in range(3):
        record = data.record(1, position)
        event = ChangeEvent.from_stream_record("t", record, 1, data.shard_id(1), wire=True)
        assert event.new_image is not None
        assert event.sequence_number == record["dynamodb"]["SequenceNumber"]


def test_generated_scan_splits_every_item_into_exactly_one_segment() -> None:
    data = ScanData("t", 7_001)
    seen: list[int] = []
    for segment in range(3):
        request: dict[str, object] = {"TableName": "t", "Segment": segment, "TotalSegments": 3}
        while True:
            page = data.scan({**request, "Limit": 500, "ReturnConsumedCapacity": "TOTAL"})
            seen.extend(index_of(item) for item in page["Items"])
            assert page["ConsumedCapacity"]["CapacityUnits"] > 0
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    assert sorted(seen) == list(range(7_001))


def test_cpu_watch_counts_a_child_that_exits_inside_the_window() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass"
    with procfs.CpuWatch(interval_s=0.05) as watch:
        subprocess.run([sys.executable, "-c", burn], check=True)
    roles = watch.by_role()
    # The child's CPU counts though it is gone at the end (to within one interval).
    assert roles.get("other", 0.0) >= 0.45
    summary = watch.summary()
    assert summary["busy_processes_by_role"]["other"] == 1  # type: ignore[index]
    assert 0 < summary["share_of_cores_by_role"]["other"] <= 1  # type: ignore[index]
    assert "other" in procfs.cpu_line(summary)


def test_median_shares_over_runs() -> None:
    runs = [
        {
            "core_seconds": 20.0,
            "share_of_cores_by_role": {"bridge": share, "broker": 0.3},
            "idle_share": 0.1,
            "cpu_s_outside_benchmark": 2.0,
        }
        for share in (0.4, 0.5, 0.6)
    ]
    assert procfs.median_shares(runs) == {
        "bridge": 0.5,
        "broker": 0.3,
        "idle": 0.1,
        "other work": 0.1,
    }


def test_a_helper_spawned_by_the_bridge_counts_as_the_bridge() -> None:
    # `backfill --processes 2` spawns its helper as `python -c ...` (multiprocessing):
    # its CPU is the bridge's, not "other".
    # It stays alive a moment after burning: the watch reads CPU from /proc while a process
    # lives, so the last sample must come after the burn, however loaded the machine is.
    burn = (
        "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\n"
        "time.sleep(0.5)"
    )
    parent = (
        "import subprocess, sys, time\ntime.sleep(0.3)\n"
        f"subprocess.run([sys.executable, '-c', {burn!r}], check=True)"
    )
    with procfs.CpuWatch(interval_s=0.05) as watch:
        # The extra argument puts the bridge's module name on the parent's command line.
        subprocess.run([sys.executable, "-c", parent, "ddb_bridge.cli.main"], check=True)
    roles = watch.by_role()
    assert roles.get("bridge", 0.0) >= 0.4
    assert roles.get("other", 0.0) < 0.2
