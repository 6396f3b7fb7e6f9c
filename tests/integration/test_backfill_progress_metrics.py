"""Back-fill progress on /metrics while a back-fill runs: items published and parts done of
all, from the library (in-process registry) and from the command with helper processes
(scraped over HTTP, the helpers' counts folded in). A read budget keeps each run going for
a few seconds, so the figures are seen mid-run, not only at the end."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.model import attrs
from bridge.runtime.metrics import REGISTRY
from connectors.sources.backfill.run_plan import BackfillRequest
from connectors.sources.backfill.runner import run_backfill
from connectors.sources.backfill.scan import ScanBackfill
from tests.backfill_helpers import backfill_settings, create_table, say_nothing, write_items
from tests.integration.test_backfill_processes import cli, published, write_config
from tests.metrics_helpers import free_port, sample
from tests.samples import sample_item

pytestmark = pytest.mark.integration

N_ITEMS = 300
# By their exported names: what a dashboard and an alert query.
BACKFILL_ITEMS = "ddb_bridge_backfill_items_published_total"
BACKFILL_PARTS = "ddb_bridge_backfill_parts"
BACKFILL_PARTS_DONE = "ddb_bridge_backfill_parts_done"


def seeded_table(ddb_client: Any, name: str) -> str:
    create_table(ddb_client, name, stream=False)
    items = [attrs.to_boto(sample_item(i, pad=10)) for i in range(N_ITEMS)]
    write_items(lambda: ddb_client, name, items, threads=1)
    return name


def test_progress_is_on_the_registry_while_the_backfill_runs(
    ddb_client: Any, dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any
) -> None:
    table = seeded_table(ddb_client, unique_name("progress"))
    settings = backfill_settings(dynamodb_endpoint, kafka_bootstrap, unique_name("leases"), table)
    seen: list[tuple[float, float, float]] = []

    def watch(_job: Any, alive: Any) -> None:
        while alive():
            seen.append(
                (
                    REGISTRY.get(BACKFILL_ITEMS, table=table),
                    REGISTRY.get(BACKFILL_PARTS, table=table),
                    REGISTRY.get(BACKFILL_PARTS_DONE, table=table),
                )
            )
            time.sleep(0.1)

    request = BackfillRequest(
        table=table, segments=3, no_stream=True, page_size=20, max_items_per_second=100
    )
    outcome = run_backfill(settings, request, ScanBackfill(), say_nothing, watch)
    assert outcome.complete
    total = outcome.stats.published
    assert total > N_ITEMS // 2
    assert any(0 < items < total and parts == 3 and done < 3 for items, parts, done in seen), (
        seen[:3],
        seen[-3:],
    )
    assert REGISTRY.get(BACKFILL_ITEMS, table=table) == total
    assert (
        REGISTRY.get(BACKFILL_PARTS, table=table)
        == REGISTRY.get(BACKFILL_PARTS_DONE, table=table)
        == 3
    )


def test_the_command_serves_its_progress_helpers_included(
    tmp_path: Path,
    ddb_client: Any,
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
) -> None:
    table = seeded_table(ddb_client, unique_name("progcli"))
    config = write_config(
        tmp_path / "bridge.toml", dynamodb_endpoint, kafka_bootstrap, unique_name("leases"), []
    )
    port = free_port()
    options = ["--from", "scan", "--segments", "4", "--page-size", "20"]
    slow = ["--max-items-per-second", "60", "--processes", "2", "--metrics-port", str(port)]
    proc = subprocess.Popen(
        cli(config, table, *options, *slow),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen: list[tuple[float, float]] = []
    try:
        while proc.poll() is None:
            items = sample(port, BACKFILL_ITEMS, table=table)
            parts = sample(port, BACKFILL_PARTS, table=table)
            if items is not None and parts is not None:
                seen.append((items, parts))
            time.sleep(0.2)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()[-3000:]
    total = published(out.decode())
    assert seen, "no progress was ever scraped from the command's /metrics"
    assert {parts for _, parts in seen} == {4}
    assert any(0 < items < total for items, _ in seen), seen[-5:]
