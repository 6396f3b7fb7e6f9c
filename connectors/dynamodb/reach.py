"""Whether the source answers now: the readiness probe (`/readyz`) of `stream` and `backfill`.

One cheap read call per probe, on the API the daemon reads: DynamoDB Streams' ListStreams for
the table (stream, DynamoDB transport), Kinesis' ListStreams (stream, Kinesis transport),
DynamoDB's DescribeTable (backfill). None when AWS answers (any answer: a refused or missing
table is the daemon's own error to report, not an outage), else one line saying which API at
which endpoint did not answer. The client is made on the first probe and kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from bridge.runtime.redact import redact_text
from bridge.runtime.settings import AwsSettings
from connectors.dynamodb.aws import client

Probe = Callable[[], str | None]
Api = Literal["dynamodbstreams", "kinesis", "dynamodb"]
_NAMES = {"dynamodbstreams": "DynamoDB Streams", "kinesis": "Kinesis", "dynamodb": "DynamoDB"}


def source_probe(aws: AwsSettings, api: Api, table: str) -> Probe:
    holder: list[Any] = []
    where = aws.endpoint_url or f"region {aws.region}"

    def ask() -> str | None:
        try:
            if not holder:
                holder.append(client(api, aws))
            api_client = holder[0]
            if api == "dynamodbstreams":
                api_client.list_streams(TableName=table, Limit=1)
            elif api == "kinesis":
                api_client.list_streams(Limit=1)
            else:
                api_client.describe_table(TableName=table)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("ResourceNotFoundException", "ValidationException"):
                return None  # it answered
            return redact_text(f"source {_NAMES[api]} at {where} refuses: {code}: {exc}")
        except BotoCoreError as exc:
            return redact_text(f"source {_NAMES[api]} at {where} does not answer: {exc}")
        return None

    return ask
