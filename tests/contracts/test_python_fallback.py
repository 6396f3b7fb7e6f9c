"""The unit tests of what the compiled core stands in for (bridge/codec/_core.c), run once
more with it switched off (DDB_BRIDGE_PURE_PYTHON=1), so the Python fallback cannot rot; the
fast == slow contract (test_fast_slow.py) compares the two paths directly.

A test of the main run rather than a second pytest run after it: it keeps a core busy while
the rest of the suite waits on brokers and daemons, instead of adding a minute at the end.
It draws a fifth of each hypothesis test's examples (tests/support/fallback_examples.py says
why that is enough)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.codec import compiled

REPO = Path(__file__).resolve().parents[2]

# Add the unit tests of any module the compiled core takes over.
FALLBACK_TESTS = [
    "tests/unit/test_attrs.py",
    "tests/unit/test_attrs_inline_screens.py",
    "tests/unit/test_avro_codec.py",
    "tests/unit/test_export_passthrough.py",
    "tests/unit/test_stream_wire_records.py",
    "tests/unit/test_backfill_units.py",
    "tests/unit/test_apply_text_images.py",
    "tests/unit/test_publish_batch.py",
    "tests/unit/test_compiled_core.py",
    "tests/unit/test_stream_text_pages.py",
    "tests/unit/test_export_text_lines.py",
    "tests/unit/test_apply_pipeline.py",
]


@pytest.mark.timeout(1200)
def test_the_core_modules_unit_tests_pass_on_the_python_fallback() -> None:
    # Not this run's pytest variables: the run below is a session of its own, in one process.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env[compiled.PURE_PYTHON_ENV] = "1"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    argv += ["-p", "tests.support.fallback_examples"]  # a fifth of each test's examples
    done = subprocess.run(
        [*argv, *FALLBACK_TESTS],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1100,
    )
    said = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, said
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed and int(passed.group(1)) >= len(FALLBACK_TESTS), said
    assert " skipped" not in done.stdout.splitlines()[-1], said


def test_every_listed_file_exists() -> None:
    missing = [name for name in FALLBACK_TESTS if not (REPO / name).is_file()]
    assert not missing, missing
