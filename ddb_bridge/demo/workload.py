"""The demo's source table and the writer that keeps changing it during the migration."""

from __future__ import annotations

import base64
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bridge.model import attrs

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import WriteRequestUnionTypeDef


def demo_item(i: int, rng: random.Random) -> dict[str, Any]:
    """A realistic order: every DynamoDB type, nesting, exact decimals, Unicode, binary."""
    return {
        "customer_id": {"S": f"customer-{i % 997:04d}"},
        "order_id": {"N": str(i)},
        "status": {"S": rng.choice(["NEW", "PAID", "SHIPPED", "DELIVERED"])},
        "total": {"N": f"{rng.randint(1, 99999)}.{rng.randint(0, 99):02d}"},
        "precise": {"N": "3.14159265358979323846264338327950288"},
        "note": {"S": rng.choice(["", "gift 🎁", "Zoë's order", "rápido"])},
        "gift": {"BOOL": rng.random() < 0.2},
        "coupon": {"NULL": True},
        "tags": {"SS": sorted({rng.choice(["web", "app", "b2b", "promo"]) for _ in range(2)})},
        "quantities": {"NS": [str(q) for q in sorted(rng.sample(range(1, 50), 3))]},
        "signature": {"B": base64.b64encode(rng.randbytes(16)).decode()},
        "attachments": {"BS": [base64.b64encode(rng.randbytes(4)).decode()]},
        "lines": {
            "L": [
                {
                    "M": {
                        "sku": {"S": f"SKU-{rng.randint(1, 500)}"},
                        "qty": {"N": str(rng.randint(1, 5))},
                    }
                }
                for _ in range(rng.randint(1, 3))
            ]
        },
        "address": {
            "M": {
                "city": {"S": rng.choice(["Lisboa", "Kraków", "東京"])},
                "zip": {"S": f"{rng.randint(1000, 99999)}"},
            }
        },
    }


def create_table(ddb: DynamoDBClient, table: str) -> None:
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[
            {"AttributeName": "customer_id", "AttributeType": "S"},
            {"AttributeName": "order_id", "AttributeType": "N"},
        ],
        KeySchema=[
            {"AttributeName": "customer_id", "KeyType": "HASH"},
            {"AttributeName": "order_id", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def enable_stream(ddb: DynamoDBClient, table: str) -> None:
    """Step 1 of the runbook: a NEW_AND_OLD_IMAGES stream on a table that already has data."""
    ddb.update_table(
        TableName=table,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def seed(
    ddb: DynamoDBClient,
    table: str,
    count: int,
    seed_value: int = 7,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write `count` demo items; `progress(written)` after each batch, if given."""
    rng = random.Random(seed_value)
    batch: list[WriteRequestUnionTypeDef] = []
    for i in range(count):
        batch.append({"PutRequest": {"Item": attrs.to_boto(demo_item(i, rng))}})
        if len(batch) == 25 or i == count - 1:
            _write(ddb, table, batch)
            batch = []
            if progress is not None:
                progress(i + 1)


def _write(ddb: DynamoDBClient, table: str, batch: list[WriteRequestUnionTypeDef]) -> None:
    request: Mapping[str, Sequence[WriteRequestUnionTypeDef]] = {table: batch}
    while request:
        request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


@dataclass
class WriterStats:
    puts: int = 0
    updates: int = 0
    deletes: int = 0
    # Deletes that found no item (deleted before): DynamoDB writes no stream record for them.
    absent_deletes: int = 0
    # Updates of a key with no item, which create it.
    creating_updates: int = 0

    @property
    def total(self) -> int:
        return self.puts + self.updates + self.deletes


class Writer(threading.Thread):
    """Updates, deletes and inserts items at a steady rate until stopped."""

    def __init__(
        self,
        ddb: DynamoDBClient,
        table: str,
        key_space: int,
        rate_per_s: float,
        seed_value: int = 11,
    ):
        super().__init__(name="demo-writer", daemon=True)
        self.ddb = ddb
        self.table = table
        self.key_space = key_space
        self.next_id = key_space
        self.rate = rate_per_s
        self.rng = random.Random(seed_value)
        self.stats = WriterStats()
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.started_at: float | None = None  # monotonic
        self.stopped_at: float | None = None

    @property
    def seconds(self) -> float:
        """How long it has been writing (until it stopped)."""
        if self.started_at is None:
            return 0.0
        return (self.stopped_at or time.monotonic()) - self.started_at

    def rate_now(self) -> float:
        """Changes per second it achieved so far (it may fall short of the rate asked)."""
        return self.stats.total / self.seconds if self.seconds > 0 else 0.0

    def run(self) -> None:
        interval = 1.0 / self.rate
        self.started_at = time.monotonic()
        try:
            while not self.stop_event.is_set():
                started = time.monotonic()
                self.step()
                self.stop_event.wait(max(0.0, interval - (time.monotonic() - started)))
        except BaseException as exc:  # reported by the orchestrator, which fails the demo
            self.error = exc
        finally:
            self.stopped_at = time.monotonic()

    def step(self) -> None:
        roll = self.rng.random()
        i = self.rng.randrange(self.key_space)
        key = {"customer_id": {"S": f"customer-{i % 997:04d}"}, "order_id": {"N": str(i)}}
        if roll < 0.6:
            # Update some attributes and remove one: the target must lose it too. ALL_OLD
            # tells whether the item was there: moto records two stream records (not
            # DynamoDB's one) for an update that creates it.
            old = self.ddb.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="SET #s = :s, #t = :t REMOVE #n",
                ExpressionAttributeNames={"#s": "status", "#t": "total", "#n": "note"},
                ExpressionAttributeValues={
                    ":s": {"S": self.rng.choice(["PAID", "SHIPPED", "RETURNED"])},
                    ":t": {"N": f"{self.rng.randint(1, 99999)}.{self.rng.randint(0, 99):02d}"},
                },
                ReturnValues="ALL_OLD",
            )
            self.stats.updates += 1
            if not old.get("Attributes"):
                self.stats.creating_updates += 1
        elif roll < 0.85:
            # ALL_OLD tells whether an item was there: the summary counts stream records.
            gone = self.ddb.delete_item(TableName=self.table, Key=key, ReturnValues="ALL_OLD")
            self.stats.deletes += 1
            if not gone.get("Attributes"):
                self.stats.absent_deletes += 1
        else:
            item = demo_item(self.next_id, self.rng)
            self.next_id += 1
            self.ddb.put_item(TableName=self.table, Item=attrs.to_boto(item))
            self.stats.puts += 1
