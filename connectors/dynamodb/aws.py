"""boto3 clients and table metadata for the DynamoDB-facing connectors."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from bridge.model.backoff import Attempts, Backoff
from bridge.model.errors import ConfigError, PermanentError, TransientError, Unavailable
from bridge.ports.sink import KeyType, TableSpec
from bridge.runtime.metrics import AWS_RETRIES, REGISTRY
from bridge.runtime.settings import AwsSettings, Settings, TableSettings
from connectors.dynamodb import assumed_role

if TYPE_CHECKING:
    # boto3-stubs (the test extra) types the clients; a plain install never imports them.
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_s3 import S3Client

# Throttling and 5xx are retried by our own loops with backoff and jitter, where we can log
# them and keep checkpoints right; botocore's own retries stay on for connection blips.
_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=32)

THROTTLING = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


@overload
def client(
    service: Literal["dynamodb"], aws: AwsSettings, endpoint_url: str | None = None
) -> DynamoDBClient: ...
@overload
def client(
    service: Literal["dynamodbstreams"], aws: AwsSettings, endpoint_url: str | None = None
) -> DynamoDBStreamsClient: ...
@overload
def client(
    service: Literal["s3"], aws: AwsSettings, endpoint_url: str | None = None
) -> S3Client: ...
@overload
def client(
    service: Literal["kinesis"], aws: AwsSettings, endpoint_url: str | None = None
) -> KinesisClient: ...
def client(
    service: Literal["dynamodb", "dynamodbstreams", "s3", "kinesis"],
    aws: AwsSettings,
    endpoint_url: str | None = None,
) -> DynamoDBClient | DynamoDBStreamsClient | S3Client | KinesisClient:
    """A client of `service` for `aws`: its credentials (`session`), region, and endpoint:
    `endpoint_url` when given, else [aws.endpoints] <service>, else [aws] endpoint_url."""
    kwargs: dict[str, Any] = {"region_name": aws.region, "config": _CONFIG}
    url = endpoint_url or aws.endpoint(service)
    if url:
        kwargs["endpoint_url"] = url
    return session(aws).client(service, **kwargs)


def session(aws: AwsSettings) -> boto3.session.Session:
    """The credentials of `aws`, for every AWS client of the bridge (and MSK's IAM tokens).

    The base chain: static keys (with their session token) when given, else the named
    profile, else boto3's default chain (environment, ~/.aws, instance or task role). With
    [aws] role_arn, the session holds that role's credentials instead, assumed with the base
    chain and renewed before they expire (connectors/dynamodb/assumed_role.py); a role that
    cannot be assumed is a ConfigError (refused) or Unavailable (STS did not answer).
    """
    if aws.access_key_id and aws.secret_access_key:
        base = boto3.session.Session(
            aws_access_key_id=aws.access_key_id.get_secret_value(),
            aws_secret_access_key=aws.secret_access_key.get_secret_value(),
            aws_session_token=aws.session_token.get_secret_value() if aws.session_token else None,
            region_name=aws.region,
            botocore_session=_botocore_session(),
        )
    else:
        base = boto3.session.Session(
            profile_name=aws.profile, region_name=aws.region, botocore_session=_botocore_session()
        )
    if aws.role_arn is None:
        return base
    role = _botocore_session()
    # botocore has no public setter for a session's credentials: `_credentials` is what its
    # own resolution fills on first use, and every client made from the session signs with it.
    role._credentials = assumed_role.credentials(aws, base)  # type: ignore[attr-defined]
    return boto3.session.Session(botocore_session=role, region_name=aws.region)


class _SearchPaths(list[str]):
    """The shared loader's folders: boto3 appends its own at every new session; once will do."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


# botocore's service models and endpoint data, parsed once per process: a new session parses
# them again for its first client of each service (~65-85 ms of CPU a client; a parallel scan
# or verify makes a client per thread). Only that read-only data is shared; credentials,
# configuration and clients stay each session's own. Made from the first session's own
# loader, so its folders are the ones botocore chose (AWS_DATA_PATH, the config's data_path).
_shared_loader: botocore.loaders.Loader | None = None
_shared_loader_made = threading.Lock()


def _botocore_session() -> botocore.session.Session:
    global _shared_loader
    fresh = botocore.session.Session()
    with _shared_loader_made:
        if _shared_loader is None:
            own = fresh.get_component("data_loader")
            _shared_loader = botocore.loaders.Loader(
                extra_search_paths=_SearchPaths(own.search_paths),
                include_default_search_paths=False,
            )
    fresh.register_component("data_loader", _shared_loader)
    return fresh


log = logging.getLogger(__name__)

T = TypeVar("T")


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def translate(exc: Exception, what: str) -> Exception:
    """A botocore exception as TransientError (retry) or PermanentError (stop), for `raise from`."""
    code = error_code(exc)
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        # Nothing answered: exit 75 at a command's start ("run it again"), retried in a daemon.
        return Unavailable(f"{what}: AWS did not answer: {exc}")
    if code in THROTTLING or isinstance(exc, BotoCoreError):
        return TransientError(f"{what}: {code or type(exc).__name__}: {exc}")
    return PermanentError(f"{what}: {code or type(exc).__name__}: {exc}")


# Throttling and unreachable endpoints: full jitter from 0.1 s up to 10 s a pause, retried
# until the caller's stop (daemons) or its `attempts` (one-shot commands).
AWS_BACKOFF = Backoff(base_s=0.1, cap_s=10.0, jitter="full")


def call_with_backoff(
    fn: Callable[[], T],
    what: str,
    stop: threading.Event | None = None,
    backoff: Attempts | None = None,
    where: dict[str, str] | None = None,
    attempts: int | None = None,
) -> T:
    """Call `fn`, retrying throttling and connection errors until it succeeds, `stop` is set
    (`Interrupted`) or `attempts` calls have failed (the last error, translated, is raised).

    `backoff` is a failure count shared by a reader's successive calls (reset on success);
    without one, each call counts afresh under `AWS_BACKOFF` bounded by `attempts`.
    Any other error propagates untouched, so the caller can act on a ClientError's code.
    """
    if backoff is not None and attempts is not None:
        raise TypeError("call_with_backoff: give `attempts` or a shared `backoff`, not both")
    if backoff is None:
        bound = None if attempts is None else max(attempts - 1, 0)
        backoff = replace(AWS_BACKOFF, max_retries=bound).start()
    stop = stop or threading.Event()
    last: Exception
    while True:
        try:
            result = fn()
            backoff.reset()
            return result
        except ClientError as exc:
            if error_code(exc) not in THROTTLING:
                raise
            reason, last = error_code(exc), exc
        except (HTTPClientError, BotoConnectionError) as exc:
            # The endpoint is unreachable or timed out: worth waiting for. Other botocore
            # errors (parameter validation...) are bugs and propagate.
            reason, last = type(exc).__name__, exc
        delay = backoff.failed()
        if delay is None:
            raise translate(last, what) from last
        # The API name only (`what` may name a table, segment or lease): few label values.
        REGISTRY.inc(AWS_RETRIES, call=what.split(" ", 1)[0], reason=reason)
        log.warning(
            "throttled or unreachable, backing off",
            extra={"call": what, "reason": reason, "delay_s": round(delay, 3), **(where or {})},
        )
        if stop.wait(delay):
            raise Interrupted(what)


class Interrupted(Exception):
    """A retry loop was cut short because the worker is stopping (not an error)."""


def describe_table(ddb: DynamoDBClient, table: str) -> Mapping[str, Any]:
    try:
        return ddb.describe_table(TableName=table)["Table"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise ConfigError(f"source table {table!r} does not exist") from exc
        raise translate(exc, f"DescribeTable {table}") from exc


def _declared_spec(conf: TableSettings) -> TableSpec | None:
    """The TableSpec the config declares in full (hash_key set), else None."""
    if conf.hash_key is None:
        return None
    return TableSpec(
        source=conf.name,
        target=conf.target_name,
        hash_key=conf.hash_key,
        hash_type=conf.hash_key_type,
        range_key=conf.range_key,
        range_type=conf.range_key_type if conf.range_key else None,
        columns=dict(conf.columns),
        ttl_attribute=conf.ttl_attribute,
    )


def table_spec(ddb: DynamoDBClient | None, settings: Settings, table: str) -> TableSpec:
    """The key schema, target name, typed columns and TTL attribute of `table`: as declared
    in the config's [[tables]] (hash_key set), else from DescribeTable and DescribeTimeToLive.

    The one place that rule lives. `ddb` may be None: a client is then made from
    `settings.aws` only when the table must be described, so a fully declared table needs
    no AWS access (`apply`, `schema cql` against declared tables).
    """
    conf: TableSettings = settings.table(table)
    declared = _declared_spec(conf)
    if declared is not None:
        return declared
    if ddb is None:
        ddb = client("dynamodb", settings.aws)
    desc = describe_table(ddb, table)
    types: dict[str, KeyType] = {
        a["AttributeName"]: a["AttributeType"] for a in desc["AttributeDefinitions"]
    }
    hash_key = next(k["AttributeName"] for k in desc["KeySchema"] if k["KeyType"] == "HASH")
    range_key = next(
        (k["AttributeName"] for k in desc["KeySchema"] if k["KeyType"] == "RANGE"), None
    )
    # A failure here is not "no TTL": verify would then report every expired item as
    # missing, and the CQL sink would keep rows DynamoDB deletes. Declaring the table in
    # [[tables]] (hash_key, ..., ttl_attribute) is the way around an endpoint that refuses.
    try:
        ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    except (ClientError, BotoCoreError) as exc:
        raise translate(
            exc,
            f"DescribeTimeToLive {table} (to run without it, declare hash_key, its type and "
            "ttl_attribute for the table in [[tables]])",
        ) from exc
    ttl_attribute = None
    if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        ttl_attribute = ttl.get("AttributeName")
    return TableSpec(
        source=table,
        target=conf.target_name,
        hash_key=hash_key,
        hash_type=types[hash_key],
        range_key=range_key,
        range_type=types[range_key] if range_key else None,
        columns=dict(conf.columns),
        ttl_attribute=ttl_attribute,
    )
