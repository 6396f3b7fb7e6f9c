"""Package data (the schema; the demo's Apache Kafka pom) must load from a real (non-editable)
wheel install, and building it must not warn (a first `make demo` builds the package)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_ships_schemas_and_loads_them(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    # setuptools' deprecations (e.g. `project.license` as a table) reach the user through pip,
    # which relabels them (BuildBackendWarning): match any warning class and the word itself.
    warnings = re.findall(r"\w*Warning: .*|.*deprecat.*", built.stdout + built.stderr, re.I)
    assert warnings == [], "building the wheel warns:\n" + "\n".join(warnings)
    (wheel,) = wheels.glob("ddb_bridge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "schemas/change_event.avsc" in names
    assert "schemas/history/change_event.v1.avsc" in names
    assert "ddb_bridge/services/kafka_broker.pom.xml" in names
    for cassandra_file in ("pom.xml", "jvm17.options", "logback.xml"):
        assert f"ddb_bridge/services/cassandra/{cassandra_file}" in names
    # `kcl run --transport dynamodb-streams` builds its launcher from the installed package.
    launcher = "connectors/sources/stream/kcl/streams_launcher"
    assert f"{launcher}/pom.xml" in names
    assert f"{launcher}/src/main/java/ddbbridge/kcl/DynamoDBStreamsMultiLangDaemon.java" in names
    # The licence the metadata declares, with its text (Apache-2.0 requires it be passed on).
    with zipfile.ZipFile(wheel) as archive:
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(meta).decode()
        licences = [n for n in names if re.search(r"\.dist-info/licenses/LICENSE$", n)]
        assert licences, f"the wheel carries no LICENSE: {sorted(names)[-8:]}"
        text = archive.read(licences[0]).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "License-File: LICENSE" in metadata
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert text == (ROOT / "LICENSE").read_text()

    target = tmp_path / "site"
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    probe = (
        "import schemas, bridge.codec.avro as c;"
        "print(schemas.__file__);"
        "print(c.EventCodec().schema.fingerprint.hex());"
        "from ddb_bridge.services import kafka_jars as k;"
        "print(k.POM, k.POM.is_file(), k.jars_stamp().split()[0])"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    schemas_file, fingerprint, pom, pom_found, kafka_version = run.stdout.split()
    assert schemas_file.startswith(str(target)), "loaded the source tree, not the wheel"
    assert len(fingerprint) == 16
    # The installed `ddb-bridge demo` can fetch Apache Kafka: its pom came with the wheel.
    assert pom.startswith(str(target)) and pom_found == "True"
    assert kafka_version == "4.4.0"


@pytest.mark.slow
def test_editable_install_is_silent(tmp_path: Path) -> None:
    # `make install` (the first step of `make demo` and `make test`) is an editable install.
    # With the packages at the root and no `package-dir`, setuptools chose its import-finder
    # strategy, whose "Editable installation" notice pip printed at length on every install
    # (pip surfaces it; calling the backend directly does not). The observable cause is the
    # strategy: a plain path in the .pth file instead of a finder. The editable wheel is built
    # the way pip builds it (PEP 660), into a scratch folder.
    script = (
        "import sys; from setuptools import build_meta as b; print(b.build_editable(sys.argv[1]))"
    )
    built = subprocess.run(
        [sys.executable, "-W", "default", "-c", script, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    warnings = re.findall(r"\w*Warning: .*|.*deprecat.*", built.stdout + built.stderr, re.I)
    assert warnings == [], warnings
    wheel = next(tmp_path.glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        pth = [name for name in archive.namelist() if name.endswith(".pth")]
        assert len(pth) == 1, archive.namelist()
        # A plain path to the project root: every package (bridge, connectors, ddb_bridge,
        # schemas) resolves from the working tree.
        assert archive.read(pth[0]).decode().strip() == str(ROOT)
