"""The configuration reference of the documentation site, generated from the settings models.

`docs/hooks.py` calls `render_reference()` at every `mkdocs build`, so the page is never
written by hand and cannot drift from `bridge.runtime.settings`: one table per section (key,
type, default, meaning, environment variable), then the file `ddb-bridge init` writes. The
words come from the same place as the template's (`Field(description=...)`), and the same
walk refuses a field without one.
"""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from bridge.runtime.config_template import (
    field_notes,
    is_model,
    render_template,
    required_description,
    toml_value,
)
from bridge.runtime.settings import CONFIG_ENV, DEFAULT_CONFIG, ENV_PREFIX, Settings, _member_types

INTRO = f"""\
# Configuration reference

Generated from the settings models at every build of this site: it lists every setting the
bridge has, with the default it really takes.

The file is read from `--config PATH`, else `${CONFIG_ENV}`, else `./{DEFAULT_CONFIG}`. Any key
can be overridden by an environment variable `{ENV_PREFIX}SECTION__KEY` (shown beside each
key). Unknown keys are errors, so a misspelt setting is never ignored. `ddb-bridge config show`
prints the effective settings with secrets masked; `ddb-bridge init` writes the commented file
shown at the end of this page.
"""


def render_reference() -> str:
    """The whole page, in Markdown."""
    defaults = Settings.model_construct()
    parts = [INTRO]
    for name, field in Settings.model_fields.items():
        parts.append(_section(name, field, getattr(defaults, name)))
    parts.append(
        "## The file `ddb-bridge init` writes\n\n```toml\n" + render_template().rstrip() + "\n```\n"
    )
    return "\n".join(parts)


def _section(name: str, field: FieldInfo, default: Any) -> str:
    about = required_description(Settings, name, field)
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        out = [_table(f"[{name}]", about, annotation, default, f"{name.upper()}__")]
        for key, inner in annotation.model_fields.items():
            if is_model(inner.annotation):  # a section within a section: [aws.endpoints]
                out.append(
                    _table(
                        f"[{name}.{key}]",
                        required_description(annotation, key, inner),
                        inner.annotation,
                        getattr(default, key),
                        f"{name.upper()}__{key.upper()}__",
                    )
                )
        return "\n".join(out)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list and is_model(args[0]):
        return _table(f"[[{name}]]", about, args[0], None, None)
    if origin is dict:
        out = [f"## `[{name}.<name>]`\n\n{about}\n"]
        for model in _member_types(args[1]):
            kind = _kind(model)
            out.append(
                _table(
                    f"[{name}.<name>] with type = {kind!r}" if kind else f"[{name}.<name>]",
                    "",
                    model,
                    None,
                    f"{name.upper()}__<NAME>__",
                    level="###",
                )
            )
        return "\n".join(out)
    raise TypeError(f"config reference: cannot render Settings.{name} ({annotation})")


def _kind(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("type")
    if field is None:
        return None
    args = get_args(field.annotation)
    return str(args[0]) if get_origin(field.annotation) is Literal and len(args) == 1 else None


def _table(
    header: str,
    about: str,
    model: type[BaseModel],
    values: BaseModel | None,
    env: str | None,
    level: str = "##",
) -> str:
    rows = [
        f"{level} `{header}`\n",
        *([about, ""] if about else []),
        "| key | default | meaning |" + (" environment |" if env else ""),
        "|---|---|---|" + ("---|" if env else ""),
    ]
    for key, field in model.model_fields.items():
        meaning = required_description(model, key, field)
        notes = field_notes(field)
        if notes:
            meaning += f" ({'; '.join(notes)})"
        default = _default(field, None if values is None else getattr(values, key))
        cells = [f"`{key}`", default, _cell(meaning)]
        if env:
            cells.append(f"`{ENV_PREFIX}{env}{key.upper()}`")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def _default(field: FieldInfo, value: Any) -> str:
    if SecretStr in _member_types(field.annotation) or isinstance(value, SecretStr):
        return "*(secret, unset)*"
    if field.is_required():
        return "*(required)*"
    if value is None:
        value = field.get_default(call_default_factory=True)
    if value is None or value == {} or value == []:
        return "*(unset)*"
    if isinstance(value, BaseModel):
        return "*(see its keys)*"
    return _cell(f"`{toml_value(value)}`")


def _cell(text: str) -> str:
    """Text for a table cell: `|` would end the cell and `<table>` would be read as HTML."""
    if text.startswith("`") and text.endswith("`"):
        return text.replace("|", "\\|")
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("|", "\\|")
        .replace("\n", " ")
    )
