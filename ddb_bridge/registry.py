"""Connectors by name: which class a `type =` or `--from` in the configuration means.

This table is the only place that names connector classes; the core (`bridge`) never sees
it. Imports are lazy so a command loads only the drivers (boto3, psycopg, the CQL driver) of
the source or sink it uses.
"""

from __future__ import annotations

import importlib
from typing import Any

from bridge.model.errors import ConfigError

SINKS: dict[str, str] = {
    "sqlite": "connectors.sinks.sqlite:SqliteSink",
    "postgres": "connectors.sinks.postgres:PostgresSink",
    "scylla": "connectors.sinks.scylla:ScyllaSink",
    "alternator": "connectors.sinks.alternator:AlternatorSink",
    "null": "connectors.sinks.null:NullSink",
}

SOURCES: dict[str, str] = {
    "stream": "connectors.sources.stream.worker:StreamWorker",
    "scan": "connectors.sources.backfill.scan:ScanBackfill",
    "export": "connectors.sources.backfill.export_files:ExportBackfill",
}


def _load(table: dict[str, str], kind: str, name: str) -> Any:
    try:
        target = table[name]
    except KeyError as exc:
        raise ConfigError(f"unknown {kind} {name!r} (known: {', '.join(sorted(table))})") from exc
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def sink_class(type_name: str) -> Any:
    return _load(SINKS, "sink type", type_name)


def source_class(name: str) -> Any:
    return _load(SOURCES, "source", name)
