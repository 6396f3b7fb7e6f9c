"""The heavy services a group of tests shares: the group runs on one xdist worker, and its
service stops once that worker's tests of the group are done (tests/support/service_groups.py).
Broken, nothing fails: a second Cassandra node starts on the other worker, and a stopped-too-late
service idles on CI's two cores (pytest 9.2 broke pytest-xdist 3.8's groups exactly so)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# A stand-in for the conftest's `cql_endpoint`: the same GROUP_SERVICES, a service that writes
# when it starts and stops, and a test after the group's that writes when it runs.
CONFTEST = """
import contextlib, os
import pytest
from tests.support.service_groups import GROUP_SERVICES

pytest_plugins = ["tests.support.service_groups"]

def note(what):
    with open(os.environ["GROUPS_LOG"], "a") as log:
        log.write(what + "\\n")

@contextlib.contextmanager
def node():
    note("start")
    yield "node"
    note("stop")

@pytest.fixture
def cql_endpoint():
    return GROUP_SERVICES.get("cql", node)
"""

GROUPED = """
def test_one(cql_endpoint, worker_id):
    assert cql_endpoint == "node"
    open(__import__("os").environ["GROUPS_LOG"], "a").write(f"one {worker_id}\\n")

def test_two(request, worker_id):
    assert request.getfixturevalue("cql_endpoint") == "node"
    open(__import__("os").environ["GROUPS_LOG"], "a").write(f"two {worker_id}\\n")
"""

AFTER = """
def test_after_the_group(worker_id):
    open(__import__("os").environ["GROUPS_LOG"], "a").write(f"after {worker_id}\\n")
"""


def _run(pytester: pytest.Pytester, workers: str, log: Path) -> list[str]:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_a_grouped=GROUPED, test_b_after=AFTER)
    result = pytester.runpytest_subprocess(
        "-n", workers, "--dist", "loadgroup", "-p", "no:cacheprovider", "-v"
    )
    result.assert_outcomes(passed=3)
    # xdist names a grouped test `<id>@<group>`, and schedules all tests of one name to one
    # worker: the mark was there when it looked.
    result.stdout.fnmatch_lines(["*test_a_grouped.py::test_one@cql*", "*::test_two@cql*"])
    return log.read_text().splitlines()


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("GROUPS_LOG", str(tmp_path / "groups.log"))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    return tmp_path / "groups.log"


@pytest.mark.timeout(120)
def test_a_group_is_one_xdist_scope_and_its_service_stops_before_the_next_test(
    pytester: pytest.Pytester, log: Path
) -> None:
    # One worker: it takes the group's tests, then the other file's.
    events = _run(pytester, "1", log)
    group = [e.split()[0] for e in events if e.startswith(("one", "two"))]
    assert sorted(group) == ["one", "two"], events
    assert events.count("start") == events.count("stop") == 1, events
    last_of_group = max(i for i, e in enumerate(events) if e.startswith(("one", "two")))
    after = next(i for i, e in enumerate(events) if e.startswith("after"))
    assert last_of_group < events.index("stop") < after, events
