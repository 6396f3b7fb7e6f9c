"""A command imports what it uses, not the drivers of every other command: each launch of a
daemon paid ~0.3 s of CPU for them, hundreds of times in a test run and at every restart."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("boto3", "aiokafka", "faust", "confluent_kafka", "rich", "cassandra", "psycopg")

# What each run may not import (the rest of HEAVY it needs or may need).
NOT_IMPORTED = {
    ("config", "show"): HEAVY,
    ("stream", "--help"): ("aiokafka", "faust", "rich", "cassandra", "psycopg"),
    ("backfill", "--help"): ("aiokafka", "faust", "cassandra", "psycopg"),
    ("status", "--help"): ("faust", "cassandra", "psycopg"),
}

PROBE = """
import contextlib, io, json, sys
from ddb_bridge.cli.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize("argv", list(NOT_IMPORTED), ids=" ".join)
def test_a_command_does_not_import_the_drivers_of_the_others(argv: tuple[str, ...]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    imported = set(json.loads(done.stdout))
    assert "ddb_bridge" in imported
    assert not imported & set(NOT_IMPORTED[argv]), sorted(imported & set(NOT_IMPORTED[argv]))
