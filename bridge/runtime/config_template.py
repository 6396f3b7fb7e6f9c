"""The commented configuration that `ddb-bridge init` writes, generated from the settings models.

Every section and key of `bridge.runtime.settings` appears with its meaning (the field's
`description`, the one place it is written), its allowed values and its default. Active lines
hold exactly the defaults, so the file loads to the default settings; keys unset by default
are commented examples (`Field(examples=...)`), and so is one target per target type. Secrets
are never written: a commented placeholder stands in their place. Being derived from the
models, the template cannot miss a setting added later; a field the walk cannot render is an
error, caught by the tests, not a silent omission.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from typing import Any, Literal, TypeGuard, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from bridge.runtime.settings import CONFIG_ENV, DEFAULT_CONFIG, ENV_PREFIX, Settings, _member_types

WIDTH = 100
SECRET_PLACEHOLDER = "<secret>"
_BOUNDS = (
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "<="),
    (annotated_types.Lt, "lt", "<"),
)

HEADER = f"""\
# ddb-bridge configuration, written by `ddb-bridge init`: every setting, with its meaning
# and its default. Active lines hold the defaults; commented lines are unset by default (an
# example value follows) or are examples to copy. Secrets are never written here: replace
# the "{SECRET_PLACEHOLDER}" placeholders, or set them in the environment.
#
# Read from --config PATH, else ${CONFIG_ENV}, else ./{DEFAULT_CONFIG}. Every key can be
# overridden by an environment variable {ENV_PREFIX}SECTION__KEY, e.g.
# {ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS=broker:9092. Unknown keys are errors.
# `ddb-bridge config show` prints the effective settings, secrets masked."""


def render_template() -> str:
    """The whole file: one block per section, separated by blank lines."""
    defaults = Settings.model_construct()  # field defaults only: no environment, no file
    blocks = [HEADER]
    for name, field in Settings.model_fields.items():
        blocks += _top_level(name, field, getattr(defaults, name))
    return "\n\n".join(blocks) + "\n"


def _top_level(name: str, field: FieldInfo, default: Any) -> list[str]:
    annotation = field.annotation
    about = _comment(required_description(Settings, name, field))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        env = f"# env {ENV_PREFIX}{name.upper()}__<KEY>"
        return [_block([*about, env], f"[{name}]", annotation, default, commented=False)]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list and is_model(args[0]):
        # A list of tables has no default entry to show: one example entry, the required keys
        # from the model's examples, every other key at its default.
        model: type[BaseModel] = args[0]
        example = model.model_construct(**_required_examples(model))
        note = f"# none by default: this [[{name}]] entry is an example, edit it"
        return [_block([*about, note], f"[[{name}]]", model, example, commented=False)]
    if origin is dict and all(is_model(t) for t in _member_types(args[1])):
        return _named_sections(name, about, _member_types(args[1]), default)
    raise TypeError(f"config template: cannot render Settings.{name} ({annotation})")


def _named_sections(
    name: str, about: list[str], models: list[type[BaseModel]], default: dict[str, BaseModel]
) -> list[str]:
    """The configured defaults as they are, then one commented example of each other type."""
    env = f"# env {ENV_PREFIX}{name.upper()}__<NAME>__<KEY>"
    out = []
    for key, value in default.items():
        out.append(_block([*about, env], f"[{name}.{key}]", type(value), value, commented=False))
        about, env = [], ""
    shown = {type(v) for v in default.values()}
    for model in models:
        if model in shown:
            continue
        example = model.model_construct(**_required_examples(model))
        kind = _required_examples(model).get("type", model.__name__.lower())
        intro = _comment(f"example of a target of type {kind}: uncomment it, name it as you like")
        out.append(_block(intro, f"[{name}.{kind}]", model, example, commented=True))
    return out


def _block(
    intro: list[str], header: str, model: type[BaseModel], values: BaseModel, *, commented: bool
) -> str:
    mark = "# " if commented else ""
    lines = [line for line in intro if line] + [mark + header]
    nested: list[tuple[str, FieldInfo, type[BaseModel]]] = []
    unset: set[str] = set()
    for name, field in model.model_fields.items():
        if is_model(field.annotation):
            nested.append((name, field, field.annotation))
            continue
        value = getattr(values, name)
        # `hash_key_type` means nothing while `hash_key` is commented out: comment it too.
        key_unset = name.endswith("_type") and name.removesuffix("_type") in unset
        keys = list(_key_lines(model, name, field, value, commented or key_unset))
        if keys[-1].startswith("# "):
            unset.add(name)
        lines += keys
    text = "\n".join(lines)
    # A section within a section ([aws.endpoints]) follows its parent's keys: TOML puts a
    # key after a sub-table's header into the sub-table.
    for name, field, section in nested:
        about = _comment(required_description(model, name, field))
        sub = f"[{header.strip('[]')}.{name}]"
        text += "\n\n" + _block(about, sub, section, getattr(values, name), commented=commented)
    return text


def _key_lines(
    model: type[BaseModel], name: str, field: FieldInfo, value: Any, commented: bool
) -> Iterator[str]:
    about = required_description(model, name, field)
    notes = field_notes(field)
    if isinstance(value, SecretStr) or SecretStr in _member_types(field.annotation):
        # Never the default: a secret's value (even a harmless-looking one) stays out.
        notes.append("a secret")
        shown, commented = _secret_placeholder(field), True
    elif value is None or value == {} or value == []:
        if "unset" not in about:  # the meaning often says already what unset does
            notes.append("default: unset" if value is None else "default: empty")
        shown, commented = toml_value(_example(model, name, field)), True
    else:
        shown = toml_value(value)
    yield from _comment(about + (f" ({'; '.join(notes)})" if notes else ""))
    yield ("# " if commented else "") + f"{name} = {shown}"


def field_notes(field: FieldInfo) -> list[str]:
    """Allowed values and bounds, read from the type so they cannot disagree with validation."""
    notes = []
    for member in _member_types(field.annotation):
        if get_origin(member) is Literal and len(get_args(member)) > 1:
            notes.append("one of " + ", ".join(str(a) for a in get_args(member)))
    for meta in field.metadata:
        for kind, attr, sign in _BOUNDS:
            if isinstance(meta, kind):
                notes.append(f"{sign} {getattr(meta, attr)}")
    return notes


def required_description(model: type[BaseModel], name: str, field: FieldInfo | None) -> str:
    field = field or model.model_fields[name]
    if not field.description:
        raise TypeError(f"config template: {model.__name__}.{name} has no description")
    return field.description


def _required_examples(model: type[BaseModel]) -> dict[str, Any]:
    """Values for the keys without a default: the discriminator's literal, else an example."""
    values = {}
    for name, field in model.model_fields.items():
        if field.is_required():
            args = get_args(field.annotation)
            if get_origin(field.annotation) is Literal and len(args) == 1:
                values[name] = args[0]
            else:
                values[name] = _example(model, name, field)
    return values


def _example(model: type[BaseModel], name: str, field: FieldInfo) -> Any:
    if not field.examples:
        raise TypeError(
            f"config template: {model.__name__}.{name} has no default to show: "
            "give it Field(examples=[...])"
        )
    return field.examples[0]


def _secret_placeholder(field: FieldInfo) -> str:
    """A hand-written example of the secret's form, else the bare placeholder."""
    return toml_value(field.examples[0]) if field.examples else toml_value(SECRET_PLACEHOLDER)


def is_model(annotation: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def toml_value(value: Any) -> str:
    """A TOML literal (inline tables for maps, so a block never needs a sub-table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON's string escapes are a subset of TOML's basic-string escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"config template: no TOML form for {value!r}")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _comment(text: str) -> list[str]:
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent="# ",
        subsequent_indent="# ",
        break_long_words=False,
        break_on_hyphens=False,
    )
