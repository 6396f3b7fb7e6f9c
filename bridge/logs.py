"""Structured logging: one line per event, context fields (shard, topic, offset...) as key=value.

Every line, tracebacks included, goes through `bridge.redact` before it is written: a DSN or
password inside a driver's exception text is masked there.
"""

from __future__ import annotations

import logging
import sys

from bridge.redact import redact_text

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if extras:
            base += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return redact_text(base)


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "urllib3", "aiokafka", "faust", "mode", "cassandra"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
