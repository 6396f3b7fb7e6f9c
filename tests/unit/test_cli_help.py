"""`--help` of every command: each option's default stated once (the effective one), and the
exit codes, which are what `main` returns."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from bridge.model.errors import BridgeError, ConfigError, TransientError, Unavailable
from bridge.runtime.config_template import toml_value
from bridge.runtime.settings import ENV_PREFIX, Settings
from ddb_bridge.cli import main as cli_main
from ddb_bridge.cli.commands import config as config_command
from ddb_bridge.cli.helptext import EXIT_CODES


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The top-level parser and every (nested) command parser."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from parsers(sub)


ALL = {p.prog: p for p in parsers(cli_main.build_parser())}


def option_entries(help_text: str) -> dict[str, str]:
    """`--option METAVAR` -> its help text, lines joined, as `--help` prints them."""
    entries: dict[str, str] = {}
    current: str | None = None
    for line in help_text.splitlines():
        start = re.match(r"^  (-\S+(?: \S+)*?)(?:\s{2,}(.*))?$", line)
        if start:
            current = start.group(1)
            entries[current] = start.group(2) or ""
        elif current is not None and line.startswith("   ") and line.strip():
            entries[current] += " " + line.strip()
        else:
            current = None
    return entries


@pytest.mark.parametrize("prog", sorted(ALL))
def test_each_option_states_one_default(prog: str) -> None:
    entries = option_entries(ALL[prog].format_help())
    assert entries, f"{prog}: no options parsed from its help"
    for option, text in entries.items():
        defaults = re.findall(r"default", text, re.I)
        assert len(defaults) <= 1, f"{prog} {option} states {len(defaults)} defaults: {text}"
        assert not re.search(r"default: None\b", text), f"{prog} {option}: {text}"


@pytest.mark.parametrize("prog", sorted(ALL))
def test_options_with_a_default_value_show_it(prog: str) -> None:
    """Options without a value default either fall back to a setting (next test), state
    what happens without them, or simply are not used."""
    parser = ALL[prog]
    entries = option_entries(parser.format_help())
    for action in parser._actions:
        if not action.option_strings or action.nargs == 0 or action.required:
            continue
        (entry,) = [
            t for o, t in entries.items() if o.split()[0].rstrip(",") in action.option_strings
        ]
        if action.default is not None:
            assert f"[default: {action.default}]" in entry, f"{prog} {action.option_strings}"


# Options whose value, when not given, comes from the settings.
FALLS_BACK = {
    ("ddb-bridge apply", "--target"): "apply.target",
    ("ddb-bridge apply", "--batch-size"): "apply.batch_size",
    ("ddb-bridge apply", "--batch-window-ms"): "apply.batch_window_ms",
    ("ddb-bridge backfill", "--segments"): "backfill.segments",
    ("ddb-bridge backfill", "--max-items-per-second"): "backfill.max_items_per_second",
    ("ddb-bridge backfill", "--max-rcu-per-second"): "backfill.max_rcu_per_second",
    ("ddb-bridge backfill", "--keep-expired"): "backfill.skip_expired_ttl",
    ("ddb-bridge backfill", "--worker-id"): "stream.worker_id",
    ("ddb-bridge stream", "--worker-id"): "stream.worker_id",
    ("ddb-bridge verify", "--target"): "apply.target",
    ("ddb-bridge verify", "--segments"): "backfill.segments",
    ("ddb-bridge schema cql", "--target"): "apply.target",
}


@pytest.mark.parametrize(("prog", "option"), sorted(FALLS_BACK))
def test_options_falling_back_to_a_setting_name_it(prog: str, option: str) -> None:
    entries = option_entries(ALL[prog].format_help())
    (text,) = [t for o, t in entries.items() if o.split()[0] == option]
    assert f"setting {FALLS_BACK[prog, option]}" in text, text


def test_setting_defaults_shown_in_help_are_the_models() -> None:
    shown = 0
    for prog, parser in ALL.items():
        text = " ".join(parser.format_help().split())
        for key, value, env in re.findall(r"setting (\w+\.\w+) (= \S+|\(unset\)), env (\w+)", text):
            section, name = key.split(".")
            model = Settings.model_fields[section].annotation
            assert isinstance(model, type)
            default = model.model_fields[name].default
            expected = "(unset)" if default is None else f"= {toml_value(default)}"
            assert value.rstrip(",;]") == expected, f"{prog}: {key}"
            assert env == f"{ENV_PREFIX}{section.upper()}__{name.upper()}", f"{prog}: {key}"
            shown += 1
    assert shown >= 10


@pytest.mark.parametrize("prog", sorted(ALL))
def test_help_lists_the_exit_codes(prog: str) -> None:
    text = ALL[prog].format_help()
    assert "exit codes:" in text, prog
    listed = re.findall(r"^\s+(\d+)  \S", text.split("exit codes:", 1)[1], re.M)
    assert [int(c) for c in listed] == [0, 1, 2, 75, 130, 141] == list(EXIT_CODES)


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (None, 0),
        (BridgeError("boom"), 1),
        (TransientError("a batch could not be written"), 1),
        (ConfigError("bad key"), 2),
        (Unavailable("Kafka at b:9092 did not answer"), 75),
        (KeyboardInterrupt(), 130),
    ],
)
def test_exit_codes_are_what_main_returns(
    raised: BaseException | None, code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command runs through `main`, which maps outcomes to the listed codes (141, a
    closed stdout, is covered end to end in tests/e2e/test_cli_hygiene.py)."""

    def run(_args: argparse.Namespace) -> int:
        if raised is not None:
            raise raised
        return 0

    monkeypatch.setattr(config_command, "run_show", run)
    assert cli_main.main(["config", "show"]) == code


def test_a_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_main.main(["apply", "--no-such-option"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
