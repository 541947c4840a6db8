"""The web console: server-rendered pages over the same services as the CLI and the API.

Pages read and write through ``polysync.services`` directly; live data (run states, log
tails, connectivity checks, cancel) is fetched by ``static/app.js`` from the REST API
with the same cookie. Forms post back here and redirect (post/redirect/get), so every
page works with the keyboard and without JavaScript; errors re-render the form with the
service's own sentence.

Signing in with an API token starts a server-side session (``polysync.api.sessions``):
the ``polysync_session`` cookie (HttpOnly, SameSite=Strict) holds a random id, never the
token, and signing out deletes the session. Every form that changes something carries
the session's CSRF token (``csrf_input`` in the templates) and every POST is checked in
``_PageRoute`` before its handler runs: Origin / Sec-Fetch-Site first, then the token
(``polysync.api.csrf``). The sign-in form, before any session exists, gets the Origin
check alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import jinja2
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from markupsafe import Markup

from polysync.api import csrf
from polysync.api.auth import cross_site_refusal, own_origin
from polysync.api.deps import follow_run, get_services, run_owner
from polysync.api.problems import Forbidden, Unauthorized, status_of
from polysync.api.sessions import (
    SESSION_COOKIE,
    clear_session_cookie,
    get_sessions,
    set_session_cookie,
)
from polysync.api.tokens import Role, authenticate
from polysync.domain import ids, limits
from polysync.domain.code_bearing import is_code_bearing_name
from polysync.domain.durations import format_duration_s, parse_duration_text
from polysync.domain.models import (
    AuthMode,
    BackoffStrategy,
    DataType,
    Direction,
    Job,
    RetryPolicy,
    RunState,
    SecretVault,
    Task,
)
from polysync.domain.parameters import OUTPUT_NOT_SUPPORTED
from polysync.domain.secrets import Writer, looks_like_ref
from polysync.errors import InputError, NotFoundError, PolysyncError
from polysync.services import code_access
from polysync.services import jobs as job_service
from polysync.services import platforms as platform_service
from polysync.services import runs as run_service
from polysync.services import tasks as task_service
from polysync.services import vaults as vault_service
from polysync.services.context import Services
from polysync.services.views import job_for_viewers, task_for_viewers, vault_view
from polysync.vaults.checks import VaultCheck

log = logging.getLogger(__name__)

FLASH_COOKIE = "polysync_flash"
PAGE_SIZE = 50
DISCOVER_PAGE_SIZE = 25
NAV = (("r", "/runs", "Runs"), ("t", "/tasks", "Tasks"), ("j", "/jobs", "Jobs"))
NAV_PLATFORMS = ("p", "/platforms", "Platforms")
NAV_VAULTS = ("v", "/vaults", "Vaults")  # operators and admins (viewers: a 403 page)

_TEMPLATES = Path(__file__).parent / "templates"


def _ts(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: int | None) -> str:
    return "" if seconds is None else format_duration_s(seconds)


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_TEMPLATES),
    autoescape=True,  # every user value (names, reasons, logs) is escaped
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["ts"] = _ts
_env.filters["duration"] = _duration
# The forms' min/max hints come from the bounds the handlers enforce (domain/limits.py).
_env.globals["limits"] = limits


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is signed in (the token of the session in the cookie)."""

    name: str
    role: Role
    csrf: str = ""  # the session's CSRF token, carried by every form and app.js call

    def may(self, needed: Role) -> bool:
        return self.role.allows(needed)


@dataclass(frozen=True, slots=True)
class Flash:
    kind: str  # "ok" | "warn" | "error"
    lines: tuple[str, ...]


class _PageRoute(APIRoute):
    """Turns the errors of a page handler into pages: sign-in redirect, 403, or a message."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                if csrf.is_unsafe(request.method):
                    refusal = await _forged(request)
                    if refusal is not None:
                        return _render(
                            request,
                            "message.html",
                            _viewer(request),
                            status=403,
                            title="Not allowed",
                            error=refusal,
                            back="/runs",
                        )
                return await handler(request)
            except Unauthorized:
                target = request.url.path
                if request.method == "GET" and request.url.query:
                    target += "?" + request.url.query
                return RedirectResponse("/signin?" + urlencode({"next": target}), 303)
            except PolysyncError as exc:
                # Forbidden, NotFound and friends: a page with the service's sentence.
                viewer = _viewer(request)
                return _render(
                    request,
                    "message.html",
                    viewer,
                    status=status_of(exc),
                    title="Not allowed" if status_of(exc) == 403 else "Something went wrong",
                    error=str(exc),
                    back=_back(request),
                )

        return page_handler


router = APIRouter(route_class=_PageRoute, include_in_schema=False)


# -- plumbing ----------------------------------------------------------------------------


def _services(request: Request) -> Services:
    return get_services(request)


_NOT_LOOKED_UP = object()
# Only the sign-in form may be posted without a session (it gets the Origin check alone).
_NO_SESSION_FORMS = frozenset({"/signin"})


def _viewer(request: Request) -> Viewer | None:
    """The signed-in caller of this request (looked up once per request)."""
    cached = getattr(request.state, "viewer", _NOT_LOOKED_UP)
    if cached is None or isinstance(cached, Viewer):
        return cached
    viewer = None
    session_id = request.cookies.get(SESSION_COOKIE)
    session = get_sessions(request).lookup(session_id)
    if session is not None and session_id is not None:
        try:
            viewer = Viewer(
                session.token.name, Role(session.token.role), csrf.csrf_token(session_id)
            )
        except ValueError:
            viewer = None
    request.state.viewer = viewer
    return viewer


async def _forged(request: Request) -> str | None:
    """Why this POST must be refused as a cross-site forgery (one sentence), or None.

    No session, no token to check: the handler's own ``_need`` then sends the caller to
    sign in, and nothing is changed either way.
    """
    refusal = cross_site_refusal(request)
    if refusal is not None:
        return refusal[0].upper() + refusal[1:]
    if request.url.path in _NO_SESSION_FORMS:
        return None
    session_id = request.cookies.get(SESSION_COOKIE)
    if _viewer(request) is None or session_id is None:
        return None
    form = await request.form()  # cached on the request: the handler reads it again
    given = form.get(csrf.FORM_FIELD)
    if not csrf.token_matches(session_id, given if isinstance(given, str) else None):
        return csrf.FORM_REFUSAL
    return None


def _back(request: Request) -> str:
    """Where a Back link goes: the referring page if it is ours, else the runs."""
    referer = urlsplit(request.headers.get("referer", ""))
    if not csrf.same_origin(f"{referer.scheme}://{referer.netloc}", own_origin(request)):
        return "/runs"
    return _safe_next(referer.path + (f"?{referer.query}" if referer.query else ""))


def _need(request: Request, role: Role = Role.VIEWER) -> Viewer:
    viewer = _viewer(request)
    if viewer is None:
        raise Unauthorized("sign in with an API token to use the console.")
    if not viewer.may(role):
        raise Forbidden(
            f"token {viewer.name!r} has role {viewer.role.value}; this needs {role.value} "
            "(ask an admin for a token with that role)."
        )
    return viewer


def _take_flash(request: Request) -> Flash | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    kind, _, text = unquote(raw).partition("|")
    if kind not in ("ok", "warn", "error") or not text:
        return None
    return Flash(kind, tuple(text.split("\n")))


def _render(
    request: Request,
    template: str,
    viewer: Viewer | None,
    *,
    status: int = 200,
    error: str | None = None,
    **context: Any,
) -> HTMLResponse:
    flash = _take_flash(request)
    nav = list(NAV)
    if viewer is not None:
        nav.append(NAV_PLATFORMS)
        if viewer.may(Role.OPERATOR):
            nav.append(NAV_VAULTS)
    token = viewer.csrf if viewer else ""
    html = _env.get_template(template).render(
        principal=viewer,
        role=viewer.role.value if viewer else "",
        csrf=token,
        csrf_input=Markup('<input type="hidden" name="{}" value="{}">').format(
            csrf.FORM_FIELD, token
        ),
        nav=nav,
        section="/" + request.url.path.strip("/").split("/")[0],
        flash=flash,
        error=error,
        can_operate=bool(viewer and viewer.may(Role.OPERATOR)),
        can_admin=bool(viewer and viewer.may(Role.ADMIN)),
        output_reason=OUTPUT_NOT_SUPPORTED,
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def _redirect(url: str, *lines: str, kind: str = "ok") -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    text = "\n".join(line for line in lines if line)
    if text:
        response.set_cookie(
            FLASH_COOKIE,
            quote(f"{kind}|{text}"),
            max_age=60,
            path="/",
            httponly=True,
            samesite="strict",
        )
    return response


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(p, safe="") for p in parts)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _safe_next(target: str) -> str:
    # Only same-site paths: "//evil.example" and absolute URLs are open redirects.
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/runs"
    return target


def _int(value: str, bound: limits.Bound, *, default: int | None = None) -> int | None:
    """A whole-number form field within ``bound`` (the API's and the CLI's range too)."""
    if not value.strip():
        return default
    return bound.parse(value)


# Paths and queries are parsed here, not by FastAPI's ``int``: its refusal is a JSON body
# (not a page), and a number past the databases' 64-bit integers reached the store.
def _run_id(text: str) -> int:
    return limits.RUN_ID.parse(text)


def _offset(text: str) -> int:
    return limits.OFFSET.parse(text) if text.strip() else 0


def _seconds(value: str, label: str) -> int | None:
    if not value.strip():
        return None
    try:
        return parse_duration_text(value)
    except InputError as exc:
        raise InputError(f"{label}: {exc}") from None


def _sees_references(viewer: Viewer) -> bool:
    """Operators and admins see Secret parameters' references (they edit them); viewers
    never do (decision 0010 §4), the same line as the API's ``sees_references``."""
    return viewer.may(Role.OPERATOR)


def _shown_job(viewer: Viewer, job: Job) -> Job:
    """The job as ``viewer`` may see it (views.job_for_viewers: the API's rule), masked
    before any template sees it, so no page can show a reference by forgetting to."""
    return job if _sees_references(viewer) else job_for_viewers(job)


def _shown_task(viewer: Viewer, task: Task, job: Job) -> Task:
    """The task as ``viewer`` may see it (views.task_for_viewers: the API's rule)."""
    return task if _sees_references(viewer) else task_for_viewers(task, job)


# -- sign-in -----------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    return RedirectResponse("/runs" if _viewer(request) else "/signin", 303)


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(
    request: Request, next_page: Annotated[str, Query(alias="next")] = "/runs"
) -> Response:
    return _render(request, "signin.html", None, title="Sign in", next=_safe_next(next_page))


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request) -> Response:
    form = await _form(request)
    token = form.get("token", "").strip()
    target = _safe_next(form.get("next", "/runs"))
    sessions = get_sessions(request)
    found = authenticate(_services(request), token) if token else None
    started = None
    if found is not None:
        # A new id at every sign-in (never one the browser brought: no session fixation),
        # and the browser's previous session, if any, ends here.
        sessions.end(request.cookies.get(SESSION_COOKIE))
        try:
            started = sessions.start(found)
        except NotFoundError:
            started = None  # revoked between the check and the insert
    if started is None:
        return _render(
            request,
            "signin.html",
            None,
            status=401,
            title="Sign in",
            next=target,
            error="That token is not valid (revoked or mistyped): paste a token from "
            "`polysync token create`.",
        )
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(
        response,
        started[0],
        secure=request.url.scheme == "https",
        max_age_s=sessions.policy.lifetime_s,
    )
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    # Deleted on the server: the same cookie, replayed, no longer signs anyone in.
    get_sessions(request).end(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/signin", status_code=303)
    clear_session_cookie(response)
    return response


# -- platforms ---------------------------------------------------------------------------

_PLATFORM_FIELDS = (
    "name",
    "account_url",
    "account_name",
    "subscription_id",
    "resource_group",
    "auth",
    "secret_ref",
    "secret_env",
    "secret_file",
    "tenant_id",
    "client_id",
    "certificate_path",
    "verify_tls",
)


def _platform_page(
    request: Request, viewer: Viewer, form: Mapping[str, str], *, status: int = 200, error: str = ""
) -> HTMLResponse:
    svc = _services(request)
    filled = {k: form.get(k, "") for k in _PLATFORM_FIELDS}
    filled.setdefault("auth", AuthMode.SHARED_KEY.value)
    return _render(
        request,
        "platforms.html",
        viewer,
        status=status,
        error=error or None,
        title="Platforms",
        platforms=svc.store.list_platforms(),
        form=filled,
        auth_modes=[m.value for m in AuthMode],
    )


def platform_input(form: Mapping[str, str]) -> platform_service.PlatformInput:
    """The add form → the service's input; the one secret field maps to the mode's flag."""
    try:
        mode = AuthMode(form.get("auth", AuthMode.SHARED_KEY.value))
    except ValueError:
        raise InputError(
            f"authentication {form.get('auth')!r} is not valid: use one of "
            f"{', '.join(m.value for m in AuthMode)}."
        ) from None
    ref = form.get("secret_ref", "").strip() or None
    env = form.get("secret_env", "").strip() or None
    file = form.get("secret_file", "").strip() or None
    secret_fields = {
        AuthMode.SHARED_KEY: "key",
        AuthMode.SERVICE_PRINCIPAL: "client_secret",
        AuthMode.CERTIFICATE: "certificate_password",
        AuthMode.BEARER_TOKEN: "token",
    }.get(mode)
    secrets: dict[str, str | None] = {}
    if secret_fields is not None:
        secrets = {
            f"{secret_fields}_ref": ref,
            f"{secret_fields}_env": env,
            f"{secret_fields}_file": file,
        }
    return platform_service.PlatformInput(
        name=form.get("name", "").strip(),
        account_url=form.get("account_url", "").strip(),
        account_name=form.get("account_name", "").strip(),
        subscription_id=form.get("subscription_id", "").strip(),
        resource_group=form.get("resource_group", "").strip(),
        auth=mode,
        tenant_id=form.get("tenant_id", "").strip() or None,
        client_id=form.get("client_id", "").strip() or None,
        certificate_path=form.get("certificate_path", "").strip() or None,
        verify_tls=form.get("verify_tls") == "1",
        **secrets,
    )


@router.get("/platforms", response_class=HTMLResponse)
async def platforms_page(request: Request) -> Response:
    viewer = _need(request)
    return _platform_page(request, viewer, {"verify_tls": "1"})


@router.post("/platforms", response_class=HTMLResponse)
async def platform_add(request: Request) -> Response:
    viewer = _need(request, Role.ADMIN)
    form = await _form(request)
    try:
        platform = platform_service.add_platform(
            _services(request), platform_input(form), writer=Writer.for_role(viewer.role)
        )
    except PolysyncError as exc:
        return _platform_page(request, viewer, form, status=status_of(exc), error=str(exc))
    return _redirect(
        "/platforms",
        f"Platform {platform.name} added. Check its connectivity, then discover its templates.",
    )


@router.get("/platforms/{name}/discover", response_class=HTMLResponse)
async def discover_page(
    request: Request, name: str, prefix: str = "", offset: str = ""
) -> Response:
    viewer = _need(request)
    svc = _services(request)
    skip = _offset(offset)
    platform = svc.store.get_platform(name)
    own = ids.job_id_prefix(svc.store.installation_id()).lower()
    found = []
    seen = 0
    # Batch lists jobs in pages; read only as far as this page (plus one, for "Next").
    async for d in platform_service.discover(svc, platform.name, id_prefix=prefix or None):
        if d.id.lower().startswith(own):
            continue  # never offer Polysync's own per-run jobs as templates
        seen += 1
        if seen > skip:
            found.append(d)
        if len(found) > DISCOVER_PAGE_SIZE:
            break
    imported = {j.external_id: j.name for j in svc.store.list_jobs(platform.name)}
    return _render(
        request,
        "discover.html",
        viewer,
        title=f"Discover on {platform.name}",
        platform=platform.name,
        prefix=prefix,
        offset=skip,
        limit=DISCOVER_PAGE_SIZE,
        items=found[:DISCOVER_PAGE_SIZE],
        has_more=len(found) > DISCOVER_PAGE_SIZE,
        imported=imported,
    )


@router.post("/platforms/{name}/import", response_class=HTMLResponse)
async def import_templates(request: Request, name: str) -> Response:
    _need(request, Role.OPERATOR)
    form = await request.form()
    chosen = [v for v in form.getlist("external_ids") if isinstance(v, str) and v]
    if not chosen:
        return _redirect(
            _path("platforms", name, "discover"),
            "Tick one or more templates to import.",
            kind="warn",
        )
    outcomes = await job_service.import_jobs(_services(request), name, chosen)
    lines = [
        f"{o.action.value.capitalize()} job {o.job.name} from {o.job.external_id}."
        for o in outcomes
    ]
    for o in outcomes:
        lines.extend(o.changes)
    target = _path("jobs", outcomes[0].job.name) if len(outcomes) == 1 else "/jobs"
    return _redirect(target, *lines)


# -- vaults ------------------------------------------------------------------------------

_VAULT_FIELDS = (
    "name",
    "url",
    "auth",
    "credential",
    "tenant_id",
    "client_id",
    "certificate",
    "ca_bundle",
    "verify_tls",
    "task_secrets",
    "replace",
)
# The one credential field of the form → the service's reference field for that mode.
# shared-key is mapped too, so the service gives its own sentence for it (Entra ID only).
_VAULT_CREDENTIAL = {
    AuthMode.SHARED_KEY: "key_ref",
    AuthMode.SERVICE_PRINCIPAL: "client_secret_ref",
    AuthMode.CERTIFICATE: "certificate_password_ref",
    AuthMode.BEARER_TOKEN: "token_ref",
}
_PATTERN_SEPARATORS = re.compile(r"[\s,]+")


def _vault_form(vault: SecretVault | None) -> dict[str, str]:
    """The add form, empty or filled with ``vault``'s settings (to replace them)."""
    if vault is None:
        return {
            **dict.fromkeys(_VAULT_FIELDS, ""),
            "auth": AuthMode.MANAGED_IDENTITY.value,
            "verify_tls": "1",
            "task_secrets": "*",
        }
    auth = vault.auth
    return {
        "name": vault.name,
        "url": vault.url,
        "auth": auth.mode.value,
        "credential": str(auth.secret) if auth.secret else "",
        "tenant_id": auth.tenant_id or "",
        "client_id": auth.client_id or "",
        "certificate": auth.certificate_path or "",
        "ca_bundle": vault.ca_bundle or "",
        "verify_tls": "1" if vault.verify_tls else "",
        "task_secrets": ", ".join(vault.task_secrets),
        "replace": "1",
    }


def _posted_vault_form(form: Mapping[str, str]) -> dict[str, str]:
    """What a refused form shows again. A credential that is not a reference is not
    echoed back: it is most likely a secret pasted into the wrong field."""
    kept = {k: form.get(k, "") for k in _VAULT_FIELDS}
    if not looks_like_ref(kept["credential"].strip()):
        kept["credential"] = ""
    return kept


def vault_input(form: Mapping[str, str]) -> vault_service.VaultInput:
    """The add form → the service's input (the service validates every field)."""
    try:
        mode = AuthMode(form.get("auth", "") or AuthMode.MANAGED_IDENTITY.value)
    except ValueError:
        raise InputError(
            f"authentication {form.get('auth')!r} is not valid: use one of "
            f"{', '.join(m.value for m in vault_service.VAULT_AUTH_MODES)}."
        ) from None
    credential = form.get("credential", "").strip() or None
    field = _VAULT_CREDENTIAL.get(mode)
    if credential is not None and field is None:
        # Refused rather than dropped: a credential that is silently not used is a
        # surprise the admin finds only when the vault refuses Polysync.
        raise InputError(
            f"authentication {mode.value} takes no credential reference: empty the "
            "Credential reference field, or choose service-principal, certificate or "
            "bearer-token."
        )
    secret = {field: credential} if field is not None else {}
    patterns = tuple(p for p in _PATTERN_SEPARATORS.split(form.get("task_secrets", "")) if p)
    return vault_service.VaultInput(
        name=form.get("name", "").strip(),
        url=form.get("url", "").strip(),
        auth=mode,
        tenant_id=form.get("tenant_id", "").strip() or None,
        client_id=form.get("client_id", "").strip() or None,
        certificate_path=form.get("certificate", "").strip() or None,
        ca_bundle=form.get("ca_bundle", "").strip() or None,
        verify_tls=form.get("verify_tls") == "1",
        task_secrets=patterns,
        **secret,
    )


def _vault_page(
    request: Request,
    viewer: Viewer,
    form: Mapping[str, str],
    *,
    status: int = 200,
    error: str = "",
    checks: Mapping[str, list[VaultCheck]] | None = None,
) -> HTMLResponse:
    svc = _services(request)
    admin = viewer.may(Role.ADMIN)
    found = svc.store.list_vaults()
    return _render(
        request,
        "vaults.html",
        viewer,
        status=status,
        error=error or None,
        title="Secret Vaults",
        # The API's view: where credentials are read from only for admins (0010 §4).
        vaults=[vault_view(v, reveal=admin) for v in found],
        used_by={v.name: svc.store.vault_users(v.name) for v in found} if admin else {},
        checks=checks or {},
        form=form if admin else {},
        auth_modes=[m.value for m in vault_service.VAULT_AUTH_MODES],
    )


@router.get("/vaults", response_class=HTMLResponse)
async def vaults_page(request: Request, edit: str = "") -> Response:
    viewer = _need(request, Role.OPERATOR)
    vault = None
    if edit and viewer.may(Role.ADMIN):
        vault = _services(request).store.get_vault(edit)  # unknown: a 404 page
    return _vault_page(request, viewer, _vault_form(vault))


@router.post("/vaults", response_class=HTMLResponse)
async def vault_save(request: Request) -> Response:
    viewer = _need(request, Role.ADMIN)
    form = await _form(request)
    try:
        vault = vault_service.add_vault(
            _services(request),
            vault_input(form),
            # A console admin is an ADMIN writer, held to the host's allow-list.
            writer=Writer.for_role(viewer.role),
            replace_existing=form.get("replace") == "1",
        )
    except PolysyncError as exc:
        return _vault_page(
            request, viewer, _posted_vault_form(form), status=status_of(exc), error=str(exc)
        )
    return _redirect(
        "/vaults",
        f"Secret Vault {vault.name} saved. Test its connectivity; Secret parameters refer to "
        f"its secrets as vault://{vault.name}/SECRET.",
    )


@router.post("/vaults/{name}/test", response_class=HTMLResponse)
async def vault_test(request: Request, name: str) -> Response:
    # Rendered in place (no redirect): the checks are a report, not a change to keep.
    viewer = _need(request, Role.ADMIN)
    svc = _services(request)
    vault = svc.store.get_vault(name)
    checks = await vault_service.test_vault(svc, vault.name)
    return _vault_page(request, viewer, _vault_form(None), checks={vault.name: checks})


@router.post("/vaults/{name}/delete", response_class=HTMLResponse)
async def vault_remove(request: Request, name: str) -> Response:
    viewer = _need(request, Role.ADMIN)
    try:
        vault_service.remove_vault(_services(request), name)
    except PolysyncError as exc:
        # A plain InputError is "still in use": a conflict, as the API answers it (409).
        status = 409 if type(exc) is InputError else status_of(exc)
        return _vault_page(request, viewer, _vault_form(None), status=status, error=str(exc))
    return _redirect("/vaults", f"Secret Vault {name} removed.")


# -- jobs --------------------------------------------------------------------------------


@router.get("/jobs", response_class=HTMLResponse)
async def jobs_page(request: Request) -> Response:
    viewer = _need(request)
    svc = _services(request)
    counts: dict[str, int] = {}
    for t in svc.store.list_tasks():
        counts[t.job] = counts.get(t.job, 0) + 1
    return _render(
        request, "jobs.html", viewer, title="Jobs", jobs=svc.store.list_jobs(), task_counts=counts
    )


def _job_page(
    request: Request, viewer: Viewer, job: Job, *, status: int = 200, error: str = ""
) -> HTMLResponse:
    svc = _services(request)
    return _render(
        request,
        "job.html",
        viewer,
        status=status,
        error=error or None,
        title=f"Job {job.name}",
        job=_shown_job(viewer, job),
        tasks=svc.store.list_tasks(job=job.name),
        data_types=[t.value for t in DataType],
        directions=[d.value for d in Direction],
        has_output=any(p.direction is Direction.OUTPUT for p in job.parameters),
        **_code_context(svc, viewer),
    )


def _code_context(svc: Services, viewer: Viewer) -> dict[str, Any]:
    """What the job and task pages need to show code-bearing fields read-only (0011)."""
    return {
        "can_code": code_access.may_change_code(svc.settings, viewer.role),
        "code_role": code_access.code_role(svc.settings).value,
        "code_bearing": is_code_bearing_name,
    }


@router.get("/jobs/{name}", response_class=HTMLResponse)
async def job_page(request: Request, name: str) -> Response:
    viewer = _need(request)
    return _job_page(request, viewer, _services(request).store.get_job(name))


@router.post("/jobs/{name}/params", response_class=HTMLResponse)
async def job_param_set(request: Request, name: str) -> Response:
    viewer = _need(request, Role.OPERATOR)
    svc = _services(request)
    form = await _form(request)
    param = form.get("name", "").strip()
    code_access.check_schema_edit(svc, viewer.role, name, param)
    default = form.get("default", "")
    edit = job_service.ParamEdit(
        name=param,
        data_type=form.get("type") or None,
        direction=form.get("direction") or None,
        default=default if default != "" else None,
        clear_default=default == "",
    )
    try:
        _, notices = job_service.set_parameter(svc, name, edit, writer=Writer.for_role(viewer.role))
    except PolysyncError as exc:
        return _job_page(
            request, viewer, svc.store.get_job(name), status=status_of(exc), error=str(exc)
        )
    return _redirect(
        _path("jobs", name) + "#params",
        f"Parameter {param} of job {name} saved.",
        *notices,
        kind="warn" if notices else "ok",
    )


@router.post("/jobs/{name}/params/{param}/delete", response_class=HTMLResponse)
async def job_param_remove(request: Request, name: str, param: str) -> Response:
    viewer = _need(request, Role.OPERATOR)
    svc = _services(request)
    code_access.check_schema_edit(svc, viewer.role, name, param)
    try:
        job_service.remove_parameter(svc, name, param)
    except PolysyncError as exc:
        return _job_page(
            request, viewer, svc.store.get_job(name), status=status_of(exc), error=str(exc)
        )
    return _redirect(_path("jobs", name) + "#params", f"Parameter {param} removed from job {name}.")


_TEXT_OVERRIDES = {
    "command_line": "command-line",
    "image": "image",
    "container_run_options": "run-options",
}


def override_changes(job: Job, form: Mapping[str, str]) -> tuple[dict[str, object], list[str]]:
    """The overrides form → (changes, unsets): an emptied field goes back to the template's."""
    changes: dict[str, object] = {}
    unset: list[str] = []
    current = job.overrides
    for field_name, cli_name in _TEXT_OVERRIDES.items():
        value = form.get(field_name, "").strip()
        if value:
            changes[field_name] = value
        elif getattr(current, field_name) is not None:
            unset.append(cli_name)
    for field_name, cli_name, label in (
        ("max_wall_clock_s", "max-wall-clock", "task maxWallClockTime"),
        ("retention_s", "retention", "task retention"),
    ):
        seconds = _seconds(form.get(cli_name.replace("-", "_"), ""), label)
        if seconds is not None:
            changes[field_name] = seconds
        elif getattr(current, field_name) is not None:
            unset.append(cli_name)
    retries = _int(form.get("max_task_retries", ""), limits.MAX_TASK_RETRIES)
    if retries is not None:
        changes["max_task_retries"] = retries
    elif current.max_task_retries is not None:
        unset.append("max-task-retries")
    return changes, unset


def _posted_overrides(job: Job, form: Mapping[str, str]) -> tuple[dict[str, object], list[str]]:
    """``override_changes`` for the fields the page posted: the code-bearing ones are shown
    read-only (not posted) to roles that may not change code, and then keep their value."""
    changes, unset = override_changes(job, form)
    missing = [f for f in _TEXT_OVERRIDES if f not in form]
    for field_name in missing:
        changes.pop(field_name, None)
    kept = {_TEXT_OVERRIDES[f] for f in missing}
    return changes, [u for u in unset if u not in kept]


@router.post("/jobs/{name}/overrides", response_class=HTMLResponse)
async def job_overrides(request: Request, name: str) -> Response:
    viewer = _need(request, Role.OPERATOR)
    svc = _services(request)
    form = await _form(request)
    job = svc.store.get_job(name)
    try:
        changes, unset = _posted_overrides(job, form)
    except PolysyncError as exc:
        return _job_page(request, viewer, job, status=status_of(exc), error=str(exc))
    dropped = {f: None for f, cli in _TEXT_OVERRIDES.items() if cli in unset}
    code_access.check_job_overrides(svc, viewer.role, name, {**changes, **dropped})
    try:
        tags = [t.strip() for t in form.get("tags", "").split(",") if t.strip()]
        job_service.set_overrides(
            svc,
            name,
            changes=changes,
            unset=unset,
            description=form.get("description", job.description),
            tags=tags,
        )
    except PolysyncError as exc:
        return _job_page(request, viewer, job, status=status_of(exc), error=str(exc))
    return _redirect(_path("jobs", name) + "#overrides", f"Overrides of job {name} saved.")


@router.post("/jobs/{name}/sync", response_class=HTMLResponse)
async def job_sync(request: Request, name: str) -> Response:
    _need(request, Role.OPERATOR)
    outcome = await job_service.sync_job(_services(request), name)
    return _redirect(
        _path("jobs", name),
        f"Job {name} synced from template {outcome.job.external_id}.",
        *outcome.changes,
    )


# -- tasks -------------------------------------------------------------------------------


@router.get("/tasks", response_class=HTMLResponse)
async def tasks_page(request: Request) -> Response:
    viewer = _need(request)
    svc = _services(request)
    jobs = {j.name: j for j in svc.store.list_jobs()}
    tasks = [_shown_task(viewer, t, jobs[t.job]) for t in svc.store.list_tasks()]
    return _render(request, "tasks.html", viewer, title="Tasks", tasks=tasks)


def _task_form(task: Task | None) -> dict[str, Any]:
    if task is None:
        defaults = RetryPolicy()
        return {
            "name": "",
            "params": {},
            "timeout": "",
            "retries": "0",
            "backoff": defaults.backoff.value,
            "retry_delay": _duration(int(defaults.initial_delay_s)),
            "retry_max_delay": _duration(int(defaults.max_delay_s)),
            "priority": "0",
            "description": "",
        }
    r = task.retry_policy
    return {
        "name": task.name,
        "params": dict(task.params),
        "timeout": _duration(task.execution_timeout_s),
        "retries": str(r.max_attempts - 1 if r.enabled else 0),
        "backoff": r.backoff.value,
        "retry_delay": _duration(int(r.initial_delay_s)),
        "retry_max_delay": _duration(int(r.max_delay_s)),
        "priority": str(task.priority),
        "description": task.description,
    }


def _form_values(form: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {k: form.get(k, "") for k in _task_form(None) if k != "params"}
    values["params"] = {k[6:]: v for k, v in form.items() if k.startswith("param:")}
    return values


def retry_policy_from(form: Mapping[str, str]) -> RetryPolicy:
    """Retries / backoff / delays of the task form → a RetryPolicy (as `--retries` etc.)."""
    retries = _int(form.get("retries", ""), limits.RETRIES, default=0) or 0
    try:
        backoff = BackoffStrategy(form.get("backoff", "") or BackoffStrategy.FIXED.value)
    except ValueError:
        raise InputError(
            f"retry backoff {form.get('backoff')!r} is not valid: use Fixed, Linear or Exponential."
        ) from None
    defaults = RetryPolicy()
    initial = _seconds(form.get("retry_delay", ""), "initial retry delay")
    cap = _seconds(form.get("retry_max_delay", ""), "max retry delay")
    return RetryPolicy(
        enabled=retries > 0,
        max_attempts=1 + retries,
        backoff=backoff,
        initial_delay_s=defaults.initial_delay_s if initial is None else float(initial),
        max_delay_s=defaults.max_delay_s if cap is None else float(cap),
    )


def _task_page(
    request: Request,
    viewer: Viewer,
    *,
    job: Job | None,
    task: Task | None,
    form: Mapping[str, Any],
    status: int = 200,
    error: str = "",
) -> HTMLResponse:
    svc = _services(request)
    runs = svc.store.list_runs(task=task.name, limit=10, with_history=False) if task else []
    if job is not None:
        job = _shown_job(viewer, job)
    return _render(
        request,
        "task.html",
        viewer,
        status=status,
        error=error or None,
        title=f"Task {task.name}" if task else "New task",
        job=job,
        task=task,
        jobs=svc.store.list_jobs() if job is None else [],
        form=form,
        backoffs=[b.value for b in BackoffStrategy],
        runs=runs,
        filter_task=task.name if task else "",
        filter_state="",
        insert=True,
        **_code_context(svc, viewer),
    )


@router.get("/tasks/new", response_class=HTMLResponse)
async def task_new_page(request: Request, job: str = "") -> Response:
    viewer = _need(request, Role.OPERATOR)
    chosen = _services(request).store.get_job(job) if job else None
    return _task_page(request, viewer, job=chosen, task=None, form=_task_form(None))


@router.post("/tasks", response_class=HTMLResponse)
async def task_create(request: Request) -> Response:
    viewer = _need(request, Role.OPERATOR)
    svc = _services(request)
    form = await _form(request)
    job = svc.store.get_job(form.get("job", ""))
    values = _form_values(form)
    params = {k: v for k, v in values["params"].items() if v != ""}
    code_access.check_task_params(svc, viewer.role, form.get("name", "").strip(), params, new=True)
    try:
        task = task_service.create_task(
            svc,
            form.get("name", "").strip(),
            job.name,
            params,
            execution_timeout_s=_seconds(form.get("timeout", ""), "execution timeout"),
            retry_policy=retry_policy_from(form),
            priority=_int(form.get("priority", ""), limits.PRIORITY, default=0) or 0,
            description=form.get("description", ""),
            writer=Writer.for_role(viewer.role),
        )
    except PolysyncError as exc:
        return _task_page(
            request, viewer, job=job, task=None, form=values, status=status_of(exc), error=str(exc)
        )
    return _redirect(_path("tasks", task.name), f"Task {task.name} created. Run it with Run once.")


@router.get("/tasks/{name}", response_class=HTMLResponse)
async def task_page(request: Request, name: str) -> Response:
    viewer = _need(request)
    svc = _services(request)
    task = svc.store.get_task(name)
    job = svc.store.get_job(task.job)
    task = _shown_task(viewer, task, job)
    return _task_page(request, viewer, job=job, task=task, form=_task_form(task))


@router.post("/tasks/{name}", response_class=HTMLResponse)
async def task_update(request: Request, name: str) -> Response:
    viewer = _need(request, Role.OPERATOR)
    svc = _services(request)
    task = svc.store.get_task(name)
    job = svc.store.get_job(task.job)
    form = await _form(request)
    values = _form_values(form)
    set_params = {k: v for k, v in values["params"].items() if v != "" and task.params.get(k) != v}
    unset = [k for k, v in values["params"].items() if v == "" and k in task.params]
    code_access.check_task_params(svc, viewer.role, name, set_params, unset)
    try:
        timeout = _seconds(form.get("timeout", ""), "execution timeout")
        task_service.update_task(
            svc,
            name,
            set_params=set_params,
            unset_params=unset,
            execution_timeout_s=timeout,
            clear_timeout=timeout is None,
            retry_policy=retry_policy_from(form),
            priority=_int(form.get("priority", ""), limits.PRIORITY, default=0),
            description=form.get("description", ""),
            writer=Writer.for_role(viewer.role),
        )
    except PolysyncError as exc:
        return _task_page(
            request, viewer, job=job, task=task, form=values, status=status_of(exc), error=str(exc)
        )
    return _redirect(_path("tasks", name), f"Task {name} saved.")


@router.post("/tasks/{name}/run", response_class=HTMLResponse)
async def task_run(request: Request, name: str) -> Response:
    viewer = _need(request, Role.OPERATOR)
    run = run_service.start_run(
        _services(request),
        name,
        writer=Writer.for_role(viewer.role),
        owner=run_owner(request),
    )
    follow_run(request, run.id)  # wake the worker (or follow it here without one)
    return _redirect(f"/runs/{run.id}", f"Run {run.id} of task {name} queued.")


# -- runs --------------------------------------------------------------------------------


def _run_state(value: str) -> RunState | None:
    if not value:
        return None
    try:
        return RunState(value)
    except ValueError:
        raise InputError(
            f"state {value!r} is not a run state: use one of "
            f"{', '.join(s.value for s in RunState)}."
        ) from None


@router.get("/runs", response_class=HTMLResponse)
async def runs_page(
    request: Request, task: str = "", state: str = "", offset: str = ""
) -> Response:
    viewer = _need(request)
    svc = _services(request)
    wanted = _run_state(state)
    skip = _offset(offset)
    runs = svc.store.list_runs(
        task=task or None, state=wanted, limit=PAGE_SIZE, offset=skip, with_history=False
    )
    total = svc.store.count_runs(task=task or None, state=wanted)

    def page_url(at: int) -> str:
        query = {k: v for k, v in (("task", task), ("state", state)) if v}
        query["offset"] = str(max(at, 0))
        return "/runs?" + urlencode(query)

    return _render(
        request,
        "runs.html",
        viewer,
        title="Runs",
        runs=runs,
        total=total,
        offset=skip,
        limit=PAGE_SIZE,
        page_url=page_url,
        task_names=sorted(t.name for t in svc.store.list_tasks()),
        states=[s.value for s in RunState],
        filter_task=task,
        filter_state=state,
        insert=skip == 0,
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str) -> Response:
    viewer = _need(request)
    run = _services(request).store.get_run(_run_id(run_id))
    return _render(request, "run.html", viewer, title=f"Run {run.id}", run=run)


@router.post("/runs/{run_id}/cancel", response_class=HTMLResponse)
async def run_cancel(request: Request, run_id: str) -> Response:
    # The page's script cancels through the API; this is the same without JavaScript.
    _need(request, Role.OPERATOR)
    number = _run_id(run_id)
    result = await run_service.cancel_run(_services(request), number)
    return _redirect(f"/runs/{number}", result.message)
