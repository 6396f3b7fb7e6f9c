"""The KCL path: the bridge's record processor driven by the Java KCL's MultiLangDaemon.

`processor.py` adapts amazon-kclpy's v3 `RecordProcessorBase` to the shared
`KafkaRecordProcessor`; `checkpoints.py` writes checkpoints through the KCL's checkpointer;
`versions.py` keeps, in the bridge's lease table, the version that goes with each KCL
checkpoint; `properties.py` writes the daemon's properties file. amazon-kclpy is the optional
`ddb-bridge[kcl]` extra: only `processor.py` imports it.
"""
