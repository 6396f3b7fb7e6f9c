"""Everything that talks to Kafka: the one client-config builder, topics and their
durability, the publisher, reads of offsets and logs, size limits, refusals, reachability,
lag, replay, skipped offsets and the Schema Registry.

May import: `bridge.model`, `bridge.ports`, `bridge.codec`, `bridge.runtime`.
"""
