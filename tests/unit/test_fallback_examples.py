"""The fallback pass's plugin (tests/support/fallback_examples.py) draws a fifth of each
hypothesis test's examples, once per test function however many parameters it has."""

from __future__ import annotations

import re

import pytest

COUNTING_TESTS = """
import pytest
from hypothesis import given, settings, strategies as st

DRAWN = {}

def _count(name):
    DRAWN[name] = DRAWN.get(name, 0) + 1

@settings(max_examples=300, database=None)
@given(st.integers())
def test_asks_300(n):
    _count("300")

@pytest.mark.parametrize("which", ["a", "b", "c"])
@settings(max_examples=200, database=None)
@given(st.integers())
def test_parametrized_200(which, n):
    _count("200" + which)

@settings(max_examples=30, database=None)
@given(st.integers())
def test_asks_30(n):
    _count("30")

def test_report():
    print("DRAWN", sorted(DRAWN.items()))
"""


@pytest.mark.parametrize("plugin", [True, False])
def test_a_fifth_of_the_examples_at_least_twenty(pytester: pytest.Pytester, plugin: bool) -> None:
    pytester.makepyfile(test_counting=COUNTING_TESTS)
    args = ["-s", "-p", "no:cacheprovider", "-p", "no:randomly"]
    if plugin:
        args += ["-p", "tests.support.fallback_examples"]
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=6)
    drawn = next(m.group(0) for line in result.outlines if (m := re.search(r"DRAWN \[.*\]", line)))
    # Hypothesis may stop early when a strategy runs out of distinct inputs; integers do not.
    share = 5 if plugin else 1
    asked = {"200a": 200, "200b": 200, "200c": 200, "30": 30, "300": 300}
    expected = sorted((name, max(20, n // share) if plugin else n) for name, n in asked.items())
    assert drawn == f"DRAWN {expected}"
