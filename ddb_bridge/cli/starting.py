"""SIGTERM while a daemon is still starting: exit 0, as it would a moment later.

`apply` and `audit` document "SIGTERM ... exits 0", but their workers install their handlers
only once connected (the sink opened, the topics ensured: seconds against a slow broker).
Before that Python's default action ended them by the signal (-15), which a supervisor and the
chaos harness read as a crash. Nothing is read or committed before the worker's own handler
takes over, so stopping at once loses nothing.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

log = logging.getLogger("ddb-bridge")


class StoppedWhileStarting(BaseException):
    """Raised by the early handler; `main` turns it into exit 0. A BaseException, so no
    `except Exception` on the way up takes it for a failure."""


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise StoppedWhileStarting(signal.Signals(signum).name)


def stop_cleanly_while_starting() -> None:
    """Until the worker installs its own handler, SIGTERM ends the command with exit 0."""
    signal.signal(signal.SIGTERM, _stop)
