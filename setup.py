"""The compiled per-item core, the one thing pyproject.toml cannot declare without a warning
(its `ext-modules` table is experimental in setuptools); everything else is in pyproject.toml.

bridge/codec/_core.c is plain C against CPython's API, so the build needs only gcc and
Python's headers (tools/ensure-compiler.sh). Optional: where it cannot be compiled the
install goes on, and the Python implementation runs with the same results
(bridge/codec/compiled.py logs one notice).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("bridge.codec._core", sources=["bridge/codec/_core.c"], optional=True),
        # apply's batch screen (bridge/apply/screening.py); it needs _core too
        Extension("bridge.codec._apply_core", sources=["bridge/codec/_apply_core.c"], optional=True),
    ]
)
