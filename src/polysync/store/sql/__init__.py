"""``SqlStore``: the one implementation of ``Store`` and the only place with queries.

SQLite (the default) and PostgreSQL (several workers, D12) run the same statements.
Each public method is one short transaction. Write transactions on SQLite start with
``BEGIN IMMEDIATE``: the write lock is taken up front, so read-then-write sequences
(compare-and-set transitions, claims) are serialised across processes instead of failing
with "database is locked" on the lock upgrade. On PostgreSQL the same sequences lock rows
with ``SELECT … FOR UPDATE`` (``SKIP LOCKED`` for claims).

One module per concern, each owning the queries of its tables:

    engine.py    URLs, engines, SQLite hooks
    rows.py      rows ↔ domain objects; the checks that keep secrets out of the tables
    base.py      SqlBase: transactions, schema upgrades, row lookups shared by the others
    catalog.py   platforms, jobs, tasks
    runs.py      runs, bulk run writes (decision 0008), claims and leases
    access.py    API tokens, console sessions
    vaults.py    Secret Vaults and the references into them
"""

from __future__ import annotations

from polysync.store.sql.access import AccessQueries
from polysync.store.sql.catalog import CatalogQueries
from polysync.store.sql.engine import normalise_url, safe_url
from polysync.store.sql.runs import RunQueries
from polysync.store.sql.vaults import VaultQueries

__all__ = ["SqlStore", "normalise_url", "safe_url"]


class SqlStore(CatalogQueries, RunQueries, AccessQueries, VaultQueries):
    """The SQL implementation of ``polysync.store.base.Store``.

    Open one per process (``SqlStore.open``) and share it: it owns the engine and its
    connection pool. Thread-safe: every method checks a connection out of the pool.
    """
