"""More processes on one machine for one back-fill run: `--processes N`.

The command's own process plans the run (creates it, runs the safety check, requests an
export), then starts N-1 helper processes that join the same run by its id and claim parts
through the lease table like workers on other machines would; it keeps working itself. A
part is read by one process at a time, so the events published are the same as with one
process: what changes is how many cores parse and encode.

Why `multiprocessing` with the *spawn* start method: each helper is a fresh interpreter
(no fork of a process that already runs librdkafka's and boto3's threads), it runs the same
`run_backfill` as the command, and a pipe per helper carries its counts and its outcome
back as Python objects (an error keeps its class and message, naming the file and line).

What the command's process does for its helpers (`Helpers`):
- sums their counts into its own `Stats` as they report (every 0.25 s), so the progress bar
  and the summary are the command's; per-process counts are kept for the summary;
- when any process finishes a part, tells every other process to look at the parts again
  (a process waiting for parts held by others would otherwise look only every half lease);
- a helper that fails (its `run_backfill` raised) stops the others, and the command fails
  with its error; a helper killed by a signal leaves its part claimed: the other processes
  take it over once its lease expires, and the run completes without it (said, and shown in
  the summary);
- Ctrl-C or SIGTERM of the command stops every helper the same way (SIGTERM: finish the
  page, save the cursor, release the claim); helpers ignore the terminal's SIGINT, so the
  command decides; a helper dies with the command (Linux: the kernel kills it when its parent
  dies, as a kill -9 of the command would have killed one process; elsewhere: when the pipe
  to its parent closes, it stops).
"""

from __future__ import annotations

import _thread
import contextlib
import ctypes
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from types import FrameType
from typing import TYPE_CHECKING, Any

from bridge.model.errors import PermanentError
from bridge.runtime import logs
from bridge.runtime.settings import Settings
from connectors.sources.backfill.run_plan import BackfillRequest, BackfillSource, Say
from connectors.sources.backfill.stats import Stats

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from connectors.sources.backfill.part_loop import BackfillJob

log = logging.getLogger(__name__)

SPAWN = multiprocessing.get_context("spawn")
REPORT_EVERY_S = 0.25
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def default_processes() -> int:
    """One process per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class HelperSpec:
    """What a helper process needs to join the command's run."""

    settings: Settings
    req: BackfillRequest  # names the run (run_plan.join_request)
    source: BackfillSource
    number: int  # 2..N; the command's own process is 1
    parent_pid: int
    log_level: int
    log_format: str
    # `runner.run_backfill`, handed over by the runner (pickled by name): this module is
    # imported by the runner, so it does not import it back.
    run: Callable[..., Any]


@dataclass
class ProcessReport:
    """One process of the command, for the summary."""

    number: int
    worker: str
    pid: int
    work: dict[str, int] = field(default_factory=dict)
    state: str = "running"  # running, done, interrupted, failed: ..., killed by signal N


# Messages on a helper's pipe. Helper → command: ("work", counts), ("result", counts,
# complete, interrupted, error). Command → helper: ("nudge",).


def _log_format() -> str:
    root = logging.getLogger()
    json_logs = any(isinstance(h.formatter, logs.JsonFormatter) for h in root.handlers)
    return "json" if json_logs else "text"


class Helpers:
    """The helper processes of one back-fill command, seen from the command's process."""

    def __init__(self, job: BackfillJob, say: Say) -> None:
        self.job = job
        self.say = say
        self.reports: list[ProcessReport] = []
        self.errors: list[BaseException] = []
        self._procs: dict[int, BaseProcess] = {}
        self._conns: dict[int, Connection] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._monitor = threading.Thread(target=self._watch, name="backfill-helpers", daemon=True)

    def start(
        self,
        settings: Settings,
        req: BackfillRequest,
        source: BackfillSource,
        count: int,
        run: Callable[..., Any],
    ) -> None:
        """Start `count` helpers (numbers 2..count+1), worker ids `<this worker>/p<number>`."""
        own = self.job.store.owner
        self.reports.append(ProcessReport(1, own, os.getpid()))
        main = threading.current_thread() is threading.main_thread()
        # Helpers start with SIGINT ignored (kept across exec): a Ctrl-C in the terminal
        # reaches every process of the group, and only the command decides how to stop.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            for number in range(2, count + 2):
                spec = HelperSpec(
                    settings=settings,
                    req=_with_worker(req, f"{own}/p{number}"),
                    source=source,
                    number=number,
                    parent_pid=os.getpid(),
                    log_level=logging.getLogger().level,
                    log_format=_log_format(),
                    run=run,
                )
                mine, theirs = SPAWN.Pipe(duplex=True)
                proc = SPAWN.Process(
                    target=helper_main,
                    args=(spec, theirs),
                    name=f"backfill-p{number}",
                    daemon=True,  # multiprocessing ends it if the command exits early
                )
                proc.start()
                theirs.close()
                assert proc.pid is not None
                self._procs[number] = proc
                self._conns[number] = mine
                self.reports.append(ProcessReport(number, f"{own}/p{number}", proc.pid))
                log.info(
                    "started back-fill process",
                    extra={
                        "backfill_process": number,
                        "pid": proc.pid,
                        "worker": f"{own}/p{number}",
                    },
                )
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        self._monitor.start()

    def alive(self) -> bool:
        return any(p.is_alive() for p in self._procs.values()) or self._monitor.is_alive()

    def stop(self) -> None:
        """Ask every helper to stop as the command does (SIGTERM: cursors saved, claims
        released). Idempotent."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        for proc in self._procs.values():
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)

    def close(self, grace_s: float) -> None:
        """Wait up to `grace_s` for helpers that are stopping, then kill the rest: their
        claims expire like those of any dead worker."""
        deadline = time.monotonic() + grace_s
        for proc in self._procs.values():
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self._procs.values():
            if proc.is_alive():
                log.warning("back-fill process did not stop: killed", extra={"pid": proc.pid})
                proc.kill()
                proc.join(5)
        if self._monitor.ident is not None:
            self._monitor.join(5)
        for conn in self._conns.values():
            conn.close()

    # the monitor thread --------------------------------------------------------------------
    def _watch(self) -> None:
        """Read the helpers' reports until every helper ended and its pipe closed."""
        conns = {number: conn for number, conn in self._conns.items()}  # still open
        sentinels = {number: proc.sentinel for number, proc in self._procs.items()}  # running
        finished_seen = self.job.stats.parts_done
        while conns or sentinels:
            ready = set(wait([*conns.values(), *sentinels.values()], timeout=REPORT_EVERY_S))
            for number, conn in list(conns.items()):
                if conn in ready and not self._receive(number, conn):
                    del conns[number]
            for number, sentinel in list(sentinels.items()):
                if sentinel in ready:
                    del sentinels[number]
            for number in self._procs:
                if number not in conns and number not in sentinels:
                    self._ended(number)
            done = self.job.stats.parts_done
            if done != finished_seen:
                finished_seen = done
                self._nudge_all()

    def _report(self, number: int) -> ProcessReport:
        return next(r for r in self.reports if r.number == number)

    def _receive(self, number: int, conn: Connection) -> bool:
        """Take one message; False once the pipe is closed (or broken by a kill)."""
        try:
            message = conn.recv()
        except (EOFError, OSError, pickle.UnpicklingError):
            return False
        report = self._report(number)
        kind, counts = message[0], message[1]
        self.job.stats.add_work(report.work, counts)
        report.work = counts
        if kind == "result":
            _, _, complete, interrupted, error = message
            if error is not None:
                report.state = f"failed: {error}"
                log.error(
                    "back-fill process failed",
                    extra={"backfill_process": number, "pid": report.pid, "error": str(error)},
                )
                self.errors.append(error)
                self.job.stop.set()
                self.stop()
            elif interrupted:
                report.state = "interrupted"
            else:
                report.state = "done" if complete else "done, run not complete"
        return True

    def _ended(self, number: int) -> None:
        report = self._report(number)
        if report.state != "running":
            return
        # Its pipes close as it exits, a moment before its exit status can be read.
        self._procs[number].join(10)
        code = self._procs[number].exitcode
        if code is not None and code < 0:
            report.state = f"killed by signal {-code}"
            if not self._stopping:
                self.say(
                    f"back-fill process {number} (pid {report.pid}) was killed by signal "
                    f"{-code}: the part it held is taken over when its lease expires"
                )
            log.warning(
                "back-fill process killed", extra={"backfill_process": number, "signal": -code}
            )
            return
        # Ended without a result: it crashed before it could say why.
        report.state = f"failed: exit code {code}"
        error = PermanentError(
            f"back-fill process {number} (pid {report.pid}) ended with exit code {code} "
            f"without a result (see its messages above)"
        )
        self.errors.append(error)
        self.job.stop.set()
        self.stop()

    def _nudge_all(self) -> None:
        self.job.nudge()
        for conn in self._conns.values():
            with contextlib.suppress(OSError, ValueError):
                conn.send(("nudge",))


def _with_worker(req: BackfillRequest, worker: str) -> BackfillRequest:
    from dataclasses import replace

    return replace(req, worker_id=worker)


# the helper's side --------------------------------------------------------------------------
def _die_with_parent(parent_pid: int) -> None:
    """Linux: have the kernel kill this process when the command's process dies, so a kill -9
    of the command ends all of it at once, as it would end a single process."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # it died before the line above took effect
        os._exit(1)


def _stop_once(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM: stop like Ctrl-C once; a second signal must not cut the clean stop short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def helper_main(spec: HelperSpec, conn: Connection) -> None:
    """A helper process: join the run, work until no part is left, report, exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(spec.parent_pid)
    logs.setup(logging.getLevelName(spec.log_level), spec.log_format)
    signal.signal(signal.SIGTERM, _stop_once)

    job_box: list[BackfillJob] = []
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            conn.send(message)

    def listen() -> None:
        # The command's nudges; the pipe closing means the command is gone: stop.
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                _thread.interrupt_main()
                return
            if message[0] == "nudge" and job_box:
                job_box[0].nudge()

    def report(job: BackfillJob, alive: Any) -> None:
        job_box.append(job)
        while alive():
            try:
                send(("work", job.stats.work()))
            except OSError:
                raise KeyboardInterrupt from None  # the command is gone: stop cleanly
            time.sleep(REPORT_EVERY_S)

    threading.Thread(target=listen, name="backfill-command", daemon=True).start()
    stats = Stats()
    error: BaseException | None = None
    complete = interrupted = False
    try:
        outcome = spec.run(
            spec.settings,
            spec.req,
            spec.source,
            say=lambda text: log.info(text, extra={"backfill_process": spec.number}),
            watch=report,
        )
        stats, complete, interrupted = outcome.stats, outcome.complete, outcome.interrupted
    except KeyboardInterrupt:
        interrupted = True  # stopped before its workers started
    except BaseException as exc:  # every failure goes to the command, which decides
        error = exc
        try:
            pickle.dumps(exc)
        except Exception:
            error = PermanentError(f"{type(exc).__name__}: {exc}")
    if job_box:
        stats = job_box[0].stats
    with contextlib.suppress(OSError):
        send(("result", stats.work(), complete, interrupted, error))
    conn.close()
