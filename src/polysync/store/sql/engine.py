"""Database URLs and engines: SQLite hooks (WAL, ``BEGIN IMMEDIATE``), PostgreSQL."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    event,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from polysync.errors import (
    ConfigError,
    StoreError,
)

log = logging.getLogger(__name__)

_BEGIN_OPTION = "polysync_begin"  # execution option read by the SQLite "begin" hook
_SQLITE_BUSY_TIMEOUT_MS = 30_000

# --- engine ---------------------------------------------------------------------------


def normalise_url(url: str) -> URL:
    """Parse a database URL; ``postgresql://`` means psycopg 3 (the driver we ship)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"database URL {url.split('@')[-1]!r} is not valid ({exc}); use e.g. "
            "sqlite:////path/polysync.db or postgresql://user@host/db."
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def safe_url(url: URL | str) -> str:
    parsed = url if isinstance(url, URL) else make_url(url)
    return parsed.render_as_string(hide_password=True)


def _is_memory(url: URL) -> bool:
    db = url.database or ""
    return db in ("", ":memory:") or "mode=memory" in str(url)


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        if _is_memory(url):
            # One connection shared by every thread, or each would see its own empty db.
            engine = create_engine(
                url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            parent = Path(url.database or "").expanduser().parent
            if not parent.is_dir():
                raise StoreError(
                    f"the database {safe_url(url)} cannot be created: directory {parent} does "
                    "not exist; create it or set POLYSYNC_DATABASE_URL / POLYSYNC_HOME."
                )
            if "uri" not in url.query:  # a file: URI names its file its own way; leave it
                _private_file(Path(url.database or "").expanduser())
            engine = create_engine(url, connect_args={"check_same_thread": False})
        _install_sqlite_hooks(engine, wal=not _is_memory(url))
        return engine
    return create_engine(url, pool_pre_ping=True)


# SQLite creates the -wal, -shm and -journal files with the database file's own mode,
# so making the database file 0600 keeps all of them private.
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
_PRIVATE = 0o600


def _private_file(db: Path) -> None:
    """Create the SQLite file 0600 (whatever the umask), and tighten a looser one.

    The database holds run parameters, platform settings and token digests; a home
    directory the user made themselves (say 0755) must not leave them readable by others.
    """
    try:
        fd = os.open(db, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _PRIVATE)
    except FileExistsError:
        pass  # an existing store (or another process created it just now): tightened below
    except OSError as exc:
        raise StoreError(
            f"the database file {db} cannot be created ({exc.strerror}); check that its "
            "directory is writable, or set POLYSYNC_DATABASE_URL / POLYSYNC_HOME."
        ) from None
    else:
        try:
            os.fchmod(fd, _PRIVATE)  # the umask may have taken bits off the mode given
        finally:
            os.close(fd)
    for path in (db, *(db.with_name(db.name + side) for side in _SQLITE_SIDE_FILES)):
        _tighten(path)


def _tighten(path: Path) -> None:
    """Take group and other permissions off an existing file, saying so once."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISREG(info.st_mode) or mode & 0o077 == 0:
        return
    try:
        path.chmod(mode & 0o700)
    except OSError as exc:
        # Not ours to change (another owner): the store still works, so warn, not fail.
        log.warning(
            "database file %s has mode %04o, open to other users, and could not be "
            "restricted (%s); make it 0600 yourself",
            path,
            mode,
            exc.strerror,
        )
        return
    log.warning(
        "database file %s had mode %04o, open to other users; it is now %04o",
        path,
        mode,
        mode & 0o700,
    )


def _enable_wal(cur: Any) -> None:
    """Switch the file to WAL: readers never block the writer (`run list` beside a worker).

    The switch needs an exclusive lock and SQLite does not call the busy handler for it,
    so several processes opening a brand-new file at once get "database is locked" at
    once: retry with a short backoff until the busy timeout. WAL is persistent, so this
    only contends on the very first opens. ``synchronous`` stays FULL on purpose: a
    committed RunId must survive a power cut, or a restart could create a second Batch
    job for one attempt (D5).
    """
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_MS / 1000
    delay_s = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.1)


def _install_sqlite_hooks(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module, so BEGIN is ours (see _begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            # busy_timeout first: switching to WAL needs a lock another process may hold.
            cur.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys = ON")
            if wal:
                _enable_wal(cur)
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
