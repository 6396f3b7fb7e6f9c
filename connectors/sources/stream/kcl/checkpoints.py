"""Checkpoints through the KCL's checkpointer, with their versions in the bridge's lease table.

`KclCheckpoint` is the `CheckpointWriter` (processor.py) of a shard driven by the Java KCL:
the versions first (versions.py), then the KCL checkpoint over the MultiLang pipe, and once
the KCL took it, `confirm` (older versions may then go). The daemon answers a checkpoint
with the name of the exception it met, if any:

- ThrottlingException, KinesisClientLibDependencyException (the lease table was not
  reachable): retried with backoff, a bounded number of times, then a TransientError;
- ShutdownException: the KCL no longer holds the lease: `KclLeaseLost`, nothing more may be
  checkpointed (the KCL calls lease_lost next);
- anything else (InvalidStateException, IllegalArgumentException for a sequence number the
  shard does not have, ...): a PermanentError naming the shard and the sequence number.

Delivery guarantee: the processor only ever hands this positions Kafka acknowledged, so a
checkpoint written here never skips an unpublished record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from bridge.model.errors import PermanentError, TransientError
from connectors.dynamodb.aws import Backoff
from connectors.dynamodb.leases import LeaseLost
from connectors.sources.stream.kcl.versions import KclVersions
from connectors.sources.stream.shards import SHARD_END

log = logging.getLogger(__name__)

RETRIED = frozenset({"ThrottlingException", "KinesisClientLibDependencyException"})
LOST = frozenset({"ShutdownException"})
ATTEMPTS = 8


class KclCheckpointer(Protocol):
    """The shape of amazon-kclpy's `Checkpointer` (one request and its answer on the pipe)."""

    def checkpoint(
        self, sequence_number: str | None = None, sub_sequence_number: int | None = None
    ) -> None: ...


class KclLeaseLost(LeaseLost):
    """The KCL answered a checkpoint with ShutdownException: the lease is gone."""


def error_name(exc: Exception) -> str:
    """The exception name the daemon sent (amazon-kclpy's CheckpointError keeps it in .value)."""
    value = getattr(exc, "value", None)
    return value if isinstance(value, str) else type(exc).__name__


class KclCheckpoint:
    """A `CheckpointWriter` for one shard, writing through the KCL."""

    def __init__(
        self,
        kcl: KclCheckpointer,
        versions: KclVersions,
        start: str,
        attempts: int = ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.kcl = kcl
        self.versions = versions
        self._last = start
        self.attempts = attempts
        self.sleep = sleep

    @property
    def last(self) -> str:
        return self._last

    def checkpoint(
        self, position: str, last_version: int | None, item_versions: bytes = b""
    ) -> None:
        shard = self.versions.shard_id
        if last_version is not None:
            # Before the KCL's write: a checkpoint must never exist without its versions.
            try:
                self.versions.record(position, last_version, item_versions)
            except LeaseLost as exc:
                raise KclLeaseLost(
                    f"shard {shard} checkpoint at {position}: another processor holds the "
                    "shard's versions"
                ) from exc
        backoff = Backoff()
        for attempt in range(1, self.attempts + 1):
            try:
                if position == SHARD_END:
                    # The KCL's way to say "the shard is done": a checkpoint without a number.
                    self.kcl.checkpoint()
                else:
                    self.kcl.checkpoint(position)
            except Exception as exc:  # amazon-kclpy raises CheckpointError(name)
                name = error_name(exc)
                where = f"shard {shard} checkpoint at {position}"
                if name in LOST:
                    raise KclLeaseLost(f"{where}: the KCL lost the lease ({name})") from exc
                if name not in RETRIED:
                    raise PermanentError(f"{where}: the KCL refused it: {name}") from exc
                if attempt == self.attempts:
                    raise TransientError(
                        f"{where}: still failing after {attempt} attempts: {name}"
                    ) from exc
                delay = backoff.next_delay()
                log.warning(
                    "KCL checkpoint failed, retrying: %s",
                    name,
                    extra={"shard": shard, "position": position, "delay_s": round(delay, 3)},
                )
                self.sleep(delay)
            else:
                self._last = position
                self.versions.confirm(position)
                return
