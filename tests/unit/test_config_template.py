"""`ddb-bridge init` writes every setting of the models, with its default and its meaning."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, TypeGuard, get_args

import pytest
from pydantic import BaseModel, SecretStr

from bridge.runtime import settings as settings_module
from bridge.runtime.settings import Section, Settings, TableSettings, load_settings
from ddb_bridge.cli.main import main

HEADER = re.compile(r"^(?:# )?\[\[?([\w.]+)\]\]?$")
KEY = re.compile(r"^(?:# )?([a-z_][a-z0-9_]*) = (.*)$")


def every_model() -> list[type[BaseModel]]:
    """Settings and every Section subclass, however deep (new models are found by themselves)."""
    found: list[type[BaseModel]] = [Settings]
    todo: list[type[BaseModel]] = [Section]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return found


def target_models() -> list[type[BaseModel]]:
    union = get_args(settings_module.TargetSettings)[0]
    return list(get_args(union))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("DDB_BRIDGE"):
            monkeypatch.delenv(name)


@pytest.fixture
def written(tmp_path: Path, clean_env: None, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "bridge.toml"
    assert main(["init", "--config", str(path)]) == 0
    assert f"wrote {path}" in capsys.readouterr().out
    return path


def is_model(annotation: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def blocks(text: str) -> dict[str, dict[str, str]]:
    """Each section (active or commented) of the file: its header and its key lines."""
    found: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        header = HEADER.match(line)
        if header:
            assert header.group(1) not in found, f"section {header.group(1)} appears twice"
            current = found[header.group(1)] = {}
            continue
        key = KEY.match(line)
        if key and current is not None:
            current[key.group(1)] = line
    return found


@pytest.mark.parametrize("model", every_model(), ids=lambda m: m.__name__)
def test_every_setting_has_a_description(model: type[BaseModel]) -> None:
    missing = [name for name, f in model.model_fields.items() if not (f.description or "").strip()]
    assert missing == [], f"{model.__name__} fields without Field(description=...): {missing}"


def test_init_writes_every_section_and_every_key(written: Path) -> None:
    text = written.read_text()
    found = blocks(text)
    for name in Settings.model_fields:
        assert any(h == name or h.startswith(f"{name}.") for h in found), f"no [{name}]"
    plain = {"aws", "kafka", "tables", "stream", "backfill", "apply", "metrics"}
    assert plain == set(Settings.model_fields) - {"targets"}  # a new section needs a check here
    for section in plain:
        model = Settings.model_fields[section].annotation
        if section == "tables":
            model = TableSettings
        assert isinstance(model, type)
        # A section within the section ([aws.endpoints]) is a block of its own.
        inner = {n: f.annotation for n, f in model.model_fields.items() if is_model(f.annotation)}
        assert set(found[section]) == set(model.model_fields) - set(inner), section
        for name, sub in inner.items():
            assert set(found[f"{section}.{name}"]) == set(sub.model_fields), f"{section}.{name}"
    # One block per target type, active or commented, holding every key of that type.
    for model in target_models():
        kind = get_args(model.model_fields["type"].annotation)[0]
        typed = [
            keys
            for header, keys in found.items()
            if header.startswith("targets.") and f'type = "{kind}"' in keys.get("type", "")
        ]
        assert len(typed) == 1, f"{len(typed)} [targets.*] examples of type {kind}"
        assert set(typed[0]) == set(model.model_fields), kind
    # Every key's meaning, word for word from the model, is in the comments.
    comments = " ".join(
        " ".join(line[1:].split()) for line in text.splitlines() if line.startswith("#")
    )
    for model in every_model():
        for name, field in model.model_fields.items():
            meaning = " ".join((field.description or "").split())
            assert meaning in comments, f"{model.__name__}.{name}: {meaning}"


def test_init_output_loads_unchanged_as_the_defaults(written: Path) -> None:
    text = written.read_text()
    tomllib.loads(text)  # plain TOML, whatever reads it
    loaded = load_settings(written)
    defaults = Settings()
    for name in Settings.model_fields:
        if name != "tables":
            assert getattr(loaded, name) == getattr(defaults, name), name
    # The one [[tables]] entry is the example: a name (the only required key) and defaults.
    assert defaults.tables == []
    assert loaded.tables == [TableSettings(name="orders")]


def test_commented_target_examples_are_valid_targets(written: Path, tmp_path: Path) -> None:
    """Uncommenting an example gives a target the settings accept."""
    sections = written.read_text().split("\n\n")
    examples = [s for s in sections if re.search(r"^# \[targets\.", s, re.M)]
    assert len(examples) == len(target_models()) - 1  # the default target is not commented
    for example in examples:
        lines = [
            line[2:]
            for line in example.splitlines()
            if HEADER.match(line) or KEY.match(line)  # key lines, not the descriptions
        ]
        path = tmp_path / "example.toml"
        path.write_text("\n".join(lines) + "\n")
        loaded = load_settings(path)
        (name,) = (n for n in loaded.targets if n != "local")
        assert loaded.target(name).type == name


def secret_fields() -> list[tuple[type[BaseModel], str]]:
    return [
        (model, name)
        for model in every_model()
        for name, field in model.model_fields.items()
        if SecretStr in (field.annotation, *get_args(field.annotation))
    ]


def test_secrets_are_commented_placeholders(written: Path) -> None:
    assert len(secret_fields()) >= 7
    text = written.read_text()
    for model, name in secret_fields():
        lines = re.findall(rf"^.*\b{name} = .*$", text, re.M)
        assert lines, f"{model.__name__}.{name} missing"
        for line in lines:
            assert line.startswith("# "), f"a secret is set by the template: {line}"
        default: Any = model.model_fields[name].default
        if isinstance(default, SecretStr):
            # a secret's default value is never written out, even in a comment
            assert default.get_secret_value() not in text, f"{model.__name__}.{name}"


def test_existing_file_is_kept(written: Path) -> None:
    written.write_text("# mine\n")
    assert main(["init", "--config", str(written)]) == 2
    assert written.read_text() == "# mine\n"
