"""The command line as a shell user meets it: closed pipes, unknown variables, help text."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.runtime.config_file import write_config

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DDB_BRIDGE")}
    env.update(extra)
    return env


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ddb_bridge.cli.main", *args],
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args",
    [["config", "show"], ["--help"], ["backfill", "--help"], ["config", "show", "--help"]],
    ids=["config-show", "help", "backfill-help", "config-show-help"],
)
def test_a_closed_pipe_exits_quietly_with_the_sigpipe_status(
    args: list[str], tmp_path: Path
) -> None:
    """`ddb-bridge config show | head -1`: the reader is gone before anything is written."""
    config = write_config(tmp_path / "bridge.toml", kafka={"bootstrap_servers": "b:9092"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "ddb_bridge.cli.main", *args, "--config", str(config)]
        if args[-1] != "--help"
        else [sys.executable, "-m", "ddb_bridge.cli.main", *args],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # as `head` does once it has its line; the child is still starting
    err = proc.stderr.read().decode()
    code = proc.wait(60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    # Nothing but `config show`'s note of the file it read (on stderr, which is still open).
    assert err == ("" if args[-1] == "--help" else f"ddb-bridge: settings from {config}\n")
    if args[-1] == "--help":
        # argparse itself swallows the failed write of a help text, then exits 0.
        assert code in (0, 141)
    else:
        assert code == 141  # 128 + SIGPIPE, what a shell reports for `yes | head`


def test_a_real_head_sees_the_first_line_and_no_traceback(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text("")
    result = subprocess.run(
        f"{sys.executable} -m ddb_bridge.cli.main config show --config {config} | head -1",
        shell=True,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout == "{\n"
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


@pytest.mark.parametrize(
    "variable",
    [
        "DDB_BRIDGE__KAFKA__BOOTSTRAP_SERVER",  # misspelt key in a known section
        "DDB_BRIDGE__KAFKAA__BOOTSTRAP_SERVERS",  # misspelt section: pydantic ignored it
        "DDB_BRIDGE__PARTITIONS",  # key without its section
        "DDB_BRIDGE__TARGETS__LOCAL__PATHH",  # unknown key of a named target
        "DDB_BRIDGE__STREAM__LEASE_TABLE__X",  # below a plain value
    ],
)
def test_unknown_environment_variables_are_configuration_errors(
    variable: str, tmp_path: Path
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text("")
    result = cli("config", "show", "--config", str(config), env=clean_env(**{variable: "1"}))
    assert result.returncode == 2, result.stdout + result.stderr
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


def test_known_environment_variables_still_apply(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('[targets.pg]\ntype = "postgres"\n')
    env = clean_env(
        DDB_BRIDGE__KAFKA__BOOTSTRAP_SERVERS="broker-7:9092",
        DDB_BRIDGE__KAFKA__EXTRA__CLIENT_ID="free-form-map-key",
        DDB_BRIDGE__TARGETS__PG__SCHEMA_NAME="bridge",
        ddb_bridge__backfill__segments="3",  # case-insensitive, as pydantic-settings reads it
    )
    result = cli("config", "show", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert '"bootstrap_servers": "broker-7:9092"' in result.stdout
    assert '"schema_name": "bridge"' in result.stdout
    assert '"segments": 3' in result.stdout


def test_help_and_package_cite_no_document_users_do_not_have() -> None:
    """DESIGN.md is not shipped: neither help text nor anything in the package may cite it."""
    outputs = [cli("--help").stdout]
    commands = ["apply", "backfill", "config", "demo", "init", "schema", "stream", "verify"]
    outputs += [cli(command, "--help").stdout for command in commands]
    for text in outputs:
        assert text.strip(), "a command printed no help"
        assert not re.search(r"DESIGN|§", text), text
    cited = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("bridge", "connectors", "ddb_bridge", "schemas")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.suffix in (".py", ".avsc", ".toml")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"DESIGN\b|§", line)
    ]
    assert cited == []
