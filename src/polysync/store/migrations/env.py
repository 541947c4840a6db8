"""Alembic environment: always online, on the connection ``SqlStore`` hands over.

The caller has already begun the transaction and taken the migration lock (``sql.py``),
so Alembic sees an external transaction and leaves commit/rollback to it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from polysync.store.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "Polysync runs its migrations itself: open the store with "
        "polysync.store.sql.SqlStore.open(url) (offline SQL generation is not supported)."
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds tables when a migration needs it.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
