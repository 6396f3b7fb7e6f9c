"""What the demo tells a newcomer to type works as printed, in a shell where `.venv/bin` is
not on PATH (after `make demo` nothing activated the virtual environment)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ddb_bridge.demo.orchestrator import DemoOptions, run_demo

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HINT = "where it stands, from another terminal while the demo runs: "


class _Seen(Exception):
    """Raised by the report callback once the hint has been tried: the demo stops there."""


def test_the_status_command_the_demo_prints_runs_as_printed(
    tmp_path: Path, dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any
) -> None:
    opts = DemoOptions(
        items=50,
        write_rate=20,
        min_write_s=1,
        partitions=1,
        timeout_s=120,
        workdir=tmp_path,
        table=unique_name("hint"),
        endpoint_url=dynamodb_endpoint,
        bootstrap_servers=kafka_bootstrap,
    )
    # A newcomer's shell: the system PATH only, no AWS or bridge variables of the test run.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DDB_BRIDGE"))}
    env["PATH"] = "/usr/bin:/bin"
    tried: list[subprocess.CompletedProcess[str]] = []

    def report(line: str) -> None:
        if line.startswith(HINT):
            command = line[len(HINT) :]
            tried.append(
                subprocess.run(
                    command, shell=True, env=env, capture_output=True, text=True, timeout=120
                )
            )
            raise _Seen

    with pytest.raises(_Seen):
        run_demo(opts, report=report)
    assert len(tried) == 1
    done = tried[0]
    out = done.stdout + done.stderr
    # 0 ready, 1 needs attention: `status` answered. 127 is the shell's "not found".
    assert done.returncode in (0, 1), f"{done.args!r} exited {done.returncode}:\n{out}"
    assert "Traceback" not in out, out
