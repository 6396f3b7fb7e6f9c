"""Verify: does the target hold exactly the source's live items? (docs/design.md, section 12)

Forward pass: pages of source items (a parallel scan, or a sample of its segments) are looked
up in the target by key. Reverse pass: the target's live keys are checked against the
source, finding rows that exist only in the target. A difference found on a live table may
be a change still in flight, so every difference is read again on both sides after a short
pause before it is reported.

TTL: DynamoDB deletes expired items lazily (up to days later), and only those whose TTL lies
within the last five years (`bridge.model.ttl`). So the one difference excused is a row *missing*
on one side for an item DynamoDB may still delete: missing in the target while the source's
copy is expired (the back-fill skipped it, or the target expired it itself), or present only
in the target while its own copy is expired (DynamoDB deleted it; the REMOVE is on its way).
A row present on both sides is compared whatever its TTL, and an item whose TTL is more than
five years old is an ordinary item.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.model import attrs, ttl
from bridge.model.attrs import Item
from bridge.ports.sink import Sink, TableSpec

SourceLookup = Callable[[Sequence[Item]], list[Item | None]]


@dataclass
class Difference:
    kind: str  # "missing" (in source, not target), "extra" (target only), "different"
    keys: Item
    attributes: list[str] = field(default_factory=list)  # differing attribute names

    def describe(self) -> str:
        key_text = attrs.canonical_key(self.keys).decode()
        if self.kind == "different":
            return f"different {key_text}: {', '.join(self.attributes)}"
        return f"{self.kind} {key_text}"


@dataclass
class VerifyReport:
    table: str
    target: str
    source_items: int = 0
    target_rows_checked: int = 0
    expired_ttl: int = 0
    missing: int = 0
    extra: int = 0
    different: int = 0
    sample_rate: float = 1.0
    examples: list[Difference] = field(default_factory=list)
    max_examples: int = 10

    @property
    def differences(self) -> int:
        return self.missing + self.extra + self.different

    @property
    def ok(self) -> bool:
        return self.differences == 0

    def add(self, diff: Difference) -> None:
        setattr(self, diff.kind, getattr(self, diff.kind) + 1)
        if len(self.examples) < self.max_examples:
            self.examples.append(diff)


def differing_attributes(a: Item, b: Item) -> list[str]:
    names = sorted(set(a) | set(b))
    return [n for n in names if n not in a or n not in b or not attrs.av_equal(a[n], b[n])]


def key_sampled(keys: Item, rate: float) -> bool:
    """Deterministic per-key sampling (crc32 of the canonical key: stable across runs)."""
    if rate >= 1.0:
        return True
    return zlib.crc32(attrs.canonical_key(keys)) % 1_000_000 < rate * 1_000_000


class Verifier:
    def __init__(
        self,
        spec: TableSpec,
        sink: Sink,
        source_lookup: SourceLookup,
        *,
        target_name: str,
        sample_rate: float = 1.0,
        recheck_delay_s: float = 1.0,
        max_examples: int = 10,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.spec = spec
        self.sink = sink
        self.source_lookup = source_lookup
        self.recheck_delay_s = recheck_delay_s
        self.on_progress = on_progress
        self.report = VerifyReport(
            table=spec.source,
            target=target_name,
            sample_rate=sample_rate,
            max_examples=max_examples,
        )
        self._suspects: list[Difference] = []

    def _compare(
        self, source: Item | None, target: Item | None, keys: Item, now: float
    ) -> Difference | None:
        if source is None and target is None:
            return None
        if target is None:
            if ttl.pending_deletion(source, self.spec.ttl_attribute, now):
                return None  # the target dropped an item DynamoDB is about to delete
            return Difference("missing", keys)
        if source is None:
            if ttl.pending_deletion(target, self.spec.ttl_attribute, now):
                return None  # DynamoDB deleted the expired item; its REMOVE is in flight
            return Difference("extra", keys)
        if attrs.items_equal(source, target):
            return None
        return Difference("different", keys, differing_attributes(source, target))

    def forward(self, pages: Iterable[list[Item]]) -> None:
        """Look every source item up in the target."""
        for page in pages:
            now = time.time()
            keys = [attrs.extract_keys(item, self.spec.key_names) for item in page]
            found = self.sink.read_items(self.spec.target, keys)
            for item, key, target in zip(page, keys, found, strict=True):
                self.report.source_items += 1
                if ttl.pending_deletion(item, self.spec.ttl_attribute, now):
                    self.report.expired_ttl += 1
                diff = self._compare(item, target, key, now)
                if diff is not None:
                    self._suspects.append(diff)
            if self.on_progress:
                self.on_progress(len(page))

    def reverse(self, batch_size: int = 100) -> None:
        """Find target rows whose key the source does not have."""
        batch: list[Item] = []
        for key in self.sink.scan_keys(self.spec.target):
            if not key_sampled(key, self.report.sample_rate):
                continue
            batch.append(key)
            if len(batch) >= batch_size:
                self._reverse_batch(batch)
                batch = []
        if batch:
            self._reverse_batch(batch)

    def _reverse_batch(self, keys: list[Item]) -> None:
        self.report.target_rows_checked += len(keys)
        for key, source in zip(keys, self.source_lookup(keys), strict=True):
            if source is None:
                self._suspects.append(Difference("extra", key))

    def finish(self) -> VerifyReport:
        """Re-read every suspect on both sides once more; report those that still differ."""
        if self._suspects:
            time.sleep(self.recheck_delay_s)
        seen: set[bytes] = set()
        for i in range(0, len(self._suspects), 100):
            chunk = [
                d for d in self._suspects[i : i + 100] if attrs.canonical_key(d.keys) not in seen
            ]
            for d in chunk:
                seen.add(attrs.canonical_key(d.keys))
            keys = [d.keys for d in chunk]
            sources = self.source_lookup(keys)
            targets = self.sink.read_items(self.spec.target, keys)
            now = time.time()
            for key, source, target in zip(keys, sources, targets, strict=True):
                diff = self._compare(source, target, key, now)
                if diff is not None:
                    self.report.add(diff)
        self._suspects = []
        return self.report


def chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
