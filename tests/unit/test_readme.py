"""The README is the contract, and the docs site with it: the commands and settings they name
must exist."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bridge.runtime.settings import Settings
from ddb_bridge.cli.main import build_parser
from tests.support import docs

README = docs.corpus()


def subcommands() -> dict[str, object]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return dict(action.choices)  # type: ignore[arg-type]


def test_every_command_in_the_readme_exists() -> None:
    named = set(re.findall(r"`ddb-bridge ([a-z]+)", README))
    assert named, "the README names no command"
    missing = named - set(subcommands())
    assert not missing, f"README names commands the CLI does not have: {sorted(missing)}"


@pytest.mark.parametrize("command", sorted(set(re.findall(r"`ddb-bridge ([a-z]+)", README))))
def test_readme_commands_parse_their_documented_options(command: str) -> None:
    """Every `--option` the README shows right after `ddb-bridge <command>` is accepted."""
    parsers = subcommands()
    sub = parsers[command]
    known = {opt for a in sub._actions for opt in a.option_strings}  # type: ignore[attr-defined]
    # also options of nested subcommands (e.g. `config show`, `schema cql`)
    for a in sub._actions:  # type: ignore[attr-defined]
        if isinstance(a.choices, dict):
            for nested in a.choices.values():
                known |= {o for x in nested._actions for o in x.option_strings}
    for line in re.findall(rf"ddb-bridge {command}([^`\n]*)", README):
        for option in re.findall(r"(--[a-z][a-z0-9-]*)", line):
            assert option in known, f"`ddb-bridge {command}` has no {option} (README: {line})"


def test_configuration_table_keys_exist() -> None:
    section_models = {name: field.annotation for name, field in Settings.model_fields.items()}
    table = docs.section("Configuration")
    section = None
    checked = 0
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("section", "---"):
            continue
        if cells[0]:
            section = cells[0].strip("`[]")
        top, _, inner = (section or "").partition(".")
        if top not in section_models or top in ("targets", "tables"):
            continue
        model: Any = section_models[top]
        if inner:  # a section within a section: [aws.endpoints]
            model = model.model_fields[inner].annotation
        for key in re.findall(r"`([a-z_][a-z0-9_]*)`", cells[1]):
            assert key in model.model_fields, (
                f"README documents {section}.{key}, which is not a setting"
            )
            checked += 1
    assert checked >= 15
