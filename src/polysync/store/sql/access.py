"""API tokens of ``polysync server`` and the web console's sessions."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, delete, insert, or_, select, update

from polysync.errors import (
    AlreadyExistsError,
    NotFoundError,
)
from polysync.store import schema as s
from polysync.store.base import ApiToken, ConsoleSession
from polysync.store.sql.base import SqlBase
from polysync.store.sql.rows import (
    _api_token,
    _key,
    _require_name,
    utc_now,
)


def _sessions_with_tokens() -> Select[Any]:
    c, t = s.console_sessions, s.api_tokens
    return select(
        c.c.id,
        c.c.created_at,
        c.c.expires_at,
        c.c.last_seen_at,
        t.c.id.label("token_id"),
        t.c.name.label("token_name"),
        t.c.role.label("token_role"),
        t.c.created_at.label("token_created_at"),
    ).join(t, t.c.id == c.c.token_id)


def _console_session(row: Row[Any]) -> ConsoleSession:
    return ConsoleSession(
        id=row.id,
        token=ApiToken(
            id=row.token_id,
            name=row.token_name,
            role=row.token_role,
            created_at=row.token_created_at,
        ),
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_seen_at=row.last_seen_at,
    )


class AccessQueries(SqlBase):
    """API tokens of ``polysync server`` and the web console's sessions."""

    def add_api_token(self, name: str, role: str, digest: str) -> ApiToken:
        _require_name("token", name)
        t = s.api_tokens
        with self._write(f"adding API token {name}") as conn:
            existing = conn.execute(
                select(t.c.name).where(t.c.name_key == _key(name))
            ).scalar_one_or_none()
            if existing is not None:
                raise AlreadyExistsError(
                    f"an API token named {existing!r} already exists (names ignore case); "
                    f"choose another name, or revoke it first with "
                    f"`polysync token revoke {existing}`."
                )
            conn.execute(
                insert(t).values(
                    name=name.strip(),
                    name_key=_key(name),
                    role=role,
                    digest=digest,
                    created_at=utc_now(),
                )
            )
            row = conn.execute(select(t).where(t.c.name_key == _key(name))).one()
        return _api_token(row)

    def find_api_token(self, digest: str) -> ApiToken | None:
        t = s.api_tokens
        with self._read("checking an API token") as conn:
            row = conn.execute(select(t).where(t.c.digest == digest)).first()
        return None if row is None else _api_token(row)

    def list_api_tokens(self) -> list[ApiToken]:
        t = s.api_tokens
        with self._read("listing API tokens") as conn:
            rows = conn.execute(select(t).order_by(t.c.name_key)).all()
        return [_api_token(r) for r in rows]

    def remove_api_token(self, name: str) -> None:
        t = s.api_tokens
        with self._write(f"revoking API token {name}") as conn:
            # The token's console sessions go with it (ON DELETE CASCADE).
            result = conn.execute(delete(t).where(t.c.name_key == _key(name)))
            if result.rowcount == 0:
                raise NotFoundError(
                    f"API token {name!r} does not exist; run `polysync token list` to see "
                    "the tokens."
                )

    def existing_api_token_ids(self, ids: Collection[int]) -> set[int]:
        if not ids:
            return set()
        t = s.api_tokens
        with self._read("checking API tokens") as conn:
            found = conn.execute(select(t.c.id).where(t.c.id.in_(list(ids)))).scalars()
            return set(found)

    # --- console sessions ---------------------------------------------------------------

    def add_console_session(
        self, token_id: int, digest: str, *, now: datetime, expires_at: datetime
    ) -> ConsoleSession:
        c, t = s.console_sessions, s.api_tokens
        with self._write("signing in to the console") as conn:
            # Checked in the transaction: a token revoked a moment ago gets no session.
            if conn.execute(select(t.c.id).where(t.c.id == token_id)).first() is None:
                raise NotFoundError(
                    "the API token was revoked while signing in; sign in with a valid token."
                )
            conn.execute(
                insert(c).values(
                    digest=digest,
                    token_id=token_id,
                    created_at=now,
                    expires_at=expires_at,
                    last_seen_at=now,
                )
            )
            row = conn.execute(_sessions_with_tokens().where(c.c.digest == digest)).one()
        return _console_session(row)

    def find_console_session(self, digest: str) -> ConsoleSession | None:
        c = s.console_sessions
        with self._read("checking a console session") as conn:
            row = conn.execute(_sessions_with_tokens().where(c.c.digest == digest)).first()
        return None if row is None else _console_session(row)

    def console_sessions(self, ids: Collection[int]) -> list[ConsoleSession]:
        if not ids:
            return []
        c = s.console_sessions
        with self._read("checking console sessions") as conn:
            rows = conn.execute(_sessions_with_tokens().where(c.c.id.in_(list(ids)))).all()
        return [_console_session(r) for r in rows]

    def touch_console_session(self, session_id: int, at: datetime) -> None:
        c = s.console_sessions
        with self._write("recording console activity") as conn:
            conn.execute(
                update(c).where(c.c.id == session_id, c.c.last_seen_at < at).values(last_seen_at=at)
            )

    def remove_console_session(self, digest: str) -> bool:
        c = s.console_sessions
        with self._write("signing out of the console") as conn:
            result = conn.execute(delete(c).where(c.c.digest == digest))
            return bool(result.rowcount)

    def purge_console_sessions(self, *, expired_at: datetime, idle_since: datetime) -> int:
        c = s.console_sessions
        with self._write("removing ended console sessions") as conn:
            result = conn.execute(
                delete(c).where(or_(c.c.expires_at <= expired_at, c.c.last_seen_at <= idle_since))
            )
            return int(result.rowcount)
