"""The demo end to end: the README's `make demo` command on the Apache Kafka it starts itself,
and a smaller run on the Tansu fallback broker, after which `verify` catches a corrupted
target row.

`.ci/run` does not run `make demo` after the suite: the first test here is that run. It runs
with `--keep-up` (the same run, then the stack held), so the keep-up test reads the same run
instead of starting a second demo: one demo stack, not two, per suite.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.model import attrs
from ddb_bridge.demo.orchestrator import DemoOptions, run_demo
from ddb_bridge.demo.summary import summary
from ddb_bridge.services import kafka_jars
from ddb_bridge.services.processes import stop_process
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# What `make demo DEMO_ARGS=...` passes to `ddb-bridge demo`: a small size, the broker it
# chooses itself (Apache Kafka when Java 17+ runs it), its own moto and SQLite.
DEMO_ARGS = ["--items", "1500", "--write-rate", "100", "--min-write-seconds", "4"]
DEMO_ARGS += ["--partitions", "3", "--timeout-s", "300"]


def summary_number(text: str, label: str) -> int:
    """A figure of the demo's summary, e.g. `  items seeded          : 1,500`."""
    found = re.search(rf"^  {re.escape(label)}\s*: ([\d,]+)", text, re.MULTILINE)
    assert found is not None, f"no {label!r} in the demo's summary:\n{text}"
    return int(found.group(1).replace(",", ""))


@dataclass
class KeptUp:
    """A `ddb-bridge demo --keep-up` run holding its stack after its summary."""

    proc: subprocess.Popen[str]
    lines: list[str]
    said: Callable[[], str]
    reader: threading.Thread
    workdir_parent: Path
    env: dict[str, str]


# Both tests of the run go to one worker, one after the other (`--dist loadgroup`).
KEPT_UP_GROUP = pytest.mark.xdist_group("demo-keep-up")


@pytest.fixture(scope="module")
def kept_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeptUp]:
    """`ddb-bridge demo --keep-up` at make demo's size, from a shell where .venv/bin is not on
    PATH (as after `make install`) and no AWS variables are set; ready once it has printed
    its keep-up hints. Stopped at the end if a test left it running."""
    missing = None
    try:
        kafka_jars.check_tools()
    except kafka_jars.MissingTool as exc:
        missing = str(exc)
    if missing:
        pytest.fail(missing, pytrace=False)
    tmp_path = tmp_path_factory.mktemp("demo-keep-up")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DDB_BRIDGE__", "AWS_")) and k != "PATH"
    }
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    stderr = (tmp_path / "demo.err").open("w")
    demo = subprocess.Popen(
        [sys.executable, "-m", "ddb_bridge.cli.main", "demo", "--keep-up", *DEMO_ARGS],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    lines: list[str] = []

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def said() -> str:
        return "\n".join(lines) + "\n--- stderr:\n" + (tmp_path / "demo.err").read_text()

    try:
        wait_until(
            lambda: any(line.startswith("  stop ") for line in lines) or demo.poll() is not None,
            360,
            "the demo's keep-up hints",
            interval=0.5,
            details=said,
        )
        yield KeptUp(demo, lines, said, reader, tmp_path, env)
    finally:
        # SIGTERM stops what it started; a SIGKILL at once would orphan it.
        stop_process(demo, timeout_s=120)
        reader.join(10)
        stderr.close()


@KEPT_UP_GROUP
def test_make_demo_converges_on_the_apache_kafka_it_starts(kept_up: KeptUp) -> None:
    # The demo's own Apache Kafka (what `make demo` starts when Java 17+ is installed), not the
    # session broker: this is the package's launcher and pom, as an installed demo runs them.
    assert kept_up.proc.poll() is None, kept_up.said()
    lines = kept_up.lines
    said = kept_up.said()
    started = [line for line in lines if line.startswith("started ")]
    assert len(started) == 2, said  # its moto, then its broker
    assert started[0].startswith("started moto "), said
    assert started[1].startswith(f"started Apache Kafka {kafka_jars.KAFKA_VERSION} (KRaft)")
    summary_at = lines.index("ddb-bridge demo summary")
    # The summary ends with the verdict; the keep-up hints follow it.
    assert [line for line in lines if "differences" in line] == ["0 differences"], said
    summary_text = "\n".join(lines[summary_at : lines.index("0 differences") + 1])
    # At least one back-fill event per item, plus the stream.
    items = summary_number(summary_text, "items seeded")
    assert summary_number(summary_text, "events in Kafka") >= items == 1500
    assert summary_number(summary_text, "verified") > 0
    assert summary_number(summary_text, "writer") > 0
    # The summary's explanations hold on a real run: the stream's records are the writer's
    # changes as counted (its arithmetic, not the fallback wording), and Kafka's events are
    # the stream's plus the back-fill's.
    (records,) = [line for line in lines if line.startswith("  stream records ")]
    assert " changes - " in records, said
    kafka = re.search(
        r"events in Kafka\s*: ([\d,]+) = ([\d,]+) from the stream \+ ([\d,]+)", summary_text
    )
    assert kafka is not None, said
    total, stream, backfill = (int(g.replace(",", "")) for g in kafka.groups())
    assert total == stream + backfill
    assert stream == summary_number(summary_text, "stream records")


def test_demo_on_the_tansu_fallback_broker_converges_then_verify_finds_one_corrupted_row(
    tmp_path: Path, dynamodb_endpoint: str, unique_name: Any
) -> None:
    """What `make demo` runs on a machine without Java 17+ (here chosen with --broker tansu),
    on the session's moto, whose table outlives the demo for `verify` afterwards."""
    table = unique_name("demo_tansu")
    opts = DemoOptions(
        items=300,
        write_rate=50,
        min_write_s=2,
        partitions=2,
        timeout_s=180,
        workdir=tmp_path,
        table=table,
        endpoint_url=dynamodb_endpoint,
        broker="tansu",
    )
    said: list[str] = []
    result = run_demo(opts, report=said.append)
    text = summary(result)
    assert result.ok, text
    assert "0 differences" in text
    assert result.verify is not None and result.verify.differences == 0
    assert result.verify.source_items > 0
    assert result.events >= opts.items
    assert result.writer.total > 0
    started = [line for line in said if line.startswith("started ")]
    assert len(started) == 1, said
    assert started[0].startswith("started Tansu, the embedded pip-installed broker, on 127.0.0.1:")
    assert "--broker tansu" in started[0]

    # Corrupt exactly one live row of the target, then verify through the CLI.
    db = sqlite3.connect(tmp_path / "target.db")
    pk, sk, item_json = db.execute(
        f'SELECT customer_id, order_id, item FROM "{table}" WHERE deleted = 0 LIMIT 1'
    ).fetchone()
    item = attrs.loads(item_json)
    item["status"] = {"S": "CORRUPTED"}
    db.execute(
        f'UPDATE "{table}" SET item = ? WHERE customer_id = ? AND order_id = ?',
        (attrs.dumps(item), pk, sk),
    )
    db.commit()
    db.close()

    env = {**os.environ, "AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo"}
    verify = subprocess.run(
        [
            sys.executable,
            "-m",
            "ddb_bridge.cli.main",
            "verify",
            "--table",
            table,
            "--config",
            str(tmp_path / "bridge.toml"),
            "--recheck-delay-s",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert "1 differences" in verify.stdout
    listed = [line.strip() for line in verify.stdout.splitlines() if line.startswith("    ")]
    assert listed == [
        f'different {{"customer_id":{{"S":"{pk}"}},"order_id":{{"N":"{sk}"}}}}: status'
    ]
    assert "missing in target    : 0" in verify.stdout
    assert "only in target       : 0" in verify.stdout


def _children(pid: int) -> list[int]:
    """Every live descendant of `pid`, from /proc (the demo's processes and services)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended while we looked
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@KEPT_UP_GROUP
def test_demo_keep_up_holds_the_stack_while_its_commands_work_as_printed_then_sigterm_stops_it(
    kept_up: KeptUp,
) -> None:
    """`ddb-bridge demo --keep-up` (the run the test above read): each command it prints runs
    as printed, from another directory, with no AWS variables set; the dashboard answers;
    SIGTERM stops every process it started and removes its temporary work directory."""
    demo, lines, said, env = kept_up.proc, kept_up.lines, kept_up.said, kept_up.env
    assert demo.poll() is None, said()
    text = said()
    summary_at = lines.index("ddb-bridge demo summary")
    assert [line for line in lines if "differences" in line] == ["0 differences"], text
    assert "while it runs" not in "\n".join(lines[summary_at:]), text
    workdir = Path(lines[0].split()[2])
    assert lines[0].startswith(f"working in {workdir} (removed at the end"), text
    assert workdir.is_dir()

    hints = lines[lines.index("0 differences") + 1 :]
    pairs = [line.strip().split(" : ", 1) for line in hints if " : " in line]
    tried = {what.strip(): command.strip() for what, command in pairs}
    assert set(tried) == {"live dashboard", "where it stands", "verify again", "stop"}, text
    assert tried["stop"] == f"Ctrl-C, or kill -TERM {demo.pid}"
    with urllib.request.urlopen(tried["live dashboard"] + "api/status", timeout=30) as resp:
        api = json.loads(resp.read())
    assert api["report"]["tables"][0]["targets"][0]["lag"] == 0

    elsewhere = kept_up.workdir_parent / "another-terminal"
    elsewhere.mkdir()
    for what in ("where it stands", "verify again"):
        done = subprocess.run(
            ["sh", "-c", tried[what]],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, f"{what}: {tried[what]}\n{done.stdout}{done.stderr}"
        assert "Traceback" not in done.stderr
    assert "0 differences" in done.stdout  # the last one run: verify

    kids = _children(demo.pid)
    assert len(kids) >= 5, kids  # moto, the broker, stream, apply, the dashboard
    demo.send_signal(signal.SIGTERM)
    assert demo.wait(120) == 0, said()
    kept_up.reader.join(10)  # the rest of its output
    assert lines[-1] == "stopping every process and service", said()
    wait_until(lambda: not any(_alive(pid) for pid in kids), 30, "every child to end")
    assert not workdir.exists()
