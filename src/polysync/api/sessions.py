"""Web console sessions: signing in trades an API token for a random session id.

Why not keep the token in the cookie: a cookie is the browser's to keep, so signing out
could only ask it to forget, and a copied cookie was the token itself, valid until an
admin revoked it. Now the cookie (``polysync_session``) holds 256 random bits that mean
nothing outside this server; the database holds only their SHA-256 (like tokens, the
lookup is one indexed equality and needs no slow hash) next to the token they act for.

A session ends at the first of: sign-out (its row is deleted, so a replayed cookie is
refused), its absolute lifetime, its idle timeout, or its token being revoked (the row
goes with the token, ON DELETE CASCADE). Both durations come from ``config.toml``::

    [server]
    session_lifetime = "12h"       # absolute, counted from sign-in
    session_idle_timeout = "1h"    # since the session was last used

Activity is recorded at most once a minute per session, so a page polling the API does
not write to the database on every request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from fastapi import Request, Response

from polysync.config import Settings
from polysync.domain.durations import format_duration_s, parse_duration_text
from polysync.errors import ConfigError, InputError
from polysync.store.base import ApiToken, ConsoleSession, Store

SESSION_COOKIE = "polysync_session"
# The cookie of earlier versions held the API token itself: never read, always cleared.
LEGACY_COOKIE = "polysync_token"
TOUCH_EVERY = timedelta(minutes=1)
# token_urlsafe(32): 43 characters of [A-Za-z0-9_-]; anything else is not worth a query.
_WELL_FORMED = re.compile(r"[A-Za-z0-9_-]{43}")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    lifetime_s: int = 12 * 3600
    idle_timeout_s: int = 3600

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionPolicy:
        """``[server] session_lifetime`` / ``session_idle_timeout`` of config.toml."""
        section = settings.section("server")
        where = f"config file {settings.config_path}: [server]"
        policy = cls()
        if "session_lifetime" in section:
            lifetime = _duration(section["session_lifetime"], f"{where} session_lifetime")
            policy = replace(policy, lifetime_s=lifetime)
        if "session_idle_timeout" in section:
            idle = _duration(section["session_idle_timeout"], f"{where} session_idle_timeout")
            policy = replace(policy, idle_timeout_s=idle)
        return policy

    def is_live(self, session: ConsoleSession, now: datetime) -> bool:
        """Pure: before its fixed end, its lifetime under this policy, and its idle end."""
        return (
            now < session.expires_at
            and now < session.created_at + timedelta(seconds=self.lifetime_s)
            and now < session.last_seen_at + timedelta(seconds=self.idle_timeout_s)
        )

    def describe(self) -> str:
        return (
            f"{format_duration_s(self.lifetime_s)} after sign-in, or "
            f"{format_duration_s(self.idle_timeout_s)} after the last use"
        )


def _duration(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f'{where}: expected a duration such as "12h" or "30m", got {value!r}.')
    try:
        seconds = value if isinstance(value, int) else parse_duration_text(value)
    except InputError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if seconds <= 0:
        raise ConfigError(f'{where}: must be longer than 0 s; write e.g. "12h" or "30m".')
    return seconds


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def session_digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def well_formed(session_id: str) -> bool:
    return _WELL_FORMED.fullmatch(session_id) is not None


def set_session_cookie(
    response: Response, session_id: str, *, secure: bool, max_age_s: int
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=max_age_s,
        path="/",
        secure=secure,
        httponly=True,  # page scripts never see it
        samesite="strict",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


class Sessions:
    """The console's sessions over the store, with an injectable clock (tests move time)."""

    def __init__(
        self,
        store: Store,
        policy: SessionPolicy | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.policy = policy or SessionPolicy()
        self.clock = clock

    def start(self, token: ApiToken) -> tuple[str, ConsoleSession]:
        """A new session for ``token``: (the id for the cookie, the stored session)."""
        now = self.clock()
        # Sign-in is rare: a good moment to drop the rows of sessions nobody ended.
        self.store.purge_console_sessions(
            expired_at=now, idle_since=now - timedelta(seconds=self.policy.idle_timeout_s)
        )
        session_id = new_session_id()
        session = self.store.add_console_session(
            token.id,
            session_digest(session_id),
            now=now,
            expires_at=now + timedelta(seconds=self.policy.lifetime_s),
        )
        return session_id, session

    def lookup(self, session_id: str | None) -> ConsoleSession | None:
        """The live session of this cookie value, recording its use; None once it ended."""
        if session_id is None or not well_formed(session_id):
            return None
        digest = session_digest(session_id)
        session = self.store.find_console_session(digest)
        if session is None:
            return None
        now = self.clock()
        if not self.policy.is_live(session, now):
            self.store.remove_console_session(digest)
            return None
        if now - session.last_seen_at >= TOUCH_EVERY:
            self.store.touch_console_session(session.id, now)
        return session

    def end(self, session_id: str | None) -> None:
        """Sign out: the row is deleted, so the same cookie is refused from now on."""
        if session_id is not None and well_formed(session_id):
            self.store.remove_console_session(session_digest(session_id))

    def live_ids(self, ids: Collection[int]) -> set[int]:
        """Which sessions among ``ids`` are still live (no activity is recorded)."""
        now = self.clock()
        return {s.id for s in self.store.console_sessions(ids) if self.policy.is_live(s, now)}


def get_sessions(request: Request) -> Sessions:
    """The app's :class:`Sessions` (``app.state.sessions``, made by ``create_app``)."""
    sessions: Sessions = request.app.state.sessions
    return sessions
