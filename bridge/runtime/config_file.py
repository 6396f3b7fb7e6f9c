"""Writing a configuration file from sections given as data, checked by the settings models.

The tests, the demo and the benchmarks each need a `bridge.toml` for the processes they
start. Writing it by hand lets a renamed or misspelled key slip through until the process
reads it (or forever, when the key only loosens a default); here every section goes through
`Settings` first, so such a key fails at once, named by its path. Only the keys given are
written: what the file leaves out keeps its default and stays open to the environment, as in
a hand-written file. Values are written as given, secrets included: the file is the caller's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bridge.model.errors import ConfigError
from bridge.runtime.config_template import toml_value
from bridge.runtime.settings import Settings


def write_config(path: str | os.PathLike[str], **sections: Any) -> Path:
    """Check `sections` (aws={...}, tables=[{...}], targets={"name": {...}}, ...) and write them.

    Nothing is written when a key is unknown or a value invalid: a ConfigError names it.
    """
    text = config_toml(**sections)
    target = Path(path)
    target.write_text(text, encoding="utf-8")
    return target


def config_toml(**sections: Any) -> str:
    """The TOML text of `sections`, after checking them against the settings models."""
    data = {name: _plain(value, name) for name, value in sections.items()}
    try:
        # model_validate, not Settings(...): the check must not read the environment.
        Settings.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError("config file: " + "; ".join(problems)) from exc
    blocks = []
    for name, value in data.items():
        if isinstance(value, list):  # [[tables]]: one block per entry
            blocks += [_block(f"[[{name}]]", entry) for entry in value]
        elif name == "targets":  # one [targets.NAME] block per named target
            blocks += [_block(f"[{name}.{key}]", entry) for key, entry in value.items()]
        else:
            blocks.append(_block(f"[{name}]", value))
    return "\n\n".join(blocks) + "\n"


def _block(header: str, keys: dict[str, Any]) -> str:
    return "\n".join([header, *(f"{key} = {toml_value(value)}" for key, value in keys.items())])


def _plain(value: Any, where: str) -> Any:
    """Paths as strings; None refused, since TOML cannot say "unset" (leave the key out)."""
    if value is None:
        raise ConfigError(f"config file: {where}: None has no TOML form; leave the key out")
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {k: _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}.{i}") for i, v in enumerate(value)]
    return value
