"""DynamoDB-API sink specifics: what the target holds (version, tombstones), throttling."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from bridge.model.errors import PermanentError, TransientError
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.ports.sink import TableSpec
from bridge.runtime.settings import AlternatorTarget
from connectors.sinks.alternator import AlternatorSink

pytestmark = pytest.mark.integration

BASE = 1_700_000_000_000_000
KEYS = {"pk": {"S": "k"}}


@pytest.fixture
def sink(dynamodb_endpoint: str, unique_name: Any) -> Any:
    name = unique_name("alt")
    sink = AlternatorSink(AlternatorTarget(type="alternator", endpoint_url=dynamodb_endpoint))
    sink.open([TableSpec(source=name, target=name, hash_key="pk", hash_type="S")], True)
    sink.name = name
    yield sink
    sink.close()


def test_target_holds_version_and_tombstone(sink: Any, ddb_client: Any) -> None:
    item = {**KEYS, "a": {"S": "x"}}
    sink.write_batch([ChangeEvent(sink.name, Op.INSERT, KEYS, BASE, Origin.STREAM, new_image=item)])
    stored = ddb_client.get_item(TableName=sink.name, Key=KEYS, ConsistentRead=True)["Item"]
    assert stored == {**item, "_ddb_bridge_version": {"N": str(BASE)}}
    sink.write_batch([ChangeEvent(sink.name, Op.REMOVE, KEYS, BASE + 1, Origin.STREAM)])
    stored = ddb_client.get_item(TableName=sink.name, Key=KEYS, ConsistentRead=True)["Item"]
    assert stored == {
        **KEYS,
        "_ddb_bridge_version": {"N": str(BASE + 1)},
        "_ddb_bridge_deleted": {"BOOL": True},
    }
    assert sink.read_items(sink.name, [KEYS]) == [None]


def test_reserved_attribute_in_an_item_is_permanent(sink: Any) -> None:
    item = {**KEYS, "_ddb_bridge_version": {"N": "1"}}
    with pytest.raises(PermanentError, match="reserves"):
        sink.write_batch(
            [ChangeEvent(sink.name, Op.INSERT, KEYS, BASE, Origin.STREAM, new_image=item)]
        )


class _Throttled:
    def __init__(self, code: str) -> None:
        self.code = code

    def put_item(self, **_: Any) -> None:
        raise ClientError({"Error": {"Code": self.code, "Message": "slow down"}}, "PutItem")


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("ProvisionedThroughputExceededException", TransientError),
        ("ThrottlingException", TransientError),
        ("ValidationException", PermanentError),
    ],
)
def test_throttling_is_transient(sink: Any, code: str, error: type[Exception]) -> None:
    sink._client = _Throttled(code)
    event = ChangeEvent(sink.name, Op.INSERT, KEYS, BASE, Origin.STREAM, new_image=KEYS)
    with pytest.raises(error, match=code):
        sink.write_batch([event])
