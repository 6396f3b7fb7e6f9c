"""Marks by folder, and the heavy services a group of tests shares.

Every test is marked by its folder, so `-m integration`, `-m "not e2e"` select what they say.

Tests that use a heavy service (`SERVICE_GROUPS`: Cassandra, the three-broker cluster) carry
an `xdist_group` mark, so `--dist loadgroup` runs the whole group on one worker, one after
another: the service starts once per run, not once per worker. A group's service is started
the first time one of its tests asks (`GROUP_SERVICES.get`) and, under `--dist loadgroup`,
stopped as soon as that worker's next test is of no group or another one, instead of idling
until the session ends (a Cassandra node or three brokers cost ~5-10 % of a core while idle,
on CI's two shared cores). Run without xdist, a service stays up until the session ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

FOLDER_MARKS = {
    "unit": "unit",
    "integration": "integration",
    "e2e": "e2e",
    "chaos": "chaos",
    "contracts": "contract",
}
# A module that names the fixture at all goes whole (some ask for it by
# `request.getfixturevalue`, which `fixturenames` cannot show).
SERVICE_GROUPS = {"cql_endpoint": "cql", "kafka_cluster": "kafka-cluster"}

_SOURCES: dict[Path, str] = {}


def service_group(item: pytest.Item) -> str | None:
    """The group of heavy services `item` belongs to, if any."""
    if item.path not in _SOURCES:
        _SOURCES[item.path] = item.path.read_text(errors="replace")
    names = getattr(item, "fixturenames", ())
    for fixture, group in SERVICE_GROUPS.items():
        if fixture in names or fixture in _SOURCES[item.path]:
            return group
    return None


class GroupServices:
    """The services of this worker's groups that are running, each with what stops it."""

    def __init__(self) -> None:
        self._running: dict[str, tuple[Any, ExitStack]] = {}

    def get(self, group: str, start: Callable[[], AbstractContextManager[T]]) -> T:
        if group not in self._running:
            stack = ExitStack()
            service = stack.enter_context(start())
            self._running[group] = (service, stack)
        running: T = self._running[group][0]
        return running

    def running(self) -> list[str]:
        return sorted(self._running)

    def stop(self, group: str) -> None:
        entry = self._running.pop(group, None)
        if entry is not None:
            entry[1].close()

    def stop_all(self) -> None:
        for group in self.running():
            self.stop(group)


GROUP_SERVICES = GroupServices()


# Marked as each test is collected, before any `pytest_collection_modifyitems`: pytest-xdist's
# reads the group marks there and must find them.
def pytest_itemcollected(item: pytest.Item) -> None:
    folder = item.path.parent.name
    if folder in FOLDER_MARKS:
        item.add_marker(FOLDER_MARKS[folder])
    group = service_group(item)
    if group is not None:
        item.add_marker(pytest.mark.xdist_group(group))


def _group_of(item: pytest.Item | None) -> str | None:
    mark = item.get_closest_marker("xdist_group") if item is not None else None
    return str(mark.args[0]) if mark is not None and mark.args else None


# After the test's own fixtures are torn down (a test of the cluster restarts the nodes it
# stopped in its fixture's teardown).
@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    # Only a worker of `--dist loadgroup` knows a group's tests come one after another; run
    # otherwise, the next test of the group may come later and would pay a second start.
    if not getattr(item.config.option, "loadgroup", False):
        return
    group = _group_of(item)
    if group is not None and group != _group_of(nextitem):
        GROUP_SERVICES.stop(group)


def pytest_sessionfinish() -> None:
    with contextlib.suppress(Exception):
        GROUP_SERVICES.stop_all()
