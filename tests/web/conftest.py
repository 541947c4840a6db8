"""Fixtures for the web console: a real server, a real emulator, Debian's Chromium.

One server per module: ``create_app`` (API + console + worker) under uvicorn on a free
127.0.0.1 port in a thread, on a SQLite store in tmp, talking to an in-process emulator.
Playwright drives ``/usr/bin/chromium`` (never a downloaded browser).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from azure.batch import BatchClient
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from batch_emulator import DEFAULT_KEY
from batch_emulator.server import EmulatorServer, PoolSeed
from polysync.api.app import create_app
from polysync.api.sessions import SESSION_COOKIE
from polysync.api.tokens import Role, create_token
from polysync.config import load_settings
from polysync.services.context import Services, open_services
from tests.support import add_emulator_platform, create_template, running_emulator, sdk_client

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KEY_ENV = "POLYSYNC_WEB_TEST_KEY"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# A laptop screen: the console must be readable at this size.
VIEWPORT = {"width": 1366, "height": 768}
# Collects CSP violations from the first moment of every document (an init script).
CSP_PROBE = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    with running_emulator(tmp_path_factory.mktemp("emulator"), PoolSeed("pool1", 2, 8)) as emu:
        yield emu


@pytest.fixture(scope="module")
def batch(emulator: EmulatorServer) -> Iterator[BatchClient]:
    with sdk_client(emulator) as client:
        yield client


def make_template(
    batch: BatchClient,
    command_line: str,
    *,
    env: Mapping[str, str] | None = None,
    prefix: str = "tpl",
    max_wall_clock: timedelta | None = timedelta(minutes=10),
) -> str:
    """A template Batch job as users keep them (see ``tests.support.create_template``)."""
    return create_template(
        batch, command_line, env=env, prefix=prefix, max_wall_clock=max_wall_clock
    )


@dataclass
class Console:
    """A running `polysync server` for the tests."""

    url: str
    services: Services
    tokens: dict[str, str]  # role -> token text
    answers: Answers = field(default_factory=lambda: Answers(None))

    def api(self, role: str = "admin") -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.tokens[role]}"},
            timeout=30,
        )


class Answers:
    """Every request the server answered, as (method, path, status, Origin header): what the
    server did, for tests that cannot see it from the browser (no-cors calls are opaque)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, str, int, str | None]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = dict(scope["headers"]).get(b"origin")

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                shown = origin.decode() if origin else None
                self.seen.append((scope["method"], scope["path"], message["status"], shown))
            await send(message)

        await self.app(scope, receive, capture)


class _ThreadedServer:
    def __init__(self, config: uvicorn.Config) -> None:
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="console", daemon=True)

    def start(self) -> int:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the console server did not start")
            time.sleep(0.02)
        sockets = self.server.servers[0].sockets
        port: int = sockets[0].getsockname()[1]
        return port

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@contextmanager
def serve_console(home: Path, emulator: EmulatorServer, *, config: str = "") -> Iterator[Console]:
    """`polysync server` on a free loopback port; ``config``: the text of its config.toml,
    written before the server reads its settings (as a deployer would)."""
    os.environ[KEY_ENV] = DEFAULT_KEY  # the platform reads its key from here (a reference)
    if config:
        (home / "config.toml").write_text(config)
    settings = load_settings({"home": home}, environ={})
    svc = open_services(settings)
    add_emulator_platform(svc, emulator, KEY_ENV, resource_group="rg-web")
    tokens = {role.value: create_token(svc, f"web-{role.value}", role)[1] for role in Role}
    app = Answers(create_app(settings, start_worker=True, services=svc))
    server = _ThreadedServer(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
    )
    port = server.start()
    try:
        yield Console(f"http://127.0.0.1:{port}", svc, tokens, app)
    finally:
        server.stop()
        os.environ.pop(KEY_ENV, None)


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorServer
) -> Iterator[Console]:
    with serve_console(tmp_path_factory.mktemp("home"), emulator) as running:
        yield running


# Module scope, not session: Playwright's sync API keeps an event loop running on the main
# thread while it is open, which breaks any async test that pytest runs after it.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: run scripts/chromium.sh (Debian's chromium)")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # Playwright gives every launch a fresh temporary profile (--user-data-dir) of its own.
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]  # a ViewportSize dict
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def session_cookie(console: Console, role: str = "admin") -> str:
    """Sign in through the real form (POST /signin) and return the session cookie's value."""
    with httpx.Client(base_url=console.url, follow_redirects=False, timeout=30) as client:
        resp = client.post("/signin", data={"token": console.tokens[role], "next": "/runs"})
        assert resp.status_code == 303, resp.text
        value = client.cookies.get(SESSION_COOKIE)
    assert value, "sign-in set no session cookie"
    return value


class FormClient(httpx.Client):
    """A browser-like client signed in to the console: every form it posts carries the
    session's CSRF token, as the console's own forms do."""

    csrf = ""

    def request(self, method: str, url: Any, **kwargs: Any) -> httpx.Response:
        if method.upper() == "POST" and kwargs.get("json") is None and not kwargs.get("content"):
            kwargs["data"] = {**(kwargs.get("data") or {}), "csrf_token": self.csrf}
        return super().request(method, url, **kwargs)


@contextmanager
def console_client(console: Console, role: str) -> Iterator[FormClient]:
    """Signed in through the real form as ``role``, the CSRF token read from a page."""
    with FormClient(base_url=console.url, follow_redirects=False, timeout=30) as client:
        resp = client.post("/signin", data={"token": console.tokens[role], "next": "/runs"})
        assert resp.status_code == 303, resp.text
        found = re.search(r'<meta name="csrf-token" content="([^"]+)">', client.get("/runs").text)
        assert found, "the page carries no csrf-token meta tag"
        client.csrf = found.group(1)
        yield client


def signed_in(context: BrowserContext, console: Console, role: str = "admin") -> None:
    """Put a fresh console session in the browser, as the sign-in form does."""
    context.add_cookies(
        [
            {
                "name": SESSION_COOKIE,
                "value": session_cookie(console, role),
                "url": console.url,
                "httpOnly": True,
                "sameSite": "Strict",
            }
        ]
    )


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def csp_events(page: Page) -> list[str]:
    """The CSP violations the current document reported (needs ``CSP_PROBE``)."""
    found: list[str] = page.evaluate("window.__csp || []")
    return found
