"""DynamoDB's TTL rule as verify applies it: expired within the last five years only."""

from __future__ import annotations

from bridge.model.ttl import HORIZON_S, pending_deletion

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


def test_pending_deletion_as_the_back_fill_applies_it() -> None:
    now = 2_000_000_000.0
    assert pending_deletion({"e": {"N": str(int(now) - 1)}}, "e", now)
    assert not pending_deletion({"e": {"N": str(int(now) + 60)}}, "e", now)
    assert not pending_deletion({"e": {"S": "1"}}, "e", now)  # not a number: no TTL
    assert not pending_deletion({}, "e", now)
    # Older than five years: DynamoDB never deletes it, so it must be migrated.
    assert not pending_deletion({"e": {"N": str(int(now - HORIZON_S - 10))}}, "e", now)
    assert pending_deletion({"e": {"N": f"{int(now) - 100}.5"}}, "e", now)
    # Exact at the boundary: float() rounds these 38-digit values to `now` itself.
    assert pending_deletion({"e": {"N": f"{int(now) - 1}.{'9' * 28}"}}, "e", now)
    assert not pending_deletion({"e": {"N": f"{int(now)}.{'0' * 27}1"}}, "e", now)
