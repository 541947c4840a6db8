"""Persistence: the ``Store`` contract (``base``), its SQL implementation (``sql``), the
schema (``schema``) and Alembic migrations (``migrations``).

``polysync.store.sql.SqlStore.open(url)`` is the way in; it migrates the database to head.
Importing this package does not import SQLAlchemy's engine machinery.
"""

from __future__ import annotations

from polysync.store.base import RunAttempt, Store

__all__ = ["RunAttempt", "Store"]
