"""Help texts and hints a newcomer reads: every command says what it does, nothing is split
or spelled two ways, the init template's example is consistent, the 141 example shows 141,
and `kcl properties` without a stream name asks for one without citing a setting the user
never made."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from bridge.runtime.config_template import render_template
from ddb_bridge.cli.helptext import EXIT_CODES, EXIT_OUTPUT_CLOSED
from tests.support.daemon import run_bridge

pytestmark = pytest.mark.e2e


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("DDB_BRIDGE")}


def helptext(*words: str) -> str:
    done = run_bridge([*words, "--help"], None, env=clean_env(), timeout_s=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("words", [["verify"], ["schema", "cql"], ["schema", "sql"], ["demo"]])
def test_every_command_has_a_description(words: list[str]) -> None:
    text = helptext(*words)
    before_options = text.split("\noptions:", 1)[0]
    paragraphs = [p for p in before_options.split("\n\n") if not p.startswith("usage:")]
    assert any(p.strip() for p in paragraphs), f"`{' '.join(words)} --help` says not what:\n{text}"


def test_replay_help_does_not_split_the_group_name() -> None:
    text = helptext("replay")
    assert not re.search(r"ddb-\n", text), text
    assert text.count("ddb-bridge.apply.NAME") >= 2, text


def test_the_worker_id_default_is_spelled_one_way() -> None:
    spelled = {
        m
        for words in (["stream"], ["backfill"])
        for m in re.findall(r"host\S?pid\S?random", " ".join(helptext(*words).split()))
    }
    spelled |= set(re.findall(r"host\S?pid\S?random", render_template()))
    assert len(spelled) == 1, spelled


def test_the_init_example_table_has_no_key_type_without_its_key() -> None:
    tables = tomllib.loads(render_template())["tables"]
    for entry in tables:
        for key in ("hash_key", "range_key"):
            if f"{key}_type" in entry:
                assert key in entry, f"{key}_type is set while {key} is commented out: {entry}"


def test_the_141_example_is_one_that_exits_141() -> None:
    # `config show` writes a few KB: all of it fits in the pipe before `head` closes it, so
    # it exits 0. Only a command that keeps writing meets the closed pipe.
    assert "config show" not in EXIT_CODES[EXIT_OUTPUT_CLOSED]


def test_kcl_properties_without_a_stream_name_asks_for_one(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('[[tables]]\nname = "orders"\n')
    done = run_bridge("kcl properties", config, "--table", "orders", env=clean_env(), timeout_s=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "transport" not in done.stderr, done.stderr
    assert "--stream-name" in done.stderr and "orders" in done.stderr, done.stderr
