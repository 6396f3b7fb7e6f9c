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

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from bridge.model.errors import ConfigError

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
    override = os.environ.get("DDB_BRIDGE_KCL_STREAMS_JARS")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ddb-bridge" / f"kcl-dynamodb-streams-{_digest()}"


def jars_cached() -> bool:
    return (jars_dir() / ".complete").exists() and (jars_dir() / JAR).exists()


def find_java(java: str | None = None) -> str:
    """A Java 17+ to run the daemon with (`java` on PATH by default); ConfigError otherwise."""
    found = shutil.which(java or "java")
    if found is None:
        raise ConfigError(
            "the KCL daemon needs Java 17 or newer, and `java` is not on PATH: install "
            "default-jre-headless (Debian 12) or openjdk-17-jre-headless"
        )
    shown = subprocess.run(
        [found, "-version"], capture_output=True, text=True, timeout=60, check=False
    ).stderr
    match = re.search(r'version "(\d+)', shown)
    if match is None or int(match.group(1)) < 17:
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
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build in a copy (the installed package may be read-only) and rename the result into
    # place, so two sessions building at once never run a half-copied classpath.
    work = Path(tempfile.mkdtemp(prefix="ddb-bridge-kcl-streams-"))
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        shutil.copytree(SOURCE, work / "src-copy", ignore=shutil.ignore_patterns("target"))
        done = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(work / "src-copy" / "pom.xml"),
                "package",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=MAVEN_TIMEOUT_S,
            cwd=work,
            check=False,
        )
        if done.returncode != 0:
            raise ConfigError(
                f"building the DynamoDB Streams KCL daemon with Maven ({SOURCE}) failed "
                f"(exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}"
            )
        shutil.copyfile(work / "src-copy" / "target" / JAR, staging / JAR)
        (staging / ".complete").write_text(_digest() + "\n")
        with contextlib.suppress(OSError):  # another session won the race: use its copy
            if target.exists():
                stale = target.with_name(f".stale-{target.name}-{uuid.uuid4().hex[:6]}")
                target.rename(stale)
                shutil.rmtree(stale, ignore_errors=True)
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    if not jars_cached():
        raise ConfigError(f"{target} is not a complete build of the daemon; delete it and retry")
    return target
