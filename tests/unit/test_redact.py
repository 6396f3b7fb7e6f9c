"""bridge.runtime.redact: what is masked, and that ordinary text is left alone."""

from __future__ import annotations

import logging
import sys
import threading

import pytest

from bridge.runtime import redact
from bridge.runtime.logs import KeyValueFormatter


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:pw-1@db:5432/x", "postgresql://u:**********@db:5432/x"),
        (
            "see https://key:se%2Fcret@registry.example/",
            "see https://key:**********@registry.example/",
        ),
        ("host=db user=u password=pw-2 dbname=x", "host=db user=u password=********** dbname=x"),
        ("host=db password='pw 3'", "host=db password=**********"),
        ("https://h/x?user=u&password=pw-4&y=1", "https://h/x?user=u&password=**********&y=1"),
        # left alone: a port, no userinfo; a user without password
        ("http://127.0.0.1:8081/subjects", "http://127.0.0.1:8081/subjects"),
        ("kafka://broker:9092", "kafka://broker:9092"),
    ],
)
def test_redact_text_by_form(text: str, expected: str) -> None:
    assert redact.redact_text(text) == expected


@pytest.mark.parametrize(
    "name",
    [
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "sasl.oauthbearer.client.secret",
        "ssl.key.pem",
        "sasl.kerberos.keytab",
        "sasl.oauthbearer.config",
        "basic.auth.user.info",
        "bearer.auth.token",
    ],
)
def test_secret_option_names(name: str) -> None:
    assert redact.is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["security.protocol", "sasl.mechanism", "sasl.username", "ssl.ca.location", "acks"]
)
def test_ordinary_option_names(name: str) -> None:
    assert not redact.is_secret_name(name)


def test_remembered_values_are_masked_in_log_lines_and_tracebacks() -> None:
    redact.remember(["Remembered-S3cret", "abc"])  # too short to remember: would mask words
    formatter = KeyValueFormatter("%(message)s")
    try:
        raise RuntimeError("driver says: bad password Remembered-S3cret for abc")
    except RuntimeError:
        record = logging.LogRecord("t", logging.ERROR, "f", 1, "failed", None, None)
        record.exc_info = sys.exc_info()
    record.dsn = "postgresql://u:Remembered-S3cret@db/x"
    line = formatter.format(record)
    assert "Remembered-S3cret" not in line
    assert "for abc" in line
    assert "dsn=postgresql://u:**********@db/x" in line
    assert "bad password ********** for abc" in line


def test_uncaught_exceptions_print_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    from bridge.runtime import logs

    before, before_thread = sys.excepthook, threading.excepthook
    try:
        logs.setup("INFO")
        try:
            raise ValueError('invalid dsn "postgresql://u:Hook-S3cret@db/x"')
        except ValueError as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)
    finally:
        sys.excepthook, threading.excepthook = before, before_thread
    err = capsys.readouterr().err
    assert "ValueError: invalid dsn" in err
    assert "Hook-S3cret" not in err
