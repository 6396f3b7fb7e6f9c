"""The Java KCL MultiLangDaemon in tests: start it in its own process group, kill it whole."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from connectors.sources.stream.kcl import launcher
from connectors.sources.stream.kcl.properties import KclTransportName, daemon_command, jars_dir
from tests.support.daemon import bridge_argv


def require_daemon() -> None:
    """Skip, naming what is missing, when the daemon cannot run here."""
    if shutil.which("java") is None:
        pytest.skip("Java (17+) is not on PATH: the KCL MultiLangDaemon cannot run")
    if jars_dir() is None:
        pytest.skip("the KCL's jars are missing: pip install '.[kcl]' in the clone (amazon-kclpy)")


def require_streams_daemon() -> None:
    """Skip, naming what is missing, when the DynamoDB Streams daemon cannot be built or run;
    else build it (Maven, once: the jars are cached)."""
    require_daemon()
    if not launcher.jars_cached() and shutil.which("mvn") is None:
        pytest.skip("Maven is not on PATH: the DynamoDB Streams KCL daemon cannot be built")
    launcher.ensure_jars()


def _kcl_properties(env: dict[str, str], config: Path, table: str, out: Path, *args: str) -> Path:
    """`ddb-bridge kcl properties --table TABLE --output OUT ARGS...` through the real CLI."""
    argv = bridge_argv("kcl properties", config, "--table", table, "--output", str(out), *args)
    subprocess.run(argv, env=env, check=True, timeout=60)
    return out


def write_streams_properties(
    tmp: Path, env: dict[str, str], config: Path, table: str, *args: str
) -> Path:
    """`ddb-bridge kcl properties --transport dynamodb-streams` through the real CLI."""
    out = tmp / f"{table}.streams.properties"
    return _kcl_properties(env, config, table, out, "--transport", "dynamodb-streams", *args)


def write_properties(
    tmp: Path, env: dict[str, str], config: Path, table: str, stream: str, *args: str
) -> Path:
    """`ddb-bridge kcl properties` through the real CLI."""
    out = tmp / f"{table}.properties"
    return _kcl_properties(env, config, table, out, "--stream-name", stream, *args)


class Daemon:
    """One MultiLangDaemon run; its log (with the processors' stderr) in `log_path`."""

    def __init__(
        self,
        properties: Path,
        env: dict[str, str],
        log_path: Path,
        transport: KclTransportName = "kinesis",
    ) -> None:
        self.log_path = log_path
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed in kill()
        # moto reads JSON only: the Java SDK's Kinesis client would send CBOR.
        command = daemon_command(str(properties), transport=transport)
        command.insert(1, "-Daws.cborEnabled=false")
        self.started = time.monotonic()
        # Its own session: kill() takes the JVM and every processor it started at once.
        self.proc = subprocess.Popen(
            command,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """kill -9 of the whole process group (the JVM and its python children)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        # The children are gone with the group; wait until none is left of it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _group_alive(self.proc.pid):
            time.sleep(0.05)
        self.log.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def kcl_lease_checkpoints(ddb: Any, kcl_lease_table: str) -> dict[str, str]:
    """Each shard's checkpoint in the KCL's own lease table."""
    items = ddb.scan(TableName=kcl_lease_table, ConsistentRead=True)["Items"]
    return {
        i["leaseKey"]["S"]: i["checkpoint"]["S"]
        for i in items
        if "checkpoint" in i and i["leaseKey"]["S"].startswith("shardId-")
    }
