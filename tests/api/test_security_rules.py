"""Pure rules of the server's browser defences: CSRF tokens and origins, session expiry,
session settings, security headers, and which event streams a re-check ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from polysync.api import csrf, security
from polysync.api.events import StreamAccess
from polysync.api.sessions import SessionPolicy, new_session_id, session_digest, well_formed
from polysync.config import load_settings
from polysync.errors import ConfigError
from polysync.store.base import ApiToken, ConsoleSession

OWN = "http://127.0.0.1:8080"

# -- CSRF tokens ------------------------------------------------------------------------------


def test_csrf_tokens_are_bound_to_their_session() -> None:
    a, b = new_session_id(), new_session_id()
    assert csrf.csrf_token(a) == csrf.csrf_token(a)
    assert csrf.csrf_token(a) != csrf.csrf_token(b)
    # Not derivable from what the database holds, and not the session id itself.
    assert csrf.csrf_token(a) not in (a, session_digest(a))
    assert len(csrf.csrf_token(a)) == 43


@pytest.mark.parametrize(
    ("given", "ok"),
    [
        ("RIGHT", True),
        (None, False),
        ("", False),
        ("RIGHT ", False),
        ("x" * 43, False),
        ("é" * 43, False),  # non-ASCII must be a refusal, not a TypeError
    ],
)
def test_csrf_token_matching(given: str | None, ok: bool) -> None:
    session_id = new_session_id()
    if given is not None:
        given = given.replace("RIGHT", csrf.csrf_token(session_id))
    assert csrf.token_matches(session_id, given) is ok


@pytest.mark.parametrize(
    ("method", "unsafe"),
    [("GET", False), ("head", False), ("OPTIONS", False), ("POST", True), ("PUT", True),
     ("PATCH", True), ("DELETE", True)],
)  # fmt: skip
def test_which_methods_change_state(method: str, unsafe: bool) -> None:
    assert csrf.is_unsafe(method) is unsafe


# -- origins ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080", True),
        ("http://Example.com", "http://example.com:80", True),
        ("https://example.com:443", "https://example.com", True),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8081", False),  # another port
        ("http://127.0.0.1:8080", "https://127.0.0.1:8080", False),  # another scheme
        ("http://localhost:8080", "http://127.0.0.1:8080", False),
        ("null", "http://127.0.0.1:8080", False),
        ("", "http://127.0.0.1:8080", False),
        ("http://127.0.0.1:99999", "http://127.0.0.1:99999", False),  # not a port
        ("file://", "file://", False),
    ],
)
def test_same_origin(a: str, b: str, same: bool) -> None:
    assert csrf.same_origin(a, b) is same


@pytest.mark.parametrize(
    ("origin", "fetch_site", "refused_with"),
    [
        (None, None, None),  # not a browser: the token still decides
        (OWN, "same-origin", None),
        (OWN, None, None),
        (None, "same-origin", None),
        (None, "none", None),  # typed in the address bar
        ("http://127.0.0.1:8080/", "same-origin", None),
        (OWN, "same-site", "Sec-Fetch-Site: same-site"),  # another port, same host
        (OWN, "cross-site", "Sec-Fetch-Site: cross-site"),
        (OWN, "CROSS-SITE", "Sec-Fetch-Site: cross-site"),
        ("http://127.0.0.1:9999", None, "sent by a page of http://127.0.0.1:9999"),
        ("http://127.0.0.1:9999", "same-origin", "sent by a page of http://127.0.0.1:9999"),
        ("null", None, "sent by a page of null"),  # sandboxed frames, data: URLs
        ("", None, "sent by a page of (empty)"),
        ("http://evil.example/" + "x" * 500, None, "x" * 60),
    ],
)
def test_origin_refusal(
    origin: str | None, fetch_site: str | None, refused_with: str | None
) -> None:
    refusal = csrf.origin_refusal(own_origin=OWN, origin=origin, fetch_site=fetch_site)
    if refused_with is None:
        assert refusal is None
        return
    assert refusal is not None
    assert refused_with in refusal
    assert OWN in refusal  # names where to go instead
    assert "Authorization: Bearer" in refusal
    assert len(refusal) < 400  # an attacker's long Origin is cut


# -- sessions -----------------------------------------------------------------------------------

T0 = datetime(2030, 1, 1, tzinfo=UTC)
TOKEN = ApiToken(id=1, name="t", role="viewer", created_at=T0)


def _session(*, expires_h: float = 12, last_seen_min: float = 0) -> ConsoleSession:
    return ConsoleSession(
        id=1,
        token=TOKEN,
        created_at=T0,
        expires_at=T0 + timedelta(hours=expires_h),
        last_seen_at=T0 + timedelta(minutes=last_seen_min),
    )


@pytest.mark.parametrize(
    ("session", "now_min", "live"),
    [
        (_session(), 0, True),
        (_session(), 59, True),
        (_session(), 60, False),  # idle for the whole timeout
        (_session(last_seen_min=50), 100, True),
        (_session(last_seen_min=700), 719, True),
        (_session(last_seen_min=700), 720, False),  # the absolute end
        (_session(expires_h=24, last_seen_min=719), 721, False),  # the policy's end
        (_session(expires_h=1, last_seen_min=30), 61, False),  # the stored end
    ],
)
def test_session_liveness(session: ConsoleSession, now_min: int, live: bool) -> None:
    policy = SessionPolicy(lifetime_s=12 * 3600, idle_timeout_s=3600)
    assert policy.is_live(session, T0 + timedelta(minutes=now_min)) is live


def test_session_ids_are_random_and_well_formed() -> None:
    ids = {new_session_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(well_formed(i) for i in ids)
    assert not well_formed("psk_" + "a" * 39 + "!")
    assert not well_formed("a" * 44)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("", SessionPolicy(12 * 3600, 3600)),
        ('[server]\nsession_lifetime = "8h"\n', SessionPolicy(8 * 3600, 3600)),
        ('[server]\nsession_idle_timeout = "15m"\n', SessionPolicy(12 * 3600, 900)),
        ("[server]\nsession_lifetime = 600\nsession_idle_timeout = 60\n", SessionPolicy(600, 60)),
        ('[server]\nhost_references = ["env:X"]\n', SessionPolicy(12 * 3600, 3600)),
    ],
)
def test_session_settings(tmp_path: Path, toml: str, expected: SessionPolicy) -> None:
    (tmp_path / "config.toml").write_text(toml)
    settings = load_settings({"home": tmp_path}, environ={})
    assert SessionPolicy.from_settings(settings) == expected


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('session_lifetime = "soon"', r"\[server\] session_lifetime: duration 'soon' is not"),
        ("session_lifetime = 0", r"session_lifetime: must be longer than 0 s"),
        ("session_idle_timeout = true", r"session_idle_timeout: expected a duration such as"),
        ("session_idle_timeout = 1.5", r"session_idle_timeout: expected a duration such as"),
        ('session_idle_timeout = "-5m"', r"session_idle_timeout: duration '-5m' is negative"),
    ],
)
def test_bad_session_settings_are_one_clear_sentence(
    tmp_path: Path, toml: str, message: str
) -> None:
    (tmp_path / "config.toml").write_text(f"[server]\n{toml}\n")
    settings = load_settings({"home": tmp_path}, environ={})
    with pytest.raises(ConfigError, match=message) as info:
        SessionPolicy.from_settings(settings)
    assert str(tmp_path / "config.toml") in str(info.value)


# -- security headers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "cache"),
    [
        ("/api/runs", "no-store"),
        ("/runs", "no-store"),
        ("/docs", "no-store"),
        ("/openapi.json", "no-store"),
        ("/static/app.js", None),  # public: revalidated, see SecurityHeaders
        ("/docs/assets/swagger-ui.css", None),
        ("/staticx", "no-store"),
    ],
)
def test_headers_for_each_path(path: str, cache: str | None) -> None:
    headers = security.headers_for(path)
    assert headers.get("Cache-Control") == cache
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in headers["Permissions-Policy"]


def test_the_csp_allows_only_our_own_code() -> None:
    directives = dict(d.split(" ", 1) for d in security.CSP.split("; "))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert "unsafe" not in security.CSP
    assert "*" not in security.CSP


# -- which event streams a re-check ends ------------------------------------------------------


def test_stream_access_ends_only_checked_callers_found_gone() -> None:
    ended: list[str] = []
    access: StreamAccess[str] = StreamAccess(lambda callers: set(callers))
    with access.watch("alice", lambda: ended.append("alice")):
        with access.watch("bob", lambda: ended.append("bob")):
            with access.watch("carol", lambda: ended.append("carol")):
                assert access.watched == 3
                # carol opened while the check ran: not checked, so not ended.
                assert access.revoke(checked={"alice", "bob"}, live={"alice"}) == 1
                assert ended == ["bob"]
                assert access.watched == 2
                assert access.revoke(checked={"alice", "carol"}, live={"alice", "carol"}) == 0
            assert access.watched == 1  # carol's stream closed
        assert access.watched == 1  # bob's stream closing after it was ended is harmless
    assert access.watched == 0
    assert ended == ["bob"]
