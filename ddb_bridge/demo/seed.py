"""`python -m ddb_bridge.demo.seed`: the demo source table, with its stream, seeded.

The one-shot `seed` service of docker-compose.yml runs it before `stream` and `apply`, so
`docker compose up` is a whole migration. The stream is on before the first item is written,
so `stream` (from TRIM_HORIZON) carries every seeded item and no back-fill is needed. Run
again, it re-writes the same items (the same images: the target does not change).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from bridge.runtime import logs
from bridge.runtime.settings import load_settings
from connectors.dynamodb import aws
from ddb_bridge.demo.workload import create_table, enable_stream, seed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger("ddb-bridge.demo.seed")


def ensure_table(ddb: DynamoDBClient, table: str, timeout_s: float = 60.0) -> None:
    """The demo table (customer_id, order_id) with a NEW_AND_OLD_IMAGES stream, ACTIVE."""
    try:
        create_table(ddb, table)
        log.info("created the demo table", extra={"table": table})
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
        log.info("the demo table exists", extra={"table": table})
    deadline = time.monotonic() + timeout_s
    while True:
        desc = ddb.describe_table(TableName=table)["Table"]
        if desc.get("TableStatus") == "ACTIVE":
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {table} not ACTIVE after {timeout_s}s")
        time.sleep(0.5)
    if not desc.get("StreamSpecification", {}).get("StreamEnabled"):
        enable_stream(ddb, table)
        log.info("enabled the stream", extra={"table": table})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ddb_bridge.demo.seed",
        description="Create each demo source table with its stream and seed it "
        "(exit 0: done; 1: failed, the message says why).",
    )
    parser.add_argument("--config", default=None, help="TOML config [default: $DDB_BRIDGE_CONFIG]")
    parser.add_argument(
        "--table", action="append", default=None, help="[default: every [[tables]] entry]"
    )
    parser.add_argument("--items", type=int, default=2000, help="items to write per table")
    args = parser.parse_args(argv)
    logs.setup("INFO")
    settings = load_settings(args.config)
    tables = args.table or [t.name for t in settings.tables]
    ddb = aws.client("dynamodb", settings.aws)
    try:
        for table in tables:
            ensure_table(ddb, table)
            seed(ddb, table, args.items)
            log.info("seeded", extra={"table": table, "items": args.items})
    except (ClientError, TimeoutError) as exc:
        print(f"seed: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
