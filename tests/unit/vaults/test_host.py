"""Host references (env:, file:): read here; failures say nothing a viewer could use."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from polysync.domain.models import SecretRef
from polysync.errors import SecretError
from polysync.vaults import host
from polysync.vaults.host import HostReferenceError

SECRET = "s3cr3t-P@ss"


def test_env_is_read_from_the_given_environment() -> None:
    assert host.read(SecretRef("env", "TOKEN"), environ={"TOKEN": SECRET}) == SECRET


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYSYNC_TEST_SECRET_X", "from-os-environ")
    assert host.read(SecretRef("env", "POLYSYNC_TEST_SECRET_X")) == "from-os-environ"


@pytest.mark.parametrize(
    ("environ", "detail"),
    [({}, "TOKEN is not set"), ({"TOKEN": ""}, "TOKEN is empty")],
)
def test_env_errors_tell_only_the_log(
    environ: dict[str, str], detail: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="polysync.vaults.host"),
        pytest.raises(HostReferenceError) as info,
    ):
        host.read(SecretRef("env", "TOKEN"), environ=environ)
    assert isinstance(info.value, SecretError)
    # The raised sentence may reach a viewer (a run's failure): no name, no reason.
    assert "TOKEN" not in str(info.value)
    assert str(info.value) == host.UNREADABLE
    assert detail in info.value.detail
    assert detail in caplog.text  # the host's own log says why


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"abc-secret", "abc-secret"),
        (b"abc-secret\n", "abc-secret"),
        (b"abc-secret\r\n", "abc-secret"),
        (b"abc-secret\n\n", "abc-secret\n"),  # only one newline is dropped
        (b"line1\nline2\n", "line1\nline2"),
        (b" spaced \n", " spaced "),  # spaces are part of the secret
        ("pässwörd\n".encode(), "pässwörd"),
    ],
)
def test_file(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "secret.txt"
    path.write_bytes(content)
    assert host.read(SecretRef("file", str(path))) == expected


def test_file_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "k").write_text("home-secret\n")
    assert host.read(SecretRef("file", "~/k")) == "home-secret"


@pytest.mark.parametrize(
    ("setup", "detail"),
    [
        ("missing", "does not exist"),
        ("directory", "is a directory"),
        ("empty", "is empty"),
        ("newline-only", "is empty"),
        ("binary", "not UTF-8"),
        ("unreadable", "not readable"),
    ],
)
def test_file_errors_are_no_existence_oracle(tmp_path: Path, setup: str, detail: str) -> None:
    path = tmp_path / "secret"
    if setup == "directory":
        path.mkdir()
    elif setup == "empty":
        path.write_bytes(b"")
    elif setup == "newline-only":
        path.write_bytes(b"\n")
    elif setup == "binary":
        path.write_bytes(b"\xff\xfe" + SECRET.encode())
    elif setup == "unreadable":
        if sys.platform == "win32" or os.geteuid() == 0:
            pytest.skip("root (or Windows) can read a mode-000 file")
        path.write_text(SECRET)
        path.chmod(0)
    with pytest.raises(HostReferenceError) as info:
        host.read(SecretRef("file", str(path)))
    # Every case raises the same sentence: which files exist is not told to the caller.
    assert str(info.value) == host.UNREADABLE
    assert str(path) not in str(info.value)
    assert SECRET not in info.value.detail
    assert detail in info.value.detail
