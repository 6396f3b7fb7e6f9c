"""The fault-injection suite: the real commands under SIGKILLs, a broker outage, a PostgreSQL
outage and a poison record, checked against the bridge's own records (tests/chaos/).

`make test` runs the reduced size (1,500 writes over 300 keys); `make chaos` the full size
(CHAOS_WRITES / CHAOS_KEYS / CHAOS_RATE / CHAOS_KILLS, CHAOS_SEED to re-run a seed,
CHAOS_REPORT for the JSON summary).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.chaos.scenario import ChaosOptions, run

FULL = int(os.environ.get("CHAOS_WRITES") or 0) > 5_000

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.e2e,
    pytest.mark.integration,
    pytest.mark.slow,
    # The reduced run takes about 4 minutes on two idle cores; the ceiling leaves room for a
    # loaded machine (a broker restart took over two minutes at a load average of 45).
    pytest.mark.timeout(3600 if FULL else 900),
]


def test_no_write_lost_no_position_ahead_under_kills_outages_and_a_poison_record(
    dynamodb_endpoint: str, tmp_path: Path
) -> None:
    opts = ChaosOptions.from_env(workdir=tmp_path / "chaos")
    report = run(opts, dynamodb_endpoint)
    text = report.text()
    print(text)
    out = os.environ.get("CHAOS_REPORT")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        body = {"seed": report.seed, "rerun": report.rerun, "failures": report.failures}
        Path(out).write_text(json.dumps({**body, **report.summary}, indent=2, default=str))
    assert not report.failures, text
