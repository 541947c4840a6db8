"""Decision 0007: the lean SDK pipeline keeps the SDK's behaviour where it matters.

* the proxy comes from the environment once, at construction, and every request uses it;
* BatchApi owns its aiohttp session and closes it;
* wire dicts go out as the same JSON text the SDK's models produced;
* single GETs return what ``model.as_dict()`` returned;
* streamed GET errors keep Batch's error code, and the observer still sees every try;
* the SansIO chain runs azure-core's policy protocol.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
from azure.batch import BatchClient, models
from azure.batch.aio import BatchClient as AsyncBatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import (
    AsyncHTTPPolicy,
    AsyncRedirectPolicy,
    AsyncRetryPolicy,
    ContentDecodePolicy,
    DistributedTracingPolicy,
    SansIOHTTPPolicy,
    SensitiveHeaderCleanupPolicy,
)
from azure.core.pipeline.transport import AsyncHttpTransport

from batch_emulator.server import EmulatorServer
from polysync.domain.models import AuthMode, PlatformAuth
from polysync.errors import PlatformError, ThrottledError
from polysync.jobtypes.azure_batch import plan
from polysync.jobtypes.azure_batch.client import BatchApi, _SansIOChain, env_proxy
from polysync.jobtypes.azure_batch.credentials import BuiltCredential, StaticTokenCredential
from polysync.jobtypes.azure_batch.jobtype import BatchJobType
from polysync.jobtypes.base import ProviderStatus
from tests.jobtype.conftest import (
    BEARER,
    TOKEN_REF,
    make_job,
    make_platform,
    make_run,
    make_template,
    request_for,
    unique,
    wait_for,
)
from tests.support import StaticSecrets

# ----------------------------------------------------------------- helpers


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No proxy variables from the machine running the tests, and no real ~/.netrc."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    return monkeypatch


def _shared_key(emulator: EmulatorServer) -> BuiltCredential:
    return BuiltCredential(AzureNamedKeyCredential(emulator.account, emulator.key), False)


class _Calls:
    """A CallObserver that remembers what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int | None]] = []

    def request(self, platform: str, operation: str) -> None:
        self.events.append(("request", operation, None))

    def response(self, platform: str, operation: str, status: int) -> None:
        self.events.append(("response", operation, status))


class _LoopbackProxy:
    """A forward HTTP proxy on 127.0.0.1 for plain-http targets, one request per connection.

    It records each request line (absolute-form, as clients send them to a proxy) and its
    Proxy-Authorization, then relays the request to the target with ``Connection: close``.
    """

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *header_lines = [line for line in head.split("\r\n") if line]
            method, target, version = request_line.split(" ", 2)
            length = 0
            proxy_auth: str | None = None
            kept: list[str] = []
            for line in header_lines:
                name, _, value = line.partition(":")
                lowered = name.strip().lower()
                if lowered == "content-length":
                    length = int(value)
                if lowered == "proxy-authorization":
                    proxy_auth = value.strip()
                if lowered in ("connection", "keep-alive") or lowered.startswith("proxy-"):
                    continue
                kept.append(line)
            self.seen.append((f"{method} {target}", proxy_auth))
            body = await reader.readexactly(length) if length else b""
            url = urlsplit(target)
            assert url.hostname is not None
            up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port)
            path = url.path + (f"?{url.query}" if url.query else "")
            out = [f"{method} {path} {version}", *kept, "Connection: close", "", ""]
            up_writer.write("\r\n".join(out).encode("latin-1") + body)
            await up_writer.drain()
            answer = await up_reader.read()
            up_writer.close()
            await up_writer.wait_closed()
            writer.write(answer)
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[_LoopbackProxy]:
    server = _LoopbackProxy()
    await server.start()
    yield server
    await server.stop()


class _Captured(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


class _CaptureTransport(AsyncHttpTransport[Any, Any]):
    """Stops every request at the transport and hands it to the test."""

    async def send(self, request: Any, **kwargs: Any) -> Any:
        raise _Captured(request)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> _CaptureTransport:
        return self

    async def __aexit__(self, *args: object) -> None:
        return None


async def _captured(call: Any) -> Any:
    with pytest.raises(_Captured) as info:
        await call
    return info.value.request


# ----------------------------------------------------------------- proxy


def test_env_proxy_follows_scheme_and_no_proxy(clean_env: pytest.MonkeyPatch) -> None:
    assert env_proxy("https://acct.westeurope.batch.azure.com") is None
    clean_env.setenv("HTTPS_PROXY", "http://corp-proxy:3128")
    clean_env.setenv("HTTP_PROXY", "http://plain-proxy:8080")
    assert env_proxy("https://acct.westeurope.batch.azure.com") == "http://corp-proxy:3128"
    assert env_proxy("http://127.0.0.1:8045") == "http://plain-proxy:8080"
    clean_env.setenv("NO_PROXY", "127.0.0.1,.batch.azure.com")
    assert env_proxy("https://acct.westeurope.batch.azure.com") is None
    assert env_proxy("http://127.0.0.1:8045") is None


def test_env_proxy_ignores_https_proxy_urls_as_aiohttp_does(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clean_env.setenv("HTTPS_PROXY", "https://tls-proxy:443")
    assert env_proxy("https://acct.westeurope.batch.azure.com") is None
    assert "not supported" in caplog.text


def test_env_proxy_takes_credentials_from_netrc_once(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine corp-proxy login alice password p@ss:word\n")
    netrc.chmod(0o600)
    clean_env.setenv("NETRC", str(netrc))
    clean_env.setenv("HTTPS_PROXY", "http://corp-proxy:3128")
    assert env_proxy("https://a.b.batch.azure.com") == "http://alice:p%40ss%3Aword@corp-proxy:3128"
    # Credentials already in the URL win; netrc is not consulted.
    clean_env.setenv("HTTPS_PROXY", "http://bob:pw@corp-proxy:3128")
    assert env_proxy("https://a.b.batch.azure.com") == "http://bob:pw@corp-proxy:3128"


async def test_proxy_is_resolved_once_and_used_for_every_request(
    emulator: EmulatorServer, batch: BatchClient, clean_env: pytest.MonkeyPatch, proxy: Any
) -> None:
    template_id = make_template(batch)
    clean_env.setenv("HTTP_PROXY", proxy.url)
    api = BatchApi(make_platform(emulator), _shared_key(emulator), retry_total=0)
    clean_env.delenv("HTTP_PROXY")  # read at construction: later changes do not matter
    try:
        assert api.proxy == proxy.url
        got = await api.get_job(template_id, select=("id",))
        assert got is not None
        assert got.body["id"] == template_id
        assert (await api.get_pool("pool1", select=("id",)))["id"] == "pool1"
    finally:
        await api.aclose()
    lines = [line for line, _ in proxy.seen]
    assert len(lines) == 2
    assert lines[0].startswith(f"GET {emulator.endpoint}/jobs/{template_id}?")
    assert lines[1].startswith(f"GET {emulator.endpoint}/pools/pool1?")


async def test_proxy_credentials_reach_the_proxy(
    emulator: EmulatorServer, clean_env: pytest.MonkeyPatch, proxy: Any, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password secret\n")
    netrc.chmod(0o600)
    clean_env.setenv("NETRC", str(netrc))
    clean_env.setenv("HTTP_PROXY", proxy.url)
    api = BatchApi(make_platform(emulator), _shared_key(emulator), retry_total=0)
    try:
        await api.get_pool("pool1", select=("id",))
    finally:
        await api.aclose()
    expected = "Basic " + base64.b64encode(b"alice:secret").decode()
    assert proxy.seen == [(proxy.seen[0][0], expected)]


async def test_no_proxy_and_late_variables_bypass_the_proxy(
    emulator: EmulatorServer, clean_env: pytest.MonkeyPatch, proxy: Any
) -> None:
    clean_env.setenv("HTTP_PROXY", proxy.url)
    clean_env.setenv("NO_PROXY", "127.0.0.1")
    bypassing = BatchApi(make_platform(emulator), _shared_key(emulator), retry_total=0)
    clean_env.delenv("HTTP_PROXY")
    clean_env.delenv("NO_PROXY")
    direct = BatchApi(make_platform(emulator), _shared_key(emulator), retry_total=0)
    clean_env.setenv("HTTP_PROXY", proxy.url)  # too late for `direct`
    try:
        assert bypassing.proxy is None
        assert direct.proxy is None
        await bypassing.get_pool("pool1", select=("id",))
        await direct.get_pool("pool1", select=("id",))
    finally:
        await bypassing.aclose()
        await direct.aclose()
    assert proxy.seen == []


# ----------------------------------------------------------------- session


async def test_aclose_closes_the_session(emulator: EmulatorServer) -> None:
    api = BatchApi(make_platform(emulator), _shared_key(emulator), retry_total=0)
    session = api._session
    assert session is not None
    assert session.trust_env is False
    await api.get_pool("pool1", select=("id",))
    await api.aclose()
    assert session.closed


async def test_jobtype_aclose_closes_every_session(emulator: EmulatorServer) -> None:
    jobtype = BatchJobType(secrets=StaticSecrets(default=emulator.key), retry_total=0)
    one = await jobtype.api(make_platform(emulator, name="one"))
    two = await jobtype.api(make_platform(emulator, name="two"))
    sessions = [one._session, two._session]
    await jobtype.aclose()
    assert all(s is not None and s.closed for s in sessions)


# ----------------------------------------------------------------- pipeline


def _policy_types(api: BatchApi) -> list[type[Any]]:
    """The pipeline's policies in order, looking through azure-core's runners and our chain."""
    out: list[type[Any]] = []
    for node in api._client._client._pipeline._impl_policies:
        inner = getattr(node, "_policy", node)  # azure-core's SansIO runner
        if isinstance(inner, _SansIOChain):
            out.extend(type(p) for p in inner.policies)
        else:
            out.append(type(inner))
    return out


async def test_pipeline_keeps_what_batch_needs_and_drops_the_rest(
    emulator: EmulatorServer,
) -> None:
    from azure.batch._patch import BatchExceptionPolicy

    from polysync.jobtypes.azure_batch.client import _SharedKeyPolicy

    api = BatchApi(make_platform(emulator), _shared_key(emulator), retry_total=2)
    try:
        kinds = _policy_types(api)
    finally:
        await api.aclose()
    assert kinds[0] is BatchExceptionPolicy  # per call, outside the retries
    assert kinds.index(AsyncRetryPolicy) < kinds.index(_SharedKeyPolicy)
    for dropped in (
        DistributedTracingPolicy,
        AsyncRedirectPolicy,
        SensitiveHeaderCleanupPolicy,
        ContentDecodePolicy,
    ):
        assert not any(issubclass(k, dropped) for k in kinds), dropped


async def test_requests_carry_request_id_user_agent_and_signature(
    emulator: EmulatorServer,
) -> None:
    api = BatchApi(make_platform(emulator), _shared_key(emulator), transport=_CaptureTransport())
    try:
        sent = await _captured(api.create_task("job", {"id": "t", "commandLine": "true"}))
    finally:
        await api.aclose()
    headers = {k.lower(): v for k, v in sent.headers.items()}
    assert headers["client-request-id"]
    assert headers["user-agent"].startswith("azsdk-python-batch/15.")
    assert headers["authorization"].startswith(f"SharedKey {emulator.account}:")
    assert "ocp-date" in headers


async def test_bearer_token_over_http_uses_the_batch_scope(emulator: EmulatorServer) -> None:
    scopes: list[tuple[str, ...]] = []

    class Recording(StaticTokenCredential):
        async def get_token(self, *wanted: str, **kwargs: Any) -> Any:
            scopes.append(wanted)
            return await super().get_token(*wanted, **kwargs)

    platform = make_platform(emulator, auth=PlatformAuth(AuthMode.BEARER_TOKEN, secret=TOKEN_REF))
    api = BatchApi(platform, BuiltCredential(Recording(BEARER), True), retry_total=0)
    try:
        assert (await api.get_pool("pool1", select=("id",)))["id"] == "pool1"
    finally:
        await api.aclose()
    assert scopes == [("https://batch.core.windows.net//.default",)]


# ----------------------------------------------------------------- bodies


def _template_job() -> dict[str, Any]:
    """A template job as a GET returns it, with an auto pool whose image is pinned."""
    return {
        "id": "tmpl",
        "displayName": "template",
        "poolInfo": {
            "autoPoolSpecification": {
                "poolLifetimeOption": "job",
                "keepAlive": False,
                "pool": {
                    "vmSize": "standard_d2s_v3",
                    "virtualMachineConfiguration": {
                        "imageReference": {
                            "publisher": "canonical",
                            "offer": "ubuntu-24_04-lts",
                            "sku": "server",
                            "version": "latest",
                            "exactVersion": "24.04.202501010",  # read-only
                        },
                        "nodeAgentSKUId": "batch.node.ubuntu 24.04",
                    },
                    "targetDedicatedNodes": 1,
                },
            }
        },
        "constraints": {"maxWallClockTime": "PT1H", "maxTaskRetryCount": 2},
        "priority": 10,
        "commonEnvironmentSettings": [{"name": "STAGE", "value": "prod"}],
        "metadata": [{"name": "owner", "value": "data-team"}],
    }


def _template_task() -> dict[str, Any]:
    return {
        "id": "template-task",
        "commandLine": "/bin/sh -c 'run.sh'",
        "containerSettings": {
            "imageName": "python:3.12",
            "containerRunOptions": "--rm",
            "workingDirectory": "taskWorkingDirectory",
        },
        "resourceFiles": [{"httpUrl": "https://x/run.sh", "filePath": "run.sh"}],
        "outputFiles": [
            {
                "filePattern": "out/*",
                "destination": {"container": {"containerUrl": "https://x/c", "path": "o"}},
                "uploadOptions": {"uploadCondition": "tasksuccess"},
            }
        ],
        "environmentSettings": [{"name": "MODE", "value": "full"}, {"name": "EMPTY"}],
        "constraints": {"maxWallClockTime": "PT30M", "retentionTime": "P1D"},
        "userIdentity": {"autoUser": {"scope": "task", "elevationLevel": "nonadmin"}},
        "requiredSlots": 1,
    }


def _run_bodies() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    template, task = _template_job(), _template_task()
    run_plan = plan.build_plan(
        template_id="tmpl",
        template_job=template,
        source=plan.choose_source(template, task),
        job=make_job("tmpl"),
        params=(),
        batch_job_id="ps-ptest001-r1-a1",
        batch_task_id="nightly",
        display_name="Polysync nightly run 1",
        fingerprint={"polysync.installation": "ptest001", "polysync.run": "1"},
        execution_timeout_s=600,
    )
    return run_plan.job_body, run_plan.task_body, run_plan.patch_body


async def test_wire_dicts_are_sent_as_the_models_were(emulator: EmulatorServer) -> None:
    job_body, task_body, patch_body = _run_bodies()
    pinned_image = _template_job()["poolInfo"]["autoPoolSpecification"]["pool"]
    pool_body = {"id": "p", **pinned_image, "taskSlotsPerNode": 4}
    api = BatchApi(make_platform(emulator), _shared_key(emulator), transport=_CaptureTransport())
    sdk = AsyncBatchClient(
        "http://127.0.0.1:9",
        AzureNamedKeyCredential(emulator.account, emulator.key),
        transport=_CaptureTransport(),
    )
    try:
        pairs = [
            (
                await _captured(api.create_job(job_body)),
                await _captured(sdk.create_job(models.BatchJobCreateOptions(dict(job_body)))),
            ),
            (
                await _captured(api.create_task("j", task_body)),
                await _captured(sdk.create_task("j", models.BatchTaskCreateOptions(task_body))),
            ),
            (
                await _captured(api.update_job("j", patch_body)),
                await _captured(sdk.update_job("j", models.BatchJobUpdateOptions(patch_body))),
            ),
            (
                await _captured(api.create_pool(pool_body)),
                await _captured(sdk.create_pool(models.BatchPoolCreateOptions(pool_body))),
            ),
        ]
    finally:
        await api.aclose()
        await sdk.close()
    for ours, theirs in pairs:
        assert ours.method == theirs.method
        assert ours.content == theirs.content  # the same JSON text, character for character
        assert ours.headers["Content-Type"] == theirs.headers["Content-Type"]
    # The read-only pinned image version is dropped, as the models dropped it...
    assert "exactVersion" not in pairs[0][0].content
    assert "exactVersion" not in pairs[3][0].content
    # ...without touching the caller's dict.
    assert "exactVersion" in str(job_body)


async def test_a_run_created_from_dicts_is_stored_as_from_models(
    batch: BatchClient, emulator: EmulatorServer, jobtype: BatchJobType
) -> None:
    body = {
        "displayName": "same body",
        "poolInfo": {"poolId": "nonodes"},
        "constraints": {"maxWallClockTime": "PT10M", "maxTaskRetryCount": 1},
        "commonEnvironmentSettings": [{"name": "A", "value": "1"}],
        "onAllTasksComplete": "noaction",
        "metadata": [{"name": "k", "value": "v"}],
    }
    task = _template_task()
    ours, theirs = unique("dict"), unique("model")
    api = await jobtype.api(make_platform(emulator))
    await api.create_job({"id": ours, **body})
    await api.create_task(ours, task)
    batch.create_job(models.BatchJobCreateOptions({"id": theirs, **body}))
    batch.create_task(theirs, models.BatchTaskCreateOptions(task))
    job_fields = ("displayName", "poolInfo", "constraints", "commonEnvironmentSettings")
    stored = [batch.get_job(j, select=[*job_fields, "metadata"]).as_dict() for j in (ours, theirs)]
    assert stored[0] == stored[1]
    task_fields = list(plan.COPIED_TASK_FIELDS)
    tasks = [
        batch.get_task(j, "template-task", select=task_fields).as_dict() for j in (ours, theirs)
    ]
    assert tasks[0] == tasks[1]


# ----------------------------------------------------------------- GET results


def _without_volatile(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "stats"}


async def test_single_gets_equal_the_models_as_dict(
    batch: BatchClient, emulator: EmulatorServer, jobtype: BatchJobType
) -> None:
    template_id = make_template(
        batch, command_line="/bin/sh -c 'echo oops >&2; exit 4'", metadata={"team": "x"}
    )
    platform = make_platform(emulator)
    run = make_run()
    await jobtype.submit(request_for(platform, make_job(template_id), run))
    result = await wait_for(jobtype, platform, run, (ProviderStatus.FAILED, ProviderStatus.SUCCESS))
    assert result.status is ProviderStatus.FAILED  # a task with failureInfo and exit code
    job_id, task_id = run.batch_job_id, run.batch_task_id
    assert job_id is not None
    assert task_id is not None
    api = await jobtype.api(platform)

    for select in (None, ("id", "state", "executionInfo", "nodeInfo")):
        sel = list(select) if select else None
        got_task = await api.get_task(job_id, task_id, select=select)
        assert got_task is not None
        assert got_task.body == batch.get_task(job_id, task_id, select=sel).as_dict()
        assert got_task.body["executionInfo"]["failureInfo"]["code"] == "FailureExitCode"
        got_job = await api.get_job(template_id, select=select and ("id", "metadata"))
        assert got_job is not None
        as_dict = batch.get_job(template_id, select=select and ["id", "metadata"]).as_dict()
        assert got_job.body == as_dict
        got_run_job = await api.get_job(job_id)
        assert got_run_job is not None
        assert _without_volatile(got_run_job.body) == _without_volatile(
            batch.get_job(job_id).as_dict()
        )
        pool = await api.get_pool("pool1", select=select and ("id", "state", "vmSize"))
        sdk_pool = batch.get_pool("pool1", select=select and ["id", "state", "vmSize"])
        assert _without_volatile(pool) == _without_volatile(sdk_pool.as_dict())

    # The ETag is the response header, and a conditional re-read still answers 304 → None.
    etag = cast(str, batch.get_job(template_id, cls=lambda _r, _m, headers: headers["ETag"]))
    got = await api.get_job(template_id)
    assert got is not None
    assert got.etag == etag
    assert await api.get_job(template_id, if_none_match=etag) is None


async def test_streamed_get_errors_keep_batch_codes_and_every_try_is_observed(
    emulator: EmulatorServer, batch: BatchClient
) -> None:
    template_id = make_template(batch)
    calls = _Calls()
    api = BatchApi(
        make_platform(emulator),
        _shared_key(emulator),
        retry_total=1,
        retry_backoff_factor=0,
        observer=calls,
    )
    try:
        with pytest.raises(PlatformError) as missing:
            await api.get_task(template_id, "no-such-task")
        assert missing.value.batch_code == "TaskNotFound"
        assert missing.value.status == 404

        emulator.control.set_faults(
            [{"method": "GET", "path": f"/jobs/{template_id}", "status": 503}]
        )
        calls.events.clear()
        with pytest.raises(ThrottledError) as busy:
            await api.get_job(template_id)
        assert busy.value.batch_code == "ServerBusy"  # read from the streamed error body
    finally:
        emulator.control.clear_faults()
        await api.aclose()
    assert calls.events == [
        ("request", "GET /jobs/{jobId}", None),
        ("response", "GET /jobs/{jobId}", 503),
        ("request", "GET /jobs/{jobId}", None),  # the retry: one hook call per try
        ("response", "GET /jobs/{jobId}", 503),
    ]


# ----------------------------------------------------------------- the SansIO chain


class _Recorder(SansIOHTTPPolicy[Any, Any]):
    def __init__(self, name: str, log: list[str], fail_on: str = "") -> None:
        self.name, self.log, self.fail_on = name, log, fail_on

    def on_request(self, request: PipelineRequest[Any]) -> None:
        self.log.append(f"{self.name}.request")
        if self.fail_on == "request":
            raise RuntimeError(self.name)

    def on_response(
        self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]
    ) -> None:
        self.log.append(f"{self.name}.response")
        if self.fail_on == "response":
            raise RuntimeError(self.name)

    def on_exception(self, request: PipelineRequest[Any]) -> None:
        self.log.append(f"{self.name}.exception")


class _Next(AsyncHTTPPolicy[Any, Any]):
    def __init__(self, log: list[str], fail: bool = False) -> None:
        super().__init__()
        self.log, self.fail = log, fail

    async def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
        self.log.append("send")
        if self.fail:
            raise RuntimeError("send")
        return PipelineResponse(request.http_request, None, request.context)


def _chain(log: list[str], *, fail_at: tuple[str, str] = ("", ""), send_fails: bool = False) -> Any:
    chain = _SansIOChain(
        [_Recorder(n, log, fail_at[1] if n == fail_at[0] else "") for n in ("a", "b", "c")]
    )
    chain.next = _Next(log, send_fails)
    return chain


@pytest.fixture
def request_() -> PipelineRequest[Any]:
    from azure.core.pipeline import PipelineContext
    from azure.core.rest import HttpRequest

    return PipelineRequest(HttpRequest("GET", "http://x/"), PipelineContext(None))


@pytest.mark.parametrize(
    ("fail_at", "send_fails", "expected"),
    [
        (
            ("", ""),
            False,
            "a.request b.request c.request send c.response b.response a.response",
        ),
        (("", ""), True, "a.request b.request c.request send c.exception b.exception a.exception"),
        (("b", "request"), False, "a.request b.request a.exception"),
        (
            ("b", "response"),
            False,
            "a.request b.request c.request send c.response b.response a.exception",
        ),
    ],
)
async def test_chain_runs_the_sansio_protocol_of_nested_runners(
    request_: PipelineRequest[Any],
    fail_at: tuple[str, str],
    send_fails: bool,
    expected: str,
) -> None:
    log: list[str] = []
    chain = _chain(log, fail_at=fail_at, send_fails=send_fails)
    if fail_at[0] or send_fails:
        with pytest.raises(RuntimeError):
            await chain.send(request_)
    else:
        await chain.send(request_)
    assert " ".join(log) == expected


# ----------------------------------------------------------------- bodies that are not JSON


@pytest.fixture
async def html_server() -> AsyncIterator[str]:
    """Answers every request 200 with an HTML page, as a captive portal or proxy might."""
    from aiohttp import web

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text="<html>sign in</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_a_body_that_is_not_json_is_a_platform_error(
    emulator: EmulatorServer, html_server: str
) -> None:
    platform = make_platform(emulator, account_url=html_server)
    api = BatchApi(platform, _shared_key(emulator), retry_total=0)
    try:
        with pytest.raises(PlatformError) as single:
            await api.get_task("j", "t")
        with pytest.raises(PlatformError) as paged:
            [job async for job in api.list_jobs()]
    finally:
        await api.aclose()
    for caught in (single, paged):
        assert caught.value.code == "BadResponse"
        assert html_server in str(caught.value)


async def test_job_lists_page_like_the_sdk_and_keep_its_errors(
    batch: BatchClient, emulator: EmulatorServer, jobtype: BatchJobType
) -> None:
    """``list_jobs`` pages with ``send_request`` and returns what the SDK's pager gave."""
    prefix = unique("lst")
    for i in range(7):
        batch.create_job(
            models.BatchJobCreateOptions(
                id=f"{prefix}-{i}", pool_info=models.BatchPoolInfo(pool_id="pool1")
            )
        )
    platform = make_platform(emulator)
    api = await jobtype.api(platform)
    query = f"startswith(id,'{prefix}-')"
    select = ("id", "state", "executionInfo")
    emulator.control.clear_requests()
    got = [j async for j in api.list_jobs(select=select, filter=query, max_results=3)]
    pages = [r for r in emulator.control.requests() if r["method"] == "GET"]
    assert len(pages) == 3  # 3 + 3 + 1, following odata.nextLink
    assert all("api-version=" in r["query"] for r in pages)
    expected = [
        j.as_dict() for j in batch.list_jobs(filter=query, select=list(select), max_results=3)
    ]
    assert got == expected
    assert [j["id"] for j in got] == [f"{prefix}-{i}" for i in range(7)]

    with pytest.raises(PlatformError) as caught:
        _ = [j async for j in api.list_jobs(filter="state eq 'bogus' and (")]
    assert caught.value.status == 400
    assert caught.value.batch_code is not None


@pytest.mark.parametrize(
    "text",
    ["GET\n\n\n\n\n\n\n\n\n\n\n\nocp-date:Tue, 24 Nov 2026 23:00:00 GMT\n/acct/jobs", "", "é\n€"],
)
def test_shared_key_signatures_equal_the_sdk_s(text: str) -> None:
    """The key is decoded once; the signature of any string stays the SDK's."""
    from azure.batch._patch import BatchSharedKeyAuthPolicy

    from polysync.jobtypes.azure_batch.client import _SharedKeyPolicy

    credential = AzureNamedKeyCredential("acct", base64.b64encode(b"k" * 64).decode())
    ours = _SharedKeyPolicy(credential)._sign_string(text)
    sdk = BatchSharedKeyAuthPolicy(credential)._sign_string(text)  # type: ignore[no-untyped-call]  # the SDK's method has no annotations
    assert ours == sdk
