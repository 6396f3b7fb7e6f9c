"""Back-fill publishing of an item whose one image encodes to over 1 MB (text of control
characters: 6 bytes of JSON each): it goes through with the bridge's sizing, and when a limit
refuses it the back-fill stops with the alarm naming table, key, size and setting."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.codec.avro import EventCodec
from bridge.model import attrs
from bridge.model.errors import PermanentError
from connectors.sources.backfill.run_plan import BackfillRequest
from connectors.sources.backfill.runner import run_backfill
from connectors.sources.backfill.scan import ScanBackfill
from tests.backfill_helpers import backfill_settings
from tests.kafka_helpers import consume_all
from tests.stream_helpers import create_stream_table

pytestmark = pytest.mark.integration

KEY = {"pk": {"S": "wide"}, "sk": {"N": "1"}}


def say_nothing(_text: str) -> None:
    pass


def escaped_item(ddb: Any, table: str) -> attrs.Item:
    create_stream_table(ddb, table, view=None)
    item = {**KEY, "text": {"S": "\x01\x1f" * 190_000}}  # 380,000 bytes as DynamoDB counts
    ddb.put_item(TableName=table, Item=item)
    return attrs.from_boto(item)


def test_an_item_over_1_mb_encoded_is_back_filled(
    ddb_client: Any, dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any
) -> None:
    table = unique_name("wide")
    item = escaped_item(ddb_client, table)
    settings = backfill_settings(dynamodb_endpoint, kafka_bootstrap, unique_name("leases"), table)
    outcome = run_backfill(
        settings, BackfillRequest(table=table, no_stream=True), ScanBackfill(), say_nothing
    )
    assert outcome.complete and outcome.stats.published == 1
    (message,) = consume_all(kafka_bootstrap, settings.kafka.changes_topic(table), 1)
    assert len(message.value()) > 2_000_000
    assert EventCodec().decode(message.value()).new_image == item


def test_a_refused_item_stops_the_back_fill_with_the_named_setting(
    ddb_client: Any, dynamodb_endpoint: str, kafka_bootstrap: str, unique_name: Any
) -> None:
    table = unique_name("wide")
    escaped_item(ddb_client, table)
    settings = backfill_settings(dynamodb_endpoint, kafka_bootstrap, unique_name("leases"), table)
    settings.kafka.extra["message.max.bytes"] = 1_000_000
    with pytest.raises(PermanentError) as caught:
        run_backfill(
            settings, BackfillRequest(table=table, no_stream=True), ScanBackfill(), say_nothing
        )
    message = str(caught.value)
    assert f"table {table}" in message
    assert '{"pk":{"S":"wide"},"sk":{"N":"1"}}' in message
    assert '"message.max.bytes" (now 1000000)' in message
