"""One back-fill invocation, the same for every kind of back-fill: `run_backfill`.

The composition root (`ddb-bridge backfill`) passes the kind chosen on the command line
(`BackfillSource`: `scan.ScanBackfill`, `export_files.ExportBackfill`); the kind checks its
options and chooses or creates the run (with the stream-capture safety check, before
anything is published); the runner then starts the worker threads, each running the claim
loop over the parts the kind opens, shows progress, stops cleanly on Ctrl-C, and reports.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.errors import PermanentError
from bridge.publisher import Publisher, ensure_topics
from bridge.schema_registry import make_codec
from bridge.settings import Settings
from connectors.dynamodb import aws
from connectors.dynamodb.capture import ensure_lease_table
from connectors.sources.backfill.part_loop import BackfillJob
from connectors.sources.backfill.run_plan import BackfillRequest, BackfillSource, RunSetup, Say
from connectors.sources.backfill.runs import DONE, Part, RunInfo, RunStore
from connectors.sources.backfill.stats import Stats

log = logging.getLogger(__name__)


@dataclass
class BackfillOutcome:
    run: RunInfo
    stats: Stats
    parts: list[Part] = field(default_factory=list)
    elapsed_s: float = 0.0
    complete: bool = False
    interrupted: bool = False
    already_complete: bool = False


Watch = Callable[[BackfillJob, Callable[[], bool]], None]


def run_backfill(
    settings: Settings,
    req: BackfillRequest,
    source: BackfillSource,
    say: Say,
    watch: Watch | None = None,
) -> BackfillOutcome:
    """Run this process's share of a back-fill; returns when the run is complete (or stopped).

    `watch(job, alive)` runs on the calling thread while workers run (progress display);
    a KeyboardInterrupt there stops the workers cleanly (cursors saved, claims released).
    """
    conf = settings.backfill
    source.check_request(req)
    ddb = aws.client("dynamodb", settings.aws)
    spec = aws.table_spec(ddb, settings, req.table)
    lease_table = settings.stream.lease_table
    ensure_lease_table(ddb, lease_table)
    owner = (
        req.worker_id
        or settings.stream.worker_id
        or (f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    )
    store = RunStore(ddb, lease_table, req.table, owner, settings.stream.lease_duration_ms)
    stats = Stats()
    planned = source.plan(RunSetup(req, settings, ddb, store, stats, say))
    run = planned.run
    if run.state == DONE:
        return BackfillOutcome(run, stats, complete=True, already_complete=True)

    ensure_topics(settings.kafka, [req.table])
    codec = make_codec(settings.kafka, [req.table])
    publisher = Publisher(settings.kafka, codec)
    skip_expired = conf.skip_expired_ttl and not req.keep_expired
    job = BackfillJob(
        table=req.table,
        key_names=spec.key_names,
        key_types=tuple(t for t in (spec.hash_type, spec.range_type) if t is not None),
        ttl_attribute=spec.ttl_attribute if skip_expired else None,
        publisher=publisher,
        store=store,
        run=run,
        stats=stats,
        skip_bad_lines=req.skip_bad_lines,
    )
    job.start()
    log.info(
        "back-fill starting",
        extra={
            "table": req.table,
            "run": run.run_id,
            "version": run.version,
            "worker": owner,
            "parts": run.parts,
            "finished_before": stats.parts_skipped,
        },
    )
    started = time.monotonic()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            job.claim_loop(planned.parts(job))
        except BaseException as exc:
            log.error(
                "back-fill worker failed",
                extra={"table": req.table, "source": source.name, "error": str(exc)},
            )
            errors.append(exc)
            job.stop.set()

    threads = [
        threading.Thread(target=work, name=f"{source.name}-{n}", daemon=True)
        for n in range(max(1, planned.threads))
    ]
    for thread in threads:
        thread.start()

    def alive() -> bool:
        return any(t.is_alive() for t in threads)

    interrupted = False
    try:
        if watch is not None:
            watch(job, alive)
        while alive():
            time.sleep(0.1)
    except KeyboardInterrupt:
        interrupted = True
        say("stopping: finishing in-flight work and saving cursors")
        job.stop.set()
        while alive():
            time.sleep(0.1)
    finally:
        job.close()
    if not errors:
        publisher.flush()
    parts = store.parts(run)
    complete = all(p.done for p in parts)
    if complete and not errors:
        store.finish_run(run.run_id)
    outcome = BackfillOutcome(
        run, stats, parts, time.monotonic() - started, complete and not errors, interrupted
    )
    if errors:
        first = errors[0]
        log.error("back-fill failed", extra={"table": req.table, "run": run.run_id})
        if isinstance(first, PermanentError):
            raise first
        raise PermanentError(f"back-fill failed: {type(first).__name__}: {first}") from first
    return outcome
