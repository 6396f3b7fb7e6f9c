"""Composing the sections of a test's config: a helper's base, then the test's own keys."""

from __future__ import annotations

from typing import Any


def merged(base: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """`base` with each override applied: a section's keys update it, a list replaces it.

    So a helper's defaults and a test's one changed key meet without the test restating the
    rest (`merged(base, kafka={"linger_ms": 0})` keeps the base's bootstrap_servers).
    """
    out = {name: dict(value) if isinstance(value, dict) else value for name, value in base.items()}
    for name, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(name), dict):
            out[name] = {**out[name], **value}
        else:
            out[name] = value
    return out
