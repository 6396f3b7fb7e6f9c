"""Verify one table against one target: the wiring of the core's `Verifier` to the DynamoDB
reader (source side) and the configured sink (target side).

Used by `ddb-bridge verify` and by the demo; it lives in the composition root because it
names connectors, which the core (`bridge.verify`) must not.
"""

from __future__ import annotations

import time
from typing import Any

from bridge.settings import Settings
from bridge.verify import Verifier, VerifyReport


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
        return verifier.finish()
    finally:
        sink.close()
