"""The compiled per-item core (bridge/codec/_core.c), when it is built and switched on.

`CORE` is the extension module, configured for `ChangeEvent`, or None: not built (no C
compiler at install time), switched off (`DDB_BRIDGE_PURE_PYTHON=1`), or built for another
event layout; `WHY_NOT` says which. Both are resolved on first use, not at import (the
environment is read then).

Every caller keeps the Python implementation as the reference and the fallback: each core
function returns what that implementation makes of its input, or None ("take the Python
path"), which then decides and names any problem. Results are the same either way
(tests/contracts/test_fast_slow.py); only the speed differs.

`APPLY_CORE` is apply's batch screen (bridge/codec/_apply_core.c, configured and used by
bridge/apply/screening.py), or None under the same rules; it builds its events through
`CORE`, so it is None whenever `CORE` is.

`notice()` logs, once per process, why the core is not in use; the hot paths call it when
they start, so a daemon says it once and a command that publishes nothing says nothing.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import fields
from types import ModuleType
from typing import Any

import orjson

from bridge.model.event import TTL_PRINCIPAL, ChangeEvent, Op, Origin

log = logging.getLogger(__name__)

PURE_PYTHON_ENV = "DDB_BRIDGE_PURE_PYTHON"


def _load() -> tuple[ModuleType | None, str | None]:
    """(the configured core, None), or (None, why not)."""
    if os.environ.get(PURE_PYTHON_ENV, "").strip() not in ("", "0"):
        return None, f"{PURE_PYTHON_ENV} is set"
    try:
        from bridge.codec import _core
    except ImportError as exc:
        return None, f"it is not built ({exc}; `pip install -e .` builds it where gcc runs)"
    try:
        _core.configure(
            ChangeEvent,
            tuple(f.name for f in fields(ChangeEvent)),
            tuple(Op),
            tuple(Origin),
            orjson.loads,
            orjson.dumps,
            orjson.OPT_SORT_KEYS,
            TTL_PRINCIPAL,
        )
    except ValueError as exc:  # the event's fields changed: rebuild the core to match
        return None, f"it does not match this ChangeEvent ({exc}); reinstall to rebuild it"
    return _core, None


def _load_apply(core: ModuleType | None) -> ModuleType | None:
    """apply's screen, unconfigured (bridge/apply/screening.py configures it for its
    events, which this module cannot import), or None."""
    if core is None:
        return None
    try:
        from bridge.codec import _apply_core
    except ImportError:
        return None  # not built: apply's screen runs its Python text path
    return _apply_core


_noticed = False


def __getattr__(name: str) -> Any:
    """`CORE`, `WHY_NOT` and `APPLY_CORE`, loaded on first use and kept as module globals
    from then on."""
    if name in ("CORE", "WHY_NOT"):
        core, why_not = _load()
        globals().update(CORE=core, WHY_NOT=why_not)
        return globals()[name]
    if name == "APPLY_CORE":
        globals()["APPLY_CORE"] = _load_apply(sys.modules[__name__].CORE)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def notice() -> None:
    """Log once per process that the Python implementation runs instead of the core."""
    global _noticed
    module = sys.modules[__name__]
    if module.CORE is None and not _noticed:
        _noticed = True
        log.warning(
            "compiled core not in use: %s; the Python implementation runs instead "
            "(same results, about twice the CPU per item)",
            module.WHY_NOT,
        )
