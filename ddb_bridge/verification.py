"""Verify one table against one target: the wiring of the core's `Verifier` to the DynamoDB
reader (source side) and the configured sink (target side).

Used by `ddb-bridge verify` and by the demo; it lives in the composition root because it
names connectors, which the core (`bridge.verify.passes`) must not.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from bridge.runtime.settings import Settings
from bridge.status.report import VerifyOutcome
from bridge.verify.passes import Verifier, VerifyReport

log = logging.getLogger(__name__)


def verify_table(
    settings: Settings,
    table: str,
    target_name: str | None = None,
    *,
    sample_rate: float = 1.0,
    segments: int | None = None,
    show: int = 10,
    consistent: bool = False,
    recheck_delay_s: float = 1.0,
) -> VerifyReport:
    # Connectors are imported lazily: `verify` alone should not pay for every driver.
    from connectors.dynamodb import aws
    from connectors.dynamodb.reader import batch_get, scan_pages
    from ddb_bridge.progress import progress
    from ddb_bridge.registry import sink_class

    target_name = target_name or settings.apply.target
    target = settings.target(target_name)
    ddb = aws.client("dynamodb", settings.aws)
    spec = aws.table_spec(ddb, settings, table)
    sink: Any = sink_class(target.type)(target)
    sink.open([spec], create_schema=False)
    started_ms = int(time.time() * 1000)
    try:
        total = aws.describe_table(ddb, table).get("ItemCount") or None
        with progress() as bar:
            task = bar.add_task(f"verify {table}", total=total, rate="")
            started = time.monotonic()

            def advance(n: int) -> None:
                done = bar.tasks[0].completed + n
                rate = done / max(time.monotonic() - started, 1e-6)
                bar.update(task, advance=n, rate=f"{rate:,.0f} items/s")

            verifier = Verifier(
                spec,
                sink,
                lambda keys: batch_get(ddb, table, spec.key_names, keys),
                target_name=f"{target.type}:{target_name}",
                sample_rate=sample_rate,
                recheck_delay_s=recheck_delay_s,
                max_examples=show,
                on_progress=advance,
            )
            verifier.forward(
                scan_pages(
                    lambda: aws.client("dynamodb", settings.aws),
                    table,
                    segments or settings.backfill.segments,
                    consistent=consistent,
                    sample_rate=sample_rate,
                )
            )
            verifier.reverse()
        report = verifier.finish()
    finally:
        sink.close()
    _record(ddb, settings, table, target_name, report, started_ms)
    return report


def _record(
    ddb: Any, settings: Settings, table: str, target: str, report: VerifyReport, started_ms: int
) -> None:
    """Keep the outcome in the lease table, where `status` reads it for the cut-over verdict."""
    from connectors.dynamodb.verify_record import record_verify

    outcome = VerifyOutcome(
        table=table,
        target=target,
        started_at_ms=started_ms,
        finished_at_ms=int(time.time() * 1000),
        source_items=report.source_items,
        target_rows_checked=report.target_rows_checked,
        missing=report.missing,
        extra=report.extra,
        different=report.different,
        sample_rate=report.sample_rate,
    )
    if not record_verify(ddb, settings.stream.lease_table, outcome):
        log.warning(
            "verify outcome not recorded: lease table %s does not exist, so `status` will "
            "not see this run",
            settings.stream.lease_table,
        )
