"""What a source's parts are to the loops that read them: stream shards and back-fill parts.

A source splits what it reads into parts: the shards of a DynamoDB stream, the segments of a
parallel Scan, the data files of an export. Every reader of parts follows the same steps:
list the parts, claim one (so that no other worker reads it at the same time), open it at
the position saved for it, read batches of records, and save the position the reader
reports, once every record before it is acknowledged by Kafka. Saving only acknowledged
positions is what makes every source at-least-once: after a crash, a part is read again
from its last saved position, never from beyond it.

These protocols name those steps, so that one claim-and-read loop serves every kind of part
(`connectors.sources.backfill.part_loop`), and a stream shard's reader
(`connectors.sources.stream.shards.ShardReader`) is read the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

R = TypeVar("R", covariant=True)  # one record as the reader hands it out
P = TypeVar("P")  # one part as its source describes it (its claim included)


class Batch(Protocol[R]):
    """Records read in one step, in the part's order."""

    @property
    def records(self) -> Iterable[R]:
        """A list, or produced one at a time as they are consumed (an export file's lines are
        parsed as they are published, so records never pile up in memory)."""
        ...

    @property
    def end(self) -> bool:
        """True once the part holds no more records (a closed shard, a whole file or segment);
        read after `records` is consumed."""
        ...


B = TypeVar("B", bound=Batch[Any], covariant=True)  # the batches a reader returns


@runtime_checkable
class PartReader(Protocol[B]):
    """One part, opened at a saved position, read a `Batch` at a time."""

    def read(self) -> B:
        """The next records (possibly none: nothing new yet, or the reader is stopping)."""
        ...

    @property
    def position(self) -> str | None:
        """Where reading resumes after the records read so far: the position to save once
        they are acknowledged. None: no position inside the part can be saved (the part is
        read again from its start unless it is finished)."""
        ...


Rd = TypeVar("Rd", bound=PartReader[Any], covariant=True)  # a source's reader of one part


@runtime_checkable
class PartSource(Protocol[P, Rd]):
    """The parts of one source and how to claim and open them."""

    def list_parts(self) -> Sequence[P]:
        """Every part, in order, with its saved position and claim."""
        ...

    def claim(self, part: P) -> P | None:
        """Take the part for this worker; None when another worker holds it."""
        ...

    def open(self, part: P) -> Rd:
        """A reader positioned where the claimed part's saved position says."""
        ...
