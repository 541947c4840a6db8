"""Console sessions in the store (SQLite and PostgreSQL): bound to a token, gone with it,
touched, ended, purged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from polysync.errors import NotFoundError
from polysync.store.sql import SqlStore

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


def _session(store: SqlStore, token_id: int, digest: str, *, hours: float = 12) -> int:
    s = store.add_console_session(token_id, digest, now=T0, expires_at=T0 + timedelta(hours=hours))
    return s.id


def test_a_session_reads_back_with_its_token(store: SqlStore) -> None:
    token = store.add_api_token("ops", "operator", "d" * 64)
    made = store.add_console_session(
        token.id, "a" * 64, now=T0, expires_at=T0 + timedelta(hours=12)
    )
    found = store.find_console_session("a" * 64)
    assert found == made
    assert found.token == token
    assert (found.created_at, found.last_seen_at) == (T0, T0)
    assert found.expires_at == T0 + timedelta(hours=12)
    assert store.find_console_session("b" * 64) is None
    assert store.console_sessions([made.id, 999]) == [made]
    assert store.console_sessions([]) == []


def test_revoking_a_token_deletes_its_sessions_only(store: SqlStore) -> None:
    ops = store.add_api_token("ops", "operator", "d" * 64)
    view = store.add_api_token("view", "viewer", "e" * 64)
    a = _session(store, ops.id, "a" * 64)
    b = _session(store, ops.id, "b" * 64)
    c = _session(store, view.id, "c" * 64)
    store.remove_api_token("ops")
    assert store.find_console_session("a" * 64) is None
    assert [s.id for s in store.console_sessions([a, b, c])] == [c]
    assert store.existing_api_token_ids({ops.id, view.id}) == {view.id}
    assert store.existing_api_token_ids(set()) == set()


def test_a_session_needs_a_token_that_still_exists(store: SqlStore) -> None:
    with pytest.raises(NotFoundError, match="revoked while signing in"):
        store.add_console_session(404, "a" * 64, now=T0, expires_at=T0 + timedelta(hours=1))


def test_touch_only_moves_last_seen_forward(store: SqlStore) -> None:
    token = store.add_api_token("ops", "operator", "d" * 64)
    sid = _session(store, token.id, "a" * 64)
    store.touch_console_session(sid, T0 + timedelta(minutes=5))
    store.touch_console_session(sid, T0 + timedelta(minutes=1))  # a late, older touch
    found = store.find_console_session("a" * 64)
    assert found is not None
    assert found.last_seen_at == T0 + timedelta(minutes=5)


def test_end_and_purge(store: SqlStore) -> None:
    token = store.add_api_token("ops", "operator", "d" * 64)
    _session(store, token.id, "a" * 64)
    assert store.remove_console_session("a" * 64) is True
    assert store.remove_console_session("a" * 64) is False  # signing out twice is fine
    short = _session(store, token.id, "b" * 64, hours=1)
    idle = _session(store, token.id, "c" * 64)
    busy = _session(store, token.id, "d" * 64)
    store.touch_console_session(busy, T0 + timedelta(hours=2))
    later = T0 + timedelta(hours=2)
    assert store.purge_console_sessions(expired_at=later, idle_since=later - timedelta(hours=1))
    left = store.console_sessions([short, idle, busy])
    assert [s.id for s in left] == [busy]
