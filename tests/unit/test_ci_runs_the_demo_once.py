"""CI runs the README's `make demo` once: inside `make test` (tests/e2e/test_demo.py runs the
same `ddb-bridge demo` command), not a second time after it in `.ci/run`."""

from __future__ import annotations

import shlex
from pathlib import Path

from ddb_bridge.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]


def commands(script: Path) -> list[list[str]]:
    """The script's command lines as words, comments and blank lines left out."""
    out = []
    for line in script.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def test_ci_script_does_not_run_the_demo_after_the_suite() -> None:
    runs = commands(ROOT / ".ci" / "run")
    assert ["make", "install"] in runs and ["make", "lint"] in runs
    assert any(words[:2] == ["make", "test"] for words in runs), runs
    demo = [words for words in runs if "demo" in words]
    assert demo == [], f".ci/run runs the demo a second time: {demo}"


def test_the_demo_test_runs_the_make_demo_command_with_its_broker_choice() -> None:
    from tests.e2e import test_demo

    # `make demo` is `ddb-bridge demo $(DEMO_ARGS)`; the e2e test passes only sizes, so the
    # broker is chosen as `make demo` chooses it.
    args = build_parser().parse_args(["demo", *test_demo.DEMO_ARGS])
    assert args.broker == "auto"
    assert args.workdir is None
    assert 0 < args.items <= 2_000 and args.timeout_s <= 300
