"""SIGTERM while a daemon is still starting: exit 0, as it would a moment later.

`apply` and `audit` document "SIGTERM ... exits 0", but their workers install their handlers
only once connected (the sink opened, the topics ensured: seconds against a slow broker).
Before that Python's default action ended them by the signal (-15), which a supervisor and the
chaos harness read as a crash. Nothing is read or committed before the worker's own handler
takes over, so stopping at once loses nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

log = logging.getLogger("ddb-bridge")


def _stop(signum: int, _frame: FrameType | None) -> None:
    # Exit here rather than raise for `main` to turn into exit 0: an exception raised by a
    # signal handler lands wherever the main thread is, and code on the way up may swallow it
    # (a CI run's apply carried on for the 20 s of its Kafka probe and exited 75).
    log.info("stopped while starting", extra={"signal": signal.Signals(signum).name})
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def stop_cleanly_while_starting() -> None:
    """Until the worker installs its own handler, SIGTERM ends the command with exit 0."""
    signal.signal(signal.SIGTERM, _stop)
