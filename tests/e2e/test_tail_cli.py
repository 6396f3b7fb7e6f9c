"""`ddb-bridge tail` through the command line against the real broker: decoded events, the key
filter, from latest or the beginning, `--max`, both framings, a closed pipe and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.kafka.schema_registry import make_codec
from bridge.model.event import Op
from bridge.runtime.config_file import write_config
from bridge.runtime.settings import KafkaSettings
from tests.consumer_helpers import as_json, change, kafka_for, publish
from tests.registry_double import registry_double
from tests.support.daemon import run_bridge

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CLI = [sys.executable, "-m", "ddb_bridge.cli.main", "tail"]


def env_for() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DDB_BRIDGE")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def config_file(tmp_path: Path, bootstrap: str, registry_url: str | None = None) -> Path:
    registry = {"schema_registry_url": registry_url} if registry_url else {}
    return write_config(
        tmp_path / "bridge.toml", kafka={"bootstrap_servers": bootstrap, **registry}
    )


def run_tail(config: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return run_bridge("tail", config, *args, env=env_for(), timeout_s=timeout)


def start_tail(config: Path, err: Path, *args: str) -> subprocess.Popen[str]:
    with err.open("wb") as sink:
        return subprocess.Popen(
            [*CLI, "--config", str(config), *args],
            env=env_for(),
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
        )


def wait_ready(proc: subprocess.Popen[str], err: Path, timeout_s: float = 60) -> None:
    """Until tail logs that it is reading (its start offsets are fixed from then on)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = err.read_text(errors="replace")
        if "tailing" in text:
            return
        if proc.poll() is not None:
            raise AssertionError(f"tail exited {proc.returncode}: {text}")
        time.sleep(0.1)
    raise AssertionError(f"tail never became ready: {err.read_text(errors='replace')}")


def decoded(stdout: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stdout.splitlines()]
    for line in lines:
        assert {"topic", "partition", "offset", "time"} <= line.keys(), line
    return lines


def event_fields(line: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in line.items() if k not in ("topic", "partition", "offset", "time")}


def by_version(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: int(r["version"]))


def test_json_from_beginning_prints_exactly_the_published_events_decoded(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    table = unique_name("tail")
    kafka = kafka_for(kafka_bootstrap)
    sent = [
        change(table, "a", 1, Op.INSERT),
        change(table, "b", 2, Op.INSERT, sk=7),
        change(table, "a", 3),
        change(table, "c", 4, Op.REMOVE),
        change(table, "b", 5, sk=7),
    ]
    publish(kafka, sent)
    result = run_tail(
        config_file(tmp_path, kafka_bootstrap), "--table", table, "--json", "--from-beginning",
        "--max", str(len(sent)),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = decoded(result.stdout)
    assert by_version([event_fields(x) for x in lines]) == [as_json(e) for e in sent]
    assert {x["topic"] for x in lines} == {kafka.changes_topic(table)}
    # The time shown is the change time, in UTC.
    first = next(x for x in lines if x["version"] == sent[0].version)
    assert first["time"] == "2026-12-01T10:00:01.000Z"


def test_text_lines_show_time_op_origin_key_version_and_the_new_image(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    table = unique_name("tailtext")
    sent = [change(table, "a", 1, Op.INSERT, sk=2), change(table, "a", 2, Op.REMOVE, sk=2)]
    publish(kafka_for(kafka_bootstrap, partitions=1), sent)
    result = run_tail(
        config_file(tmp_path, kafka_bootstrap), "--table", table, "--from-beginning", "--max", "2"
    )
    assert result.returncode == 0, result.stderr
    insert, remove = result.stdout.splitlines()
    assert insert.split(" ", 5)[:5] == [
        "2026-12-01T10:00:01.000Z",
        "INSERT",
        "STREAM",
        "pk=a,sk=2",
        f"v={sent[0].version}",
    ]
    image = json.loads(insert.split(" ", 5)[5])
    assert image == {"pk": "a", "sk": 2, "n": 1, "note": "change 1 of a"}
    assert remove.split(" ") == [
        "2026-12-01T10:00:02.000Z",
        "REMOVE",
        "STREAM",
        "pk=a,sk=2",
        f"v={sent[1].version}",
        "-",
    ]


@pytest.mark.parametrize("key", ["pk=a", '{"pk": {"S": "a"}}'], ids=["name=value", "ddb-json"])
def test_the_key_filter_shows_only_that_items_events(
    key: str, kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    table = unique_name("tailkey")
    sent = [change(table, pk, i) for i, pk in enumerate("abacbca", start=1)]
    publish(kafka_for(kafka_bootstrap), sent)
    wanted = [e for e in sent if e.keys["pk"]["S"] == "a"]
    result = run_tail(
        config_file(tmp_path, kafka_bootstrap), "--table", table, "--json", "--from-beginning",
        "--key", key, "--max", str(len(wanted)),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert by_version([event_fields(x) for x in decoded(result.stdout)]) == [
        as_json(e) for e in wanted
    ]


def test_a_bad_key_filter_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    config = config_file(tmp_path, "127.0.0.1:1")
    for key in ("pk", '{"pk": "a"}'):
        result = run_tail(config, "--table", "t", "--key", key, timeout=30)
        assert result.returncode == 2, result.stderr
        assert "--key" in result.stderr and "Traceback" not in result.stderr


def test_from_latest_shows_only_events_published_after_the_start(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    table = unique_name("taillatest")
    kafka = kafka_for(kafka_bootstrap)
    publish(kafka, [change(table, k, i) for i, k in enumerate("abcd")])
    err = tmp_path / "tail.err"
    proc = start_tail(config_file(tmp_path, kafka_bootstrap), err, "--table", table, "--json",
                      "--max", "3")  # fmt: skip
    try:
        wait_ready(proc, err)
        later = [change(table, k, i) for i, k in enumerate("xyz", start=10)]
        publish(kafka, later)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0, err.read_text()
    assert by_version([event_fields(x) for x in decoded(out)]) == [as_json(e) for e in later]


def test_both_framings_decode_in_one_topic(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    """Single-object records written before the registry was configured, Confluent after."""
    table = unique_name("tailreg")
    kafka = kafka_for(kafka_bootstrap, partitions=1)
    before = [change(table, "a", 1), change(table, "b", 2)]
    publish(kafka, before)
    with registry_double() as (url, _state):
        with_registry = KafkaSettings(**{**kafka.model_dump(), "schema_registry_url": url})
        after = [change(table, "a", 3), change(table, "c", 4)]
        publish(with_registry, after, make_codec(with_registry, [table]))
        result = run_tail(
            config_file(tmp_path, kafka_bootstrap, url), "--table", table, "--json",
            "--from-beginning", "--max", "4",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [event_fields(x) for x in decoded(result.stdout)] == [as_json(e) for e in before + after]


def test_a_closed_pipe_ends_tail_quietly_with_141(
    kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    """`ddb-bridge tail ... | head -1` ends even when no further event comes to be written."""
    table = unique_name("tailpipe")
    publish(kafka_for(kafka_bootstrap), [change(table, k, i) for i, k in enumerate("abc")])
    config = config_file(tmp_path, kafka_bootstrap)
    command = " ".join([*CLI, "--config", str(config), "--table", table, "--from-beginning"])
    result = subprocess.run(
        ["bash", "-c", f'{command} | head -1; echo "tail exit ${{PIPESTATUS[0]}}" >&2'],
        env=env_for(),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert len(result.stdout.splitlines()) == 1
    assert result.stdout.split(" ")[1] == "MODIFY"
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert result.stderr.strip().endswith("tail exit 141"), result.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_exits_0_without_a_traceback(
    sig: signal.Signals, kafka_bootstrap: str, unique_name: Any, tmp_path: Path
) -> None:
    table = unique_name("tailint")
    publish(kafka_for(kafka_bootstrap), [change(table, "a", 1)])
    err = tmp_path / "tail.err"
    proc = start_tail(config_file(tmp_path, kafka_bootstrap), err, "--table", table)
    try:
        wait_ready(proc, err)
        time.sleep(0.5)  # inside the poll loop
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill() if proc.poll() is None else None
    text = err.read_text()
    assert proc.returncode == 0, text
    assert out == ""
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
