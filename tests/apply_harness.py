"""A randomized, Kafka-level harness for `apply`, reusable for every target.

1. `random_history` simulates a DynamoDB table over `n_keys` keys: puts, updates (including
   attribute removal), deletes and TTL-expiry deletes, each a change event with a strictly
   increasing stream version, plus a concurrent back-fill (scan) whose SNAPSHOT events carry
   the lower back-fill version of docs/design.md §5. It keeps the true final state of every
   key.
2. `delivery_plan` shuffles the events, duplicates some, and appends a replayed prefix.
3. `produce` publishes them with the real publisher; `run_in_process` / `ApplyProcess` run the
   worker (in-process with any sink object, or as `ddb-bridge apply` in a subprocess).
4. `assert_target_matches` compares the target, through the sink's `read_items` and
   `scan_keys`, with the final state of every key.

Usage for another target (PostgreSQL, Alternator, ScyllaDB): build a history, produce it,
write a config with `write_config(..., target_section=...)`, run `ApplyProcess` until
`target_matches(...)` holds, and assert it.
"""

from __future__ import annotations

import base64
import random
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.apply.app import ApplyWorker
from bridge.kafka.publisher import Publisher, ensure_topics
from bridge.model import attrs
from bridge.model.attrs import Item
from bridge.model.errors import PermanentError, TransientError
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.model.versioning import backfill_version, rank, wins
from bridge.ports.sink import SinkCapabilities, TableSpec
from bridge.runtime.config_file import write_config as write_settings_file
from bridge.runtime.settings import ApplySettings, KafkaSettings, Settings, TargetSettings
from tests.support.config_sections import merged
from tests.support.daemon import BridgeDaemon

BASE_US = 1_750_000_000_000_000
TTL_ATTR = "expires"


def table_spec(table: str, target: str | None = None) -> TableSpec:
    return TableSpec(
        source=table,
        target=target or table,
        hash_key="pk",
        hash_type="S",
        range_key="sk",
        range_type="N",
        ttl_attribute=TTL_ATTR,
    )


# -- the random history -----------------------------------------------------------------


@dataclass
class History:
    table: str
    keys: list[Item]
    events: list[ChangeEvent]  # stream events in order, then back-fill snapshots
    final: dict[bytes, Item | None]  # canonical key bytes -> live item, None when absent

    @property
    def live(self) -> dict[bytes, Item]:
        return {k: v for k, v in self.final.items() if v is not None}


def _random_value(rng: random.Random, i: int) -> dict[str, Any]:
    kind = rng.randrange(8)
    if kind == 0:
        return {"S": f"v{i}-" + "é" * rng.randrange(3)}
    if kind == 1:
        return {"N": str(rng.randrange(-(10**20), 10**20)) + rng.choice(["", ".25", ".5E-3"])}
    if kind == 2:
        return {"B": base64.b64encode(rng.randbytes(rng.randrange(0, 6))).decode()}
    if kind == 3:
        return {"BOOL": rng.random() < 0.5}
    if kind == 4:
        return {"SS": sorted({f"t{rng.randrange(9)}" for _ in range(rng.randrange(1, 4))})}
    if kind == 5:
        return {"L": [{"N": str(i)}, {"S": "x"}, {"NULL": True}]}
    if kind == 6:
        return {"M": {"a": {"N": str(i % 13)}, "b": {"M": {"c": {"BOOL": True}}}}}
    return {"NS": sorted({str(rng.randrange(100)) for _ in range(rng.randrange(1, 4))})}


_ATTRS = ["name", "count", "data", "flag", "tags", "hist", "meta", "nums"]


def _random_image(rng: random.Random, key: Item, i: int) -> Item:
    image: Item = dict(key)
    for name in rng.sample(_ATTRS, rng.randrange(1, len(_ATTRS))):
        image[name] = _random_value(rng, i)
    if rng.random() < 0.3:
        # Far in the future (2096): the expected final state holds these items live, as
        # DynamoDB does until its TTL deletes them. A past expiry made the CQL sink (the one
        # sink acting on TTL) write them as deletes once the clock passed mid-2025.
        image[TTL_ATTR] = {"N": str(4_000_000_000 + i)}
    return image


def random_history(
    table: str,
    seed: int,
    n_keys: int = 200,
    n_ops: int = 1500,
    backfill: bool = True,
    skew_margin_s: int = 5,
) -> History:
    rng = random.Random(seed)
    keys: list[Item] = [
        {"pk": {"S": f"user#{i:03d}"}, "sk": {"N": str(i % 7)}} for i in range(n_keys)
    ]
    state: dict[bytes, Item] = {}
    stream: list[ChangeEvent] = []
    snapshots: list[ChangeEvent] = []
    clock = BASE_US
    scan_from = n_ops // 3 if backfill else n_ops + 1
    scan_version = 0
    unscanned: list[Item] = []

    def emit(op: Op, key: Item, new: Item | None, old: Item | None, ttl: bool = False) -> None:
        stream.append(
            ChangeEvent(
                table=table,
                op=op,
                keys=key,
                version=clock,
                origin=Origin.STREAM,
                new_image=new,
                old_image=old,
                shard_id="shardId-0001",
                sequence_number=str(len(stream)),
                ttl_expired=ttl,
            )
        )

    for step in range(n_ops):
        # Up to 3 s between writes: versions are µs, so the back-fill margin spans many events.
        clock += rng.randint(1, 3_000_000)
        key = rng.choice(keys)
        kb = attrs.canonical_key(key)
        current = state.get(kb)
        roll = rng.random()
        if current is None or roll < 0.3:
            image = _random_image(rng, key, step)
            emit(Op.INSERT if current is None else Op.MODIFY, key, image, current)
            state[kb] = image
        elif roll < 0.7:
            image = dict(current)
            for name in rng.sample(_ATTRS, rng.randrange(1, 3)):
                image[name] = _random_value(rng, step)
            removable = [n for n in image if n not in key]
            for name in rng.sample(removable, min(len(removable), rng.randrange(0, 3))):
                del image[name]  # attribute removal: must disappear from the target
            emit(Op.MODIFY, key, image, current)
            state[kb] = image
        elif roll < 0.85:
            emit(Op.REMOVE, key, None, current)
            del state[kb]
        else:
            emit(Op.REMOVE, key, None, current, ttl=True)  # TTL expiry
            del state[kb]

        if step == scan_from:
            # A scan starts now: its version is below every stream event from T - margin on.
            scan_version = backfill_version(clock / 1_000_000, skew_margin_s)
            unscanned = list(keys)
            rng.shuffle(unscanned)
        if step >= scan_from and unscanned:
            # The scan reads a few items between writes, each as it is at that moment.
            for _ in range(rng.randrange(0, 3)):
                if not unscanned:
                    break
                k = unscanned.pop()
                item = state.get(attrs.canonical_key(k))
                if item is not None:
                    snapshots.append(
                        ChangeEvent.snapshot(table, item, ("pk", "sk"), scan_version, Origin.SCAN)
                    )
    for k in unscanned:
        item = state.get(attrs.canonical_key(k))
        if item is not None:
            snapshots.append(
                ChangeEvent.snapshot(table, item, ("pk", "sk"), scan_version, Origin.SCAN)
            )

    final: dict[bytes, Item | None] = {attrs.canonical_key(k): None for k in keys}
    final.update(state)
    history = History(table=table, keys=keys, events=stream + snapshots, final=final)
    _check_last_write_wins_is_the_truth(history)
    return history


def _check_last_write_wins_is_the_truth(history: History) -> None:
    """The generator's own sanity check: newest version per key == the simulated state."""
    newest: dict[bytes, ChangeEvent] = {}
    for e in history.events:
        kb = e.key_bytes()
        held = newest.get(kb)
        if held is None or wins(e, held):
            newest[kb] = e
    for kb, expected in history.final.items():
        winner = newest.get(kb)
        got = None if winner is None or winner.is_delete else winner.new_image
        assert got == expected, f"history generator bug at {kb!r}"


def delivery_plan(
    events: Sequence[ChangeEvent],
    seed: int,
    duplicate_rate: float = 0.1,
    replay_fraction: float = 0.3,
) -> list[ChangeEvent]:
    """Shuffled (newer before older, snapshots interleaved), duplicated, prefix replayed."""
    rng = random.Random(seed)
    plan = list(events)
    plan += [e for e in events if rng.random() < duplicate_rate]
    rng.shuffle(plan)
    return plan + plan[: int(len(plan) * replay_fraction)]


def produce(kafka: KafkaSettings, events: Sequence[ChangeEvent]) -> None:
    ensure_topics(kafka, sorted({e.table for e in events}))
    publisher = Publisher(kafka)
    for event in events:
        publisher.publish(event)
    publisher.flush()


# -- an in-memory target ----------------------------------------------------------------


class MemorySink:
    """Last-write-wins in memory, with failure injection; records what it was asked."""

    capabilities = SinkCapabilities()

    def __init__(
        self,
        transient_failures: int = 0,
        poison: Callable[[ChangeEvent], bool] | None = None,
        crash_on_batch: int | None = None,
        write_delay_s: float = 0.0,
    ) -> None:
        self.rows: dict[tuple[str, bytes], tuple[int, bool, Item | None]] = {}
        self.lock = threading.Lock()
        self.transient_failures = transient_failures
        self.poison = poison
        self.crash_on_batch = crash_on_batch
        self.write_delay_s = write_delay_s
        self.calls = 0
        self.batches_written = 0
        self.specs: dict[str, TableSpec] = {}
        self.closed = False

    def open(self, tables: Sequence[TableSpec], create_schema: bool = False) -> None:
        self.specs = {t.source: t for t in tables} | {t.target: t for t in tables}
        self.closed = False

    def write_batch(self, events: Sequence[ChangeEvent]) -> None:
        with self.lock:
            self.calls += 1
            if self.transient_failures > 0:
                self.transient_failures -= 1
                raise TransientError("injected: target unavailable")
            if self.crash_on_batch is not None and self.calls == self.crash_on_batch:
                raise RuntimeError("injected: the worker dies in the middle of a write")
            if self.poison is not None:
                bad = [e for e in events if self.poison(e)]
                if bad:
                    raise PermanentError(f"injected: target refuses key {attrs.dumps(bad[0].keys)}")
        if self.write_delay_s:
            time.sleep(self.write_delay_s)
        with self.lock:
            for e in events:
                target = self.specs[e.table].target
                slot = (target, e.key_bytes())
                held = self.rows.get(slot)
                if held is None or rank(e) > (held[0], held[1]):
                    self.rows[slot] = (e.version, e.is_delete, e.new_image)
            self.batches_written += 1

    def version_of(self, table: str, key_bytes: bytes) -> int | None:
        with self.lock:
            held = self.rows.get((self.specs[table].target, key_bytes))
        return None if held is None else held[0]

    def read_items(self, table: str, keys: Sequence[Item]) -> list[Item | None]:
        target = self.specs[table].target
        out: list[Item | None] = []
        with self.lock:
            for key in keys:
                held = self.rows.get((target, attrs.canonical_key(key)))
                out.append(None if held is None or held[1] else held[2])
        return out

    def scan_keys(self, table: str) -> Iterator[Item]:
        spec = self.specs[table]
        with self.lock:
            live = [img for (t, _), (_, dead, img) in self.rows.items() if t == spec.target]
        for img in live:
            if img is not None:
                yield attrs.extract_keys(img, spec.key_names)

    def close(self) -> None:
        self.closed = True


# -- comparing ----------------------------------------------------------------------------


def target_differences(sink: Any, history: History, limit: int = 5) -> list[str]:
    """Human-readable differences between the target and the final state (empty: equal)."""
    problems: list[str] = []
    got = sink.read_items(history.table, history.keys)
    for key, item in zip(history.keys, got, strict=True):
        expected = history.final[attrs.canonical_key(key)]
        if (item is None) != (expected is None) or (
            item is not None and expected is not None and not attrs.items_equal(item, expected)
        ):
            problems.append(f"{attrs.dumps(key)}: target {item!r}, expected {expected!r}")
    live_target = {attrs.canonical_key(k) for k in sink.scan_keys(history.table)}
    if live_target != set(history.live):
        extra = live_target - set(history.live)
        missing = set(history.live) - live_target
        problems.append(f"scan_keys: {len(extra)} unexpected live keys, {len(missing)} missing")
    return problems[:limit]


def target_matches(sink: Any, history: History) -> bool:
    return not target_differences(sink, history, limit=1)


def assert_target_matches(sink: Any, history: History) -> None:
    problems = target_differences(sink, history)
    assert not problems, "target differs from the source:\n" + "\n".join(problems)


# -- running apply --------------------------------------------------------------------------


def apply_settings(
    bootstrap: str, target_name: str, target: TargetSettings, tables: Sequence[str], **apply: Any
) -> Settings:
    options: dict[str, Any] = {
        "batch_size": 200,
        "batch_window_ms": 50,
        # Tests kill workers (SIGKILL, injected crashes): the group notices a dead member after
        # session.timeout, so keep it short for a survivor to take over within the test.
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 1000,
        "commit_interval_ms": 200,
        "retry_backoff_ms": 20,
        "retry_backoff_max_ms": 200,
    }
    options.update(apply)
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, partitions=4, replication_factor=1),
        tables=[{"name": t} for t in tables],  # type: ignore[list-item]
        apply=ApplySettings(target=target_name, **options),
        targets={target_name: target},
    )


@dataclass
class InProcess:
    worker: ApplyWorker
    thread: threading.Thread
    result: list[int] = field(default_factory=list)
    error: list[BaseException] = field(default_factory=list)

    def wait(self, timeout_s: float = 60.0) -> int:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "apply worker did not stop"
        if self.error:
            raise self.error[0]
        return self.result[0]


def start_in_process(
    settings: Settings, specs: Sequence[TableSpec], sink: Any, **kwargs: Any
) -> InProcess:
    worker = ApplyWorker(settings, settings.apply.target, specs, sink, **kwargs)
    holder = InProcess(worker=worker, thread=threading.Thread(target=lambda: None))

    def body() -> None:
        try:
            holder.result.append(worker.run())
        except BaseException as exc:
            holder.error.append(exc)

    holder.thread = threading.Thread(target=body, name="apply-worker", daemon=True)
    holder.thread.start()
    return holder


def run_in_process(
    settings: Settings,
    specs: Sequence[TableSpec],
    sink: Any,
    until: Callable[[ApplyWorker], bool],
    timeout_s: float = 90.0,
    **kwargs: Any,
) -> tuple[int, ApplyWorker]:
    """Run a worker in a thread until `until(worker)` holds (checked every 50 ms); stop it."""
    run = start_in_process(settings, specs, sink, **kwargs)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and run.thread.is_alive():
            if until(run.worker):
                break
            time.sleep(0.05)
        else:
            if run.thread.is_alive():
                raise AssertionError(
                    f"apply did not get there in {timeout_s}s "
                    f"(acked {run.worker.records_applied} records)"
                )
    finally:
        run.worker.request_stop()
    return run.wait(), run.worker


def write_config(
    path: Path,
    bootstrap: str,
    target_name: str,
    target: Mapping[str, Any] | str,
    tables: Sequence[str],
    *,
    sections: Mapping[str, Any] | None = None,
    **apply: Any,
) -> Path:
    """A bridge.toml for `ddb-bridge apply` (tables declare their keys: no AWS needed).

    `target` is the [targets.NAME] section: a dict, or (for older callers) its TOML lines.
    `sections` add to the file's (aws={...}, stream={...}); `apply` sets [apply] options.
    """
    section = tomllib.loads(target) if isinstance(target, str) else dict(target)
    options = {
        "batch_size": 200,
        "batch_window_ms": 50,
        "session_timeout_ms": 6000,  # a SIGKILLed worker's partitions move on within 6 s
        "heartbeat_interval_ms": 1000,
        "commit_interval_ms": 200,
        "retry_backoff_ms": 50,
        "retry_backoff_max_ms": 1000,
    } | apply
    base = dict(
        kafka={"bootstrap_servers": bootstrap, "partitions": 4, "replication_factor": 1},
        tables=[
            {
                "name": t,
                "hash_key": "pk",
                "hash_key_type": "S",
                "range_key": "sk",
                "range_key_type": "N",
                "ttl_attribute": TTL_ATTR,
            }
            for t in tables
        ],
        apply={"target": target_name, **options},
        targets={target_name: section},
    )
    return write_settings_file(path, **merged(base, **(sections or {})))


class ApplyProcess(BridgeDaemon):
    """`ddb-bridge apply` as a subprocess (what the demo orchestrator does)."""

    JOINED = "apply worker joined its group and is consuming"

    def __init__(self, config: Path, *extra: str, log_path: Path | None = None) -> None:
        super().__init__("apply", config, *extra, log_path=log_path, ready=self.JOINED)

    def wait_joined(self, timeout_s: float = 60.0) -> None:
        self.wait_ready(timeout_s)


def assert_committed_offsets_are_written(
    kafka: KafkaSettings, group: str, messages: Sequence[Any], sink: Any
) -> int:
    """No committed offset passes an unwritten event: every record below its partition's
    committed offset is in the target at its version or a newer one. Returns how many records
    the committed offsets cover. `messages` are confluent-kafka messages of the topic(s)."""
    from bridge.codec.avro import EventCodec
    from bridge.kafka.lag import group_lag

    topics = sorted({m.topic() for m in messages})
    committed = {(p.topic, p.partition): p.committed for p in group_lag(kafka, group, topics)}
    codec = EventCodec()
    covered = 0
    for msg in messages:
        upto = committed.get((msg.topic(), msg.partition()))
        if upto is None or msg.offset() >= upto:
            continue
        covered += 1
        event = codec.decode(msg.value())
        held = sink.version_of(event.table, event.key_bytes())
        assert held is not None and held >= event.version, (
            f"offset {upto} committed on {msg.topic()}/{msg.partition()} past offset "
            f"{msg.offset()}, whose event (version {event.version}) is not in the target"
        )
    return covered
