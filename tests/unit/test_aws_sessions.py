"""`aws.session`: every session of a process shares botocore's parsed service models, and
nothing else (connectors/dynamodb/aws.py)."""

from __future__ import annotations

from pydantic import SecretStr

from bridge.runtime.settings import AwsSettings
from connectors.dynamodb import aws


def _keys(key_id: str) -> AwsSettings:
    return AwsSettings(
        region="eu-west-1",
        endpoint_url="http://127.0.0.1:1",
        access_key_id=SecretStr(key_id),
        secret_access_key=SecretStr("secret-" + key_id),
    )


def test_a_service_model_is_parsed_once_per_process_whatever_the_sessions() -> None:
    first = aws.client("dynamodb", _keys("AKIAFIRST"))
    second = aws.client("dynamodb", _keys("AKIASECOND"))
    # The same parsed document behind both clients, not a second parse of the file.
    described = [getattr(c.meta.service_model, "_service_description") for c in (first, second)]  # noqa: B009
    assert described[0] is described[1]
    # boto3 adds its data folder at each session: listed once however many sessions.
    loader = aws.session(_keys("AKIAMORE"))._session.get_component("data_loader")
    paths = list(loader.search_paths)
    for _ in range(3):
        aws.session(_keys("AKIAMORE"))
    assert loader.search_paths == paths
    assert len(paths) == len(set(paths))


def test_credentials_and_region_stay_each_session_s_own() -> None:
    one = aws.client("dynamodb", _keys("AKIAONE"))
    two = aws.client("dynamodb", _keys("AKIATWO").model_copy(update={"region": "us-west-2"}))
    first, second = (getattr(c, "_request_signer")._credentials for c in (one, two))  # noqa: B009
    assert (first.access_key, first.secret_key) == ("AKIAONE", "secret-AKIAONE")
    assert (second.access_key, second.secret_key) == ("AKIATWO", "secret-AKIATWO")
    assert (one.meta.region_name, two.meta.region_name) == ("eu-west-1", "us-west-2")
