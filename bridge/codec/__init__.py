"""Encodings of change events: the Avro envelope and codec, DynamoDB JSON text images, and
the registry of fast paths that must match their validated paths byte for byte.

May import: `bridge.model`, `bridge.ports`; no Kafka client, no database or AWS driver.
"""
