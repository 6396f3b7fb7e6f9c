"""`ddb-bridge backfill --processes N` through the real command line, moto and the broker.

Several processes of one command share one run's parts: they publish exactly the events one
process publishes (count, keys, versions, images); a helper process killed with -9 leaves
its part claimed and the command's other process finishes it once the lease expires; a bad
line fails the command naming the file and line, whichever process read it; and no process
of the command outlives it.
"""

from __future__ import annotations

import gzip
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bridge.codec.avro import EventCodec
from bridge.model import attrs
from bridge.model.errors import PermanentError
from connectors.sources.backfill.runs import RunStore
from tests.backfill_helpers import create_table, write_items
from tests.export_layout import build_export
from tests.kafka_helpers import consume_all, drain_more
from tests.samples import sample_item

pytestmark = pytest.mark.integration

MARK = "DDB_BRIDGE_TEST_PROCESS_MARK"


def write_config(
    path: Path, endpoint: str, bootstrap: str, lease_table: str, tables: list[str], **extra: str
) -> Path:
    text = (
        f'[aws]\nendpoint_url = "{endpoint}"\n'
        f'[kafka]\nbootstrap_servers = "{bootstrap}"\npartitions = 4\nreplication_factor = 1\n'
        f'[stream]\nlease_table = "{lease_table}"\nlease_duration_ms = 6000\n'
        "[backfill]\nskew_margin_s = 0\n"
    )
    for name, value in extra.items():
        text += f"{name} = {value}\n"
    for table in tables:
        text += (
            f'[[tables]]\nname = "{table}"\nhash_key = "pk"\nrange_key = "sk"\n'
            'range_key_type = "N"\n'
        )
    path.write_text(text)
    return path


def cli(config: Path, table: str, *options: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ddb_bridge.cli.main",
        "backfill",
        "--config",
        str(config),
        "--table",
        table,
        "--no-stream",
        "--no-progress",
        *options,
    ]


def marked_env(mark: str) -> dict[str, str]:
    """The test's environment, plus a mark every process of the command inherits."""
    return {**os.environ, MARK: mark}


def processes_marked(mark: str) -> list[int]:
    """Pids of live processes carrying `mark` in their environment (the command's own and
    every process it started)."""
    found = []
    needle = f"{MARK}={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def assert_none_left(mark: str) -> None:
    deadline = time.monotonic() + 5
    while processes_marked(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_marked(mark) == [], "a process of the command outlived it"


def run_cli(args: list[str], timeout: float = 180) -> tuple[int, str, str]:
    mark = uuid.uuid4().hex
    done = subprocess.run(args, capture_output=True, env=marked_env(mark), timeout=timeout)
    assert_none_left(mark)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def published(out: str) -> int:
    match = re.search(r"items published\s+([\d,]+)", out)
    assert match is not None, out
    return int(match.group(1).replace(",", ""))


def events(bootstrap: str, topic: str, n: int) -> Counter[tuple[Any, ...]]:
    """What a topic holds, table name aside: (key, op, origin, version, image) per record."""
    codec = EventCodec()
    out: Counter[tuple[Any, ...]] = Counter()
    for msg in consume_all(bootstrap, topic, n):
        event = codec.decode(msg.value())
        image = attrs.dumps(event.new_image) if event.new_image is not None else None
        out[(msg.key(), event.op, event.origin, event.version, image)] += 1
    return out


def finished_by(ddb: Any, lease_table: str, table: str, run_id: str) -> dict[int, str | None]:
    store = RunStore(ddb, lease_table, table, "observer")
    run = store.load_run(run_id)
    assert run is not None
    return {p.index: p.finished_by for p in store.parts(run)}


def run_id_of(out: str) -> str:
    match = re.search(r"run (\S+) \(", out)
    assert match is not None, out
    return match.group(1)


def test_export_two_processes_publish_what_one_process_does(
    tmp_path: Path, dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any, ddb_client: Any
) -> None:
    # Enough lines per file that the second process is up before the first has read them all.
    sizes = [4000, 0, 4000, 4000, 4000, 4000, 4000, 4000]
    partitions, start = [], 0
    for size in sizes:
        partitions.append([{"Item": sample_item(i, pad=20)} for i in range(start, start + size)])
        start += size
    folder = build_export(tmp_path / "export", partitions, compresslevel=1)
    one, two, lease_table = unique_name("one"), unique_name("two"), unique_name("leases")
    config = write_config(
        tmp_path / "bridge.toml", dynamodb_endpoint, kafka_bootstrap, lease_table, [one, two]
    )

    code1, out1, err1 = run_cli(
        cli(config, one, "--from", "export", "--dir", str(folder.root), "--processes", "1")
    )
    code2, out2, err2 = run_cli(
        cli(config, two, "--from", "export", "--dir", str(folder.root), "--processes", "2")
    )

    assert code1 == 0, err1[-3000:]
    assert code2 == 0, err2[-3000:]
    total = sum(sizes)
    assert published(out1) == published(out2) == total
    assert "process 1" not in out1  # one process: the summary is today's
    assert re.search(r"process 2 \(pid\s+\d+\)", out2), out2
    got1 = events(kafka_bootstrap, f"ddb.{one}.changes", total)
    got2 = events(kafka_bootstrap, f"ddb.{two}.changes", total)
    assert sum(got1.values()) == sum(got2.values()) == total
    assert max(got2.values()) == 1  # no record twice
    assert got1 == got2
    # Both processes of the command read files.
    owners = set(finished_by(ddb_client, lease_table, two, run_id_of(out2)).values())
    assert len(owners) == 2, owners
    assert any(o is not None and o.endswith("/p2") for o in owners), owners


@pytest.fixture(scope="module")
def scan_table(dynamodb_endpoint: str) -> tuple[str, list[dict[str, Any]]]:
    import boto3

    def client() -> Any:
        return boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1")

    name = f"procscan{uuid.uuid4().hex[:8]}"
    create_table(client(), name, stream=False)
    items = [sample_item(i, pad=10) for i in range(600)]
    write_items(client, name, [attrs.to_boto(it) for it in items])
    return name, items


def test_scan_two_processes_publish_what_one_process_does(
    tmp_path: Path,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    ddb_client: Any,
    scan_table: Any,
) -> None:
    table, items = scan_table
    lease_table = unique_name("leases")
    config = write_config(
        tmp_path / "bridge.toml", dynamodb_endpoint, kafka_bootstrap, lease_table, []
    )
    options = ["--from", "scan", "--segments", "4", "--page-size", "25", "--new-run"]
    code1, out1, err1 = run_cli(cli(config, table, *options, "--processes", "1"))
    # A read budget (the command's, shared by its processes) keeps the first process's
    # segments busy long enough for the second process to start and take its share.
    slow = ["--max-items-per-second", "60"]
    code2, out2, err2 = run_cli(cli(config, table, *options, *slow, "--processes", "2"))
    assert code1 == 0, err1[-3000:]
    assert code2 == 0, err2[-3000:]
    assert published(out1) == published(out2) == len(items)

    # Both runs went to the table's topic: split them by version (one per run).
    codec = EventCodec()
    by_version: dict[int, Counter[tuple[Any, ...]]] = {}
    for msg in consume_all(kafka_bootstrap, f"ddb.{table}.changes", 2 * len(items)):
        event = codec.decode(msg.value())
        image = attrs.dumps(event.new_image) if event.new_image is not None else None
        by_version.setdefault(event.version, Counter())[
            (msg.key(), event.op, event.origin, image)
        ] += 1
    assert len(by_version) == 2
    first, second = by_version.values()
    assert sum(first.values()) == sum(second.values()) == len(items)
    assert max(second.values()) == 1
    assert first == second
    owners = set(finished_by(ddb_client, lease_table, table, run_id_of(out2)).values())
    assert len(owners) == 2, (owners, out2, err2[-3000:])


def test_killed_helper_process_part_is_finished_by_the_run(
    tmp_path: Path,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    ddb_client: Any,
    scan_table: Any,
) -> None:
    table, items = scan_table
    lease_table = unique_name("leases")
    config = write_config(
        tmp_path / "bridge.toml", dynamodb_endpoint, kafka_bootstrap, lease_table, []
    )
    worker = f"w{uuid.uuid4().hex[:6]}"
    mark = uuid.uuid4().hex
    errors = tmp_path / "stderr.txt"
    args = cli(
        config,
        table,
        "--from",
        "scan",
        "--segments",
        "4",
        "--page-size",
        "10",
        "--max-items-per-second",
        "40",
        "--new-run",
        "--processes",
        "2",
        "--worker-id",
        worker,
    )
    with errors.open("wb") as err_file:
        command = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=err_file, env=marked_env(mark)
        )
        try:
            helper_pid, killed_part = None, None
            deadline = time.monotonic() + 60
            while killed_part is None and time.monotonic() < deadline:
                assert command.poll() is None, errors.read_text()[-3000:]
                found = re.search(r"started back-fill process.* pid=(\d+)", errors.read_text())
                if found:
                    helper_pid = int(found.group(1))
                    store = RunStore(ddb_client, lease_table, table, "observer")
                    run_id = store.current_run("scan")
                    run = store.load_run(run_id) if run_id else None
                    for part in store.parts(run) if run else []:
                        # Held by the helper (and read into for a moment): kill it there.
                        if part.owner == f"{worker}/p2" and not part.done:
                            time.sleep(1.5)
                            killed_part = part
                            break
                time.sleep(0.1)
            assert helper_pid is not None and killed_part is not None, errors.read_text()[-3000:]
            os.kill(helper_pid, signal.SIGKILL)
            out, _ = command.communicate(timeout=120)
        finally:
            if command.poll() is None:
                command.kill()
                command.wait(10)
    err = errors.read_text()
    assert command.returncode == 0, err[-3000:]
    text = out.decode()
    assert ": complete" in text, text
    assert "killed by signal 9" in text and "killed by signal 9" in err
    assert_none_left(mark)

    store = RunStore(ddb_client, lease_table, table, "observer")
    run = store.load_run(run_id_of(text))
    assert run is not None and run.state == "DONE"
    parts = {p.index: p for p in store.parts(run)}
    taken = parts[killed_part.index]
    # Taken over by the command's own process once the helper's lease expired.
    assert taken.done and taken.finished_by == worker
    assert taken.claims >= 2
    assert sum(p.items for p in parts.values()) == len(items)

    codec = EventCodec()
    records = [
        m
        for m in drain_more(kafka_bootstrap, f"ddb.{table}.changes", timeout_s=4)
        if codec.decode(m.value()).version == run.version
    ]
    # Every item is there (what the helper published after its last cursor may be twice).
    assert {m.key() for m in records} == {
        attrs.canonical_key({"pk": it["pk"], "sk": it["sk"]}) for it in items
    }
    assert len(records) >= len(items)


def test_bad_line_fails_the_command_naming_file_and_line(
    tmp_path: Path, dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any
) -> None:
    partitions = [
        [{"Item": sample_item(i, pad=20)} for i in range(f * 3000, (f + 1) * 3000)]
        for f in range(6)
    ]
    folder = build_export(tmp_path / "export", partitions, compresslevel=1)
    # Line 1234 of the last file is not JSON (checksums refreshed: the file is as listed).
    bad = folder.data_path(5)
    lines = gzip.decompress(bad.read_bytes()).split(b"\n")
    lines[1233] = b'{"Item": {"pk": '
    bad.write_bytes(gzip.compress(b"\n".join(lines)))
    folder.refresh_checksum(5)
    table = unique_name("bad")
    config = write_config(
        tmp_path / "bridge.toml",
        dynamodb_endpoint,
        kafka_bootstrap,
        unique_name("leases"),
        [table],
    )
    code, _, err = run_cli(
        cli(config, table, "--from", "export", "--dir", str(folder.root), "--processes", "2")
    )
    assert code == 1, err[-3000:]
    key = folder.files[5]["dataFileS3Key"]
    assert f"ddb-bridge: error: {key} line 1234: not JSON" in err, err[-3000:]


def wait_until_both_hold_parts(
    command: subprocess.Popen[bytes],
    errors: Path,
    ddb: Any,
    lease_table: str,
    table: str,
    worker: str,
) -> list[Any]:
    """Poll the lease table until the command's own process and its helper each hold a
    part; returns the parts then (after a moment, so that both have read into them)."""
    deadline = time.monotonic() + 60
    store = RunStore(ddb, lease_table, table, "observer")
    while time.monotonic() < deadline:
        assert command.poll() is None, errors.read_text()[-3000:]
        try:
            run_id = store.current_run("scan")
        except PermanentError:
            run_id = None  # the lease table does not exist yet
        run = store.load_run(run_id) if run_id else None
        parts = store.parts(run) if run else []
        busy = {p.owner for p in parts if p.owner and not p.done}
        if {worker, f"{worker}/p2"} <= busy:
            time.sleep(1.5)
            return parts
        time.sleep(0.1)
    raise AssertionError("both processes never held a part: " + errors.read_text()[-3000:])


def test_sigterm_stops_every_process_and_kill_9_leaves_none(
    tmp_path: Path,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    ddb_client: Any,
    scan_table: Any,
) -> None:
    table, items = scan_table
    lease_table = unique_name("leases")
    config = write_config(
        tmp_path / "bridge.toml", dynamodb_endpoint, kafka_bootstrap, lease_table, []
    )
    worker = f"w{uuid.uuid4().hex[:6]}"
    args = cli(
        config,
        table,
        "--from",
        "scan",
        "--segments",
        "4",
        "--page-size",
        "10",
        "--max-items-per-second",
        "40",
        "--processes",
        "2",
        "--worker-id",
        worker,
    )
    store = RunStore(ddb_client, lease_table, table, "observer")

    # SIGTERM: every process finishes its page, saves its cursor and hands its part back.
    mark, errors = uuid.uuid4().hex, tmp_path / "first.txt"
    with errors.open("wb") as err_file:
        command = subprocess.Popen(
            [*args, "--new-run"], stdout=subprocess.PIPE, stderr=err_file, env=marked_env(mark)
        )
        try:
            wait_until_both_hold_parts(command, errors, ddb_client, lease_table, table, worker)
            command.send_signal(signal.SIGTERM)
            out, _ = command.communicate(timeout=60)
        finally:
            if command.poll() is None:
                command.kill()
    assert command.returncode == 130, errors.read_text()[-3000:]
    assert "INCOMPLETE" in out.decode()
    assert_none_left(mark)
    run = store.load_run(run_id_of(out.decode()))
    assert run is not None
    after_stop = store.parts(run)
    assert not all(p.done for p in after_stop)
    assert all(p.owner is None for p in after_stop)  # handed back, not left to expire
    assert any(p.cursor for p in after_stop if not p.done)

    # kill -9 of the command ends its helper too (the kernel kills it with its parent).
    mark, errors = uuid.uuid4().hex, tmp_path / "second.txt"
    with errors.open("wb") as err_file:
        command = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=err_file, env=marked_env(mark)
        )
        try:
            wait_until_both_hold_parts(command, errors, ddb_client, lease_table, table, worker)
            command.send_signal(signal.SIGKILL)
            command.wait(10)
        finally:
            if command.poll() is None:
                command.kill()
    assert_none_left(mark)

    # The run resumes (same worker id: its parts are taken at once) and completes.
    budget = args.index("--max-items-per-second")
    code, out3, err3 = run_cli(args[:budget] + args[budget + 2 :])
    assert code == 0, err3[-3000:]
    assert ": complete" in out3
    final = store.parts(run)
    assert all(p.done for p in final)
    assert sum(p.items for p in final) == len(items)
    codec = EventCodec()
    keys = {
        m.key()
        for m in drain_more(kafka_bootstrap, f"ddb.{table}.changes", timeout_s=4)
        if codec.decode(m.value()).version == run.version
    }
    assert keys == {attrs.canonical_key({"pk": it["pk"], "sk": it["sk"]}) for it in items}


def test_one_part_is_read_by_one_process_and_the_command_says_so(
    tmp_path: Path,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    scan_table: Any,
) -> None:
    table, items = scan_table
    config = write_config(
        tmp_path / "bridge.toml", dynamodb_endpoint, kafka_bootstrap, unique_name("leases"), []
    )
    code, out, err = run_cli(
        cli(config, table, "--from", "scan", "--segments", "1", "--new-run", "--processes", "2")
    )
    assert code == 0, err[-3000:]
    assert published(out) == len(items)
    assert "1 part of the run left to read: 1 process, not 2" in err
    assert "process 2" not in out and "started back-fill process" not in err
