"""The contracts the connectors implement: the Sink and Source protocols.

The core drives sinks and sources only through these (as Faust keeps its types apart from its
drivers); `connectors` holds the implementations.

May import: `bridge.model`; no Kafka client, no database or AWS driver.
"""
