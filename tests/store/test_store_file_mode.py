"""The SQLite file (and its -wal/-shm) is private whatever the umask and the home's mode."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from polysync.config import load_settings
from polysync.services.context import open_services


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)  # files would be created 0666 (rw for everyone) by default
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def open_home(tmp_path: Path) -> Path:
    """A POLYSYNC_HOME the user made themselves, readable by everyone (ensure_home keeps
    an existing directory as it is)."""
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    return home


def use_store(home: Path) -> None:
    svc = open_services(load_settings({"home": home}, environ={}))
    try:
        svc.store.installation_id()  # a write: the -wal and -shm files exist from here
        db = home / "polysync.db"
        for side in ("-wal", "-shm"):
            assert (db.parent / (db.name + side)).exists()
            assert mode(db.parent / (db.name + side)) == 0o600, side
    finally:
        svc.close()


@pytest.mark.usefixtures("permissive_umask")
def test_a_new_database_in_an_existing_home_is_0600(open_home: Path) -> None:
    use_store(open_home)
    assert mode(open_home / "polysync.db") == 0o600
    assert mode(open_home) == 0o755  # the user's own directory is left alone


@pytest.mark.usefixtures("permissive_umask")
def test_an_existing_readable_database_is_tightened_once(
    open_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    use_store(open_home)
    db = open_home / "polysync.db"
    db.chmod(0o644)
    caplog.set_level(logging.WARNING, logger="polysync.store.sql.engine")
    use_store(open_home)
    assert mode(db) == 0o600
    warnings = [r.getMessage() for r in caplog.records if "open to other users" in r.getMessage()]
    assert warnings == [f"database file {db} had mode 0644, open to other users; it is now 0600"]
    caplog.clear()
    use_store(open_home)
    assert not [r for r in caplog.records if "open to other users" in r.getMessage()]


@pytest.mark.usefixtures("permissive_umask")
def test_readable_side_files_left_by_an_older_version_are_tightened(open_home: Path) -> None:
    db = open_home / "polysync.db"
    use_store(open_home)
    shm = db.parent / (db.name + "-shm")
    shm.touch()  # SQLite may remove it on a clean close; an older version left it 0666
    shm.chmod(0o666)
    svc = open_services(load_settings({"home": open_home}, environ={}))
    try:
        assert mode(shm) == 0o600
    finally:
        svc.close()
