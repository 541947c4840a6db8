"""Settings: flags > environment (``POLYSYNC_*``) > config file > defaults.

``POLYSYNC_HOME`` (default: the user data directory) holds the database and the config
file, so several independent set-ups can live side by side. The config file is TOML::

    # {home}/config.toml
    database_url = "postgresql://polysync@db.internal/polysync"
    output = "json"              # table | json
    log_level = "INFO"
    emulator_port = 8765

    [worker]                     # any table: kept as-is in Settings.sections
    concurrency = 50

    [secrets]
    cache_ttl_s = 300            # how long a resolved secret is reused (decision 0010)

    [server]
    code_overrides_role = "admin"   # or "operator": who may change the code runs execute
    # env:/file: references an API admin may give (host-level; empty by default)
    host_references = ["env:AZURE_BATCH_*", "file:/run/secrets/*"]

``home`` and ``config_path`` cannot come from the file itself (the file lives there).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import platformdirs

from polysync.errors import ConfigError

ENV_PREFIX = "POLYSYNC_"
OUTPUTS = ("table", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
CONFIG_FILE_NAME = "config.toml"

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    config_path: Path
    output: str = "table"
    log_level: str = "WARNING"
    # Port of the embedded emulator (`polysync demo`); None = any free port.
    emulator_port: int | None = None
    # Tables of the config file ([worker], …), for the parts that read their own section.
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # How long a resolved secret is reused ([secrets] cache_ttl_s or
    # POLYSYNC_SECRET_CACHE_TTL_S; decision 0010 §5).
    secret_cache_ttl_s: float = 300.0
    # env:/file: references an API admin may give ([server] host_references; 0010 §3).
    host_references: tuple[str, ...] = ()

    def section(self, name: str) -> Mapping[str, Any]:
        return self.sections.get(name, MappingProxyType({}))


# --- value parsing --------------------------------------------------------------------


def _output(value: object) -> str:
    text = str(value).strip().lower()
    if text not in OUTPUTS:
        raise ValueError(f"expected one of {', '.join(OUTPUTS)}, got {value!r}")
    return text


def _log_level(value: object) -> str:
    text = str(value).strip().upper()
    if text not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return text


def _port(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a port number, got {value!r}")
    try:
        port = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ValueError(f"expected a port number, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"expected a port number from 0 to 65535, got {port}")
    return port


def _database_url(value: object) -> str:
    text = str(value).strip()
    if not text or "://" not in text:
        raise ValueError(
            "expected a database URL such as sqlite:////path/polysync.db or "
            "postgresql://user@host/db"
        )
    return text


def _path(value: object) -> Path:
    text = str(value).strip()
    if not text:
        raise ValueError("expected a path, got an empty value")
    return Path(text).expanduser().resolve()


# Settings that may come from every source, with their parser.
_PARSERS: Mapping[str, Callable[[object], Any]] = {
    "database_url": _database_url,
    "output": _output,
    "log_level": _log_level,
    "emulator_port": _port,
}
# Settings that locate the file itself: flags and environment only.
_LOCATION_KEYS = ("home", "config_path")


def _env_name(key: str) -> str:
    return ENV_PREFIX + ("CONFIG" if key == "config_path" else key.upper())


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _parse(value: object, source: str, parser: Callable[[object], T]) -> T:
    try:
        return parser(value)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}.") from None


# --- the config file ------------------------------------------------------------------


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


def read_config_file(path: Path) -> tuple[dict[str, Any], dict[str, Mapping[str, Any]]]:
    """(settings from the file, its tables). A missing file is an empty one."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        # No file is an empty one (a home that is not a directory is ensure_home's to report).
        return {}, {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"config file {path} cannot be read ({exc}); fix its permissions or move it away."
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message carries "(at line N, column M)".
        raise ConfigError(
            f"config file {path} is not valid TOML: {exc}; fix that line or move the file away."
        ) from None
    values: dict[str, Any] = {}
    sections: dict[str, Mapping[str, Any]] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            sections[key] = MappingProxyType(value)
            continue
        where = f"config file {path}" + (f", line {line}" if (line := _line_of(text, key)) else "")
        if key in _LOCATION_KEYS:
            raise ConfigError(
                f"{where}: {key} cannot be set in the config file (it locates the file); "
                f"use {_env_name(key)} or the {_flag(key)} flag."
            )
        parser = _PARSERS.get(key)
        if parser is None:
            raise ConfigError(
                f"{where}: unknown setting {key!r}; known settings are "
                f"{', '.join(sorted(_PARSERS))} (and [tables] for sections)."
            )
        try:
            values[key] = parser(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {key}: {exc}.") from None
    return values, sections


# --- loading --------------------------------------------------------------------------


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("polysync", appauthor=False))


def load_settings(
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Settings:
    """Resolve every setting: flags (``overrides``) > environment > config file > defaults.

    ``overrides`` keys are the ``Settings`` field names (``home``, ``database_url``,
    ``config_path``, ``output``, ``log_level``, ``emulator_port``); None values are ignored.
    """
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(flags) - set(_PARSERS) - set(_LOCATION_KEYS)
    if unknown:
        raise ValueError(f"unknown setting override(s): {sorted(unknown)}")

    def from_env(key: str) -> str | None:
        value = environ.get(_env_name(key), "")
        return value if value.strip() else None

    def located(key: str, default: Callable[[], Path]) -> Path:
        if key in flags:
            return _parse(flags[key], _flag(key), _path)
        env = from_env(key)
        if env is not None:
            return _parse(env, f"{_env_name(key)}={env!r}", _path)
        return default()

    home = located("home", default_home)
    config_path = located("config_path", lambda: home / CONFIG_FILE_NAME)
    file_values, sections = read_config_file(config_path)

    resolved: dict[str, Any] = {}
    for key, parser in _PARSERS.items():
        if key in flags:
            resolved[key] = _parse(flags[key], _flag(key), parser)
        elif (env := from_env(key)) is not None:
            # A database URL may carry a password: name the variable, never echo its value.
            source = _env_name(key) if key == "database_url" else f"{_env_name(key)}={env!r}"
            resolved[key] = _parse(env, source, parser)
        elif key in file_values:
            resolved[key] = file_values[key]
    resolved.setdefault("database_url", f"sqlite:///{home / 'polysync.db'}")
    return Settings(
        home=home,
        config_path=config_path,
        sections=MappingProxyType(sections),
        secret_cache_ttl_s=_secret_ttl(environ, sections, config_path),
        host_references=_host_references(sections, config_path),
        **resolved,
    )


def _secret_ttl(
    environ: Mapping[str, str], sections: Mapping[str, Mapping[str, Any]], path: Path
) -> float:
    env = environ.get(ENV_PREFIX + "SECRET_CACHE_TTL_S", "").strip()
    value: object
    if env:
        source, value = f"{ENV_PREFIX}SECRET_CACHE_TTL_S={env!r}", env
    else:
        raw = sections.get("secrets", {}).get("cache_ttl_s")
        if raw is None:
            return 300.0
        source, value = f"config file {path}: [secrets] cache_ttl_s", raw
    try:
        seconds = -1.0 if isinstance(value, bool) else float(str(value))
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 86_400:
        raise ConfigError(
            f"{source}: expected seconds from 0 to 86400 (a day), got {value!r}; 0 turns the "
            "cache off."
        )
    return seconds


def _host_references(sections: Mapping[str, Mapping[str, Any]], path: Path) -> tuple[str, ...]:
    raw = sections.get("server", {}).get("host_references", [])
    where = f"config file {path}: [server] host_references"
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise ConfigError(
            f'{where}: expected a list of patterns such as ["env:AZURE_BATCH_*", '
            '"file:/run/secrets/*"].'
        )
    for pattern in raw:
        if not pattern.startswith(("env:", "file:")):
            raise ConfigError(
                f"{where}: {pattern!r} is not an env:NAME or file:PATH pattern; write e.g. "
                '"env:AZURE_BATCH_*".'
            )
    return tuple(raw)


def ensure_home(settings: Settings) -> Path:
    """Create the home directory (0700: it holds the database) if it does not exist yet."""
    home = settings.home
    if not home.exists():
        try:
            home.mkdir(mode=0o700, parents=True)
            home.chmod(0o700)  # mkdir's mode is filtered by the umask
        except OSError as exc:
            raise ConfigError(
                f"cannot create the Polysync home {home} ({exc.strerror}); set POLYSYNC_HOME "
                "to a writable directory."
            ) from None
    elif not home.is_dir():
        raise ConfigError(
            f"the Polysync home {home} exists but is not a directory; set POLYSYNC_HOME to "
            "a directory."
        )
    return home
