"""The DynamoDB Streams KCL daemon's jars: built by Maven from streams_launcher/, cached.

streams_launcher/ (package data beside this module) holds a pom and one Java class,
`ddbbridge.kcl.DynamoDBStreamsMultiLangDaemon`: the DynamoDB Streams Kinesis Adapter's KCL 3
scheduler driving KCL MultiLang's record processors. `ensure_jars` runs
`mvn package dependency:copy-dependencies` on a copy of that folder once and keeps the result
(the launcher's jar and every dependency) in `$DDB_BRIDGE_KCL_STREAMS_JARS`, default
`~/.cache/ddb-bridge/kcl-dynamodb-streams-<digest>/`, the digest of the folder's files: an
edited pom or class builds again, on every machine, once. Nothing built is committed.

Errors are `ConfigError`s naming what is missing (Java 17+, Maven) or Maven's own last lines.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from bridge.model.errors import ConfigError
from bridge.runtime import maven_jars

SOURCE = Path(__file__).parent / "streams_launcher"
MAIN_CLASS = "ddbbridge.kcl.DynamoDBStreamsMultiLangDaemon"
JAR = "kcl-dynamodb-streams.jar"
MAVEN_TIMEOUT_S = 900


def _digest() -> str:
    files = sorted(p for p in SOURCE.rglob("*") if p.is_file() and "target" not in p.parts)
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(SOURCE)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def jars_dir() -> Path:
    return maven_jars.cache_folder(
        f"kcl-dynamodb-streams-{_digest()}", "DDB_BRIDGE_KCL_STREAMS_JARS"
    )


def jars_cached() -> bool:
    # Not the stamp: $DDB_BRIDGE_KCL_STREAMS_JARS may name a folder built by hand.
    return (jars_dir() / maven_jars.COMPLETE).exists() and (jars_dir() / JAR).exists()


def find_java(java: str | None = None) -> str:
    """A Java 17+ to run the daemon with (`java` on PATH by default); ConfigError otherwise."""
    found = shutil.which(java or "java")
    if found is None:
        raise ConfigError(
            "the KCL daemon needs Java 17 or newer, and `java` is not on PATH: install "
            "default-jre-headless (Debian 12) or openjdk-17-jre-headless"
        )
    major, shown = maven_jars.java_major(found)
    if major is None or major < 17:
        raise ConfigError(
            f"the KCL daemon needs Java 17 or newer; `{found} -version` says: {shown.strip()!r}"
        )
    return found


def ensure_jars() -> Path:
    """The folder of the daemon's jars, built with Maven on first use."""
    target = jars_dir()
    if jars_cached():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ConfigError(
            f"the DynamoDB Streams KCL daemon is built once with Maven, and `mvn` is not on "
            f"PATH: install maven (Debian: apt-get install maven), or point "
            f"DDB_BRIDGE_KCL_STREAMS_JARS at a folder built from {SOURCE}"
        )

    def failed(code: int, output: str) -> Exception:
        return ConfigError(
            f"building the DynamoDB Streams KCL daemon with Maven ({SOURCE}) failed "
            f"(exit {code}):\n{output}"
        )

    maven_jars.fetch(
        mvn,
        SOURCE,
        target,
        _digest() + "\n",
        goals=["package", "dependency:copy-dependencies", "-DincludeScope=runtime"],
        failed=failed,
        built=[JAR],
        timeout_s=MAVEN_TIMEOUT_S,
    )
    if not jars_cached():
        raise ConfigError(f"{target} is not a complete build of the daemon; delete it and retry")
    return target
