"""The dead-letter topic: the writer apply uses, the topic's records and headers, re-drive
and the watch that counts dead letters for metrics and status.

May import: `bridge.kafka` and the rooms below it.
"""
