"""The change model: what every other room speaks.

Holds the change event and its images, the DynamoDB attribute-value codec, versions and the
last-write-wins rule, the per-item version memory, TTL, acknowledgement tracking, the error
kinds, key filters and the one retry/backoff policy.

May import: nothing of `bridge` outside this room; no Kafka client, no database or AWS driver.
"""
