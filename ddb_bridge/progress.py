"""Progress display for long commands (rich), quiet when output is not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


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
    return Progress(
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
