"""`ddb-bridge audit`: every change event archived once, in files readers already know.

Layout: `<root>/table=<t>/date=YYYY-MM-DD/hour=HH/part-<partition>-<first>-<last>.avro` (or
`.jsonl`), an Avro object container file of `schemas/audit_record.avsc` records (or JSON
Lines), filed by the UTC hour of each event's change time. A file holds the events of one
Kafka partition whose offsets lie in `first..last` and whose change time falls in that hour,
in offset order; every record carries its topic, partition and offset.

Delivery guarantee: exactly once in the archive, across restarts, SIGKILL and rebalances, for
one audit consumer group per archive root. The argument:

1. Per partition, the worker archives a *segment*, offsets `first..last`, at a time. Its
   files are written in a staging folder, flushed and fsynced. Nothing outside staging
   exists yet; a crash now leaves only staging files, removed when the partition is next
   assigned, and Kafka still holds the offsets at `first` (nothing committed past them).
2. Then an *intent* `_audit/<topic>/<partition>.json` naming `first`, `last` and the files is
   stored durably (write-temp, fsync, rename; one PUT on S3).
3. Then each file is moved to its final name (rename + fsync of the folder; an upload on S3).
   File names are made of the partition and the segment's `first` and `last` offsets only.
4. Then the offset `last + 1` is committed, synchronously. Only now may the worker start the
   partition's next segment, so at most one segment per partition is ever uncommitted.

A crash after 4 restarts past `last`: the files are in place and are never written again. A
crash between 2 and 4 leaves some or all of the segment's files in place with the offset
still at `first`. On assignment the worker reads the intent: its `first` equals the committed
offset, so it reads the same offsets again and ends that segment exactly at the intent's
`last` (rotation by size, count or age is suspended for it). The same offsets hold the same
records, which land in the same hour buckets (the hour comes from the event, never from the
clock), under the same names: each file is replaced by one with the same events, never added
beside it. A crash before 2 leaves no published file and no intent newer than the commit, so
the segment can end anywhere. Hence no event is lost (nothing is committed before its file is
durable) and none is archived twice (a published, uncommitted segment is only ever rewritten
under its own names).

On a rebalance a revoked partition's unpublished segment is dropped; its new owner reads the
offsets again. Publishing runs in the polling thread, so the group waits for a member that is
publishing before it moves the partition (within `max.poll.interval.ms`).

Limits: moving the audit group's offsets back (`replay`) archives the replayed events again;
a segment's records deleted by retention between the crash and the restart cannot be
rewritten identically. Use one archive root per audit group.

May import: `kafka`, `codec`, `runtime`, `model`; its S3 destination comes from `connectors`
through the composition root.
"""
