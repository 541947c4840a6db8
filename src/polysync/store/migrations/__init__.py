"""Alembic migrations, run programmatically (no alembic.ini at runtime).

``SqlStore.open`` upgrades every database to head by itself (see ``sql.py`` for the lock
that makes concurrent first starts safe). To write a new migration during development::

    python -m polysync.store.migrations revision -m "add x" --url sqlite:///dev.db

which autogenerates a file in ``versions/`` from the difference between
``polysync.store.schema`` and that database (upgrade it to head first).
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at this package; ``env.py`` uses ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Paths are split on os.pathsep (the modern setting; the legacy one warns).
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise RuntimeError("no migrations found in " + str(MIGRATIONS_DIR))
    return head
