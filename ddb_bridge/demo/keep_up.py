"""Signals for the demo: SIGTERM unwinds it like Ctrl-C, and `--keep-up` waits for either.

Without a handler SIGTERM ends Python at once, and the demo's children (stream, apply, the
dashboard, moto, the broker) would outlive it. Here the first SIGINT or SIGTERM raises
KeyboardInterrupt in the main thread, so every `with` and callback of the demo runs; later
ones are ignored, so a second Ctrl-C cannot cut the clean-up short.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_unwind() -> Iterator[None]:
    """Inside: the first SIGINT/SIGTERM raises KeyboardInterrupt, later ones do nothing."""
    received = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if received.is_set():
            return  # clean-up under way
        received.set()
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def hold_until_signalled() -> None:
    """Return once SIGINT or SIGTERM arrives (inside `signals_unwind`)."""
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
