"""DynamoDB's TTL rule as verify applies it: expired within the last five years only."""

from __future__ import annotations

from bridge.ttl import HORIZON_S, pending_deletion

NOW = 1_800_000_000.0


def test_pending_deletion_follows_dynamodb_rules() -> None:
    assert pending_deletion({"e": {"N": str(int(NOW) - 1)}}, "e", NOW)
    assert pending_deletion({"e": {"N": str(int(NOW - HORIZON_S))}}, "e", NOW)  # the boundary
    assert not pending_deletion({"e": {"N": str(int(NOW - HORIZON_S) - 1)}}, "e", NOW)
    assert not pending_deletion({"e": {"N": str(int(NOW))}}, "e", NOW)  # not yet past
    assert not pending_deletion({"e": {"N": "1e999999"}}, "e", NOW)
    assert not pending_deletion({"e": {"N": "-1e999999"}}, "e", NOW)  # far older than 5 years
    assert not pending_deletion({"e": {"S": "1"}}, "e", NOW)  # not a number: ignored
    assert not pending_deletion({"e": {"N": "x"}}, "e", NOW)
    assert not pending_deletion({}, "e", NOW)
    assert not pending_deletion({"e": {"N": "1"}}, None, NOW)
    assert not pending_deletion(None, "e", NOW)
    # 38 digits: a float would round this to NOW and call it not yet expired.
    just_before = f"{int(NOW) - 1}.99999999999999999999999999"
    assert pending_deletion({"e": {"N": just_before}}, "e", NOW)
