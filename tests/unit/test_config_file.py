"""The config writer the tests, the demo and the benchmarks share: checked by the models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.model.errors import ConfigError
from bridge.runtime.config_file import config_toml, write_config
from bridge.runtime.settings import load_settings


def test_the_written_file_loads_to_the_settings_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("DDB_BRIDGE")]:
        monkeypatch.delenv(name)
    path = write_config(
        tmp_path / "bridge.toml",
        aws={"region": "eu-west-1", "endpoint_url": "http://127.0.0.1:5000"},
        kafka={"bootstrap_servers": "b:9092", "partitions": 4, "extra": {"linger.ms": "5"}},
        tables=[{"name": "orders", "hash_key": "pk"}, {"name": "users"}],
        apply={"target": "pg", "batch_size": 7},
        targets={"pg": {"type": "postgres", "dsn": 'postgresql://u:p"q@h/db'}},
    )
    settings = load_settings(path)
    assert settings.aws.region == "eu-west-1"
    assert settings.aws.endpoint_url == "http://127.0.0.1:5000"
    assert settings.kafka.bootstrap_servers == "b:9092"
    assert settings.kafka.partitions == 4
    assert settings.kafka.extra == {"linger.ms": "5"}
    assert [t.name for t in settings.tables] == ["orders", "users"]
    assert settings.table("orders").hash_key == "pk"
    assert settings.apply.batch_size == 7
    target = settings.target()
    assert target.type == "postgres"
    # The secret is written as given (the file is the test's own), quote escaped.
    assert target.dsn.get_secret_value() == 'postgresql://u:p"q@h/db'  # type: ignore[union-attr]


def test_only_the_keys_given_are_written() -> None:
    text = config_toml(kafka={"partitions": 3}, stream={"poll_interval_ms": 50})
    assert text.splitlines() == [
        "[kafka]",
        "partitions = 3",
        "",
        "[stream]",
        "poll_interval_ms = 50",
    ]


def test_paths_are_written_as_strings(tmp_path: Path) -> None:
    text = config_toml(targets={"lite": {"type": "sqlite", "path": tmp_path / "t.db"}})
    assert f'path = "{tmp_path / "t.db"}"' in text.splitlines()


@pytest.mark.parametrize(
    ("sections", "named"),
    [
        ({"kafka": {"bootstrap_server": "b:9092"}}, "kafka.bootstrap_server"),
        ({"kafak": {"partitions": 3}}, "kafak"),
        ({"tables": [{"name": "t", "hashkey": "pk"}]}, "tables.0.hashkey"),
        ({"targets": {"pg": {"type": "postgres", "dns": "x"}}}, "targets.pg.postgres.dns"),
        ({"kafka": {"partitions": 0}}, "kafka.partitions"),
    ],
)
def test_an_unknown_or_invalid_key_fails_naming_it(
    tmp_path: Path, sections: dict[str, object], named: str
) -> None:
    path = tmp_path / "bridge.toml"
    with pytest.raises(ConfigError, match=rf"\b{named}\b"):
        write_config(path, **sections)
    assert not path.exists()


def test_an_unset_value_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"aws\.endpoint_url"):
        config_toml(aws={"endpoint_url": None})
