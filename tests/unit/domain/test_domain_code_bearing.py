"""Which changes decide what code a run executes (decision 0011), and who may make them."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from polysync.config import Settings
from polysync.domain.code_bearing import (
    CODE_BEARING_NAMES,
    changed_code_overrides,
    is_code_bearing_name,
)
from polysync.domain.models import JobOverrides
from polysync.domain.roles import Role
from polysync.errors import ConfigError
from polysync.services.code_access import code_role, may_change_code


@pytest.mark.parametrize(
    ("name", "code"),
    [
        # The dynamic loader, by family.
        ("LD_PRELOAD", True),
        ("LD_LIBRARY_PATH", True),
        ("LD_AUDIT", True),
        ("LD_ANYTHING_NEW", True),
        ("DYLD_INSERT_LIBRARIES", True),
        ("GCONV_PATH", True),
        # Shells.
        ("BASH_ENV", True),
        ("ENV", True),
        ("SHELLOPTS", True),
        ("PS4", True),
        ("BASH_FUNC_greet", True),
        ("ZDOTDIR", True),
        # Which program runs at all; Windows names too.
        ("PATH", True),
        ("PATHEXT", True),
        ("COMSPEC", True),
        ("PSModulePath", True),
        # Interpreters and runtimes.
        ("PYTHONPATH", True),
        ("PYTHONSTARTUP", True),
        ("PYTHONHOME", True),
        ("PYTHONWARNINGS", True),
        ("BROWSER", True),
        ("PERL5OPT", True),
        ("PERL5LIB", True),
        ("RUBYOPT", True),
        ("NODE_OPTIONS", True),
        ("JAVA_TOOL_OPTIONS", True),
        ("_JAVA_OPTIONS", True),
        ("JDK_JAVA_OPTIONS", True),
        ("DOTNET_STARTUP_HOOKS", True),
        ("CORECLR_PROFILER_PATH_64", True),
        ("COR_ENABLE_PROFILING", True),
        ("LUA_INIT", True),
        ("LUA_INIT_5_4", True),
        ("OPENSSL_CONF", True),
        ("GIT_SSH_COMMAND", True),
        ("GIT_CONFIG_KEY_0", True),
        ("LESSOPEN", True),
        # Case does not matter: Windows pools treat Path and PATH as one variable.
        ("ld_preload", True),
        ("Path", True),
        ("pythonPath", True),
        # Ordinary parameters, including look-alikes.
        ("NAME", False),
        ("GREETING", False),
        ("INPUT_PATH", False),
        ("PATH_PREFIX", False),
        ("LDAP_URL", False),
        ("OLD_PRELOAD", False),
        ("PYTHONUNBUFFERED", False),
        ("PYTHONIOENCODING", False),
        ("JAVA_HOME", False),
        ("GIT_AUTHOR_NAME", False),
        ("NODE_ENV", False),
        ("DOTNET_ENVIRONMENT", False),
        ("ENVIRONMENT", False),
        ("HOME", False),
        ("TMPDIR", False),
        ("LANG", False),
        ("TZ", False),
    ],
)
def test_is_code_bearing_name(name: str, code: bool) -> None:
    assert is_code_bearing_name(name) is code


def test_the_listed_names_are_upper_case_and_valid_variable_names() -> None:
    for name in CODE_BEARING_NAMES:
        assert name == name.upper()
        assert name.replace("_", "").isalnum()


CURRENT = JobOverrides(command_line="run.sh", image=None, max_wall_clock_s=60)


@pytest.mark.parametrize(
    ("updates", "changed"),
    [
        ({}, []),
        ({"max_wall_clock_s": 120, "retention_s": None, "max_task_retries": 2}, []),
        ({"command_line": "run.sh"}, []),  # posted back unchanged
        ({"command_line": "evil.sh"}, ["command_line"]),
        ({"command_line": None}, ["command_line"]),  # dropping back to the template's
        ({"image": None}, []),  # already the template's
        ({"image": "img:2"}, ["image"]),
        ({"container_run_options": "--privileged"}, ["container_run_options"]),
        (
            {"command_line": "x", "image": "i", "container_run_options": "o"},
            ["command_line", "image", "container_run_options"],
        ),
    ],
)
def test_changed_code_overrides(updates: dict[str, object], changed: list[str]) -> None:
    assert changed_code_overrides(CURRENT, updates) == changed


def _settings(server: dict[str, Any] | None) -> Settings:
    sections = {} if server is None else {"server": MappingProxyType(server)}
    return Settings(
        home=Path("/h"),
        database_url="sqlite://",
        config_path=Path("/h/config.toml"),
        sections=MappingProxyType(sections),
    )


@pytest.mark.parametrize(
    ("server", "role"),
    [
        (None, Role.ADMIN),
        ({}, Role.ADMIN),
        ({"host_references": []}, Role.ADMIN),
        ({"code_overrides_role": "admin"}, Role.ADMIN),
        ({"code_overrides_role": "operator"}, Role.OPERATOR),
        ({"code_overrides_role": " Operator "}, Role.OPERATOR),
    ],
)
def test_code_role_from_the_config(server: dict[str, Any] | None, role: Role) -> None:
    assert code_role(_settings(server)) is role


@pytest.mark.parametrize("value", ["viewer", "root", "", 1, True, ["admin"]])
def test_a_bad_code_role_is_one_sentence(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        code_role(_settings({"code_overrides_role": value}))
    message = str(info.value)
    assert message.startswith("config file /h/config.toml: [server] code_overrides_role = ")
    assert message.endswith('use "admin" (the default) or "operator".')


@pytest.mark.parametrize(
    ("configured", "role", "may"),
    [
        (None, Role.VIEWER, False),
        (None, Role.OPERATOR, False),
        (None, Role.ADMIN, True),
        ("operator", Role.VIEWER, False),
        ("operator", Role.OPERATOR, True),
        ("operator", Role.ADMIN, True),
    ],
)
def test_may_change_code(configured: str | None, role: Role, may: bool) -> None:
    server = None if configured is None else {"code_overrides_role": configured}
    assert may_change_code(_settings(server), role) is may
