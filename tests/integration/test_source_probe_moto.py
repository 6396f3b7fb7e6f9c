"""The source readiness probe of `stream` and `backfill` (connectors/dynamodb/reach.py), against
moto and against an endpoint where nothing listens."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from bridge.runtime.settings import AwsSettings
from connectors.dynamodb.reach import source_probe
from tests.metrics_helpers import free_port
from tests.stream_helpers import create_stream_table

pytestmark = pytest.mark.integration


def aws(endpoint: str) -> AwsSettings:
    return AwsSettings(
        region="us-east-1",
        endpoint_url=endpoint,
        access_key_id=SecretStr("testing"),
        secret_access_key=SecretStr("testing"),
    )


def test_each_api_answers_on_moto_a_missing_table_too(
    dynamodb_endpoint: str, ddb_client: Any, unique_name: Any
) -> None:
    table = unique_name("probe")
    create_stream_table(ddb_client, table)
    for api in ("dynamodbstreams", "kinesis", "dynamodb"):
        assert source_probe(aws(dynamodb_endpoint), api, table)() is None, api
    # It answered, with "no such table": the daemon reports that, the probe reports outages.
    assert source_probe(aws(dynamodb_endpoint), "dynamodb", unique_name("none"))() is None


def test_nothing_listening_is_a_one_line_reason_naming_api_and_endpoint() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    said = source_probe(aws(endpoint), "dynamodbstreams", "orders")() or ""
    assert said.startswith(f"source DynamoDB Streams at {endpoint} does not answer"), said
    assert "\n" not in said
