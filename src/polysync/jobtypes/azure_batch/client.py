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
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NoReturn, Protocol
from urllib.parse import unquote, urlsplit

from azure.batch import models
from azure.batch.aio import BatchClient
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from polysync.domain.models import Platform
from polysync.errors import (
    AuthenticationError,
    PlatformError,
    QuotaError,
    ThrottledError,
)
from polysync.jobtypes.azure_batch.credentials import BuiltCredential, connection_verify

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


_ID_SEGMENTS = {"jobs": "{jobId}", "tasks": "{taskId}", "pools": "{poolId}", "files": "{path}"}


def operation_name(method: str, path: str) -> str:
    """``GET /jobs/ps-x-r1-a1/tasks/t`` → ``GET /jobs/{jobId}/tasks/{taskId}``. Pure.

    Ids are replaced by placeholders so metrics have a handful of labels, not one per run.
    """
    parts = [p for p in unquote(path).split("/") if p]
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
    """azure-core's CustomHookPolicy sits inside the retry loop: one call per HTTP try."""

    def on_request(request: Any) -> None:
        http = request.http_request
        observer.request(platform, operation_name(http.method, urlsplit(http.url).path))

    def on_response(response: Any) -> None:
        http = response.http_request
        observer.response(
            platform,
            operation_name(http.method, urlsplit(http.url).path),
            int(response.http_response.status_code),
        )

    return {"raw_request_hook": on_request, "raw_response_hook": on_response}


# --------------------------------------------------------------------------- adapter


@dataclass(frozen=True, slots=True)
class Versioned:
    """A resource read with its ETag (for conditional re-reads)."""

    body: JSON
    etag: str | None


class BatchApi:
    """One Batch account (one Platform), one SDK client. Close with ``aclose()``."""

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
        if observer is not None:
            client_kwargs = {**_hooks(platform.name, observer), **client_kwargs}
        self._client = BatchClient(
            endpoint=self.endpoint,
            credential=credential.credential,
            retry_total=retry_total,
            retry_backoff_factor=retry_backoff_factor,
            connection_verify=connection_verify(platform),
            **client_kwargs,
        )
        # NOTES.md §3.3: a token credential over plain http (the emulator without --tls)
        # is refused by azure-core unless each call says enforce_https=False.
        insecure = urlsplit(self.endpoint).scheme == "http"
        self._kw: dict[str, Any] = {}
        if credential.is_token and insecure:
            self._kw["enforce_https"] = False

    async def aclose(self) -> None:
        try:
            await self._client.close()
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
        """``GET /jobs`` following ``odata.nextLink`` page by page (streams)."""
        action = "listing jobs"
        try:
            pages = self._client.list_jobs(
                select=list(select) if select else None,
                filter=filter,
                max_results=max_results,
                **self._kw,
            )
            async for job in pages:
                yield job.as_dict()
        except AzureError as exc:
            self._fail(exc, action)

    async def get_job(
        self,
        job_id: str,
        *,
        select: Sequence[str] | None = None,
        if_none_match: str | None = None,
    ) -> Versioned | None:
        """``GET /jobs/{id}``; None when ``if_none_match`` still matches (304)."""
        return await self._get(
            "job",
            job_id,
            lambda **kw: self._client.get_job(job_id, **kw),
            select=select,
            if_none_match=if_none_match,
        )

    async def create_job(self, body: Mapping[str, Any]) -> None:
        try:
            await self._client.create_job(models.BatchJobCreateOptions(dict(body)), **self._kw)
        except AzureError as exc:
            self._fail(exc, f"creating Batch job {body.get('id')!r}")

    async def update_job(self, job_id: str, patch: Mapping[str, Any]) -> None:
        try:
            await self._client.update_job(
                job_id, models.BatchJobUpdateOptions(dict(patch)), **self._kw
            )
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
            await self._client.create_task(
                job_id, models.BatchTaskCreateOptions(dict(body)), **self._kw
            )
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
            lambda **kw: self._client.get_task(job_id, task_id, **kw),
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
        except AzureError as exc:
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
        try:
            pool = await self._client.get_pool(
                pool_id, select=list(select) if select else None, **self._kw
            )
        except AzureError as exc:
            self._fail(exc, f"reading pool {pool_id!r}")
        return pool.as_dict()

    async def create_pool(self, body: Mapping[str, Any]) -> None:
        """``POST /pools`` (used by the demo set-up; Polysync itself never creates pools)."""
        try:
            await self._client.create_pool(models.BatchPoolCreateOptions(dict(body)), **self._kw)
        except AzureError as exc:
            self._fail(exc, f"creating pool {body.get('id')!r}")

    async def first_pool(self) -> JSON | None:
        try:
            async for pool in self._client.list_pools(max_results=1, select=["id"], **self._kw):
                return pool.as_dict()
        except AzureError as exc:
            self._fail(exc, "listing pools")
        return None

    # ---- helpers

    async def _get(
        self,
        kind: str,
        ident: str,
        call: Any,
        *,
        select: Sequence[str] | None,
        if_none_match: str | None,
    ) -> Versioned | None:
        kwargs: dict[str, Any] = dict(self._kw)
        if select:
            kwargs["select"] = list(select)
        if if_none_match:
            # If-None-Match (never If-Match: SDK defect §11.7.5); 304 means "unchanged".
            kwargs["etag"] = if_none_match
            kwargs["match_condition"] = MatchConditions.IfModified
        kwargs["cls"] = lambda _response, model, headers: (model, headers.get("ETag"))
        try:
            model, etag = await call(**kwargs)
        except HttpResponseError as exc:
            if if_none_match and exc.status_code == 304:
                return None
            self._fail(exc, f"reading {kind} {ident!r}")
        except AzureError as exc:
            self._fail(exc, f"reading {kind} {ident!r}")
        body: JSON = model.as_dict()
        return Versioned(body, etag or body.get("eTag"))
