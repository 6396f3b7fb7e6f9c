"""`python -m ddb_bridge.kcl_processor`: a shard's parents, on a scripted Kinesis client."""

from __future__ import annotations

from typing import Any

from ddb_bridge.kcl_processor import parents_of

ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/s"


class Kinesis:
    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.calls: list[dict[str, Any]] = []

    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return self.pages[len(self.calls) - 1]


def test_both_parents_of_a_merged_shard_are_found_on_a_later_page() -> None:
    kinesis = Kinesis(
        [
            {"Shards": [{"ShardId": "shardId-0"}, {"ShardId": "shardId-1"}], "NextToken": "t1"},
            {
                "Shards": [
                    {
                        "ShardId": "shardId-2",
                        "ParentShardId": "shardId-0",
                        "AdjacentParentShardId": "shardId-1",
                    }
                ]
            },
        ]
    )
    assert parents_of(kinesis, ARN, "shardId-2") == ["shardId-0", "shardId-1"]  # type: ignore[arg-type]
    # The next page is asked for by its token alone (ListShards refuses StreamARN with it).
    assert kinesis.calls == [{"StreamARN": ARN}, {"NextToken": "t1"}]


def test_a_shard_without_parents_has_none() -> None:
    kinesis = Kinesis([{"Shards": [{"ShardId": "shardId-0"}]}])
    assert parents_of(kinesis, ARN, "shardId-0") == []  # type: ignore[arg-type]
    assert parents_of(Kinesis([{"Shards": []}]), ARN, "shardId-9") == []  # type: ignore[arg-type]
