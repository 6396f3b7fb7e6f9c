"""Every command that talks to Kafka, through SASL/OAUTHBEARER with tokens from an OAuth
client-credentials endpoint (`[kafka] auth = "oauthbearer_oidc"`), and the MSK IAM token
through the same callback.

The broker is the session's Apache Kafka node: its SASL_SSL listener also takes OAUTHBEARER,
validated by Kafka's unsecured-token handler (ddb_bridge/services/kafka_oauth.py). The token
endpoint is ddb_bridge.services.kafka_oauth.TokenEndpoint, which counts the tokens it grants:
a command that ran and got a token from it authenticated through the bridge's token source,
since the config names no plaintext listener and no other credential. What this does not
prove: a real identity provider's or AWS's signature checks (README, Configuration).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.kafka.publisher import Publisher
from bridge.model.event import ChangeEvent, Op, Origin
from bridge.runtime.settings import KafkaSettings, SqliteTarget
from connectors.sinks.sqlite import SqliteSink
from ddb_bridge.services.kafka_broker import KafkaBroker
from ddb_bridge.services.kafka_oauth import TokenEndpoint
from ddb_bridge.services.kafka_secured import SaslSslListener
from tests.apply_harness import ApplyProcess, table_spec, write_config
from tests.stream_helpers import cli_env, create_stream_table
from tests.support.daemon import BridgeDaemon, run_bridge
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ITEMS = 30
UPDATED = 1000  # the value of "n" after publish_updates
# Short enough that a daemon must come back for a new token during the test (librdkafka asks
# again at 80% of a token's life), long enough for every command to start.
TOKEN_LIFETIME_S = 20.0
FAIL_FAST_S = 30.0


def _listener(broker: KafkaBroker) -> SaslSslListener:
    assert isinstance(broker.extra_listener, SaslSslListener)
    return broker.extra_listener


def _item(i: int) -> dict[str, Any]:
    return {"pk": {"S": f"user#{i:03d}"}, "sk": {"N": str(i % 3)}, "n": {"N": str(i)}}


def oauth_config(
    path: Path,
    listener: SaslSslListener,
    endpoint: str,
    table: str,
    db: Path,
    kafka: dict[str, Any],
) -> Path:
    return write_config(
        path,
        listener.bootstrap,
        "local",
        {"type": "sqlite", "path": db},
        [table],
        sections={
            "kafka": {"extra": listener.tls_options(), **kafka},
            "aws": {"endpoint_url": endpoint, "region": "us-east-1"},
            "backfill": {"skew_margin_s": 0, "segments": 2},
        },
    )


def oidc(endpoint: TokenEndpoint, secret: str | None = None) -> dict[str, Any]:
    return {
        "auth": "oauthbearer_oidc",
        "oauth_token_url": endpoint.url,
        "oauth_client_id": endpoint.client_id,
        "oauth_client_secret": endpoint.client_secret if secret is None else secret,
        "oauth_scope": "kafka",
    }


@dataclass
class Pipeline:
    config: Path
    env: dict[str, str]
    table: str
    db: Path
    endpoint: TokenEndpoint
    tmp: Path


@pytest.fixture(scope="module")
def token_endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint(lifetime_s=TOKEN_LIFETIME_S) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def pipeline(
    secured_broker: KafkaBroker,
    dynamodb_endpoint: str,
    token_endpoint: TokenEndpoint,
    tmp_path_factory: pytest.TempPathFactory,
) -> Pipeline:
    """backfill through OAUTHBEARER: the topic the other tests read."""
    import boto3

    listener = _listener(secured_broker)
    ddb = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1")
    table = f"oauth-{uuid.uuid4().hex[:8]}"
    create_stream_table(ddb, table)
    for i in range(ITEMS):
        ddb.put_item(TableName=table, Item=_item(i))
    tmp = tmp_path_factory.mktemp("oauth")
    db = tmp / "target.db"
    config = oauth_config(
        tmp / "bridge.toml", listener, dynamodb_endpoint, table, db, oidc(token_endpoint)
    )
    env = cli_env(dynamodb_endpoint, listener.bootstrap)
    # backfill: the admin client (topics) and the producer, with the endpoint's tokens.
    done = run_bridge(
        "backfill", config, "--table", table, "--from", "scan", "--no-stream", "--no-progress",
        env=env, timeout_s=180,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert ": complete" in output, output
    assert token_endpoint.granted > 0, "backfill published without a token from the endpoint"
    return Pipeline(config, env, table, db, token_endpoint, tmp)


def publish_updates(plaintext_bootstrap: str, table: str) -> None:
    """A newer change of every item, published through the broker's plaintext listener."""
    kafka = KafkaSettings(bootstrap_servers=plaintext_bootstrap, partitions=4, replication_factor=1)
    now_ms = int(time.time() * 1000)
    publisher = Publisher(kafka)
    for i in range(ITEMS):
        key = {"pk": _item(i)["pk"], "sk": _item(i)["sk"]}
        publisher.publish(
            ChangeEvent(
                table=table,
                op=Op.MODIFY,
                keys=key,
                version=now_ms * 1000 + i,
                origin=Origin.STREAM,
                new_image={**key, "n": {"N": str(UPDATED + i)}},
                old_image=_item(i),
                event_id=f"{table}#update-{i}",
                approximate_creation_time_ms=now_ms,
            )
        )
    publisher.flush()


def test_apply_through_oidc_tokens_refreshed_before_expiry(
    pipeline: Pipeline, secured_broker: KafkaBroker
) -> None:
    endpoint = pipeline.endpoint
    # apply: aiokafka's consumer (the token provider) and the dead-letter producer (oauth_cb).
    apply = ApplyProcess(pipeline.config, "--create-schema")
    reader = SqliteSink(SqliteTarget(type="sqlite", path=str(pipeline.db)))
    try:
        apply.wait_joined(90)
        reader.open([table_spec(pipeline.table)])
        keys = [{"pk": _item(i)["pk"], "sk": _item(i)["sk"]} for i in range(ITEMS)]
        apply.wait_until(lambda: all(reader.read_items(pipeline.table, keys)))
        # A token lives TOKEN_LIFETIME_S: the running daemon asks for the next one itself,
        # before the last expires, and keeps its connections.
        granted = endpoint.granted
        started = time.monotonic()
        wait_until(
            lambda: endpoint.granted > granted, TOKEN_LIFETIME_S * 2, "apply to refresh its token"
        )
        assert time.monotonic() - started < TOKEN_LIFETIME_S, "refreshed only after expiry"
        # The broker ends each session when its token expires (re-authentication, as on MSK):
        # past the first tokens' expiry, apply still consumes and writes new changes.
        time.sleep(max(0.0, TOKEN_LIFETIME_S - (time.monotonic() - started)) + 2)
        publish_updates(secured_broker.bootstrap, pipeline.table)
        apply.wait_until(
            lambda: all(
                got is not None and got["n"] == {"N": str(UPDATED + i)}
                for i, got in enumerate(reader.read_items(pipeline.table, keys))
            )
        )
        assert apply.proc.poll() is None, apply.output
        assert apply.terminate() == 0, apply.output
        assert "Traceback" not in apply.output
        assert endpoint.client_secret not in apply.output
    finally:
        reader.close()
        if apply.proc.poll() is None:
            apply.kill()


# The one-shot commands, each a fresh process that must fetch its own token. (`verify` reads
# DynamoDB and the target only: it has no Kafka client to authenticate.)
ONE_SHOT: dict[str, tuple[str, ...]] = {
    "stream": ("--max-runtime-s", "5"),
    "status": ("--table", "{table}", "--json"),
    "tail": ("--table", "{table}", "--from-beginning", "--max", "5", "--json"),
    "replay": ("--target", "local", "--to-earliest", "--table", "{table}"),
    "dlq list": ("--table", "{table}"),
    "dlq redrive": ("--table", "{table}", "--all"),
}


@pytest.mark.parametrize("command", list(ONE_SHOT))
def test_every_command_authenticates_with_an_oidc_token(command: str, pipeline: Pipeline) -> None:
    args = [a.format(table=pipeline.table) for a in ONE_SHOT[command]]
    before = pipeline.endpoint.granted
    done = run_bridge(command, pipeline.config, *args, env=pipeline.env, timeout_s=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output
    assert pipeline.endpoint.granted > before, f"{command} connected without a token"
    if command == "tail":
        assert output.count('"origin"') == 5, output


def test_audit_archives_through_oidc(pipeline: Pipeline) -> None:
    root = pipeline.tmp / "archive"
    before = pipeline.endpoint.granted
    with BridgeDaemon(
        "audit", pipeline.config, "--root", str(root), "--max-seconds", "1",
        "--group", f"audit-{uuid.uuid4().hex[:8]}", env=pipeline.env,
    ) as audit:  # fmt: skip
        wait_until(lambda: any(root.rglob("*.avro")), 90, "audit to archive a file")
        assert audit.terminate() == 0, audit.output
    assert pipeline.endpoint.granted > before


@pytest.mark.parametrize("command", ["backfill", "status", "apply"])
def test_a_refused_client_secret_is_one_clear_line_exit_2(command: str, pipeline: Pipeline) -> None:
    wrong = "not-the-secret"
    config = pipeline.config.with_name(f"wrong-{command.replace(' ', '-')}.toml")
    config.write_text(pipeline.config.read_text().replace(pipeline.endpoint.client_secret, wrong))
    extra = {
        "backfill": ["--table", pipeline.table, "--from", "scan", "--no-stream", "--no-progress"],
        "status": ["--table", pipeline.table],
        "apply": [],
    }[command]
    refused = pipeline.endpoint.refused
    started = time.monotonic()
    done = run_bridge(command, config, *extra, env=pipeline.env, timeout_s=120)
    output = done.stdout + done.stderr
    assert time.monotonic() - started < FAIL_FAST_S, output
    assert done.returncode == 2, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "configuration error" in line]
    assert len(errors) == 1, output
    assert pipeline.endpoint.url in errors[0] and "invalid_client" in errors[0], output
    assert "oauth_client_secret" in errors[0], output
    assert wrong not in output and pipeline.endpoint.client_secret not in output
    assert pipeline.endpoint.refused > refused


# Every command that talks to Kafka, with what it needs to get that far.
EVERY_COMMAND: dict[str, tuple[str, ...]] = {
    "stream": ("--max-runtime-s", "60"),
    "backfill": ("--table", "{table}", "--from", "scan", "--no-stream", "--no-progress"),
    "apply": (),
    "audit": ("--root", "{tmp}/msk-archive"),
    "status": ("--table", "{table}"),
    "tail": ("--table", "{table}", "--from-beginning", "--max", "1"),
    "replay": ("--target", "local", "--to-earliest", "--table", "{table}"),
    "dlq list": ("--table", "{table}"),
    "dlq redrive": ("--table", "{table}", "--all"),
}


@pytest.mark.parametrize("command", list(EVERY_COMMAND))
def test_an_msk_iam_token_reaches_the_broker_through_the_same_callback(
    command: str, pipeline: Pipeline, secured_broker: KafkaBroker
) -> None:
    """The broker's unsecured validator cannot read an AWS-signed token (it is no JWT): the
    refusal it answers with proves the MSK token source ran and its token was sent — by every
    command, each ending at once with one line naming OAUTHBEARER and [kafka] auth."""
    listener = _listener(secured_broker)
    config = oauth_config(
        pipeline.tmp / "msk.toml", listener, pipeline.env["DDB_BRIDGE__AWS__ENDPOINT_URL"],
        pipeline.table, pipeline.db,
        {"auth": "aws_msk_iam", "msk_region": "eu-west-1"},
    )  # fmt: skip
    env = pipeline.env | {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "x" * 40}
    args = [a.format(table=pipeline.table, tmp=pipeline.tmp) for a in EVERY_COMMAND[command]]
    started = time.monotonic()
    done = run_bridge(command, config, *args, env=env, timeout_s=120)
    output = done.stdout + done.stderr
    assert time.monotonic() - started < FAIL_FAST_S, output
    assert done.returncode == 2, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "configuration error" in line]
    assert len(errors) == 1, output
    assert "refused the connection: authentication failed (SASL OAUTHBEARER" in errors[0]
    assert '[kafka] auth = "aws_msk_iam"' in errors[0], output
