"""Which item's events to show: `ddb-bridge tail --key`.

Two spellings, for the shell and for exactness:
- `pk=a` or `pk=a,sk=2`: key attributes by name, values as text (a number matches
  numerically, `sk=2` matches `2.0`; binary as base64). A value holding `,` or `=` needs
  the other spelling.
- DynamoDB JSON, `{"pk": {"S": "a"}, "sk": {"N": "2"}}`: types checked as well.
An event matches when each named attribute is in its key with that value; naming only the
partition key shows every item of that partition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bridge.model import attrs
from bridge.model.attrs import Item
from bridge.model.errors import AttributeTypeError

KEY_TYPES = ("S", "N", "B")


@dataclass(frozen=True)
class KeyFilter:
    typed: Item  # DynamoDB JSON spelling
    text: dict[str, str]  # name=value spelling

    @classmethod
    def parse(cls, spec: str) -> KeyFilter:
        """The filter `spec` spells; ValueError saying what is wrong otherwise."""
        spec = spec.strip()
        if spec.startswith("{"):
            return cls(typed=_typed(spec), text={})
        text: dict[str, str] = {}
        for part in spec.split(","):
            name, eq, value = part.partition("=")
            if not eq or not name.strip():
                raise ValueError(
                    f"{part!r} is not name=value (write pk=a or pk=a,sk=2, or DynamoDB JSON "
                    """like {"pk": {"S": "a"}})"""
                )
            text[name.strip()] = value
        return cls(typed={}, text=text)

    def matches(self, keys: Item) -> bool:
        for name, av in self.typed.items():
            held = keys.get(name)
            if held is None or not attrs.av_equal(held, av):
                return False
        for name, value in self.text.items():
            held = keys.get(name)
            if held is None or not _text_equal(held, value):
                return False
        return True


def _typed(spec: str) -> Item:
    try:
        parsed: Any = json.loads(spec)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    try:
        item = attrs.validate(parsed, "key")
    except AttributeTypeError as exc:
        raise ValueError(str(exc)) from exc
    for name, av in item.items():
        (kind,) = av
        if kind not in KEY_TYPES:
            raise ValueError(f"key attribute {name!r} is {kind}: keys are S, N or B")
    if not item:
        raise ValueError("names no key attribute")
    return item


def _text_equal(av: dict[str, Any], text: str) -> bool:
    ((kind, value),) = av.items()
    if kind == "N":
        try:
            return attrs.number_equal(value, attrs.normalize_number(text))
        except AttributeTypeError:
            return False  # not a number: cannot equal one
    return bool(value == text)
