"""One back-fill invocation, the same for every kind of back-fill: `run_backfill`.

The composition root (`ddb-bridge backfill`) passes the kind chosen on the command line
(`BackfillSource`: `scan.ScanBackfill`, `export_files.ExportBackfill`); the kind checks its
options and chooses or creates the run (with the stream-capture safety check, before
anything is published); the runner then starts the worker threads, each running the claim
loop over the parts the kind opens, and, with `processes` > 1, helper processes that join
the run (`processes.Helpers`); it shows progress, stops cleanly on Ctrl-C, and reports.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bridge.kafka.publisher import Publisher, ensure_topics
from bridge.kafka.schema_registry import make_codec
from bridge.model.errors import PermanentError
from bridge.runtime.settings import Settings
from connectors.dynamodb import aws
from connectors.dynamodb.capture import ensure_lease_table
from connectors.sources.backfill.part_loop import BackfillJob
from connectors.sources.backfill.processes import Helpers, ProcessReport
from connectors.sources.backfill.progress_metrics import ProgressMetrics
from connectors.sources.backfill.run_plan import (
    BackfillRequest,
    BackfillSource,
    RunSetup,
    Say,
    join_request,
    threads_per_process,
)
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
    # With several processes: each one's share (the first is the command's own process).
    processes: list[ProcessReport] = field(default_factory=list)


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
        or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    store = RunStore(ddb, lease_table, req.table, owner, settings.stream.lease_duration_ms)
    stats = Stats()
    planned = source.plan(RunSetup(req, settings, ddb, store, stats, say))
    run = planned.run
    if run.state == DONE:
        return BackfillOutcome(run, stats, complete=True, already_complete=True)
    threads, helpers_req, processes = planned.threads, None, 1
    if req.processes > 1:
        left = sum(1 for p in store.parts(run) if not p.done)
        processes = max(1, min(req.processes, left))
        if processes < req.processes:
            say(
                f"{left} part{'s' if left != 1 else ''} of the run left to read: "
                f"{processes} process{'es' if processes != 1 else ''}, not {req.processes} "
                f"(a part is read by one process at a time; a scan has --segments parts, "
                f"an export one per data file)"
            )
    if processes > 1:
        threads = threads_per_process(planned.threads, req, processes)
        helpers_req = join_request(req, run, settings, processes, threads)
        if helpers_req.max_items_per_second or helpers_req.max_rcu_per_second:
            # This process reads with its share of the read budget, as each helper does.
            own = replace(helpers_req, worker_id=req.worker_id)
            planned = source.plan(RunSetup(own, settings, ddb, store, stats, say))

    ensure_topics(settings.kafka, [req.table])
    codec = make_codec(settings.kafka, [req.table])
    # An export's records are not tracked one by one (a file is DONE after a flush), a
    # scan's are (its pages are checkpoints): see EventReader.checkpoints.
    publisher = Publisher(settings.kafka, codec, untracked=not source.checkpoints)
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
    progress = ProgressMetrics(req.table, stats)
    progress.start()
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

    workers = [
        threading.Thread(target=work, name=f"{source.name}-{n}", daemon=True)
        for n in range(max(1, threads))
    ]
    for thread in workers:
        thread.start()
    helpers: Helpers | None = None
    if helpers_req is not None:
        helpers = Helpers(job, say)
        try:
            helpers.start(settings, helpers_req, source, processes - 1, run_backfill)
        except BaseException:
            # No helper could start: stop this process's workers too, then fail.
            job.stop.set()
            helpers.stop()
            helpers.close(grace_s=store.lease_ms / 1000 + 30)
            for thread in workers:
                thread.join()
            job.close()
            progress.close()
            raise

    def alive() -> bool:
        if helpers is not None and job.stop.is_set():
            helpers.stop()  # this process failed or was stopped: so do its helpers
        return any(t.is_alive() for t in workers) or (helpers is not None and helpers.alive())

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
        if helpers is not None:
            helpers.stop()  # nothing when they all ended; else (an exception here) stop them
            helpers.close(grace_s=store.lease_ms / 1000 + 30)
        progress.close()  # the final counts, helpers' last reports included
    if helpers is not None:
        errors.extend(helpers.errors)
    if not errors:
        publisher.flush()
    parts = store.parts(run)
    complete = all(p.done for p in parts)
    if complete and not errors:
        store.finish_run(run.run_id)
    outcome = BackfillOutcome(
        run, stats, parts, time.monotonic() - started, complete and not errors, interrupted
    )
    if helpers is not None:
        own_state = "failed" if errors else "interrupted" if interrupted else "done"
        outcome.processes = _own_share(helpers.reports, stats, own_state)
    if errors:
        first = errors[0]
        log.error("back-fill failed", extra={"table": req.table, "run": run.run_id})
        if isinstance(first, PermanentError):
            raise first
        raise PermanentError(f"back-fill failed: {type(first).__name__}: {first}") from first
    return outcome


def _own_share(reports: list[ProcessReport], stats: Stats, state: str) -> list[ProcessReport]:
    """The command's own process did what the whole command did, less its helpers' work."""
    total = stats.work()
    own = reports[0]
    own.work = {k: v - sum(r.work.get(k, 0) for r in reports[1:]) for k, v in total.items()}
    own.state = state
    return reports
