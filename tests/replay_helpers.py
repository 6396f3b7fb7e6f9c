"""Helpers for the replay tests (Kafka's own tool and `ddb-bridge replay`): run apply until
its group has caught up, read and damage a SQLite target's rows, read a group's offsets."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from bridge.kafka.lag import PartitionLag, caught_up, group_lag
from bridge.model import attrs
from bridge.runtime.settings import KafkaSettings
from tests.apply_harness import ApplyProcess, History
from tests.support.daemon import run_bridge


def rows(db: Path, table: str) -> list[tuple[Any, ...]]:
    """Every row of the target table as stored: keys, item text, version, tombstone flag."""
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall())


def apply_until_caught_up(config: Path, kafka: KafkaSettings, group: str, topic: str) -> str:
    """Run `ddb-bridge apply` until its group has committed the end of every partition, then
    stop it with SIGTERM (it commits on the way out and leaves the group). Returns its log."""
    proc = ApplyProcess(config, "--create-schema")
    proc.wait_joined()
    proc.wait_until(lambda: caught_up(group_lag(kafka, group, [topic])), timeout_s=180)
    assert proc.terminate() == 0, proc.output
    assert "Traceback" not in proc.output
    return proc.output


def corrupt(db: Path, table: str, history: History) -> list[str]:
    """Damage three rows the way a target goes wrong outside the bridge; returns their keys.
    A live row deleted by hand; a live row rolled back to an older, wrong image (a stale
    restore); a deleted key brought back to life at an older version."""
    live = sorted(history.live)
    gone = sorted(kb for kb, item in history.final.items() if item is None)
    assert len(live) >= 2 and gone, "the history needs live and deleted keys"
    damaged = []
    with sqlite3.connect(db) as conn:
        by_key = {
            attrs.canonical_key({"pk": {"S": pk}, "sk": {"N": str(sk)}}): (pk, sk, item, version)
            for pk, sk, item, version, _deleted in conn.execute(f'SELECT * FROM "{table}"')
        }
        pk, sk, _, _ = by_key[live[0]]
        conn.execute(f'DELETE FROM "{table}" WHERE pk = ? AND sk = ?', (pk, sk))
        damaged.append(pk)

        pk, sk, item, version = by_key[live[1]]
        stale = json.loads(item) | {"name": {"S": "stale copy"}}
        conn.execute(
            f'UPDATE "{table}" SET item = ?, version = ? WHERE pk = ? AND sk = ?',
            (json.dumps(stale), version - 1, pk, sk),
        )
        damaged.append(pk)

        pk, sk, _, version = by_key[gone[0]]
        revived = {"pk": {"S": pk}, "sk": {"N": str(sk)}, "name": {"S": "back from the dead"}}
        conn.execute(
            f'UPDATE "{table}" SET item = ?, version = ?, deleted = 0 WHERE pk = ? AND sk = ?',
            (json.dumps(revived), version - 1, pk, sk),
        )
        damaged.append(pk)
    return damaged


def offsets(lags: list[PartitionLag]) -> dict[int, int | None]:
    return {p.partition: p.committed for p in lags}


def run_replay(config: Path, *args: str, timeout_s: float = 120) -> tuple[int, str, str]:
    """`ddb-bridge replay --config CONFIG ARGS...` in a subprocess: exit code, stdout, stderr."""
    proc = run_bridge("replay", config, *args, timeout_s=timeout_s, cwd=config.parent)
    return proc.returncode, proc.stdout, proc.stderr


def replay_json(config: Path, *args: str) -> dict[str, Any]:
    """The `--json` plan of a replay that must succeed."""
    code, out, err = run_replay(config, *args, "--json")
    assert code == 0, err
    plan: dict[str, Any] = json.loads(out)
    return plan
