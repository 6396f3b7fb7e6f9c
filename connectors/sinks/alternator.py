"""DynamoDB-API sink: ScyllaDB Alternator, or another DynamoDB account/region (boto3).

Last-write-wins with conditional writes. Every stored item carries a version attribute
(`version_attribute`, default `_ddb_bridge_version`); a write is a PutItem of the full image
plus its version under `attribute_not_exists(#v) OR #v < :v`, so it replaces the whole item
(removed attributes disappear) only when it is newer. A REMOVE becomes a tombstone — the
keys, the version and `tombstone_attribute` — written under the same condition (and winning
a tie against a live item), so no older write can pass it. A failed condition means the
event is older than what is stored: that is success, not an error. `read_items` hides
tombstones and strips both bookkeeping attributes; `scan_keys` skips tombstones.

Why concurrent PutItem and not a batch API: BatchWriteItem takes no conditions, and
TransactWriteItems fails the whole transaction when one condition fails — which here is the
normal case of an older event — and costs twice the write capacity. So each winner of the
(coalesced) batch is one conditional PutItem, `concurrency` of them in flight.

Tombstones stay forever (they are what stops a late older write); this sink does not
enable TTL on the target: an item the target expired by itself could be re-created by an
older event. Source TTL deletions arrive as REMOVE events and become tombstones.

Delivery guarantee: `write_batch` returns after every PutItem of the batch succeeded or was
rejected as older; throttling, 5xx and connection errors raise TransientError after the
whole batch has been tried (writes are idempotent, so retrying the batch is safe).
Refusals of the endpoint as a whole raise TargetError, never a dead letter: access denied,
unknown or invalid credentials, a table that is gone make apply stop; expired credentials
are waited for (the AWS credential chain refreshes role, SSO and instance credentials by
itself; static keys must be replaced and apply restarted).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from bridge.model import attrs
from bridge.model.attrs import Item
from bridge.model.errors import ConfigError, PermanentError, TargetError, TransientError
from bridge.model.event import ChangeEvent
from bridge.ports.sink import SinkCapabilities, TableSpec
from bridge.runtime.settings import AlternatorTarget, AwsSettings
from connectors.dynamodb import aws
from connectors.sinks.common import (
    Tables,
    check_names,
    coalesce,
    full_image,
    key_identity,
    raise_failures,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeDefinitionTypeDef,
        KeySchemaElementTypeDef,
    )

# `bridge.model.versioning.wins(new, stored)` as DynamoDB conditions (test_sink_contract holds them
# to the rule): a write passes a lower stored version; a tombstone also passes an equal
# version held by a live item (a delete wins a tie).
_PUT_CONDITION = "attribute_not_exists(#v) OR #v < :v"
_TOMBSTONE_CONDITION = _PUT_CONDITION + " OR (#v = :v AND attribute_not_exists(#t))"
_BATCH_GET = 100  # BatchGetItem's limit
# Error codes of DynamoDB, Alternator and AWS's common errors that refuse every request.
_TARGET_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "NotAuthorized",
        "UnauthorizedOperation",
        "ResourceNotFoundException",  # the table was deleted
    }
)
# Temporary credentials past their expiry: the credential chain may bring fresh ones.
_EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})


def translate(exc: Exception, what: str) -> Exception:
    """aws.translate, plus the refusals that are the target's, not one item's."""
    code = aws.error_code(exc)
    if code in _TARGET_CODES:
        return TargetError(f"{what}: {code}: {exc}")
    if code in _EXPIRED_CODES:
        return TargetError(f"{what}: {code}: {exc}", retryable=True)
    return aws.translate(exc, what)


class AlternatorSink:
    capabilities = SinkCapabilities(native_timestamps=False, ttl=False, tombstones=True)

    def __init__(self, settings: AlternatorTarget) -> None:
        self.settings = settings
        self.version_attr = settings.version_attribute
        self.tombstone_attr = settings.tombstone_attribute
        self._tables = Tables([])
        self._client: DynamoDBClient | None = None
        self._pool: ThreadPoolExecutor | None = None

    def open(self, tables: Sequence[TableSpec], create_schema: bool = False) -> None:
        for spec in tables:
            check_names(
                spec,
                (self.version_attr, self.tombstone_attr),
                "attributes",
                "set version_attribute and tombstone_attribute of the target to other names",
            )
        self._tables = Tables(tables)
        if self._client is None:
            s = self.settings
            self._client = aws.client(
                "dynamodb",
                AwsSettings(
                    region=s.region,
                    endpoint_url=s.endpoint_url,
                    access_key_id=s.access_key_id,
                    secret_access_key=s.secret_access_key,
                ),
            )
            self._pool = ThreadPoolExecutor(s.concurrency, thread_name_prefix="alternator-sink")
        for spec in tables:
            self._ensure_table(spec, create_schema)

    def _ensure_table(self, spec: TableSpec, create_schema: bool) -> None:
        try:
            desc = self._ddb().describe_table(TableName=spec.target)["Table"]
        except ClientError as exc:
            if aws.error_code(exc) != "ResourceNotFoundException":
                raise translate(exc, f"DescribeTable {spec.target}") from exc
            if not create_schema:
                raise ConfigError(
                    f"target table {spec.target!r} does not exist at "
                    f"{self.settings.endpoint_url or 'the DynamoDB endpoint'} "
                    "(create it with --create-schema)"
                ) from exc
            self._create_table(spec)
            return
        except BotoCoreError as exc:
            raise aws.translate(exc, f"DescribeTable {spec.target}") from exc
        schema = {k["KeyType"]: k["AttributeName"] for k in desc["KeySchema"]}
        if schema.get("HASH") != spec.hash_key or schema.get("RANGE") != spec.range_key:
            raise ConfigError(
                f"target table {spec.target!r} has key schema {schema}, the source table "
                f"{spec.source!r} has hash {spec.hash_key!r} range {spec.range_key!r}"
            )

    def _create_table(self, spec: TableSpec) -> None:
        key_schema: list[KeySchemaElementTypeDef] = [
            {"AttributeName": spec.hash_key, "KeyType": "HASH"}
        ]
        definitions: list[AttributeDefinitionTypeDef] = [
            {"AttributeName": spec.hash_key, "AttributeType": spec.hash_type}
        ]
        if spec.range_key is not None:
            key_schema.append({"AttributeName": spec.range_key, "KeyType": "RANGE"})
            definitions.append(
                {"AttributeName": spec.range_key, "AttributeType": spec.range_type or "S"}
            )
        try:
            self._ddb().create_table(
                TableName=spec.target,
                KeySchema=key_schema,
                AttributeDefinitions=definitions,
                BillingMode="PAY_PER_REQUEST",
            )
        except ClientError as exc:
            # Another worker created it first: the waiter below is all that is left to do.
            if aws.error_code(exc) != "ResourceInUseException":
                raise aws.translate(exc, f"CreateTable {spec.target}") from exc
        except BotoCoreError as exc:
            raise aws.translate(exc, f"CreateTable {spec.target}") from exc
        try:
            self._ddb().get_waiter("table_exists").wait(
                TableName=spec.target, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
            )
        except (WaiterError, BotoCoreError, ClientError) as exc:
            raise TransientError(f"table {spec.target} did not become ACTIVE: {exc}") from exc

    # -- writes ---------------------------------------------------------------------------

    def _request(self, target: str, event: ChangeEvent) -> dict[str, Any]:
        version = {"N": str(event.version)}
        if event.is_delete:
            item = {**attrs.to_boto(event.keys), self.tombstone_attr: {"BOOL": True}}
            condition = _TOMBSTONE_CONDITION
            names = {"#v": self.version_attr, "#t": self.tombstone_attr}
        else:
            image = full_image(event)
            for reserved in (self.version_attr, self.tombstone_attr):
                if reserved in image:
                    raise PermanentError(
                        f"table {event.table} key {attrs.dumps(event.keys)}: the item has an "
                        f"attribute {reserved!r}, which this sink reserves for its bookkeeping "
                        "(choose another version_attribute/tombstone_attribute)"
                    )
            item = attrs.to_boto(image)
            condition = _PUT_CONDITION
            names = {"#v": self.version_attr}
        item[self.version_attr] = version
        return {
            "TableName": target,
            "Item": item,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {":v": version},
        }

    def _put(self, request: dict[str, Any]) -> Exception | None:
        """One conditional PutItem; the error as a value so that the whole batch is tried."""
        try:
            self._ddb().put_item(**request)
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return None  # what is stored is newer (or equal): this event is already beaten
            return exc
        except BotoCoreError as exc:
            return exc
        return None

    def write_batch(self, events: Sequence[ChangeEvent]) -> None:
        if not events:
            return
        pool = self._require()
        work = [
            (event, self._request(target, event))
            for target, winners in coalesce(events, self._tables).items()
            for event in winners.values()
        ]
        results = list(pool.map(self._put, [request for _, request in work]))
        failures = [
            (event, exc) for (event, _), exc in zip(work, results, strict=True) if exc is not None
        ]
        raise_failures(failures, len(work), translate)

    # -- reads ----------------------------------------------------------------------------

    def _strip(self, item: dict[str, Any]) -> Item | None:
        if self.tombstone_attr in item:
            return None
        item.pop(self.version_attr, None)
        return attrs.from_boto(item)

    def read_items(self, table: str, keys: Sequence[Item]) -> list[Item | None]:
        self._require()
        spec = self._tables.get(table)
        idents = [key_identity(spec, key) for key in keys]
        wanted = {ident: key for ident, key in zip(idents, keys, strict=True)}  # no duplicates
        found: dict[tuple[Any, ...], Item | None] = {}
        pending = [attrs.to_boto(key) for key in wanted.values()]
        for start in range(0, len(pending), _BATCH_GET):
            request: dict[str, Any] = {
                spec.target: {"Keys": pending[start : start + _BATCH_GET], "ConsistentRead": True}
            }
            attempt = 0
            while request:
                try:
                    page = self._ddb().batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise aws.translate(exc, f"BatchGetItem {spec.target}") from exc
                for raw in page.get("Responses", {}).get(spec.target, []):
                    item = attrs.from_boto(raw)
                    found[key_identity(spec, {k: item[k] for k in spec.key_names})] = self._strip(
                        raw
                    )
                request = page.get("UnprocessedKeys") or {}
                if request:
                    attempt += 1  # throttled: back off before asking for the rest
                    time.sleep(min(0.05 * 2**attempt, 2.0))
        return [found.get(ident) for ident in idents]

    def scan_keys(self, table: str) -> Iterator[Item]:
        self._require()
        spec = self._tables.get(table)
        names = {f"#k{i}": name for i, name in enumerate(spec.key_names)}
        names["#t"] = self.tombstone_attr
        kwargs: dict[str, Any] = {
            "TableName": spec.target,
            "ProjectionExpression": ", ".join(names),
            "ExpressionAttributeNames": names,
            "ConsistentRead": True,
        }
        while True:
            try:
                page = self._ddb().scan(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise aws.translate(exc, f"Scan {spec.target}") from exc
            for raw in page.get("Items", []):
                if self.tombstone_attr not in raw:
                    yield attrs.from_boto({k: raw[k] for k in spec.key_names})
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._client = None

    def _require(self) -> ThreadPoolExecutor:
        if self._pool is None:
            raise PermanentError("AlternatorSink used before open()")
        return self._pool

    def _ddb(self) -> DynamoDBClient:
        if self._client is None:
            raise PermanentError("AlternatorSink used before open()")
        return self._client
