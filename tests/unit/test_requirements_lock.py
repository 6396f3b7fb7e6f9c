"""The lock file the Dockerfile installs from pins every dependency pyproject.toml declares
(runtime and the KCL extra), at a version the declaration allows, resolved for the Python of
the Dockerfile's base image."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"requirements.lock: {line!r} is not pinned with =="
        pins[canonicalize_name(name)] = version
    return pins


def test_the_lock_pins_every_declared_dependency_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["kcl"]]
    pins = locked()
    for text in declared:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"requirements.lock does not pin {req.name} (pyproject: {text})"
        assert req.specifier.contains(pins[name], prereleases=True), (text, pins[name])
        for extra in req.extras:  # confluent-kafka[schemaregistry]: what the extra adds
            for needed in extra_requirements(req.name, extra):
                assert canonicalize_name(needed.name) in pins, (text, str(needed))


def extra_requirements(distribution: str, extra: str) -> list[Requirement]:
    """What `distribution[extra]` adds, from its installed metadata."""
    out = []
    for line in metadata.requires(distribution) or []:
        req = Requirement(line)
        # Only under this extra: true with it, false without it.
        marker = req.marker
        if marker is not None and marker.evaluate({"extra": extra}) > marker.evaluate(
            {"extra": ""}
        ):
            out.append(req)
    assert out, f"{distribution}[{extra}] adds nothing: is the metadata read right?"
    return out


def test_the_lock_is_for_the_python_of_the_image() -> None:
    header = re.search(r"Resolved for Python (\d+\.\d+)", LOCK.read_text())
    image = re.search(r"^FROM python:(\d+\.\d+)-slim", (ROOT / "Dockerfile").read_text(), re.M)
    assert header and image and header.group(1) == image.group(1)


def test_the_dockerfile_installs_with_the_lock_as_constraints() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements.lock" in dockerfile
    installs = re.findall(r"pip install[^\n]*", dockerfile)
    assert installs and all("-c requirements.lock" in line for line in installs), installs
