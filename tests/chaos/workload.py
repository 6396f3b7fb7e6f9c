"""The chaos run's source table and its seeded writer: puts (new and overwriting), updates
that SET some attributes and REMOVE others, and deletes, at a steady rate."""

from __future__ import annotations

import base64
import random
import threading
import time
from collections import Counter
from typing import Any

KEY = "pk"
# Attributes an item may hold besides its key: updates SET some and REMOVE others, so the
# target must drop attributes, not only add them.
ATTRS = ("n", "s", "tags", "m", "b", "flag", "price")


def key_name(i: int) -> str:
    return f"k-{i:06d}"


def create_table(ddb: Any, table: str) -> None:
    """A hash-key table, without a stream yet (seeded first, as in a real migration)."""
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": KEY, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": KEY, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def enable_stream(ddb: Any, table: str) -> str:
    ddb.update_table(
        TableName=table,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return str(ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"])


def attribute(name: str, rng: random.Random) -> dict[str, Any]:
    if name == "n":
        return {"N": str(rng.randint(-(10**12), 10**12))}
    if name == "s":
        return {"S": rng.choice(["", "alpha", "Zoë", "東京", "x" * rng.randint(1, 200)])}
    if name == "tags":
        return {"SS": sorted({rng.choice("abcdefgh") for _ in range(3)})}
    if name == "m":
        return {"M": {"depth": {"N": str(rng.randint(0, 9))}, "l": {"L": [{"BOOL": True}]}}}
    if name == "b":
        return {"B": base64.b64encode(rng.randbytes(rng.randint(1, 32))).decode()}
    if name == "flag":
        return {"BOOL": rng.random() < 0.5}
    return {"N": f"{rng.randint(0, 99999)}.{rng.randint(0, 99):02d}"}


def item(i: int, rng: random.Random) -> dict[str, Any]:
    chosen = rng.sample(ATTRS, rng.randint(2, len(ATTRS)))
    return {KEY: {"S": key_name(i)}, **{a: attribute(a, rng) for a in chosen}}


def seed(ddb: Any, table: str, keys: int, rng: random.Random) -> set[int]:
    """Half the key space exists before the stream is enabled: only the back-fill sees it."""
    live = set(rng.sample(range(keys), keys // 2))
    batch: list[dict[str, Any]] = []
    for i in sorted(live):
        batch.append({"PutRequest": {"Item": _to_boto(item(i, rng))}})
        if len(batch) == 25:
            _batch_write(ddb, table, batch)
            batch = []
    if batch:
        _batch_write(ddb, table, batch)
    return live


def _batch_write(ddb: Any, table: str, batch: list[dict[str, Any]]) -> None:
    request: dict[str, Any] = {table: batch}
    while request:
        request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def _to_boto(image: dict[str, Any]) -> dict[str, Any]:
    """Wire-form B is base64 text; boto3 wants the bytes."""
    out: dict[str, Any] = {}
    for name, value in image.items():
        out[name] = {"B": base64.b64decode(value["B"])} if "B" in value else value
    return out


class Writer(threading.Thread):
    """`total` writes at `rate` per second over `keys` keys, from `random.Random(seed)`."""

    def __init__(
        self, ddb: Any, table: str, keys: int, live: set[int], total: int, rate: float, seed: int
    ) -> None:
        super().__init__(name="chaos-writer", daemon=True)
        self.ddb, self.table, self.keys, self.total, self.rate = ddb, table, keys, total, rate
        self.live = set(live)
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        try:
            while self.done < self.total and not self.stop_event.is_set():
                self.step()
                # A steady rate: catch up after a slow call rather than drift.
                next_at += interval
                self.stop_event.wait(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # the scenario fails the run with it
            self.error = exc

    def step(self) -> None:
        roll = self.rng.random()
        if roll < 0.3:
            i = self.rng.randrange(self.keys)
            kind = "put_overwrite" if i in self.live else "put_new"
            self.ddb.put_item(TableName=self.table, Item=_to_boto(item(i, self.rng)))
            self.live.add(i)
        elif roll < 0.8 or not self.live:
            i = self.rng.randrange(self.keys)
            kind = "update" if i in self.live else "update_new"
            self.update(i)
            self.live.add(i)
        else:
            i = self.rng.choice(sorted(self.live)) if self.rng.random() < 0.9 else None
            if i is None:  # now and then a delete of an item that is not there: no event
                i = self.rng.randrange(self.keys)
            kind = "delete" if i in self.live else "delete_absent"
            self.ddb.delete_item(TableName=self.table, Key={KEY: {"S": key_name(i)}})
            self.live.discard(i)
        self.counts[kind] += 1

    def update(self, i: int) -> None:
        names = list(ATTRS)
        self.rng.shuffle(names)
        set_names = names[: self.rng.randint(1, 3)]
        remove_names = names[len(set_names) : len(set_names) + self.rng.randint(1, 2)]
        values = {f":v{j}": attribute(a, self.rng) for j, a in enumerate(set_names)}
        sets = ", ".join(f"#s{j} = :v{j}" for j in range(len(set_names)))
        removes = ", ".join(f"#r{j}" for j in range(len(remove_names)))
        self.ddb.update_item(
            TableName=self.table,
            Key={KEY: {"S": key_name(i)}},
            UpdateExpression=f"SET {sets} REMOVE {removes}",
            ExpressionAttributeNames={
                **{f"#s{j}": a for j, a in enumerate(set_names)},
                **{f"#r{j}": a for j, a in enumerate(remove_names)},
            },
            ExpressionAttributeValues=_to_boto(values),
        )
