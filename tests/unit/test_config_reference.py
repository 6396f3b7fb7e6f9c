"""The site's configuration reference is generated from the settings models: every key of
every section is on it, with the default the models really take and its environment
variable, and text that would break a Markdown table is escaped."""

from __future__ import annotations

import re

from pydantic import BaseModel

from bridge.runtime.config_reference import render_reference
from bridge.runtime.settings import KafkaSettings, Settings, _member_types


def _models() -> list[tuple[str, type[BaseModel]]]:
    out = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.append((name, annotation))
        else:
            args = getattr(annotation, "__args__", ())
            for member in _member_types(args[-1]) if args else ():
                if isinstance(member, type) and issubclass(member, BaseModel):
                    out.append((name, member))
    return out


def test_every_key_of_every_section_has_a_row() -> None:
    page = render_reference()
    rows = set(re.findall(r"^\| `([a-z0-9_]+)` \|", page, re.MULTILINE))
    expected = {key for _, model in _models() for key in model.model_fields}
    nested = [
        f.annotation
        for _, model in _models()
        for f in model.model_fields.values()
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
    ]
    expected |= {key for model in nested for key in model.model_fields}
    assert len(_models()) >= 8
    assert expected - rows == set(), "settings missing from the reference"


def test_defaults_and_environment_variables_are_the_models_own() -> None:
    page = render_reference()
    partitions = KafkaSettings.model_fields["partitions"].default
    assert f"| `partitions` | `{partitions}` |" in page
    assert "`DDB_BRIDGE__KAFKA__BOOTSTRAP_SERVERS`" in page
    assert "## `[aws.endpoints]`" in page
    assert "`DDB_BRIDGE__AWS__ENDPOINTS__DYNAMODB`" in page
    # a secret's default is never printed
    assert "| `secret_access_key` | *(secret, unset)* |" in page


def test_angle_brackets_and_pipes_in_meanings_do_not_break_the_table() -> None:
    page = render_reference()
    row = next(line for line in page.splitlines() if line.startswith("| `topic_prefix` |"))
    assert "&lt;prefix&gt;&lt;table&gt;.changes" in row
    for line in page.splitlines():
        if line.startswith("| `"):
            # a row has as many cells as its header: 3, or 4 with the environment column
            cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
            assert len(cells) in (3, 4), line
