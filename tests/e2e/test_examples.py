"""The example consumers in `examples/`, each run as a script against the real broker: known
events are published, the script's output is checked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.kafka.schema_registry import make_codec
from bridge.model.event import ChangeEvent
from bridge.runtime.settings import KafkaSettings
from tests.consumer_helpers import BASE_MS, change, kafka_for, publish
from tests.registry_double import registry_double

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Script:
    """An example running as a subprocess, its stdout lines collected as they come."""

    def __init__(self, name: str, *args: str, log: Path) -> None:
        self._err = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / name), *args],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )
        self.log = log
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, done: Callable[[list[str]], bool], timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done(list(self.lines)):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(
            f"{self.proc.args[1]} (exit {self.proc.poll()}) printed {self.lines}; "
            f"stderr: {self.log.read_text(errors='replace')[-3000:]}"
        )

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._err.close()
        return self.proc.returncode


def test_plain_consumer_prints_every_event_decoded_in_both_framings(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    table, group = unique_name("plain"), unique_name("printer")
    kafka = kafka_for(kafka_bootstrap)
    single = [change(table, pk, i, sk=i % 3) for i, pk in enumerate("abcdef")]
    publish(kafka, single)
    with registry_double() as (url, _state):
        registry_kafka = KafkaSettings(**{**kafka.model_dump(), "schema_registry_url": url})
        confluent = [change(table, pk, i) for i, pk in enumerate("gh", start=10)]
        publish(registry_kafka, confluent, make_codec(registry_kafka, [table]))
        sent = single + confluent
        script = Script(
            "plain_consumer.py",
            "--bootstrap", kafka_bootstrap, "--table", table, "--group", group,
            "--from-beginning", "--registry-url", url,
            log=tmp_path / "plain.err",
        )  # fmt: skip
        try:
            script.wait_for(lambda lines: len(lines) >= len(sent))
            time.sleep(1)  # anything beyond the events sent would show now
        finally:
            code = script.stop()
    printed = [json.loads(line) for line in script.lines]
    assert sorted((p["version"], json.dumps(p["keys"])) for p in printed) == sorted(
        (e.version, json.dumps(e.keys)) for e in sent
    )
    assert {p["table"] for p in printed} == {table}
    assert code == 0, script.log.read_text()


def expected_counts(events: list[ChangeEvent]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for e in events:
        assert e.approximate_creation_time_ms is not None
        minute = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(e.approximate_creation_time_ms / 1000))
        out[(f"{minute}Z", e.table)] = out.get((f"{minute}Z", e.table), 0) + 1
    return out


def test_faust_agent_counts_changes_per_table_per_minute(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    orders, customers = unique_name("orders"), unique_name("customers")
    kafka = kafka_for(kafka_bootstrap)
    minute = 60_000
    sent = [
        *(change(orders, f"o{i}", i, at_ms=BASE_MS + i * 1000) for i in range(3)),  # 10:00
        *(change(orders, f"o{i}", i, at_ms=BASE_MS + minute + i) for i in range(3, 5)),  # 10:01
        change(customers, "c0", 10, at_ms=BASE_MS + 59_999),  # 10:00
        *(change(customers, f"c{i}", i, at_ms=BASE_MS + 2 * minute + i) for i in range(11, 15)),
    ]
    publish(kafka, sent)
    want = expected_counts(sent)
    assert want == {
        ("2026-12-01T10:00Z", orders): 3,
        ("2026-12-01T10:01Z", orders): 2,
        ("2026-12-01T10:00Z", customers): 1,
        ("2026-12-01T10:02Z", customers): 4,
    }

    def counts(lines: list[str]) -> dict[tuple[str, str], int]:
        latest: dict[tuple[str, str], int] = {}
        for line in lines:
            at, table, count = line.split(" ")
            latest[(at, table)] = max(latest.get((at, table), 0), int(count))
        return latest

    script = Script(
        "faust_changes_per_minute.py",
        "--bootstrap", kafka_bootstrap, "--table", orders, "--table", customers,
        "--group", unique_name("per-minute"), "--from-beginning",
        log=tmp_path / "faust.err",
    )  # fmt: skip
    try:
        script.wait_for(lambda lines: counts(lines) == want, timeout_s=120)
        time.sleep(1)  # a double count would show now
    finally:
        code = script.stop()
    assert counts(script.lines) == want
    assert len(script.lines) == len(sent)  # one line per event
    assert code == 0, script.log.read_text()
