"""Switching the compiled core (bridge/codec/_core.c) off inside a test, to compare it with its
reference, the Python path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bridge.codec import compiled


@contextmanager
def python_path() -> Iterator[None]:
    """The reference: the core switched off, as on a machine without it."""
    saved = compiled.CORE
    compiled.CORE = None
    try:
        yield
    finally:
        compiled.CORE = saved
