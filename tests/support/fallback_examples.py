"""A pytest plugin for the fallback pass (tests/contracts/test_python_fallback.py): every
hypothesis test draws a fifth of the examples its `@settings` asks for (at least 20).

Why a fifth is enough there: the main run already draws every example in full on the Python
path, where it counts most — the fast == slow contract (test_fast_slow.py) and the compiled
core's tests compare the two paths example by example. The fallback pass only has to show
that the Python path, running alone, still passes each unit test's own assertions; at full
depth it held one worker for ~85 s of CI's run, more than any other test but the chaos runs.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings

SHARE = 5  # one example in SHARE
FLOOR = 20  # never fewer examples than this per test


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    done: set[int] = set()  # a parametrized test's items share one function: scale it once
    for item in items:
        test = getattr(item, "obj", None)
        if id(test) in done:
            continue
        done.add(id(test))
        # hypothesis reads these settings each time the test runs (hypothesis/core.py).
        chosen: Any = getattr(test, "_hypothesis_internal_use_settings", None)
        if chosen is None or not hasattr(test, "hypothesis"):
            continue
        fewer = max(FLOOR, chosen.max_examples // SHARE)
        if fewer < chosen.max_examples:
            test._hypothesis_internal_use_settings = settings(chosen, max_examples=fewer)  # type: ignore[union-attr]
