"""What every daemon runs with: settings and the config file, logging (with secrets
redacted and repeated client lines folded), and the Prometheus metrics and their HTTP server.

May import: `bridge.model`; no Kafka client (the metrics server takes its Kafka probe as a
callable), no database or AWS driver.
"""
