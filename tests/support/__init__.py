"""The tests' shared toolkit: launching the bridge's commands, waiting for a condition.

The config files the tests write come from `bridge.runtime.config_file.write_config` (in the
package, since the demo and the benchmarks write theirs with it too). The services the tests
run come from `ddb_bridge.services`, shared with the demo and the benchmarks.
"""
