"""The bridge's record processor as an amazon-kclpy v3 record processor.

The Java KCL's MultiLangDaemon starts one `python -m ddb_bridge.kcl_processor` per shard it
leases and drives it over stdin/stdout. `KclRecordProcessor` turns each call into the shared
`KafkaRecordProcessor`'s (processor.py). On Kinesis Data Streams (KCL transport "kinesis")
every Kinesis record's Data becomes a stream record (kinesis_records.py) and versions come
from KinesisVersioner; on DynamoDB Streams through the DynamoDB Streams Kinesis Adapter
(KCL transport "dynamodb-streams", launcher in streams_launcher/) every record's data is the
adapter's JSON of the stream record (adapter_records.py) and versions come from
StreamVersioner, as the native reader's do. Either way the checkpoint is the furthest
position Kafka acknowledged, written through the KCL with its version (checkpoints.py,
versions.py).

Versions across restarts and reshards: on initialize, the versions recorded for the KCL's
checkpoint (last version and per-item memory) are restored; a shard starting fresh
(TRIM_HORIZON, LATEST, AT_TIMESTAMP) starts from what its parents recorded at their
SHARD_END (the highest last version, their memories merged), parents found with ListShards.
The KCL starts a child only after its parents are checkpointed at SHARD_END (unless
`ignoreUnexpectedChildShards`), so those are there when it starts. A processor whose shard
the KCL gave to another finds out at its next versions write (fenced, versions.py) and
stops checkpointing and publishing.

Failures: amazon-kclpy logs an exception from a record processor and carries on with the next
batch, which would let a later checkpoint pass records that were never published. So any
error other than a lost lease ends this process (exit 1): the daemon then shuts down
(MultiLangShardRecordProcessor exits when its child fails) and a restart resumes from the
last checkpoint. Logs go to stderr: stdout is the MultiLang protocol.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, Literal, cast

from amazon_kclpy.v3 import processor as kcl_v3

from bridge.model.errors import PermanentError
from bridge.model.item_memory import child_start
from connectors.dynamodb.leases import LeaseLost
from connectors.sources.stream.get_records import WireRecords
from connectors.sources.stream.kcl.adapter_records import stream_record_from_adapter
from connectors.sources.stream.kcl.checkpoints import KclCheckpoint, KclLeaseLost
from connectors.sources.stream.kcl.versions import Found, KclVersions
from connectors.sources.stream.kinesis_records import stream_record_from_kinesis
from connectors.sources.stream.processor import InitializationInput, KafkaRecordProcessor

log = logging.getLogger(__name__)

EXIT_FAILED = 1
# Where a KCL shard starts without a checkpoint of its own.
FRESH = frozenset({"TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"})
# What the daemon reads: a Kinesis data stream (the MultiLangDaemon), or a DynamoDB stream
# (the DynamoDB Streams Kinesis Adapter's scheduler, streams_launcher/).
KclTransport = Literal["kinesis", "dynamodb-streams"]
KCL_TRANSPORTS: tuple[KclTransport, ...] = ("kinesis", "dynamodb-streams")


class KclRecordProcessor(kcl_v3.RecordProcessorBase):  # type: ignore[misc]
    """One shard: the KCL's lifecycle calls, adapted to `KafkaRecordProcessor`."""

    def __init__(
        self,
        processor: KafkaRecordProcessor,
        table: str,
        stream_arn: str,
        versions_for: Callable[[str], KclVersions],
        parent_versions: Callable[[str], list[Found]],
        exit: Callable[[int], Any] = sys.exit,
        transport: KclTransport = "kinesis",
    ) -> None:
        wanted = "dynamodb" if transport == "dynamodb-streams" else "kinesis"
        if processor.transport != wanted:
            # Versions follow the stream's rule: StreamVersioner on DynamoDB Streams.
            raise ValueError(f"KCL transport {transport} needs a {wanted} record processor")
        self.processor = processor
        self.transport = transport
        self.table = table
        self.stream_arn = stream_arn
        self.versions_for = versions_for
        self.parent_versions = parent_versions
        self.exit = exit
        self.versions: KclVersions | None = None
        self.shard_id = ""
        self.start = ""
        self.lost = False

    # -- the KCL's calls ----------------------------------------------------------------------

    def initialize(self, initialize_input: Any) -> None:
        self._guard(self._initialize, initialize_input)

    def process_records(self, process_records_input: Any) -> None:
        self._guard(self._process_records, process_records_input)

    def lease_lost(self, lease_lost_input: Any) -> None:
        self.lost = True
        self._guard(lambda _: self.processor.lease_lost(), lease_lost_input)

    def shard_ended(self, shard_ended_input: Any) -> None:
        self._guard(
            lambda i: self.processor.shard_ended(self._writer(i.checkpointer)), shard_ended_input
        )

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        self._guard(
            lambda i: self.processor.shutdown_requested(self._writer(i.checkpointer)),
            shutdown_requested_input,
        )

    # -- the work ------------------------------------------------------------------------------

    def _initialize(self, init: Any) -> None:
        self.shard_id = str(init.shard_id)
        self.start = str(init.sequence_number)
        self.versions = self.versions_for(self.shard_id)
        try:
            self.versions.load(self.start)
        except LeaseLost as exc:
            raise KclLeaseLost(f"shard {self.shard_id}: another processor took it") from exc
        last, item_versions = self._start_versions()
        self.processor.initialize(
            InitializationInput(
                self.table, self.stream_arn, self.shard_id, self.start, last, item_versions
            )
        )

    def _start_versions(self) -> tuple[int, bytes | None]:
        assert self.versions is not None
        if self.start in FRESH:
            parents = self.parent_versions(self.shard_id)
            try:
                return child_start((p.last_version, p.item_versions) for p in parents)
            except ValueError as exc:
                raise PermanentError(
                    f"shard {self.shard_id}: a parent's stored item versions are damaged: {exc}"
                ) from exc
        found = self.versions.at(self.start)
        if found is None:
            # Only a lease table emptied behind the KCL's back gets here: versions restart
            # from the records' own change times (they still order by change time).
            log.warning(
                "no version recorded for the KCL's checkpoint; versions restart from change times",
                extra=self._where(),
            )
            return 0, None
        if not found.exact:
            log.warning(
                "the KCL's checkpoint has no versions of its own; using the newest before it",
                extra={**self._where(), "last_version": found.last_version},
            )
        return found.last_version, found.item_versions

    def _process_records(self, batch: Any) -> None:
        if self.lost:
            return  # the lease is another processor's: so are these records
        page = WireRecords()
        if self.transport == "dynamodb-streams":
            where = f"table {self.table} stream {self.stream_arn} shard {self.shard_id}"
            convert = stream_record_from_adapter
        else:
            where = f"table {self.table} Kinesis stream {self.stream_arn} shard {self.shard_id}"
            convert = stream_record_from_kinesis
        for record in batch.records:
            page.append(convert(record.binary_data, str(record.sequence_number), where))
        # WireRecords holds wire-form dicts; the processor types its input as botocore's.
        self.processor.process_records(cast(Any, page), self._writer(batch.checkpointer))

    def _writer(self, kcl_checkpointer: Any) -> KclCheckpoint:
        assert self.versions is not None, "a KCL call before initialize"
        return KclCheckpoint(kcl_checkpointer, self.versions, self.start)

    def _guard(self, step: Callable[[Any], None], arg: Any) -> None:
        """Run one KCL call; a lost lease stops checkpointing, anything else ends the process."""
        try:
            step(arg)
        except KclLeaseLost as exc:
            # The KCL calls lease_lost next; records in flight are duplicates for the next
            # owner, with the same versions.
            self.lost = True
            log.warning("%s", exc, extra=self._where())
        except Exception as exc:
            kind = "bad record" if isinstance(exc, PermanentError) else "failure"
            log.exception("KCL record processor stops on a %s: %s", kind, exc, extra=self._where())
            self.exit(EXIT_FAILED)

    def _where(self) -> dict[str, str]:
        return {"table": self.table, "shard": self.shard_id}
