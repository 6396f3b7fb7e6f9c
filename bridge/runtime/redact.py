"""Keeping secrets out of what the bridge prints: `config show`, log lines, error messages.

Three nets, because a secret can reach a message by several roads:
- by option name: a pass-through client option whose name says it holds a secret
  (`sasl.password`, `ssl.key.pem`, `basic.auth.user.info`, ...) is shown as MASK;
- by form: the password of `scheme://user:password@host` and `password=...` in a
  key=value connection string are masked wherever they appear in text;
- by value: every secret the loaded settings hold is remembered (`remember`), and any text
  that contains one verbatim has it masked — this catches a driver that echoes a DSN or a
  password into its own error message.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

MASK = "**********"

# Option names (librdkafka, Schema Registry client, connection strings) that hold secrets.
# `keytab` and `oauthbearer.config` name files or strings that carry credentials too.
_SECRET_NAME = re.compile(
    r"password|passwd|secret|token|user\.?info|key\.pem|keytab|oauthbearer\.config|credential"
    r"|private",
    re.IGNORECASE,
)
# scheme://user:password@host -> keep scheme, user and host; the password is masked.
_URL_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)(?P<pw>[^/\s@]+)@")
# password=secret, in libpq key=value strings and URL query strings.
_KV_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|sslpassword)\s*=\s*)(?P<pw>'[^']*'|[^\s&;']+)",
    re.IGNORECASE,
)

# Secret values shorter than this are not masked by value (they would mask ordinary words);
# the name and form nets still apply to them.
_MIN_REMEMBERED = 4
_remembered: set[str] = set()
_lock = threading.Lock()


def is_secret_name(name: str) -> bool:
    return _SECRET_NAME.search(name) is not None


def remember(values: Iterable[str]) -> None:
    """Mask these values wherever they later appear in text this module redacts."""
    with _lock:
        _remembered.update(v for v in values if len(v) >= _MIN_REMEMBERED)


def redact_text(text: str) -> str:
    """`text` with URL passwords, `password=` values and remembered secrets masked."""
    text = _URL_USERINFO.sub(lambda m: m["head"] + MASK + "@", text)
    text = _KV_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    # Longest first, so a secret containing another is masked whole.
    for value in sorted(_remembered, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_options(options: dict[str, Any]) -> dict[str, Any]:
    """A pass-through option map with secret-named values masked and the rest redacted."""
    return {k: MASK if is_secret_name(k) else redact_data(v) for k, v in sorted(options.items())}


def redact_data(data: Any) -> Any:
    """Plain data (a settings dump) with every string redacted, recursively."""
    if isinstance(data, str):
        return redact_text(data)
    if isinstance(data, dict):
        return {k: redact_data(v) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_data(v) for v in data]
    return data
