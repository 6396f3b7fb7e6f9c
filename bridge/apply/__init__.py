"""`ddb-bridge apply`: Kafka change topics → a target database, last-write-wins.

Delivery guarantee: at-least-once into an idempotent target. A record's offset is committed
only after the sink confirmed the write of its batch (or, for a record the target can never
accept, after its dead letter is acknowledged by Kafka). Replays and duplicates are harmless
because every sink keeps the highest version per key.

May import: every room of `bridge` below the engines (`dlq`, `kafka`, `codec`, `runtime`,
`ports`, `model`); Faust and aiokafka; never a connector.
"""
