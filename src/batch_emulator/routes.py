"""The Batch REST surface: thin HTTP over :mod:`batch_emulator.backend`.

Everything wire-level lives here: ``api-version``, authentication, the exact status codes
and headers of each operation (NOTES.md §0, §2.4), ``odata.metadata`` in bodies, OData
query options and paging, conditional requests (NOTES.md §7), error envelopes (§9.1) and
the task file API. Semantics (what is valid, what changes) belong to the backend.

Requests and responses are small plain objects (:class:`Request`, :class:`Response`) so
the ASGI glue in :mod:`batch_emulator.app` stays trivial and fast.
"""

from __future__ import annotations

import datetime as dt
import json
import mimetypes
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from batch_emulator.backend import AddTaskResult, Backend, error, page_over
from batch_emulator.model import JSON, Job, Task
from batch_emulator.protocol.auth import check_request_auth
from batch_emulator.protocol.errors import BatchError, condition_not_met, error_body
from batch_emulator.protocol.formats import format_http_date, format_timestamp, parse_http_date
from batch_emulator.protocol.odata import (
    JOB_FILTER_PROPERTIES,
    NODE_FILTER_PROPERTIES,
    POOL_FILTER_PROPERTIES,
    TASK_FILTER_PROPERTIES,
    FilterProperty,
    Predicate,
    apply_select,
    parse_expand,
    parse_filter,
    parse_maxresults,
    parse_select,
)
from batch_emulator.protocol.paging import make_skiptoken, next_link, read_skiptoken
from batch_emulator.scheduler import Scheduler

ODATA_JSON = "application/json; odata=minimalmetadata"
_JSON_CT = ODATA_JSON.encode()
# addtaskcollection bodies must stay under 1 MB (NOTES.md §4.8); other bodies get a
# generous cap so a runaway client cannot exhaust memory.
MAX_COLLECTION_BODY = 1024 * 1024
MAX_BODY = 4 * 1024 * 1024
# The internal name the service puts in DataServiceId/Location of a created job
# (NOTES.md §2.4: real responses name "job-1", not the job id).
JOB_DATA_SERVICE_NAME = "job-1"

_FILE_FILTER_PROPERTIES: Mapping[str, FilterProperty] = {
    "name": FilterProperty(("name",), "string", frozenset({"eq", "ne", "startswith"})),
}


@dataclass(slots=True)
class Request:
    """One HTTP request as the routes see it."""

    method: str
    path: str  # percent-decoded
    raw_path: str  # as sent (what Shared Key signs)
    query_string: str  # raw
    query: dict[str, str]  # lower-cased names, first value, decoded
    headers: dict[str, str]  # lower-cased names
    body: bytes
    base_url: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class AuthConfig:
    account: str
    key: str
    bearer_tokens: Collection[str] = ()


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def common_headers(req: Request) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"request-id", req.request_id.encode()),
        (b"dataserviceversion", b"3.0"),
        (b"x-content-type-options", b"nosniff"),
    ]
    # The service echoes client-request-id only when asked to (NOTES.md §2.3).
    if req.headers.get("return-client-request-id", "").lower() == "true":
        crid = req.headers.get("client-request-id")
        if crid:
            headers.append((b"client-request-id", crid.encode("latin-1")))
    return headers


def error_response(req: Request, err: BatchError, now: dt.datetime) -> Response:
    headers = common_headers(req)
    if err.retry_after_s is not None:
        headers.append((b"retry-after", str(max(0, round(err.retry_after_s))).encode()))
    if err.status == 304 or req.method == "HEAD":
        return Response(err.status, headers)
    headers.append((b"content-type", _JSON_CT))
    body = error_body(err, base_url=req.base_url, request_id=req.request_id, now=now)
    return Response(err.status, headers, _dumps(body))


def _entity_headers(etag: str, last_modified: dt.datetime) -> list[tuple[bytes, bytes]]:
    return [
        (b"etag", etag.encode()),
        (b"last-modified", format_http_date(last_modified).encode()),
    ]


def check_conditions(req: Request, etag: str, last_modified: dt.datetime, *, read: bool) -> None:
    """Evaluate If-Match / If-None-Match / If-(Un)Modified-Since (NOTES.md §7)."""
    headers = req.headers
    present = [
        name
        for name in ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
        if name in headers
    ]
    if not present:
        return
    if len(present) > 1:
        raise error("MultipleConditionHeadersNotSupported")
    name = present[0]
    value = headers[name].strip()
    if name in ("if-match", "if-none-match"):
        tags = {t.strip().strip('"') for t in value.split(",") if t.strip()}
        matched = "*" in tags or etag in tags
        ok = matched if name == "if-match" else not matched
    else:
        try:
            since = parse_http_date(value)
        except ValueError:
            raise BatchError.of(
                "InvalidHeaderValue", values=[("HeaderName", name), ("HeaderValue", value)]
            ) from None
        modified = last_modified.replace(microsecond=0)
        ok = modified > since if name == "if-modified-since" else modified <= since
    if not ok:
        raise condition_not_met(read=read)


@dataclass(slots=True)
class ListQuery:
    """The OData options of one list request."""

    filter_text: str | None
    select_text: str | None
    expand_text: str | None
    predicate: Predicate
    select: list[str] | None
    maxresults: int
    maxresults_given: bool
    after: str | None


def _list_query(req: Request, properties: Mapping[str, FilterProperty]) -> ListQuery:
    q = req.query
    filter_text = q.get("$filter")
    select_text = q.get("$select")
    expand_text = q.get("$expand")
    predicate = parse_filter(filter_text or "", properties)
    select = parse_select(select_text)
    parse_expand(expand_text)
    maxresults = parse_maxresults(q.get("maxresults"))
    token = q.get("$skiptoken")
    after: str | None = None
    if token:
        key = read_skiptoken(token, filter=filter_text, select=select_text, expand=expand_text)
        after = str(key)
    return ListQuery(
        filter_text,
        select_text,
        expand_text,
        predicate,
        select,
        maxresults,
        "maxresults" in q,
        after,
    )


class BatchApi:
    """Routes of the Batch data plane."""

    def __init__(self, backend: Backend, scheduler: Scheduler, auth: AuthConfig) -> None:
        self.backend = backend
        self.scheduler = scheduler
        self.auth = auth

    # ------------------------------------------------------------------ entry

    async def handle(self, req: Request) -> Response:
        try:
            if not req.query.get("api-version"):
                raise BatchError.of(
                    "MissingRequiredQueryParameter", values=[("QueryParameterName", "api-version")]
                )
            check_request_auth(
                req.method,
                req.raw_path,
                req.query_string,
                req.headers,
                account=self.auth.account,
                key_b64=self.auth.key,
                bearer_tokens=self.auth.bearer_tokens,
            )
            return await self._route(req)
        except BatchError as err:
            return error_response(req, err, self.backend.clock.now())

    async def _route(self, req: Request) -> Response:
        parts = [p for p in req.path.split("/") if p]
        n = len(parts)
        method = req.method
        if n == 0:
            raise error("InvalidUri")
        head = parts[0]
        if head == "jobs":
            if n == 1:
                return self._dispatch(req, {"GET": self.list_jobs, "POST": self.create_job})
            job_id = parts[1]
            if n == 2:
                return self._dispatch(
                    req,
                    {
                        "GET": self.get_job,
                        "PATCH": self.patch_job,
                        "PUT": self.put_job,
                        "DELETE": self.delete_job,
                    },
                    job_id,
                )
            if n == 3:
                leaf = parts[2]
                if leaf == "tasks":
                    return self._dispatch(
                        req, {"GET": self.list_tasks, "POST": self.create_task}, job_id
                    )
                if leaf == "terminate":
                    return self._dispatch(req, {"POST": self.terminate_job}, job_id)
                if leaf == "taskcounts":
                    return self._dispatch(req, {"GET": self.task_counts}, job_id)
                if leaf == "addtaskcollection":
                    return self._dispatch(req, {"POST": self.add_task_collection}, job_id)
                raise error("InvalidUri")
            if parts[2] != "tasks":
                raise error("InvalidUri")
            task_id = parts[3]
            if n == 4:
                return self._dispatch(
                    req, {"GET": self.get_task, "DELETE": self.delete_task}, job_id, task_id
                )
            if n == 5 and parts[4] == "terminate":
                if method != "POST":
                    raise error("UnsupportedHttpVerb")
                return await self.terminate_task(req, job_id, task_id)
            if parts[4] == "files":
                if n == 5:
                    return self._dispatch(req, {"GET": self.list_files}, job_id, task_id)
                file_path = "/".join(parts[5:])
                return self._dispatch(
                    req,
                    {
                        "GET": self.get_file,
                        "HEAD": self.get_file,
                        "DELETE": self.delete_file,
                    },
                    job_id,
                    task_id,
                    file_path,
                )
            raise error("InvalidUri")
        if head == "pools":
            if n == 1:
                return self._dispatch(req, {"GET": self.list_pools, "POST": self.create_pool})
            pool_id = parts[1]
            if n == 2:
                return self._dispatch(
                    req,
                    {"GET": self.get_pool, "HEAD": self.get_pool, "DELETE": self.delete_pool},
                    pool_id,
                )
            if n == 3 and parts[2] == "resize":
                return self._dispatch(req, {"POST": self.resize_pool}, pool_id)
            if n == 3 and parts[2] == "nodes":
                return self._dispatch(req, {"GET": self.list_nodes}, pool_id)
            if n == 4 and parts[2] == "nodes":
                return self._dispatch(req, {"GET": self.get_node}, pool_id, parts[3])
        raise error("InvalidUri")

    def _dispatch(
        self, req: Request, table: Mapping[str, Callable[..., Response]], *args: str
    ) -> Response:
        handler = table.get(req.method)
        if handler is None:
            raise error("UnsupportedHttpVerb")
        return handler(req, *args)

    # ------------------------------------------------------------------ helpers

    def _json_body(self, req: Request, *, required: bool = True, limit: int = MAX_BODY) -> Any:
        if len(req.body) > limit:
            raise error("RequestBodyTooLarge")
        content_type = req.headers.get("content-type", "")
        if "charset" in content_type.lower():
            # The service rejects "; charset=utf-8" on the odata content type (NOTES.md §0.25).
            raise BatchError.of(
                "InvalidHeaderValue",
                values=[("HeaderName", "Content-Type"), ("HeaderValue", content_type)],
            )
        if not req.body.strip():
            if required:
                raise BatchError.of(
                    "InvalidRequestBody", values=[("Reason", "The request body is empty.")]
                )
            return None
        try:
            return json.loads(req.body)
        except ValueError as exc:
            raise BatchError.of("InvalidRequestBody", values=[("Reason", str(exc))]) from None

    def _ok_json(
        self, req: Request, body: JSON, extra: Sequence[tuple[bytes, bytes]] = ()
    ) -> Response:
        headers = common_headers(req)
        headers.extend(extra)
        headers.append((b"content-type", _JSON_CT))
        return Response(200, headers, _dumps(body))

    def _empty(
        self, req: Request, status: int, extra: list[tuple[bytes, bytes]] | None = None
    ) -> Response:
        headers = common_headers(req)
        if extra:
            headers.extend(extra)
        return Response(status, headers)

    def _metadata(self, req: Request, fragment: str) -> str:
        return f"{req.base_url}/$metadata#{fragment}"

    def _single(
        self,
        req: Request,
        fragment: str,
        wire: JSON,
        etag: str,
        last_modified: dt.datetime,
    ) -> Response:
        select = parse_select(req.query.get("$select"))
        parse_expand(req.query.get("$expand"))
        body: JSON = {"odata.metadata": self._metadata(req, fragment)}
        body.update(apply_select(wire, select))
        return self._ok_json(req, body, _entity_headers(etag, last_modified))

    def _list(
        self,
        req: Request,
        fragment: str,
        query: ListQuery,
        page: Callable[[str | None, int, Callable[[Any], bool]], tuple[list[Any], bool]],
        render: Callable[[Any], JSON],
        key: Callable[[Any], str],
    ) -> Response:
        rendered: dict[int, JSON] = {}
        predicate = query.predicate

        def accept(item: Any) -> bool:
            wire = render(item)
            if predicate(wire):
                rendered[id(item)] = wire
                return True
            return False

        items, more = page(query.after, query.maxresults, accept)
        select = query.select
        body: JSON = {
            "odata.metadata": self._metadata(req, fragment),
            "value": [apply_select(rendered[id(i)], select) for i in items],
        }
        if more and items:
            token = make_skiptoken(
                key(items[-1]),
                filter=query.filter_text,
                select=query.select_text,
                expand=query.expand_text,
            )
            body["odata.nextLink"] = next_link(
                req.base_url,
                req.path,
                req.query.get("api-version", ""),
                query.maxresults if query.maxresults_given else None,
                query.filter_text,
                query.select_text,
                token,
                query.expand_text,
            )
        return self._ok_json(req, body)

    # ------------------------------------------------------------------ pools

    def list_pools(self, req: Request) -> Response:
        query = _list_query(req, POOL_FILTER_PROPERTIES)
        base = req.base_url
        return self._list(
            req,
            "pools",
            query,
            self.backend.list_pools,
            lambda p: p.to_wire(base),
            lambda p: p.id.lower(),
        )

    def create_pool(self, req: Request) -> Response:
        pool = self.backend.create_pool(self._json_body(req))
        url = f"{req.base_url}/pools/{pool.id}".encode()
        return self._empty(
            req,
            201,
            [
                (b"dataserviceid", url),
                (b"location", url),
                *_entity_headers(pool.etag, pool.last_modified),
            ],
        )

    def get_pool(self, req: Request, pool_id: str) -> Response:
        pool = self.backend.get_pool(pool_id)
        check_conditions(req, pool.etag, pool.last_modified, read=True)
        if req.method == "HEAD":
            return self._empty(req, 200, _entity_headers(pool.etag, pool.last_modified))
        return self._single(
            req, "pools/@Element", pool.to_wire(req.base_url), pool.etag, pool.last_modified
        )

    def delete_pool(self, req: Request, pool_id: str) -> Response:
        pool = self.backend.get_pool(pool_id)
        check_conditions(req, pool.etag, pool.last_modified, read=False)
        self.backend.delete_pool(pool_id)
        return self._empty(req, 202)

    def resize_pool(self, req: Request, pool_id: str) -> Response:
        pool = self.backend.get_pool(pool_id)
        check_conditions(req, pool.etag, pool.last_modified, read=False)
        body = self._json_body(req)
        pool = self.backend.resize_pool(pool_id, body)
        url = f"{req.base_url}/pools/{pool.id}/resize".encode()
        return self._empty(
            req, 202, [(b"dataserviceid", url), *_entity_headers(pool.etag, pool.last_modified)]
        )

    # ------------------------------------------------------------------ nodes

    def list_nodes(self, req: Request, pool_id: str) -> Response:
        query = _list_query(req, NODE_FILTER_PROPERTIES)
        pool = self.backend.get_pool(pool_id)
        base = req.base_url
        backend = self.backend
        return self._list(
            req,
            "nodes",
            query,
            lambda after, limit, accept: backend.list_nodes(pool, after, limit, accept),
            lambda node: node.to_wire(base, pool),
            lambda node: node.id.lower(),
        )

    def get_node(self, req: Request, pool_id: str, node_id: str) -> Response:
        pool = self.backend.get_pool(pool_id)
        node = self.backend.get_node(pool, node_id)
        return self._single(
            req, "nodes/@Element", node.to_wire(req.base_url, pool), node.etag, node.last_modified
        )

    # ------------------------------------------------------------------ jobs

    def list_jobs(self, req: Request) -> Response:
        query = _list_query(req, JOB_FILTER_PROPERTIES)
        base = req.base_url
        return self._list(
            req,
            "jobs",
            query,
            self.backend.list_jobs,
            lambda j: j.to_wire(base),
            lambda j: j.key,
        )

    def create_job(self, req: Request) -> Response:
        job = self.backend.create_job(self._json_body(req))
        url = f"{req.base_url}/jobs/{JOB_DATA_SERVICE_NAME}".encode()
        return self._empty(
            req,
            201,
            [
                (b"dataserviceid", url),
                (b"location", url),
                *_entity_headers(job.etag, job.last_modified),
            ],
        )

    def get_job(self, req: Request, job_id: str) -> Response:
        job = self.backend.get_job(job_id)
        check_conditions(req, job.etag, job.last_modified, read=True)
        return self._single(
            req, "jobs/@Element", job.to_wire(req.base_url), job.etag, job.last_modified
        )

    def _job_written(self, req: Request, job: Job, status: int, suffix: str = "") -> Response:
        url = f"{req.base_url}/jobs/{job.id}{suffix}".encode()
        return self._empty(
            req, status, [(b"dataserviceid", url), *_entity_headers(job.etag, job.last_modified)]
        )

    def patch_job(self, req: Request, job_id: str) -> Response:
        job = self.backend.get_job(job_id)
        check_conditions(req, job.etag, job.last_modified, read=False)
        job = self.backend.update_job(job_id, self._json_body(req), replace=False)
        return self._job_written(req, job, 200)

    def put_job(self, req: Request, job_id: str) -> Response:
        job = self.backend.get_job(job_id)
        check_conditions(req, job.etag, job.last_modified, read=False)
        job = self.backend.update_job(job_id, self._json_body(req), replace=True)
        return self._job_written(req, job, 200)

    def terminate_job(self, req: Request, job_id: str) -> Response:
        job = self.backend.get_job(job_id)
        check_conditions(req, job.etag, job.last_modified, read=False)
        job = self.backend.terminate_job(job_id, self._json_body(req, required=False))
        return self._job_written(req, job, 202, "/terminate")

    def delete_job(self, req: Request, job_id: str) -> Response:
        job = self.backend.get_job(job_id)
        check_conditions(req, job.etag, job.last_modified, read=False)
        self.backend.delete_job(job_id)
        return self._empty(req, 202)

    def task_counts(self, req: Request, job_id: str) -> Response:
        counts = self.backend.task_counts(job_id)
        body: JSON = {"odata.metadata": self._metadata(req, "taskcountsresult/@Element")}
        body.update(counts)
        return self._ok_json(req, body)

    # ------------------------------------------------------------------ tasks

    def list_tasks(self, req: Request, job_id: str) -> Response:
        query = _list_query(req, TASK_FILTER_PROPERTIES)
        base = req.base_url
        backend = self.backend
        return self._list(
            req,
            "tasks",
            query,
            lambda after, limit, accept: backend.list_tasks(job_id, after, limit, accept),
            lambda t: t.to_wire(base),
            lambda t: t.key,
        )

    def _task_url(self, req: Request, task: Task) -> bytes:
        return f"{req.base_url}/jobs/{task.job.id}/tasks/{task.id}".encode()

    def create_task(self, req: Request, job_id: str) -> Response:
        task = self.backend.add_task(job_id, self._json_body(req))
        url = self._task_url(req, task)
        return self._empty(
            req,
            201,
            [
                (b"dataserviceid", url),
                (b"location", url),
                *_entity_headers(task.etag, task.last_modified),
            ],
        )

    def add_task_collection(self, req: Request, job_id: str) -> Response:
        if len(req.body) >= MAX_COLLECTION_BODY:
            raise error(
                "RequestBodyTooLarge",
                [("Reason", "A task collection request body must be smaller than 1 MB.")],
            )
        results = self.backend.add_tasks(job_id, self._json_body(req, limit=MAX_COLLECTION_BODY))
        now = self.backend.clock.now()
        body: JSON = {
            "odata.metadata": self._metadata(req, "taskaddresult"),
            "value": [self._add_result(req, r, now) for r in results],
        }
        return self._ok_json(req, body)

    def _add_result(self, req: Request, result: AddTaskResult, now: dt.datetime) -> JSON:
        if result.task is not None:
            task = result.task
            return {
                "status": "success",
                "taskId": task.id,
                "eTag": task.etag,
                "lastModified": format_timestamp(task.last_modified),
                "location": self._task_url(req, task).decode(),
            }
        err = result.error
        assert err is not None
        body = error_body(err, base_url=req.base_url, request_id=req.request_id, now=now)
        body.pop("odata.metadata", None)
        return {
            "status": "servererror" if err.status >= 500 else "clienterror",
            "taskId": result.task_id,
            "error": body,
        }

    def get_task(self, req: Request, job_id: str, task_id: str) -> Response:
        task = self.backend.get_task(job_id, task_id)
        check_conditions(req, task.etag, task.last_modified, read=True)
        return self._single(
            req, "tasks/@Element", task.to_wire(req.base_url), task.etag, task.last_modified
        )

    def delete_task(self, req: Request, job_id: str, task_id: str) -> Response:
        task = self.backend.get_task(job_id, task_id)
        check_conditions(req, task.etag, task.last_modified, read=False)
        self.backend.delete_task(job_id, task_id)
        return self._empty(req, 200)

    async def terminate_task(self, req: Request, job_id: str, task_id: str) -> Response:
        task = self.backend.get_task(job_id, task_id)
        check_conditions(req, task.etag, task.last_modified, read=False)
        task = await self.scheduler.terminate_task(job_id, task_id)
        return self._empty(
            req,
            204,
            [
                (b"dataserviceid", self._task_url(req, task)),
                *_entity_headers(task.etag, task.last_modified),
            ],
        )

    # ------------------------------------------------------------------ task files

    def _task_root(self, job_id: str, task_id: str) -> tuple[Task, Path | None]:
        task = self.backend.get_task(job_id, task_id)
        return task, self.scheduler.task_dir(task)

    def _file_url(self, req: Request, task: Task, name: str) -> str:
        return f"{req.base_url}/jobs/{task.job.id}/tasks/{task.id}/files/{name}"

    def list_files(self, req: Request, job_id: str, task_id: str) -> Response:
        task, root = self._task_root(job_id, task_id)
        query = _list_query(req, _FILE_FILTER_PROPERTIES)
        recursive = req.query.get("recursive", "false").lower() == "true"
        entries: dict[str, JSON] = {}
        if root is not None and root.is_dir():
            entries = _scan(root, recursive, lambda name: self._file_url(req, task, name))
        keys = sorted(entries)

        def page(
            after: str | None, limit: int, accept: Callable[[JSON], bool]
        ) -> tuple[list[JSON], bool]:
            return page_over(keys, entries, after, limit, accept)

        return self._list(req, "files", query, page, lambda e: e, lambda e: str(e["name"]))

    def _resolve_file(self, job_id: str, task_id: str, file_path: str) -> tuple[Task, Path]:
        task, root = self._task_root(job_id, task_id)
        if root is None:
            raise error("FileNotFound")
        parts = [p for p in file_path.replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts or ".." in parts:
            raise error("FileNotFound")
        path = root.joinpath(*parts)
        if not path.exists():
            raise error("FileNotFound")
        return task, path

    def get_file(self, req: Request, job_id: str, task_id: str, file_path: str) -> Response:
        task, path = self._resolve_file(job_id, task_id, file_path)
        st = path.stat()
        is_dir = stat.S_ISDIR(st.st_mode)
        modified = dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)
        check_conditions(req, "", modified, read=True)
        name = "/".join(p for p in file_path.replace("\\", "/").split("/") if p)
        headers = [
            (b"content-type", _content_type(path, is_dir).encode()),
            (b"last-modified", format_http_date(modified).encode()),
            (
                b"ocp-creation-time",
                format_http_date(dt.datetime.fromtimestamp(st.st_ctime, dt.UTC)).encode(),
            ),
            (b"ocp-batch-file-isdirectory", b"True" if is_dir else b"False"),
            (b"ocp-batch-file-url", quote(self._file_url(req, task, name), safe="").encode()),
            (b"ocp-batch-file-mode", oct(st.st_mode).encode()),
        ]
        size = 0 if is_dir else st.st_size
        if req.method == "HEAD":
            headers.append((b"content-length", str(size).encode()))
            return self._empty(req, 200, headers)
        if is_dir:
            raise error("FileNotFound")
        start, end = _parse_range(req.headers.get("ocp-range"), size)
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read(max(0, end - start))
        out = common_headers(req)
        out.extend(headers)
        return Response(200, out, data)

    def delete_file(self, req: Request, job_id: str, task_id: str, file_path: str) -> Response:
        _, path = self._resolve_file(job_id, task_id, file_path)
        if path.is_dir():
            if req.query.get("recursive", "false").lower() != "true":
                raise error(
                    "OperationInvalidForCurrentState",
                    [("Reason", "Deleting a directory needs recursive=true.")],
                )
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        return self._empty(req, 200)


def _content_type(path: Path, is_dir: bool) -> str:
    if is_dir:
        return "application/octet-stream"
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def _parse_range(value: str | None, size: int) -> tuple[int, int]:
    """``ocp-range: bytes=a-b`` (inclusive) → half-open ``[start, end)``."""
    if not value:
        return 0, size
    text = value.strip()
    if not text.lower().startswith("bytes="):
        raise BatchError.of(
            "InvalidHeaderValue", values=[("HeaderName", "ocp-range"), ("HeaderValue", value)]
        )
    first, _, last = text[6:].partition("-")
    try:
        if first.strip() == "":
            # Suffix form bytes=-N: the last N bytes.
            count = int(last)
            return max(0, size - count), size
        start = int(first)
        end = size if last.strip() == "" else int(last) + 1
    except ValueError:
        raise BatchError.of(
            "InvalidHeaderValue", values=[("HeaderName", "ocp-range"), ("HeaderValue", value)]
        ) from None
    if start < 0 or end <= start or (start >= size and size > 0) or (size == 0 and start > 0):
        raise error("InvalidRange")
    return start, min(end, size)


def _scan(root: Path, recursive: bool, url: Callable[[str], str]) -> dict[str, JSON]:
    """File entries of a task directory as the service lists them (NOTES.md §4, S5)."""
    out: dict[str, JSON] = {}

    def visit(directory: Path, prefix: str) -> None:
        try:
            children = list(os.scandir(directory))
        except OSError:
            return
        for child in children:
            name = f"{prefix}{child.name}"
            try:
                st = child.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                out[name] = {"name": name, "url": url(name), "isDirectory": True}
                if recursive:
                    visit(Path(child.path), f"{name}/")
            else:
                out[name] = {
                    "name": name,
                    "url": url(name),
                    "isDirectory": False,
                    "properties": {
                        "creationTime": format_timestamp(
                            dt.datetime.fromtimestamp(st.st_ctime, dt.UTC)
                        ),
                        "lastModified": format_timestamp(
                            dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)
                        ),
                        # The service writes contentLength as a string (real recording).
                        "contentLength": str(st.st_size),
                        "contentType": _content_type(Path(child.name), False),
                        "fileMode": oct(st.st_mode),
                    },
                }

    visit(root, "")
    return out


__all__ = [
    "ODATA_JSON",
    "AuthConfig",
    "BatchApi",
    "Request",
    "Response",
    "check_conditions",
    "common_headers",
    "error_response",
]
