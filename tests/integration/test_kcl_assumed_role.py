"""The role written by `ddb-bridge kcl properties` is one the Java KCL can assume: its own
configurator reads the file, and its credentials provider calls AssumeRole (moto's STS,
behind a recording endpoint) with the role, session name and external id of [aws].

This proves the KCL parses and uses the property; it does not run a worker (the KCL daemon
tests do that, with the default chain)."""

from __future__ import annotations

import os
import subprocess
import urllib.parse
from pathlib import Path

from bridge.runtime.settings import AwsSettings, Settings
from connectors.sources.stream.kcl.properties import jars_dir, kcl_properties
from tests.kcl_helpers import require_daemon
from tests.support.recording_proxy import recording_endpoint

CHECK = Path(__file__).parent.parent / "java" / "KclCredentialsCheck.java"


def test_the_kcl_assumes_the_role_of_the_properties_file(
    tmp_path: Path, dynamodb_endpoint: str
) -> None:
    require_daemon()
    with recording_endpoint(dynamodb_endpoint) as (sts_url, sts):
        settings = Settings(
            aws=AwsSettings(
                endpoint_url=dynamodb_endpoint,
                endpoints={"sts": sts_url},
                role_arn="arn:aws:iam::123456789012:role/kcl-reader",
                external_id="ext-kcl",
                role_session_name="ddb-bridge-kcl-orders",
            )
        )
        properties = tmp_path / "orders.properties"
        properties.write_text(
            kcl_properties(settings, table="orders", stream_name="s", config=None)
        )
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIDKCLBASE", "AWS_SECRET_ACCESS_KEY": "x"}
        result = subprocess.run(
            ["java", "-cp", f"{jars_dir()}/*", str(CHECK), str(properties)],
            capture_output=True, text=True, env=env, timeout=180,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    calls = [dict(urllib.parse.parse_qsl(s.body)) for s in sts.seen]
    assert calls and all(c["Action"] == "AssumeRole" for c in calls)
    assert calls[0]["RoleArn"] == "arn:aws:iam::123456789012:role/kcl-reader"
    assert calls[0]["RoleSessionName"] == "ddb-bridge-kcl-orders"
    assert calls[0]["ExternalId"] == "ext-kcl"
    assert sts.access_keys() == {"AKIDKCLBASE"}  # assumed from the default chain
    key = result.stdout.strip().rpartition("access-key-id=")[2]
    assert key and key != "AKIDKCLBASE"
