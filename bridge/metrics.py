"""Counters and gauges for every daemon, in one process-wide registry.

Components record here (records published per table, per-shard milliseconds behind, lease
counts, events applied, DLQ counts); the operating commands serve it (Prometheus text format)
and `status` reads it. Thread-safe: the stream worker records from several threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

Labels = tuple[tuple[str, str], ...]


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, Labels], float] = {}
        self._gauges: dict[tuple[str, Labels], float] = {}
        self._help: dict[str, str] = {}

    @staticmethod
    def _labels(labels: dict[str, object]) -> Labels:
        return tuple(sorted((k, str(v)) for k, v in labels.items()))

    def describe(self, name: str, text: str) -> None:
        self._help[name] = text

    def inc(self, name: str, value: float = 1, **labels: object) -> None:
        key = (name, self._labels(labels))
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + value

    def set(self, name: str, value: float, **labels: object) -> None:
        with self._lock:
            self._gauges[(name, self._labels(labels))] = value

    def remove(self, name: str, **labels: object) -> None:
        """Forget a gauge series (e.g. a shard this worker no longer holds)."""
        with self._lock:
            self._gauges.pop((name, self._labels(labels)), None)

    def get(self, name: str, **labels: object) -> float:
        key = (name, self._labels(labels))
        with self._lock:
            return self._counters.get(key, self._gauges.get(key, 0.0))

    def total(self, name: str) -> float:
        """A counter summed over all label sets."""
        with self._lock:
            return sum(v for (n, _), v in self._counters.items() if n == name)

    def series(self) -> Iterator[tuple[str, str, Labels, float]]:
        """(kind, name, labels, value) for every series; kind is 'counter' or 'gauge'."""
        with self._lock:
            counters = list(self._counters.items())
            gauges = list(self._gauges.items())
        for (name, labels), value in counters:
            yield "counter", name, labels, value
        for (name, labels), value in gauges:
            yield "gauge", name, labels, value

    def render_prometheus(self) -> str:
        lines: list[str] = []
        typed: set[str] = set()
        for kind, name, labels, value in sorted(self.series(), key=lambda s: (s[1], s[2])):
            if name not in typed:
                if name in self._help:
                    lines.append(f"# HELP {name} {self._help[name]}")
                lines.append(f"# TYPE {name} {kind}")
                typed.add(name)
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{name}{{{label_text}}} {value:g}" if labels else f"{name} {value:g}")
        return "\n".join(lines) + "\n"

    def reset(self) -> None:
        with self._lock:
            self._counters.clear()
            self._gauges.clear()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


REGISTRY = Metrics()
