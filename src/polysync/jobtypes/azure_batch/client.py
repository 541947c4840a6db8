"""The one module that imports ``azure.batch`` (D1): an async adapter over the SDK.

``BatchApi`` wraps one ``azure.batch.aio.BatchClient`` for one Platform and speaks
wire-shaped JSON (REST property names) to the rest of Polysync, so plans and decoders stay
pure. Every SDK or transport failure leaves this module as a ``polysync.errors`` type whose
message names the platform, the ids and what to check next (``translate``):

    403 / 401 / token failure          AuthenticationError
    429 / 503 after the SDK's retries  ThrottledError(retry_after_s=...)
    409 ActiveJobAndScheduleQuotaReached  QuotaError
    cannot connect / broken response   PlatformError naming the URL
    anything else                      PlatformError(status=..., batch_code=...)

Callers branch on ``PlatformError.batch_code`` (``JobExists``, ``TaskCompleted``,
``JobNotFound``...), which is Batch's own error code.

Workarounds for azure-batch 15.1.0 defects (NOTES.md §11.7):
  1. ``begin_terminate_job`` always gets options (``{"terminateReason": ...}``);
  2. ``pool_exists`` is never used (it raises on 404): ``get_pool`` + 404 instead;
  5. no ``If-Match`` is ever sent (it turns every error into ResourceModifiedError);
  7. the terminate LRO poller is never awaited: it swallows errors and polls every 5 s.
Retries are azure-core's (NOTES.md §9.4) with a modest ``retry_total``.

CPU per call (docs/decisions/0007-lean-sdk-pipeline.md): the SDK client runs over our own
aiohttp session (``trust_env=False``; the environment's proxy is resolved once, here) and an
explicit policy list without tracing and redirects; bodies go out as the wire-shaped dicts
they already are, and single GETs are read as JSON without building SDK models.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import hmac
import json
import logging
import netrc
import os
import ssl
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NoReturn, Protocol
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import aiohttp
from azure.batch import __version__ as _SDK_VERSION
from azure.batch._patch import BatchSharedKeyAuthPolicy
from azure.batch.aio import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DecodeError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
    StreamClosedError,
    StreamConsumedError,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import (
    AsyncBearerTokenCredentialPolicy,
    AsyncHTTPPolicy,
    AsyncRetryPolicy,
    CustomHookPolicy,
    HeadersPolicy,
    HttpLoggingPolicy,
    NetworkTraceLoggingPolicy,
    ProxyPolicy,
    RequestIdPolicy,
    SansIOHTTPPolicy,
    UserAgentPolicy,
)
from azure.core.pipeline.transport import AioHttpTransport
from azure.core.rest import AsyncHttpResponse, HttpRequest

from polysync.domain.models import Platform
from polysync.errors import (
    AuthenticationError,
    ConfigError,
    PlatformError,
    QuotaError,
    ThrottledError,
)
from polysync.jobtypes.azure_batch.credentials import (
    BATCH_SCOPE,
    BuiltCredential,
    connection_verify,
)

JSON = dict[str, Any]


class _QuietFailsafe(logging.Filter):
    """Drop the SDK's "failsafe deserialization" warning and its traceback.

    Error responses without a JSON body (any HEAD, and errors of streamed file downloads)
    make azure-batch log a full traceback at WARNING before raising the very error we
    handle (NOTES.md §9.3: harmless). Left alone it would print on every
    `run logs --follow` of a task that has not started yet.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Ran into a deserialization error")


logging.getLogger("azure.batch._utils.model_base").addFilter(_QuietFailsafe())
log = logging.getLogger(__name__)

DEFAULT_RETRY_TOTAL = 3
DEFAULT_RETRY_BACKOFF_S = 0.5
_AUTH_CODES = frozenset(
    {"AuthenticationFailed", "InsufficientAccountPermissions", "AccountIsDisabled", "Forbidden"}
)
_THROTTLE_CODES = frozenset({"ServerBusy", "TooManyRequests"})


def normalize_endpoint(url: str) -> str:
    """The account URL as the SDK wants it: with a scheme, no trailing slash."""
    url = url.strip()
    if "://" not in url:
        url = "https://" + url
    return url.rstrip("/")


# --------------------------------------------------------------------------- errors


def _first_line(text: str) -> str:
    # Batch appends "\nRequestId:...\nTime:..." to every message (NOTES.md §9.1).
    return text.strip().splitlines()[0].strip() if text and text.strip() else ""


def _header(exc: HttpResponseError, name: str) -> str | None:
    response = exc.response
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get(name)
    return str(value) if value is not None else None


def _retry_after_s(exc: HttpResponseError) -> float | None:
    raw = _header(exc, "Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        when = email.utils.parsedate_to_datetime(raw) if raw else None
        return max(0.0, when.timestamp() - time.time()) if when is not None else None


def batch_code_of(exc: HttpResponseError) -> str | None:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    return str(code) if code else None


def translate(exc: BaseException, platform: Platform, action: str) -> PlatformError:
    """An SDK/transport exception → the polysync error for ``action`` on ``platform``."""
    where = f"platform {platform.name!r}"
    url = normalize_endpoint(platform.account_url)
    if isinstance(exc, DecodeError | ValueError):
        # A 2xx whose body is not Batch's JSON: typically a proxy or sign-in page answering.
        return PlatformError(
            f"the Batch account URL {url} of {where} answered {action} with a body that is not "
            f"Batch JSON ({_first_line(str(exc))}): check the URL and any proxy in between.",
            code="BadResponse",
        )
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        status = exc.status_code
        code = batch_code_of(exc)
        error = getattr(exc, "error", None)
        detail = _first_line(str(getattr(error, "message", "") or "")) or _first_line(
            exc.reason or ""
        )
        request_id = _header(exc, "request-id")
        if status in (401, 403) or code in _AUTH_CODES:
            return AuthenticationError(
                f"the Batch account {platform.account_name!r} of {where} refused the credential "
                f"while {action} ({code or status}: {detail}): check the key or the role "
                f"assignment, and `polysync platform test {platform.name}`.",
                status=status,
                batch_code=code,
                request_id=request_id,
            )
        if status in (429, 503) or code in _THROTTLE_CODES:
            retry_after = _retry_after_s(exc)
            wait = f" (it asks to wait {retry_after:g} s)" if retry_after is not None else ""
            return ThrottledError(
                f"Azure Batch is throttling {where} while {action}{wait}: try again later; "
                "Polysync retries queued runs by itself.",
                retry_after_s=retry_after,
                status=status,
                batch_code=code,
                request_id=request_id,
            )
        if code == "ActiveJobAndScheduleQuotaReached":
            return QuotaError(
                f"the Batch account {platform.account_name!r} of {where} has reached its active "
                f"job quota while {action}: wait for running jobs to finish, terminate old ones, "
                "or raise the quota in the Azure portal.",
                status=status,
                batch_code=code,
                request_id=request_id,
            )
        return PlatformError(
            f"Azure Batch refused {action} on {where} ({code or status}: {detail}).",
            status=status,
            batch_code=code,
            request_id=request_id,
        )
    if isinstance(exc, ClientAuthenticationError):
        # No HTTP status: azure-identity could not get a token at all.
        return AuthenticationError(
            f"could not get an Entra ID token for {where} while {action} "
            f"({_first_line(exc.message or '')}): check the tenant, client id and secret or "
            "certificate, or sign in again (`az login`) for the default chain.",
        )
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return PlatformError(
            f"could not reach the Batch account URL {url} of {where} while {action} "
            f"({_first_line(str(exc.message or exc))}): check the URL, the network and TLS "
            "settings (--ca-bundle / --insecure for the emulator).",
            code="Unreachable",
        )
    if isinstance(exc, AzureError):
        return PlatformError(
            f"Azure Batch call failed for {where} while {action} ({_first_line(exc.message)})."
        )
    return PlatformError(f"unexpected failure for {where} while {action}: {exc!r}.")


# --------------------------------------------------------------------------- call metrics


class CallObserver(Protocol):
    """Told about every HTTP request the SDK sends (each retry too) and every response."""

    def request(self, platform: str, operation: str) -> None: ...

    def response(self, platform: str, operation: str, status: int) -> None: ...


_OPERATION_KEY = "polysync_operation"
_ID_SEGMENTS = {
    "jobs": "{jobId}",
    "tasks": "{taskId}",
    "pools": "{poolId}",
    "nodes": "{nodeId}",
    "files": "{path}",
}


def operation_name(method: str, path: str) -> str:
    """``GET /jobs/ps-x-r1-a1/tasks/t`` → ``GET /jobs/{jobId}/tasks/{taskId}``. Pure.

    Ids are replaced by placeholders so metrics have a handful of labels, not one per run.
    """
    parts = [p for p in (unquote(path) if "%" in path else path).split("/") if p]
    out: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        out.append(part)
        placeholder = _ID_SEGMENTS.get(part)
        if placeholder is not None and i + 1 < len(parts):
            if part == "files":  # a file path may hold slashes: the rest is the path
                out.append(placeholder)
                break
            out.append(placeholder)
            i += 1
        i += 1
    return f"{method.upper()} /{'/'.join(out)}"


def _hooks(platform: str, observer: CallObserver) -> dict[str, Any]:
    """azure-core's CustomHookPolicy sits inside the retry loop: one call per HTTP try.

    The operation's name is worked out once per call and kept in the pipeline context,
    which the request and its response (and every retry) share.
    """

    def name_of(request: Any) -> str:
        context = request.context
        name: str | None = context.get(_OPERATION_KEY)
        if name is None:
            http = request.http_request
            url: str = http.url
            start = url.find("/", url.find("://") + 3)  # the path, without urlsplit's work
            path = url[start:].split("?", 1)[0] if start >= 0 else "/"
            name = context[_OPERATION_KEY] = operation_name(http.method, path)
        return name

    def on_request(request: Any) -> None:
        observer.request(platform, name_of(request))

    def on_response(response: Any) -> None:
        observer.response(platform, name_of(response), int(response.http_response.status_code))

    return {"raw_request_hook": on_request, "raw_response_hook": on_response}


# --------------------------------------------------------------------------- transport


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url``, chosen as aiohttp's ``trust_env`` does.

    ``HTTPS_PROXY`` / ``HTTP_PROXY`` by the URL's scheme and ``NO_PROXY`` through urllib's
    ``getproxies`` / ``proxy_bypass`` (the functions aiohttp itself calls); credentials from
    ``$NETRC`` or ``~/.netrc`` for the proxy host when its URL carries none; an ``https://``
    proxy URL ignored with a warning, as aiohttp does. BatchApi calls this once: with
    ``trust_env`` aiohttp repeated it, netrc parsing included, in a thread-pool hop on every
    request (decision 0007).
    """
    parts = urlsplit(url)
    host = parts.hostname
    if host and urllib.request.proxy_bypass(host):
        return None
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy:
        return None
    found = urlsplit(proxy)
    if found.scheme in ("https", "wss"):
        log.warning("%s proxies are not supported by aiohttp; ignoring %s", found.scheme, proxy)
        return None
    if found.username is None and found.hostname:
        login = _netrc_login(found.hostname)
        if login is not None:
            user, password = (quote(part, safe="") for part in login)
            proxy = urlunsplit(found._replace(netloc=f"{user}:{password}@{found.netloc}"))
    return proxy


def _netrc_login(host: str) -> tuple[str, str] | None:
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None
    if entry is None:
        return None
    login, account, password = entry
    return (login or account or "", password or "")


class _ReadErrorBody(AsyncHTTPPolicy[Any, Any]):
    """Load the body of every non-2xx response, streamed requests included.

    ``BatchExceptionPolicy`` builds ``e.model`` from the body and ``HttpResponseError``
    parses ``e.error`` from it again (NOTES.md §9.3). On a streamed response nobody has read
    the body by then, so both would be None and ``batch_code_of`` would lose "TaskNotFound".
    Our single GETs stream (to skip the SDK's models), so error bodies are read here, inside
    the retry loop, which also releases a retried try's connection at once.
    """

    async def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
        response = await self.next.send(request)
        http = response.http_response
        if not 200 <= http.status_code < 300:
            # A HEAD, or a body the transport already consumed: nothing to load.
            with contextlib.suppress(StreamConsumedError, StreamClosedError):
                await http.read()
        return response


class _SansIOChain(AsyncHTTPPolicy[Any, Any]):
    """Adjacent SansIO policies run as one pipeline step, keeping their order and protocol.

    azure-core gives every SansIO policy a runner of its own: one more coroutine and two
    awaits (each with an ABC isinstance check) per policy per try, a measurable share of a
    call with the seven or eight we keep (decision 0007). This is that runner's protocol for
    a run of them: ``on_request`` in list order, ``on_response`` in reverse, and ``on_exception`` on
    each policy whose ``on_request`` ran when anything after it fails.
    """

    def __init__(self, policies: Sequence[SansIOHTTPPolicy[Any, Any]]) -> None:
        super().__init__()
        self.policies = tuple(policies)

    async def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
        policies = self.policies
        started = 0
        try:
            for policy in policies:
                pending = policy.on_request(request)
                if pending is not None:
                    await pending
                started += 1
            response = await self.next.send(request)
            for index in range(len(policies) - 1, -1, -1):
                started = index  # if this on_response fails, the outer ones hear of it
                pending = policies[index].on_response(request, response)
                if pending is not None:
                    await pending
        except Exception:
            for policy in reversed(policies[:started]):
                pending = policy.on_exception(request)
                if pending is not None:
                    await pending
            raise
        return response


def _chained(policies: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    run: list[SansIOHTTPPolicy[Any, Any]] = []
    for policy in policies:
        if isinstance(policy, SansIOHTTPPolicy):
            run.append(policy)
            continue
        if run:
            out.append(_SansIOChain(run))
            run = []
        out.append(policy)
    if run:
        out.append(_SansIOChain(run))
    return out


def build_policies(
    credential: BuiltCredential, *, proxies: Mapping[str, str] | None, **options: Any
) -> list[Any]:
    """The pipeline the SDK client runs, policy by policy (decision 0007 says why each).

    azure-core puts the SDK's per-call ``BatchExceptionPolicy`` in front of an explicit list,
    so it still turns every non-2xx answer into the exceptions of NOTES.md §9.3, after the
    retries. ``options`` are what BatchClient would hand each policy (retry settings, hooks,
    ``logging_enable``, ``user_agent``...).
    """
    auth: Any
    if isinstance(credential.credential, AzureNamedKeyCredential):
        # What azure.batch.aio.BatchClient does for a named key (NOTES.md §3.2).
        auth = _SharedKeyPolicy(credential.credential)
    else:
        auth = AsyncBearerTokenCredentialPolicy(credential.credential, BATCH_SCOPE, **options)
    policies: list[Any] = [
        RequestIdPolicy(**{**options, "request_id_header_name": "client-request-id"}),
        HeadersPolicy(**options),
        UserAgentPolicy(**{"sdk_moniker": f"batch/{_SDK_VERSION}", **options}),
    ]
    if proxies:
        policies.append(ProxyPolicy(proxies=dict(proxies)))
    policies += [
        AsyncRetryPolicy(**options),  # honours Retry-After (NOTES.md §9.4)
        auth,
        CustomHookPolicy(**options),  # inside the retry loop: our observer sees every try
        NetworkTraceLoggingPolicy(**options),
        HttpLoggingPolicy(**options),
        _ReadErrorBody(),
    ]
    return _chained(policies)


_JSON_CONTENT_TYPE = "application/json; odata=minimalmetadata"  # what the SDK sends


class _SharedKeyPolicy(BatchSharedKeyAuthPolicy):
    """The SDK's Shared Key signing, with the account key decoded once, not per request.

    The string to sign and the signature are the SDK's own (``on_request`` is inherited);
    only ``_sign_string``'s base64 decoding of the key moves to construction.
    """

    def __init__(self, credential: AzureNamedKeyCredential) -> None:
        super().__init__(credential)
        self._key_bytes = base64.b64decode(credential.named_key.key)

    def _sign_string(self, string_to_sign: str) -> str:
        digest = hmac.new(self._key_bytes, string_to_sign.encode("utf-8"), hashlib.sha256)
        return base64.b64encode(digest.digest()).decode("utf-8")


def _ssl_context(platform: Platform, ca_bundle: str) -> ssl.SSLContext:
    """The platform's CA bundle as an SSL context; a clear error if it cannot be loaded."""
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"platform {platform.name!r}: cannot load its CA bundle {ca_bundle} ({reason}); "
            "restore the file, or remove the platform and add it again with a valid "
            "--ca-bundle."
        ) from exc


def _segment(value: str) -> str:
    """An id as one URL path segment, quoted as the generated methods quote it."""
    return quote(value, safe="")


async def _json_object(response: AsyncHttpResponse) -> JSON:
    """The body of a streamed 200 as the wire dict (what ``model.as_dict()`` returned)."""
    content = await response.read()
    try:
        # Straight from bytes: json detects UTF-8 (and a BOM) itself, where response.json()
        # first parses the Content-Type's charset with the email package on every call.
        data = json.loads(content)
    except ValueError as exc:
        raise DecodeError("the response body is not JSON", response=response, error=exc) from exc
    if not isinstance(data, dict):
        raise DecodeError("the response body is not a JSON object", response=response)
    return data


# Read-only properties (visibility "read") inside the bodies we send: the SDK's models
# dropped them when serialising (``exclude_readonly``), so the plain dicts drop them too. A
# template's autoPoolSpecification copied into a run's job can carry ``exactVersion``.
_IMAGE_EXACT_VERSION = ("virtualMachineConfiguration", "imageReference", "exactVersion")
_JOB_READONLY = ("poolInfo", "autoPoolSpecification", "pool", *_IMAGE_EXACT_VERSION)


def _without_property(body: Mapping[str, Any], path: Sequence[str]) -> JSON:
    """``body`` less the property at ``path``; copies only the dicts on the way to it."""
    out = body if isinstance(body, dict) else dict(body)
    head = path[0]
    if len(path) == 1:
        return {k: v for k, v in out.items() if k != head} if head in out else out
    child = out.get(head)
    if not isinstance(child, Mapping):
        return out
    trimmed = _without_property(child, path[1:])
    return out if trimmed is child else {**out, head: trimmed}


# --------------------------------------------------------------------------- adapter


@dataclass(frozen=True, slots=True)
class Versioned:
    """A resource read with its ETag (for conditional re-reads)."""

    body: JSON
    etag: str | None


class BatchApi:
    """One Batch account (one Platform), one SDK client. Close with ``aclose()``.

    Build it inside the event loop that will use it: its aiohttp session belongs to that loop
    (``BatchJobType.api`` does).
    """

    def __init__(
        self,
        platform: Platform,
        credential: BuiltCredential,
        *,
        retry_total: int = DEFAULT_RETRY_TOTAL,
        retry_backoff_factor: float = DEFAULT_RETRY_BACKOFF_S,
        observer: CallObserver | None = None,
        **client_kwargs: Any,
    ) -> None:
        self.platform = platform
        self.endpoint = normalize_endpoint(platform.account_url)
        self._credential = credential
        # Resolved once, for the one URL this client talks to (trust_env=False below).
        self.proxy = env_proxy(self.endpoint)
        scheme = urlsplit(self.endpoint).scheme
        options: dict[str, Any] = dict(client_kwargs)
        if observer is not None:
            options = {**_hooks(platform.name, observer), **options}
        transport = options.pop("transport", None)
        policies = build_policies(
            credential,
            proxies={scheme: self.proxy} if self.proxy else None,
            retry_total=retry_total,
            retry_backoff_factor=retry_backoff_factor,
            **options,
        )
        self._session: aiohttp.ClientSession | None = None
        if transport is None:
            verify = connection_verify(platform)
            connector: aiohttp.TCPConnector | None = None
            if isinstance(verify, str):
                # Given a CA bundle path, azure-core builds an SSL context (reading the
                # file) for every request; one for the session's life does the same job.
                connector = aiohttp.TCPConnector(ssl=_ssl_context(platform, verify))
                verify = True  # azure-core then leaves the connector's context alone
            # What azure-core would build (no cookies; azure-core decompresses) but for
            # trust_env: with it aiohttp re-read the proxy variables and ~/.netrc, in a
            # thread-pool hop, on every request (decision 0007).
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
            transport = AioHttpTransport(
                session=self._session,
                session_owner=False,  # ours: aclose() closes it
                connection_verify=verify,
            )
        self._client = BatchClient(
            endpoint=self.endpoint,
            credential=credential.credential,
            transport=transport,
            policies=policies,
            **options,
        )
        # NOTES.md §3.3: a token credential over plain http (the emulator without --tls)
        # is refused by azure-core unless each call says enforce_https=False.
        # The generated client's api-version (its ``api_version`` keyword), which every
        # request sent through ``send_request`` must carry itself.
        self._api_version: str = self._client._config.api_version
        self._kw: dict[str, Any] = {}
        if credential.is_token and scheme == "http":
            self._kw["enforce_https"] = False

    async def aclose(self) -> None:
        try:
            await self._client.close()
        finally:
            try:
                if self._session is not None:
                    await self._session.close()
            finally:
                await self._credential.close()

    async def __aenter__(self) -> BatchApi:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _fail(self, exc: BaseException, action: str) -> NoReturn:
        raise translate(exc, self.platform, action) from exc

    # ---- jobs

    async def list_jobs(
        self,
        *,
        select: Sequence[str] | None = None,
        filter: str | None = None,
        max_results: int | None = None,
    ) -> AsyncIterator[JSON]:
        """``GET /jobs`` following ``odata.nextLink`` page by page (streams).

        Sent with the SDK client's ``send_request`` (same pipeline: signing, retries, the
        call hooks, error mapping) rather than its pager, which builds a model for every
        job of every page that ``as_dict()`` would only turn back into this JSON. The
        worker's sweep lists each finished run's job a few times (its 5 s margin), so at
        thousands of runs that conversion was a sixth of the worker's CPU (decision 0007).
        """
        async for job in self._list("/jobs", "listing jobs", select, filter, max_results):
            yield job

    async def list_nodes(
        self,
        pool_id: str,
        *,
        select: Sequence[str] | None = None,
        filter: str | None = None,
        max_results: int | None = None,
    ) -> AsyncIterator[JSON]:
        """``GET /pools/{id}/nodes``, all pages, as wire JSON (the worker's node sweep)."""
        path = f"/pools/{_segment(pool_id)}/nodes"
        action = f"listing the nodes of pool {pool_id}"
        async for node in self._list(path, action, select, filter, max_results):
            yield node

    async def _list(
        self,
        path: str,
        action: str,
        select: Sequence[str] | None,
        filter: str | None,
        max_results: int | None,
    ) -> AsyncIterator[JSON]:
        """A list operation, following ``odata.nextLink`` page by page (streams)."""
        params: dict[str, str] = {}
        if select:
            params["$select"] = ",".join(select)
        if filter:
            params["$filter"] = filter
        if max_results is not None:
            params["maxresults"] = str(max_results)
        url: str | None = path
        try:
            while url is not None:
                page = await self._page(url, params)
                params = {}  # the next link carries the query (NOTES.md §5)
                for item in page.get("value") or ():
                    if isinstance(item, dict):
                        yield item
                link = page.get("odata.nextLink")
                url = str(link) if link else None
        except (AzureError, ValueError) as exc:  # ValueError: a page that is not JSON
            self._fail(exc, action)

    async def _page(self, url: str, params: Mapping[str, str]) -> JSON:
        """One ``GET`` of a list (``url`` relative to the account, or a ``nextLink``)."""
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        query.update(params)
        # The SDK's pager sets its api-version on every page, nextLinks included; so do we.
        base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return await _json_object(await self._send("GET", base, query, stream=True))

    async def _send(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        *,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> AsyncHttpResponse:
        """One request through the SDK client's own pipeline (``send_request``).

        The hot per-run operations (the three create calls, the polls' GETs) go this way
        rather than through the generated methods: those rebuild every URL, query and
        header with a generic serializer and parse every response header, which cost as
        much CPU as the whole pipeline (decision 0007). Signing, retries, the call hooks
        and the SDK's error mapping (a non-2xx raises ``HttpResponseError`` with Batch's
        code) are the pipeline's and stay exactly as they are. Requests are what the
        generated methods send: same path quoting, api-version, Accept and content type,
        and the body as ``json.dumps`` writes it.
        """
        # Ours last: a nextLink's own api-version is replaced, as the SDK's pager does.
        params = {**(query or {}), "api-version": self._api_version}
        base = path if "://" in path else f"{self.endpoint}{path}"  # nextLinks are absolute
        url = f"{base}?{urlencode(params, quote_via=quote)}"
        # ocp-date set here as the generated methods' ``ocp_date`` would: the signing
        # policy otherwise formats it with the SDK's generic serializer on every request.
        # client-request-id too (RequestIdPolicy keeps one that is set): uuid4 costs a
        # quarter of the uuid1 the policy would make, on every call.
        fields = {
            "Accept": "application/json",
            "ocp-date": email.utils.formatdate(usegmt=True),
            "client-request-id": str(uuid.uuid4()),
            **(headers or {}),
        }
        content: str | None = None
        if body is not None:
            fields["content-type"] = _JSON_CONTENT_TYPE
            content = json.dumps(body)
        request = HttpRequest(method, url, headers=fields, content=content)
        # The generated client's own pipeline client (``_client``): its public
        # ``send_request`` runs the same pipeline, where BatchClient.send_request would
        # first deep-copy every request only to put the endpoint in front of its path.
        pipeline_client = self._client._client
        response: AsyncHttpResponse = await pipeline_client.send_request(
            request, stream=stream, **self._kw
        )
        return response

    async def get_job(
        self,
        job_id: str,
        *,
        select: Sequence[str] | None = None,
        if_none_match: str | None = None,
    ) -> Versioned | None:
        """``GET /jobs/{id}``; None when ``if_none_match`` still matches (304)."""
        return await self._get(
            "job", job_id, f"/jobs/{_segment(job_id)}", select=select, if_none_match=if_none_match
        )

    async def create_job(self, body: Mapping[str, Any]) -> None:
        try:
            await self._send("POST", "/jobs", body=_without_property(body, _JOB_READONLY))
        except AzureError as exc:
            self._fail(exc, f"creating Batch job {body.get('id')!r}")

    async def update_job(self, job_id: str, patch: Mapping[str, Any]) -> None:
        try:
            path = f"/jobs/{_segment(job_id)}"
            await self._send("PATCH", path, body=_without_property(patch, _JOB_READONLY))
        except AzureError as exc:
            self._fail(exc, f"updating Batch job {job_id!r}")

    async def terminate_job(self, job_id: str, reason: str) -> None:
        """``POST /jobs/{id}/terminate`` (202). Does not wait for ``completed``.

        SDK defect §11.7.1: options are mandatory. §11.7.7: the returned poller would poll
        every 5 s and swallow its errors, so it is dropped unawaited; callers re-read.
        """
        try:
            await self._client.begin_terminate_job(
                job_id,
                {"terminateReason": reason},  # type: ignore[arg-type]  # the options model is not exported (NOTES §11.4); the SDK serialises this dict
                **self._kw,
            )
        except AzureError as exc:
            self._fail(exc, f"terminating Batch job {job_id!r}")

    # ---- tasks

    async def create_task(self, job_id: str, body: Mapping[str, Any]) -> None:
        try:
            await self._send("POST", f"/jobs/{_segment(job_id)}/tasks", body=body)
        except AzureError as exc:
            self._fail(exc, f"adding task {body.get('id')!r} to Batch job {job_id!r}")

    async def get_task(
        self,
        job_id: str,
        task_id: str,
        *,
        select: Sequence[str] | None = None,
        if_none_match: str | None = None,
    ) -> Versioned | None:
        return await self._get(
            "task",
            f"{job_id}/{task_id}",
            f"/jobs/{_segment(job_id)}/tasks/{_segment(task_id)}",
            select=select,
            if_none_match=if_none_match,
        )

    async def first_task(self, job_id: str, *, select: Sequence[str] | None = None) -> JSON | None:
        """``GET /jobs/{id}/tasks?maxresults=1`` → the first task, or None."""
        try:
            pages = self._client.list_tasks(
                job_id, max_results=1, select=list(select) if select else None, **self._kw
            )
            async for task in pages:
                return task.as_dict()
        except (AzureError, ValueError) as exc:  # ValueError: a page that is not JSON
            self._fail(exc, f"reading the first task of Batch job {job_id!r}")
        return None

    async def terminate_task(self, job_id: str, task_id: str) -> None:
        try:
            await self._client.terminate_task(job_id, task_id, **self._kw)
        except AzureError as exc:
            self._fail(exc, f"terminating task {task_id!r} of Batch job {job_id!r}")

    async def file_size(self, job_id: str, task_id: str, path: str) -> int:
        """``HEAD /jobs/{j}/tasks/{t}/files/{path}`` → its length in bytes."""
        try:
            props = await self._client.get_task_file_properties(job_id, task_id, path, **self._kw)
        except AzureError as exc:
            self._fail(exc, f"reading the size of {path} of task {job_id}/{task_id}")
        return int(props.content_length or 0)

    async def read_file(
        self, job_id: str, task_id: str, path: str, *, start: int, end: int
    ) -> bytes:
        """Bytes ``start..end`` (inclusive) of a task file, via ``ocp-range``."""
        try:
            stream = await self._client.download_task_file(
                job_id, task_id, path, ocp_range=f"bytes={start}-{end}", **self._kw
            )
            chunks = [chunk async for chunk in stream]
        except AzureError as exc:
            self._fail(exc, f"reading {path} of task {job_id}/{task_id}")
        return b"".join(chunks)

    # ---- pools

    async def get_pool(self, pool_id: str, *, select: Sequence[str] | None = None) -> JSON:
        """``GET /pools/{id}`` (never ``pool_exists``: SDK defect §11.7.2)."""
        got = await self._get(
            "pool", pool_id, f"/pools/{_segment(pool_id)}", select=select, if_none_match=None
        )
        return got.body if got is not None else {}  # no If-None-Match sent: never a 304

    async def create_pool(self, body: Mapping[str, Any]) -> None:
        """``POST /pools`` (used by the demo set-up; Polysync itself never creates pools)."""
        try:
            await self._client.create_pool(
                _without_property(body, _IMAGE_EXACT_VERSION),  # type: ignore[arg-type]  # a wire dict, not a model (decision 0007)
                **self._kw,
            )
        except AzureError as exc:
            self._fail(exc, f"creating pool {body.get('id')!r}")

    async def first_pool(self) -> JSON | None:
        try:
            async for pool in self._client.list_pools(max_results=1, select=["id"], **self._kw):
                return pool.as_dict()
        except (AzureError, ValueError) as exc:  # ValueError: a page that is not JSON
            self._fail(exc, "listing pools")
        return None

    # ---- helpers

    async def _get(
        self,
        kind: str,
        ident: str,
        path: str,
        *,
        select: Sequence[str] | None,
        if_none_match: str | None,
    ) -> Versioned | None:
        query = {"$select": ",".join(select)} if select else None
        # If-None-Match (never If-Match: SDK defect §11.7.5); 304 means "unchanged".
        headers = {"If-None-Match": if_none_match} if if_none_match else None
        try:
            # Read as JSON: a models.BatchTask/BatchJob/BatchPool would only be turned back
            # into this very JSON by as_dict() (decision 0007).
            response = await self._send("GET", path, query, headers=headers, stream=True)
            body = await _json_object(response)
        except HttpResponseError as exc:
            if if_none_match and exc.status_code == 304:
                return None
            self._fail(exc, f"reading {kind} {ident!r}")
        except AzureError as exc:
            self._fail(exc, f"reading {kind} {ident!r}")
        etag = response.headers.get("ETag")
        return Versioned(body, etag or body.get("eTag"))
