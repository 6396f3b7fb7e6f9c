"""Read-only access to a source table for `verify`: parallel scan pages and batched gets.

No checkpoints and no claims (unlike the back-fill scan): verify is re-run, not resumed.
"""

from __future__ import annotations

import functools
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from bridge.model import attrs
from bridge.model.attrs import Item
from connectors.dynamodb.aws import Backoff, call_with_backoff, translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import KeysAndAttributesTypeDef

_DONE = object()


def scan_pages(
    make_client: Callable[[], DynamoDBClient],
    table: str,
    segments: int,
    *,
    consistent: bool = False,
    sample_rate: float = 1.0,
    seed: int | None = None,
) -> Iterator[list[Item]]:
    """Pages of wire-form items from a parallel scan (bounded queue: memory stays flat).

    With `sample_rate` < 1 the table is cut into 1,000 segments and only a random share of
    them is read: each segment is a uniform slice of the key space, so that is a fair sample.
    """
    total = segments
    chosen = list(range(segments))
    if sample_rate < 1.0:
        total = 1000
        rng = random.Random(seed)
        chosen = sorted(rng.sample(range(total), max(1, round(sample_rate * total))))
    pages: queue.Queue[Any] = queue.Queue(maxsize=segments * 2)
    work: queue.Queue[int] = queue.Queue()
    for seg in chosen:
        work.put(seg)
    errors: list[BaseException] = []

    def worker() -> None:
        client = make_client()
        try:
            while True:
                try:
                    seg = work.get_nowait()
                except queue.Empty:
                    return
                kwargs: dict[str, Any] = {
                    "TableName": table,
                    "Segment": seg,
                    "TotalSegments": total,
                    "ConsistentRead": consistent,
                }
                what = f"Scan {table} segment {seg}"
                while True:
                    try:
                        resp = call_with_backoff(functools.partial(client.scan, **kwargs), what)
                    except ClientError as exc:
                        raise translate(exc, what) from exc
                    items = resp.get("Items", [])
                    if items:
                        pages.put([attrs.from_boto(i, f"{table} segment {seg}") for i in items])
                    if "LastEvaluatedKey" not in resp:
                        break
                    kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        except BaseException as exc:  # handed to the consumer, which re-raises it
            errors.append(exc)
        finally:
            pages.put(_DONE)

    threads = [
        threading.Thread(target=worker, daemon=True) for _ in range(min(segments, len(chosen)))
    ]
    for t in threads:
        t.start()
    finished = 0
    while finished < len(threads):
        page = pages.get()
        if page is _DONE:
            finished += 1
            continue
        yield page
    if errors:
        raise errors[0]


def batch_get(
    client: DynamoDBClient,
    table: str,
    key_names: tuple[str, ...],
    keys: Sequence[Item],
    consistent: bool = True,
) -> list[Item | None]:
    """The current source item for each key (None when absent), in order; ≤ 100 keys a call."""
    found: dict[bytes, Item] = {}
    for start in range(0, len(keys), 100):
        pending: list[dict[str, Any]] = [attrs.to_boto(k) for k in keys[start : start + 100]]
        backoff = Backoff()
        while pending:
            request: dict[str, KeysAndAttributesTypeDef] = {
                table: {"Keys": pending, "ConsistentRead": consistent}
            }
            try:
                resp = call_with_backoff(
                    functools.partial(client.batch_get_item, RequestItems=request),
                    f"BatchGetItem {table}",
                )
            except ClientError as exc:
                raise translate(exc, f"BatchGetItem {table}") from exc
            for item in resp.get("Responses", {}).get(table, []):
                wire = attrs.from_boto(item, table)
                found[attrs.canonical_key(attrs.extract_keys(wire, key_names))] = wire
            unprocessed = resp.get("UnprocessedKeys", {}).get(table)
            pending = unprocessed.get("Keys", []) if unprocessed else []
            if pending:
                # Unprocessed keys mean throttling: back off before asking for them again.
                time.sleep(backoff.next_delay())
            else:
                backoff.reset()
    return [found.get(attrs.canonical_key(k)) for k in keys]
