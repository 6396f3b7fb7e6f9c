"""The benchmarks (`make bench`, `python -m benchmarks`)."""

import os

# The broker and Cassandra node measured against run at full speed (both JIT tiers), not in
# the tests' cheaper first tier (ddb_bridge/services/kafka_jars.py: SHORT_LIVED_JVM).
os.environ.setdefault("DDB_BRIDGE_SERVICES_JIT", "full")
