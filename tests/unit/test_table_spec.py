"""One table-spec resolver (`connectors.dynamodb.aws.table_spec`): declared, else described."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.runtime.settings import Settings, TableSettings
from connectors.dynamodb import aws


class DescribingDdb:
    """DescribeTable and DescribeTimeToLive of a pk (S) / sk (N) table with TTL on `exp`."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def describe_table(self, TableName: str) -> dict[str, Any]:
        self.calls.append(f"DescribeTable {TableName}")
        return {
            "Table": {
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "N"},
                ],
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
            }
        }

    def describe_time_to_live(self, TableName: str) -> dict[str, Any]:
        self.calls.append(f"DescribeTimeToLive {TableName}")
        return {"TimeToLiveDescription": {"TimeToLiveStatus": "ENABLED", "AttributeName": "exp"}}


def test_a_declared_table_needs_no_aws_access(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_client(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a declared table must not be described")

    monkeypatch.setattr(aws, "client", no_client)
    settings = Settings(tables=[TableSettings(name="t", hash_key="id", ttl_attribute="gone")])
    spec = aws.table_spec(None, settings, "t")
    assert (spec.hash_key, spec.hash_type, spec.range_key, spec.ttl_attribute) == (
        "id",
        "S",
        None,
        "gone",
    )


def test_an_undeclared_table_is_described_with_a_client_made_on_demand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ddb = DescribingDdb()
    made: list[str] = []

    def make(service: str, *args: Any, **kwargs: Any) -> Any:
        made.append(service)
        return ddb

    monkeypatch.setattr(aws, "client", make)
    spec = aws.table_spec(None, Settings(), "orders")
    assert made == ["dynamodb"]
    assert ddb.calls == ["DescribeTable orders", "DescribeTimeToLive orders"]
    assert (spec.hash_key, spec.hash_type, spec.range_key, spec.range_type) == (
        "pk",
        "S",
        "sk",
        "N",
    )
    assert spec.ttl_attribute == "exp"


def test_a_given_client_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aws, "client", lambda *a, **k: pytest.fail("no new client expected"))
    ddb = DescribingDdb()
    assert aws.table_spec(ddb, Settings(), "orders").key_names == ("pk", "sk")
    assert ddb.calls[0] == "DescribeTable orders"
