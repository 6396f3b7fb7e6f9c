"""Jars that Maven fetches (or builds) once into a cache folder, reused by every later run.

Three things run on the JVM beside the bridge: Apache Kafka for the demo and the tests
(`ddb_bridge.services.kafka_jars`), a Cassandra node for the tests
(`ddb_bridge.services.cassandra_node`) and the DynamoDB Streams KCL daemon
(`connectors.sources.stream.kcl.launcher`). Each names its jars in a pom, shipped as package
data, and keeps them in a folder under `~/.cache/ddb-bridge/` (or `$XDG_CACHE_HOME`) whose
marker file holds a stamp of that pom: a changed pom fetches again, on every machine, once.
Here is what they share: the folder, the stamp check, Java's version, and the fetch itself,
which Maven runs on a copy of the pom (the installed package may be read-only) into a private
folder renamed into place, so two sessions fetching at once never run a half-copied classpath.
It lives in the core because the connectors and the service launchers both use it and may
not import each other.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

COMPLETE = ".complete"  # the marker of a whole copy; it holds the stamp it was fetched for


def cache_folder(name: str, override_env: str | None = None) -> Path:
    """`$override_env` when set, else `name` in ddb-bridge's folder of the user's cache."""
    override = os.environ.get(override_env) if override_env else None
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ddb-bridge" / name


def cached(folder: Path, stamp: str) -> bool:
    """`folder` holds a whole copy fetched for `stamp`."""
    marker = folder / COMPLETE
    return marker.exists() and marker.read_text() == stamp


def java_major(java: str) -> tuple[int | None, str]:
    """The major version `java -version` states (None when it states none), and its text."""
    shown = subprocess.run(
        [java, "-version"], capture_output=True, text=True, timeout=60, check=False
    ).stderr
    match = re.search(r'version "(\d+)', shown)
    return (None if match is None else int(match.group(1))), shown


def fetch(
    mvn: str,
    project: Path,
    target: Path,
    stamp: str,
    *,
    goals: Sequence[str],
    failed: Callable[[int, str], Exception],
    built: Sequence[str] = (),
    timeout_s: float | None = None,
) -> bool:
    """Run Maven's `goals` on a copy of `project` (a pom file, or a folder holding pom.xml)
    with `-DoutputDirectory` a private folder, add the files `built` of the build's target/
    folder, mark the copy with `stamp`, and rename it to `target` (a stale copy set aside).

    Returns True when this call put the copy in place, False when another session's rename
    won the race (its copy is as good). A failed Maven run raises `failed(exit code, the
    last 3,000 characters of its output)`. The caller checks the copy it then finds.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"ddb-bridge-{target.name}-"))
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    copy = work / "project"
    try:
        if project.is_dir():
            shutil.copytree(project, copy, ignore=shutil.ignore_patterns("target"))
        else:
            copy.mkdir()
            shutil.copyfile(project, copy / "pom.xml")
        done = subprocess.run(
            [mvn, "-q", "-B", "-f", str(copy / "pom.xml"), *goals, f"-DoutputDirectory={staging}"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=copy,
            check=False,
        )
        if done.returncode != 0:
            raise failed(done.returncode, (done.stdout + done.stderr)[-3000:])
        for name in built:
            shutil.copyfile(copy / "target" / name, staging / name)
        (staging / COMPLETE).write_text(stamp)
        if target.exists():  # fetched for another stamp: set the old copy aside
            stale = target.with_name(f".stale-{target.name}-{uuid.uuid4().hex[:6]}")
            with contextlib.suppress(OSError):
                target.rename(stale)
                shutil.rmtree(stale, ignore_errors=True)
        try:
            staging.rename(target)
        except OSError:  # another session won the race: use its copy
            return False
        return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
