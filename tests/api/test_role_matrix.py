"""The API's role matrix (issue 11, acceptance 2): every route × every kind of caller.

``ROUTES`` is the role decision for each route, written from docs/api.md ("Authentication
and roles") and decision 0010 (vaults), not read off the routes: the least role that may
call it. ``test_every_route_has_a_role_decision`` compares it with what ``create_app``
really serves, so a new route without a row fails the build.

Each (route, caller) pair is one request to a real uvicorn server on 127.0.0.1 (TestClient
buffers whole responses, and ``GET /api/events`` never ends). The names in the URLs exist
(a platform, job, task, runs, a vault and tokens made once per module), so a role below
the route's meets the gate's 403 on a request that would otherwise be served, never a 404
standing in for it. A request that passes the gate is shaped to change nothing later
requests rely on: deletes are refused while something uses the object (409), creates
reuse a taken name (409), edits write the same value every time, Run Once names a
parameter the job lacks (422: no run, no Batch call). Each row pins that outcome
(``passed``), which shows the request reached its handler and found its objects.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import httpx
import pytest
import uvicorn
from azure.batch import BatchClient
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from batch_emulator import DEFAULT_ACCOUNT, DEFAULT_KEY
from batch_emulator.server import EmulatorServer
from keyvault_emulator.server import KeyVaultConfig, KeyVaultServer
from polysync.api import tokens
from polysync.api.app import create_app
from polysync.api.sessions import SESSION_COOKIE
from polysync.config import load_settings
from polysync.domain.secrets import Writer
from polysync.services import runs as run_service
from tests.api.conftest import COMMAND, ENV, KEY_ENV
from tests.support import SUBSCRIPTION, create_template


class Need(IntEnum):
    """The least role a route admits, ordered as docs/api.md's role table."""

    PUBLIC = 0
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3


PLATFORM, JOB, TASK, VAULT = "matrix", "matrix-tpl", "matrix-task", "matrix-kv"
DOOMED = "matrix-doomed"  # the token DELETE /api/tokens/{name} revokes (made again each time)
SECRET_REF = f"vault://{VAULT}/app-secret"


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as the app declares it
    need: Need
    passed: int  # the status once past the role gate
    url: str  # ``path`` with this module's names; {queued}/{cancellable} are run ids
    # The JSON sent; "platform"/"vault" name settings known once the servers run.
    body: dict[str, Any] | str | None = None

    @property
    def writes(self) -> bool:
        return self.method not in ("GET", "HEAD")


NAMES = {"platforms": PLATFORM, "jobs": JOB, "tasks": TASK, "vaults": VAULT}


def _row(method: str, path: str, need: Need, passed: int, url: str = "", **kw: Any) -> Route:
    """A table row; ``{name}`` in the path becomes the resource's fixture name."""
    if not url:
        resource = path.split("/")[2] if path.startswith("/api/") else ""
        url = path.replace("{name}", NAMES.get(resource, "{name}"))
    return Route(method, path, need, passed, url, **kw)


V, OP, A = Need.VIEWER, Need.OPERATOR, Need.ADMIN
ROUTES = [
    # system: health is the one public route; the rest is reading.
    _row("GET", "/api/health", Need.PUBLIC, 200),
    _row("GET", "/api/me", V, 200),
    _row("GET", "/api/events", V, 200),
    # platforms: admins write; viewers read, test connectivity and discover.
    _row("GET", "/api/platforms", V, 200),
    _row("POST", "/api/platforms", A, 409, body="platform"),  # the name is taken
    _row("GET", "/api/platforms/{name}", V, 200),
    _row("PUT", "/api/platforms/{name}", A, 200, body="platform"),  # the same settings
    _row("DELETE", "/api/platforms/{name}", A, 409),  # its job uses it
    _row("POST", "/api/platforms/{name}/test", V, 200),
    _row("GET", "/api/platforms/{name}/discover", V, 200),
    # jobs: operators import, sync, edit and delete.
    _row("POST", "/api/jobs/import", OP, 201, body={"platform": PLATFORM, "external_ids": [JOB]}),
    _row("GET", "/api/jobs", V, 200),
    _row("GET", "/api/jobs/{name}", V, 200),
    _row("PATCH", "/api/jobs/{name}", OP, 200, body={"description": "role matrix"}),
    _row(
        "PUT",
        "/api/jobs/{name}/parameters/{param}",
        OP,
        200,
        url=f"/api/jobs/{JOB}/parameters/NAME",
        body={"description": "who to greet"},
    ),
    _row(  # the task sets NAME
        "DELETE", "/api/jobs/{name}/parameters/{param}", OP, 409, f"/api/jobs/{JOB}/parameters/NAME"
    ),
    _row("POST", "/api/jobs/{name}/sync", OP, 200),
    _row("DELETE", "/api/jobs/{name}", OP, 409),  # its task uses it
    # tasks: operators create, edit, delete and run once.
    _row("POST", "/api/tasks", OP, 409, body={"name": TASK, "job": JOB}),
    _row("GET", "/api/tasks", V, 200),
    _row("GET", "/api/tasks/{name}", V, 200),
    _row("PATCH", "/api/tasks/{name}", OP, 200, body={"description": "role matrix"}),
    _row("DELETE", "/api/tasks/{name}", OP, 409),  # a run of it is Queued
    _row("POST", "/api/tasks/{name}/runs", OP, 422, body={"params": {"NOT_A_PARAMETER": "1"}}),
    # runs: viewers read and tail logs; operators cancel.
    _row("GET", "/api/runs", V, 200),
    _row("GET", "/api/runs/{run_id}", V, 200, "/api/runs/{queued}"),
    _row("GET", "/api/runs/{run_id}/logs", V, 200, "/api/runs/{queued}/logs"),
    _row("POST", "/api/runs/{run_id}/cancel", OP, 200, "/api/runs/{cancellable}/cancel"),
    # tokens: admins only.
    _row("POST", "/api/tokens", A, 409, body={"name": "viewer", "role": "viewer"}),
    _row("GET", "/api/tokens", A, 200),
    _row("DELETE", "/api/tokens/{name}", A, 204, f"/api/tokens/{DOOMED}"),
    # vaults (0010 §3-4, console.md): admins manage them; operators see names and
    # task_secrets, which they need to write vault:// references.
    _row("POST", "/api/vaults", A, 409, body="vault"),
    _row("GET", "/api/vaults", OP, 200),
    _row("GET", "/api/vaults/{name}", OP, 200),
    _row("PUT", "/api/vaults/{name}", A, 200, body="vault"),
    _row("DELETE", "/api/vaults/{name}", A, 409),  # the job's TOKEN default refers to it
    _row("POST", "/api/vaults/{name}/test", A, 200),
    # the API's documents and /docs: what the API needs (a viewer); assets are public.
    _row("GET", "/openapi.json", V, 200),
    _row("GET", "/docs", V, 200),
    _row("GET", "/docs/openapi-3.0.json", V, 200),
    _row("GET", "/docs/assets/{name}", Need.PUBLIC, 200, "/docs/assets/swagger-init.js"),
]


@dataclass(frozen=True)
class Caller:
    """Who sends a request: ``header`` as is, a role's ``bearer`` token or ``cookie``."""

    id: str
    role: Need | None = None  # None: must not be let in at all
    header: str | None = None  # an Authorization header sent as it is
    bearer: str | None = None  # whose token: a role, or "revoked"
    cookie: str | None = None  # whose console session: a role, or "ended"
    csrf: bool = True  # a cookie write carries the session's X-CSRF-Token
    writes_only: bool = False

    @property
    def sends_a_token(self) -> bool:
        """Whether it sends ``Authorization: Bearer <something>``, valid or not."""
        if self.bearer is not None:
            return True
        scheme, _, token = (self.header or "").partition(" ")
        return scheme == "Bearer" and bool(token)


ROLES = {"viewer": V, "operator": OP, "admin": A}
CALLERS = [
    Caller("anonymous"),
    Caller("garbage-bearer", header="Bearer not-a-token"),
    Caller("basic-auth", header="Basic " + base64.b64encode(b"admin:admin").decode()),
    Caller("empty-authorization", header=""),
    Caller("bearer-without-token", header="Bearer"),
    Caller("revoked-bearer", bearer="revoked"),
    Caller("ended-session-cookie", cookie="ended"),
    *(Caller(f"{name}-bearer", role, bearer=name) for name, role in ROLES.items()),
    *(Caller(f"{name}-cookie", role, cookie=name) for name, role in ROLES.items()),
    *(
        Caller(f"{name}-cookie-without-csrf", role, cookie=name, csrf=False, writes_only=True)
        for name, role in ROLES.items()
    ),
]

SIGN_IN = 303  # /docs sends a browser without a bearer token to /signin (docs/api.md)


def expected(route: Route, caller: Caller) -> int:
    """What docs/api.md promises this caller on this route."""
    if route.need is Need.PUBLIC:
        return route.passed
    if caller.cookie is not None and route.writes and not caller.csrf:
        return 403  # CSRF: a cookie write without the token, whatever the role
    if caller.role is None:
        return SIGN_IN if route.path == "/docs" and not caller.sends_a_token else 401
    return route.passed if caller.role >= route.need else 403


# -- the world the requests find --------------------------------------------------------


@dataclass
class Session:
    cookie: str
    csrf: str  # as the console page's <meta name="csrf-token"> holds it


@dataclass
class World:
    app: FastAPI
    client: httpx.Client
    bearers: dict[str, str]  # a role (or "revoked") -> its token
    settings: dict[str, dict[str, Any]]  # "platform"/"vault" -> settings an admin may send
    sessions: dict[str, Session] = field(default_factory=dict)  # a role (or "ended")
    runs: dict[str, int] = field(default_factory=dict)

    def headers(self, caller: Caller, *, write: bool) -> dict[str, str]:
        if caller.header is not None:
            return {"Authorization": caller.header}
        if caller.bearer is not None:
            return {"Authorization": f"Bearer {self.bearers[caller.bearer]}"}
        if caller.cookie is not None:
            session = self.sessions[caller.cookie]
            sent = {"Cookie": f"{SESSION_COOKIE}={session.cookie}"}
            if write and caller.csrf:
                sent["X-CSRF-Token"] = session.csrf
            return sent
        return {}

    def body(self, route: Route) -> dict[str, Any] | None:
        if not isinstance(route.body, str):
            return route.body
        named = {"name": NAMES[f"{route.body}s"]} if route.method == "POST" else {}
        return {**named, **self.settings[route.body]}

    def send(self, route: Route, caller: Caller) -> tuple[int, str, httpx.Headers]:
        if route.path == "/api/tokens/{name}" and route.method == "DELETE":
            self._ensure_doomed()
        self.client.cookies.clear()  # only what the caller sends, nothing a response set
        request = self.client.build_request(
            route.method,
            route.url.format(**self.runs),
            headers=self.headers(caller, write=route.writes),
            json=self.body(route),
        )
        r = self.client.send(request, stream=True)
        try:
            # An admitted GET /api/events streams until the client leaves: read its head.
            if r.headers.get("content-type", "").startswith("text/event-stream"):
                return r.status_code, "(an event stream)", r.headers
            r.read()
            return r.status_code, r.text, r.headers
        finally:
            r.close()

    def _ensure_doomed(self) -> None:
        svc = self.app.state.services
        if DOOMED not in {t.name for t in svc.store.list_api_tokens()}:
            tokens.create_token(svc, DOOMED, tokens.Role.VIEWER)


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` under uvicorn on a free 127.0.0.1 port, for the length of the block."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive()


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def sign_in(url: str, token: str, *, sign_out: bool = False) -> Session:
    """Sign in like the form, read the CSRF token off a console page, maybe sign out."""
    with httpx.Client(base_url=url, timeout=10) as browser:
        r = browser.post("/signin", data={"token": token}, follow_redirects=False)
        assert r.status_code == 303, r.text
        page = browser.get("/runs")
        found = CSRF_META.search(page.text)
        assert page.status_code == 200, page.text
        assert found, page.text
        session = Session(browser.cookies[SESSION_COOKIE], found.group(1))
        if sign_out:
            r = browser.post("/signout", data={"csrf_token": session.csrf})
            assert r.status_code == 303, r.text
        return session


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.text}"
    return r.json() if r.content else None


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorServer, batch: BatchClient
) -> Iterator[World]:
    home = tmp_path_factory.mktemp("home")
    with (
        KeyVaultServer(KeyVaultConfig()) as kv,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv(KEY_ENV, DEFAULT_KEY)
        token_file = home / "kv.token"
        token_file.write_text(kv.tokens["secrets-user"])
        token_file.chmod(0o600)
        # The host lets API admins name the Batch key and the vault's files (0010 §3), so
        # an admin's create or replace of a platform or vault is a valid request.
        allowed = ", ".join(
            f'"{ref}"' for ref in (f"env:{KEY_ENV}", f"file:{token_file}", f"file:{kv.cert_path}")
        )
        (home / "config.toml").write_text(f"[server]\nhost_references = [{allowed}]\n")
        app = create_app(load_settings({"home": home}, environ={}), start_worker=False)
        svc = app.state.services
        made = {r.value: tokens.create_token(svc, r.value, r)[1] for r in tokens.Role}
        settings = {
            "platform": {
                "account_url": emulator.endpoint,
                "account_name": DEFAULT_ACCOUNT,
                "subscription_id": SUBSCRIPTION,
                "resource_group": "rg-matrix",
                "key_env": KEY_ENV,
            },
            "vault": {
                "url": kv.url,
                "auth": "bearer-token",
                "token_file": str(token_file),
                "ca_bundle": str(kv.cert_path),
            },
        }
        with serving(app) as url, httpx.Client(base_url=url, timeout=10) as client:
            world = World(app, client, made, settings)
            arrange(world, batch)
            # Runs straight into the store: no worker here, so they stay Queued, unsent.
            world.runs = {
                key: run_service.start_run(svc, TASK, writer=Writer.HOST).id
                for key in ("queued", "cancellable")
            }
            world.sessions = {role: sign_in(url, made[role]) for role in ROLES}
            # A session signed out while its page (and CSRF token) stays open in a tab.
            world.sessions["ended"] = sign_in(url, made["admin"], sign_out=True)
            yield world


def arrange(world: World, batch: BatchClient) -> None:
    """Every object the matrix's URLs name, made through the API by an admin."""
    create_template(batch, COMMAND, job_id=JOB, env=ENV, task_id="t")
    admin = {"Authorization": f"Bearer {world.bearers['admin']}"}

    def call(method: str, url: str, status: int, body: Any = None) -> Any:
        return ok(world.client.request(method, url, headers=admin, json=body), status)

    call("POST", "/api/platforms", 201, {"name": PLATFORM, **world.settings["platform"]})
    call("POST", "/api/jobs/import", 201, {"platform": PLATFORM, "external_ids": [JOB]})
    call("POST", "/api/vaults", 201, {"name": VAULT, **world.settings["vault"]})
    # A Secret parameter whose default is in the vault: the vault is in use.
    call("PUT", f"/api/jobs/{JOB}/parameters/TOKEN", 200, {"type": "Secret", "default": SECRET_REF})
    call("POST", "/api/tasks", 201, {"name": TASK, "job": JOB, "params": {"NAME": "matrix"}})
    # The revoked token: created, then revoked, through the API.
    revoked = call("POST", "/api/tokens", 201, {"name": "revoked", "role": "admin"})
    call("DELETE", "/api/tokens/revoked", 204)
    world.bearers["revoked"] = revoked["token"]


# -- the tests ----------------------------------------------------------------------------


def served(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of everything the app serves under /api, /openapi.json and /docs.

    FastAPI keeps included routers as branches of ``app.routes``; its own
    ``iter_route_contexts`` walks them down to the routes, as the OpenAPI document does.
    """
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if path.startswith(("/api/", "/docs")) or path == "/openapi.json":
            # A mounted app has no methods: "*" makes it a row nobody wrote, so it fails.
            found |= {(m, path) for m in route.methods or {"*"}}
    return found


def test_every_route_has_a_role_decision(world: World) -> None:
    decided = {(r.method, r.path) for r in ROUTES}
    assert len(decided) == len(ROUTES), "a route has two rows"
    actual = served(world.app)
    assert not actual - decided, f"routes without a role decision: {sorted(actual - decided)}"
    assert not decided - actual, f"rows for routes the app lacks: {sorted(decided - actual)}"


CASES = [
    pytest.param(route, caller, id=f"{route.method} {route.path} as {caller.id}")
    for route in ROUTES
    for caller in CALLERS
    if route.writes or not caller.writes_only
]


@pytest.mark.parametrize(("route", "caller"), CASES)
def test_role_matrix(world: World, route: Route, caller: Caller) -> None:
    want = expected(route, caller)
    status, text, headers = world.send(route, caller)
    assert status == want, (
        f"{route.method} {route.url} as {caller.id}: expected {want}, got {status}: {text[:300]}"
    )
    if want in (401, 403):  # the documented problem codes, not some other refusal
        assert json.loads(text)["code"] == {401: "Unauthorized", 403: "Forbidden"}[want], text
    if want == 403:  # refused by the check this case is about, not by the other one
        csrf_case = caller.cookie is not None and not caller.csrf
        reason = "X-CSRF-Token" if csrf_case else f"needs {route.need.name.lower()}"
        assert reason in json.loads(text)["detail"], text
    if want == SIGN_IN:
        assert headers["location"].startswith("/signin"), headers


def test_admitted_requests_left_the_world_as_they_found_it(
    world: World, batch: BatchClient
) -> None:
    """The matrix's requests were shaped to change nothing the others rely on (the module
    docstring); runs last, in file order, to check that they did not."""
    store = world.app.state.services.store
    assert store.get_platform(PLATFORM).name == PLATFORM
    assert {p.name for p in store.get_job(JOB).parameters} >= {"NAME", "TOKEN"}
    assert store.get_task(TASK).params == {"NAME": "matrix"}
    assert store.get_vault(VAULT).name == VAULT
    assert {t.name for t in store.list_api_tokens()} >= {"viewer", "operator", "admin"}
    runs = {r.id: r for r in store.list_runs(limit=100)}
    assert sorted(runs) == sorted(world.runs.values()), "Run Once created a run"
    assert runs[world.runs["queued"]].state.value == "Queued"
    # Nothing reached Batch but the template itself.
    assert [j.id for j in batch.list_jobs()] == [JOB]
