"""The Kafka clients' repeated lines fold into one per window (bridge/runtime/log_fold.py)."""

from __future__ import annotations

import logging

from bridge.runtime.log_fold import RepeatFold


def _record(name: str, msg: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, None)


def test_repeats_fold_and_the_next_window_says_how_many() -> None:
    now = [0.0]
    fold = RepeatFold(window_s=60, clock=lambda: now[0])
    line = "FAIL [rdkafka#consumer-1] 127.0.0.1:9092/bootstrap: Connect failed: Connection "
    passed = [
        fold.filter(_record("rdkafka", f"{line}(after {n}ms in state CONNECT)")) for n in range(500)
    ]
    assert passed.count(True) == 1 and passed[0]
    now[0] = 61.0
    last = _record("rdkafka", f"{line}(after 3ms in state CONNECT)")
    assert fold.filter(last)
    assert "499 similar lines folded" in last.getMessage()


def test_other_brokers_and_the_bridges_own_lines_are_not_folded() -> None:
    fold = RepeatFold(window_s=60, clock=lambda: 0.0)
    assert fold.filter(_record("rdkafka", "Connect to 127.0.0.1:9092 failed"))
    assert fold.filter(_record("rdkafka", "Connect to 127.0.0.1:9093 failed"))  # another port
    assert fold.filter(_record("aiokafka.conn", "Unable to connect to node 1"))
    for _ in range(3):
        assert fold.filter(_record("ddb-bridge.apply", "hole between committed offsets"))
