"""Progress display for long commands (rich), quiet when output is not a terminal."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _ConsoleStream:
    """A file-like object for a logging handler: each record printed through `console`, so
    rich's live display draws it above the bar instead of into the bar's line."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def write(self, text: str) -> int:
        self.console.print(
            text.rstrip("\n"), markup=False, highlight=False, soft_wrap=True, emoji=False
        )
        return len(text)

    def flush(self) -> None:
        pass


class _LoggingProgress(Progress):
    """A Progress that, while shown, routes the root logger's console handlers through it:
    a handler holds its own reference to stderr, which rich's redirection cannot reach."""

    _saved: list[tuple[logging.StreamHandler[Any], Any]]

    def start(self) -> None:
        super().start()
        self._saved = []
        if self.disable:
            return
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler:  # not a FileHandler
                self._saved.append((handler, _swap(handler, _ConsoleStream(self.console))))

    def stop(self) -> None:
        for handler, stream in getattr(self, "_saved", []):
            _swap(handler, stream)
        self._saved = []
        super().stop()


def _swap(handler: logging.StreamHandler[Any], stream: Any) -> Any:
    """Put `stream` in `handler`, returning the one it had. Not `setStream`: it flushes the
    old stream first, which raises when someone closed it (a handler outliving its stream
    must not stop a back-fill from showing its bar)."""
    handler.acquire()
    try:
        old, handler.stream = handler.stream, stream
    finally:
        handler.release()
    return old


def console() -> Console:
    return Console(file=sys.stderr)


def progress(
    *,
    transient: bool = False,
    extra: Sequence[str] = (),
    out: Console | None = None,
    disable: bool = False,
) -> Progress:
    """The progress bar every long command shows: description, bar, done/total, the task's
    `rate` field, any `extra` columns (format strings over task fields), elapsed time, ETA.
    Hidden when stderr is not a terminal."""
    out = out or console()
    return _LoggingProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        *(TextColumn(column) for column in extra),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=out,
        transient=transient,
        disable=disable or not out.is_terminal,
    )
