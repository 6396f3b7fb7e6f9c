"""Names for what a run creates on services it shares with other runs (tables, topics, groups):
unique, so tests and benchmarks running at once never meet."""

from __future__ import annotations

import uuid


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
