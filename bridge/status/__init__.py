"""Where a migration stands: the status report (lag, progress, durability, skipped
offsets, the cut-over verdict) and the Kafka readings it is made of.

May import: `bridge.kafka` and the rooms below it.
"""
