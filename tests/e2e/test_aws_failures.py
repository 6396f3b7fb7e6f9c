"""No command prints a traceback when AWS cannot be used: no credentials, an endpoint that
does not answer, or a request AWS refuses. Each says once, in one line, what failed and what
to do, and exits with the documented code (2 configuration, 75 unreachable, 1 refused)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bridge.runtime.config_file import write_config
from ddb_bridge.cli.helptext import EXIT_CONFIG, EXIT_UNAVAILABLE
from ddb_bridge.services.processes import free_port
from tests.support.daemon import run_bridge

pytestmark = [pytest.mark.e2e]

# Every command that calls AWS, with the arguments it needs.
COMMANDS = {
    "schema cql": ["schema", "cql", "--table", "{table}"],
    "backfill scan": ["backfill", "--table", "{table}", "--from", "scan", "--no-progress"],
    "backfill export": [
        "backfill", "--table", "{table}", "--from", "export", "--no-progress",
        "--s3-uri", "s3://no-bucket/p/AWSDynamoDB/01234567890123-abcdefgh/",
    ],
    "backfill start-export": [
        "backfill", "--table", "{table}", "--from", "export", "--no-progress",
        "--start-export", "--s3-bucket", "no-bucket",
    ],
    "stream": ["stream"],
    "stream kinesis": ["stream"],
    "status": ["status"],
    "verify": ["verify", "--table", "{table}", "--target", "local"],
}  # fmt: skip

# What is wrong with AWS, the exit code, and a word the one line must hold. The refused
# request is for a table that does not exist: the config names it, a configuration error.
FAILURES = {
    "no credentials": (EXIT_CONFIG, "credentials"),
    "endpoint does not answer": (EXIT_UNAVAILABLE, "run it again"),
    "request refused": (EXIT_CONFIG, "{table}"),
}


def _run(
    command: str, failure: str, tmp_path: Path, endpoint: str, kafka: str, table: str
) -> tuple[int, str]:
    if failure == "endpoint does not answer":
        endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    stream: dict[str, Any] = {"lease_table": f"{table}-leases"}
    if command == "stream kinesis":
        stream |= {"transport": "kinesis", "stream_name": f"{table}-changes"}
    config = write_config(
        tmp_path / "bridge.toml",
        aws={"region": "us-east-1", "endpoint_url": endpoint},
        kafka={"bootstrap_servers": kafka, "partitions": 1, "replication_factor": 1},
        stream=stream,
        # No [[tables]] key schema: every command must ask DynamoDB.
        tables=[{"name": table}],
        targets={"local": {"type": "sqlite", "path": tmp_path / "t.db"}},
        metrics={"port": 0},
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "DDB_BRIDGE__")) or k == "AWS_CA_BUNDLE"
    }
    # No credential anywhere in the chain: no ~/.aws, no instance metadata service.
    env |= {
        "HOME": str(tmp_path),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    if failure != "no credentials":
        env |= {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}
    argv = [word.format(table=table) for word in COMMANDS[command]]
    done = run_bridge(argv, config, env=env, cwd=tmp_path, timeout_s=150)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_aws_failure_is_one_line_and_the_documented_exit_code(
    command: str,
    failure: str,
    tmp_path: Path,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
) -> None:
    # A table that does not exist: the request AWS refuses (moto answers ResourceNotFound).
    table = unique_name("absent")
    code, out = _run(command, failure, tmp_path, dynamodb_endpoint, kafka_bootstrap, table)
    expected, word = FAILURES[failure]
    assert "Traceback" not in out, out
    assert code == expected, f"exit {code}, expected {expected}:\n{out}"
    errors = [line for line in out.splitlines() if line.startswith("ddb-bridge: ")]
    assert len(errors) == 1, f"the failure must be said once, in one line:\n{out}"
    assert word.format(table=table) in errors[0], out
    # Said once: no log line repeats it above the error line.
    detail = errors[0].split(": ", 2)[-1][:40]
    assert sum(detail in line for line in out.splitlines()) == 1, out
