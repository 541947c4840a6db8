"""Settings: flags > environment > config file > defaults, and clear errors."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from polysync.config import Settings, default_home, ensure_home, load_settings
from polysync.errors import ConfigError


def _load(
    tmp_path: Path,
    *,
    flags: dict[str, object] | None = None,
    env: dict[str, str] | None = None,
    file: str | None = None,
) -> Settings:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if file is not None:
        (home / "config.toml").write_text(file, encoding="utf-8")
    return load_settings(flags, {"POLYSYNC_HOME": str(home), **(env or {})})


CASES: list[tuple[str, dict[str, object], dict[str, str], str, dict[str, Any]]] = [
    # (id, flags, environment, config file, expected fields)
    ("defaults", {}, {}, "", {"output": "table", "log_level": "WARNING", "emulator_port": None}),
    ("file", {}, {}, 'output = "json"\nlog_level = "info"\nemulator_port = 8765\n',
     {"output": "json", "log_level": "INFO", "emulator_port": 8765}),
    ("env beats file", {}, {"POLYSYNC_OUTPUT": "table", "POLYSYNC_LOG_LEVEL": "debug"},
     'output = "json"\nlog_level = "ERROR"\n', {"output": "table", "log_level": "DEBUG"}),
    ("flag beats env", {"output": "json"}, {"POLYSYNC_OUTPUT": "table"}, 'output = "table"\n',
     {"output": "json"}),
    ("None flag ignored", {"output": None}, {"POLYSYNC_OUTPUT": "json"}, "", {"output": "json"}),
    ("empty env ignored", {}, {"POLYSYNC_OUTPUT": " "}, 'output = "json"\n', {"output": "json"}),
    ("database from file", {}, {}, 'database_url = "postgresql://u@h/db"\n',
     {"database_url": "postgresql://u@h/db"}),
    ("database env beats file", {}, {"POLYSYNC_DATABASE_URL": "sqlite:////x/y.db"},
     'database_url = "postgresql://u@h/db"\n', {"database_url": "sqlite:////x/y.db"}),
    ("database flag", {"database_url": "sqlite:////f.db"},
     {"POLYSYNC_DATABASE_URL": "sqlite:////e.db"}, "", {"database_url": "sqlite:////f.db"}),
    ("port from env", {}, {"POLYSYNC_EMULATOR_PORT": "9000"}, "emulator_port = 1\n",
     {"emulator_port": 9000}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "env", "file", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_precedence(
    tmp_path: Path,
    flags: dict[str, object],
    env: dict[str, str],
    file: str,
    expected: dict[str, Any],
) -> None:
    settings = _load(tmp_path, flags=flags, env=env, file=file)
    assert {k: getattr(settings, k) for k in expected} == expected


def test_home_and_default_database(tmp_path: Path) -> None:
    settings = _load(tmp_path)
    assert settings.home == (tmp_path / "home").resolve()
    assert settings.config_path == settings.home / "config.toml"
    assert settings.database_url == f"sqlite:///{settings.home}/polysync.db"
    assert settings.database_url.startswith("sqlite:////")  # an absolute path


def test_home_flag_beats_environment(tmp_path: Path) -> None:
    settings = load_settings({"home": str(tmp_path / "flag")}, {"POLYSYNC_HOME": "/elsewhere"})
    assert settings.home == tmp_path / "flag"


def test_default_home_is_the_user_data_directory(tmp_path: Path) -> None:
    settings = load_settings(None, {})
    assert settings.home == default_home()
    assert settings.home.name == "polysync"


def test_config_path_from_environment(tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text('output = "json"\n', encoding="utf-8")
    settings = _load(tmp_path, env={"POLYSYNC_CONFIG": str(other)})
    assert settings.config_path == other
    assert settings.output == "json"


def test_tables_become_sections(tmp_path: Path) -> None:
    settings = _load(tmp_path, file='output = "json"\n[worker]\nconcurrency = 50\n')
    assert settings.section("worker") == {"concurrency": 50}
    assert settings.section("absent") == {}


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ('output = "json"\nlog_level = \n', r"not valid TOML: .*line 2"),
        ('\n\noutput = "xml"\n', r"config\.toml, line 3: output: expected one of table, json"),
        ("emulator_port = 70000\n", r"line 1: emulator_port: expected a port number from 0"),
        ("emulator_port = true\n", r"line 1: emulator_port: expected a port number"),
        ('log_level = "loud"\n', r"line 1: log_level: expected one of DEBUG"),
        ('database_url = "nope"\n', r"line 1: database_url: expected a database URL"),
        ('colour = "red"\n', r"line 1: unknown setting 'colour'; known settings are"),
        ('home = "/x"\n', r"line 1: home cannot be set in the config file.*POLYSYNC_HOME"),
    ],
)
def test_bad_config_file_names_the_file_and_line(tmp_path: Path, file: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        _load(tmp_path, file=file)
    assert str(tmp_path / "home" / "config.toml") in str(info.value)


def test_unreadable_config_file(tmp_path: Path) -> None:
    (tmp_path / "home" / "config.toml").mkdir(parents=True)  # a directory: cannot be read
    with pytest.raises(ConfigError, match="cannot be read"):
        _load(tmp_path)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"POLYSYNC_OUTPUT": "xml"}, r"POLYSYNC_OUTPUT='xml': expected one of table, json"),
        ({"POLYSYNC_EMULATOR_PORT": "http"}, r"POLYSYNC_EMULATOR_PORT='http': expected a port"),
        (
            {"POLYSYNC_DATABASE_URL": "postgresql//u:hunter2@h"},
            r"POLYSYNC_DATABASE_URL: expected a database URL",
        ),
    ],
)
def test_bad_environment_values(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        _load(tmp_path, env=env)
    assert "hunter2" not in str(info.value)


def test_bad_flag_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--output: expected one of"):
        _load(tmp_path, flags={"output": "yaml"})


def test_unknown_override_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown setting override"):
        _load(tmp_path, flags={"colour": "red"})


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = _load(tmp_path)
    with pytest.raises(AttributeError):
        settings.output = "json"  # type: ignore[misc]  # the point: frozen


def test_ensure_home_creates_a_private_directory(tmp_path: Path) -> None:
    settings = load_settings(None, {"POLYSYNC_HOME": str(tmp_path / "a" / "b")})
    assert ensure_home(settings) == tmp_path / "a" / "b"
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700
    ensure_home(settings)  # idempotent


def test_ensure_home_leaves_an_existing_directory_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    ensure_home(load_settings(None, {"POLYSYNC_HOME": str(tmp_path)}))
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


def test_ensure_home_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not a directory"):
        ensure_home(load_settings(None, {"POLYSYNC_HOME": str(tmp_path / "file")}))


# -- the secret model's settings (decision 0010) -------------------------------------------


@pytest.mark.parametrize(
    ("env", "file", "expected"),
    [
        ({}, "", 300.0),
        ({}, "[secrets]\ncache_ttl_s = 60\n", 60.0),
        ({}, "[secrets]\ncache_ttl_s = 0\n", 0.0),  # off: every use reads the source
        ({"POLYSYNC_SECRET_CACHE_TTL_S": "15"}, "[secrets]\ncache_ttl_s = 60\n", 15.0),
    ],
)
def test_secret_cache_ttl(tmp_path: Path, env: dict[str, str], file: str, expected: float) -> None:
    assert _load(tmp_path, env=env, file=file).secret_cache_ttl_s == expected


@pytest.mark.parametrize(
    ("env", "file", "fragment"),
    [
        ({"POLYSYNC_SECRET_CACHE_TTL_S": "soon"}, "", "POLYSYNC_SECRET_CACHE_TTL_S='soon'"),
        ({}, "[secrets]\ncache_ttl_s = -1\n", "[secrets] cache_ttl_s"),
        ({}, "[secrets]\ncache_ttl_s = 99999999\n", "from 0 to 86400"),
        ({}, "[secrets]\ncache_ttl_s = true\n", "from 0 to 86400"),
        ({}, '[server]\nhost_references = "env:X"\n', "expected a list of patterns"),
        ({}, '[server]\nhost_references = ["HOME"]\n', "is not an env:NAME or file:PATH"),
    ],
)
def test_secret_settings_errors_name_the_source(
    tmp_path: Path, env: dict[str, str], file: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, env=env, file=file)
    assert fragment in str(info.value)
    assert info.value.exit_code == 2


def test_host_references_are_read_from_the_server_table(tmp_path: Path) -> None:
    settings = _load(
        tmp_path, file='[server]\nhost_references = ["env:AZURE_BATCH_*", "file:/run/s/*"]\n'
    )
    assert settings.host_references == ("env:AZURE_BATCH_*", "file:/run/s/*")
    (tmp_path / "home" / "config.toml").unlink()
    assert _load(tmp_path).host_references == ()
