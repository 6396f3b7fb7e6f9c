"""Structured logging: one line per event, context fields (shard, topic, offset...) as key=value,
or (`--log-format json`) one JSON object per line.

Every line, tracebacks included, goes through `bridge.runtime.redact` before it is written: a DSN or
password inside a driver's exception text is masked there. So do the tracebacks of exceptions
nothing caught (the main thread's and other threads'), which Python prints itself.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import traceback
from types import TracebackType

from bridge.runtime.log_fold import RepeatFold
from bridge.runtime.redact import redact_text

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if extras:
            base += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return redact_text(base)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context fields, and the
    traceback as `exc`. Redacted field by field (a value, not the JSON text, holds a DSN)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        for k, v in vars(record).items():
            if k not in _STANDARD:
                entry[k] = (
                    v if isinstance(v, int | float | bool) or v is None else redact_text(str(v))
                )
        if record.exc_info:
            entry["exc"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def _print_redacted(
    exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None
) -> None:
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    sys.stderr.write(redact_text(text))


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    name = args.thread.name if args.thread is not None else "?"
    sys.stderr.write(f"Exception in thread {name}:\n")
    _print_redacted(args.exc_type, args.exc_value, args.exc_traceback)


def setup(level: str = "INFO", fmt: str = "text") -> None:
    sys.excepthook = _print_redacted
    threading.excepthook = _thread_hook
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RepeatFold())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "urllib3", "aiokafka", "faust", "mode", "cassandra"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
