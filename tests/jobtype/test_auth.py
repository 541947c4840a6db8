"""Credentials against the emulator: wrong key, bearer tokens (http and TLS), reachability."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from azure.batch import BatchClient

from batch_emulator import DEFAULT_ACCOUNT, DEFAULT_KEY
from batch_emulator.server import EmulatorConfig, EmulatorServer, PoolSeed
from polysync.domain.models import AuthMode, Platform, PlatformAuth, SecretRef
from polysync.errors import AuthenticationError, ConfigError, PlatformError
from polysync.jobtypes.azure_batch.jobtype import BatchJobType
from polysync.jobtypes.base import ProviderStatus
from tests.jobtype.conftest import (
    BEARER,
    KEY_REF,
    TOKEN_REF,
    make_job,
    make_platform,
    make_run,
    make_template,
    request_for,
    resolver,
    wait_for,
)

WRONG_KEY = base64.b64encode(b"this-is-not-the-account-key-0123").decode()


def _jobtype(**secrets: str) -> BatchJobType:
    return BatchJobType(secrets=resolver(secrets), retry_total=0)


async def test_wrong_key_is_an_authentication_error(emulator: EmulatorServer) -> None:
    platform = make_platform(emulator, name="badkey")
    jobtype = _jobtype(**{str(KEY_REF): WRONG_KEY})
    try:
        with pytest.raises(AuthenticationError) as caught:
            [job async for job in jobtype.discover(platform)]
        message = str(caught.value)
        assert "platform 'badkey'" in message
        assert "refused the credential" in message
        assert WRONG_KEY not in message
        assert caught.value.status == 403

        report = await jobtype.test_connectivity(platform)
        assert report.ok is False
        assert report.checks[0][:2] == ("list jobs", False)
        assert WRONG_KEY not in repr(report)
    finally:
        await jobtype.aclose()


async def test_connectivity_report_with_the_right_key(
    emulator: EmulatorServer, batch: BatchClient
) -> None:
    make_template(batch)
    jobtype = _jobtype(**{str(KEY_REF): emulator.key})
    try:
        report = await jobtype.test_connectivity(make_platform(emulator))
    finally:
        await jobtype.aclose()
    assert report.ok is True
    names = [name for name, _, _ in report.checks]
    assert names == ["list jobs", "read pool"]
    assert "may read pool 'pool1'" in report.checks[1][2]


async def test_bearer_token_over_plain_http(emulator: EmulatorServer, batch: BatchClient) -> None:
    """NOTES.md §3.3: azure-core refuses tokens over http unless told per call."""
    template_id = make_template(batch)
    good = make_platform(emulator, auth=PlatformAuth(AuthMode.BEARER_TOKEN, secret=TOKEN_REF))
    jobtype = _jobtype(**{str(TOKEN_REF): BEARER})
    try:
        assert template_id in {job.id async for job in jobtype.discover(good)}
    finally:
        await jobtype.aclose()
    wrong = _jobtype(**{str(TOKEN_REF): "not-the-token"})
    try:
        with pytest.raises(AuthenticationError):
            [job async for job in wrong.discover(good)]
    finally:
        await wrong.aclose()


async def test_unreachable_account_names_the_url() -> None:
    platform = Platform(
        name="nowhere",
        account_url="http://127.0.0.1:9",
        account_name="acct",
        subscription_id="s",
        resource_group="rg",
        auth=PlatformAuth(AuthMode.SHARED_KEY, secret=SecretRef("env", "K")),
    )
    jobtype = _jobtype(**{"env:K": DEFAULT_KEY})
    try:
        with pytest.raises(PlatformError) as caught:
            [job async for job in jobtype.discover(platform)]
    finally:
        await jobtype.aclose()
    assert "http://127.0.0.1:9" in str(caught.value)
    assert caught.value.code == "Unreachable"


# ----------------------------------------------------------------- TLS + bearer end to end


@pytest.fixture(scope="module")
def tls_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        host="127.0.0.1",
        port=0,
        account=DEFAULT_ACCOUNT,
        key=DEFAULT_KEY,
        data_dir=tmp_path_factory.mktemp("tls-emulator"),
        pools=(PoolSeed("pool1", nodes=1, slots=2),),
        bearer_tokens=(BEARER,),
        tls=True,
    )
    with EmulatorServer(config) as emu:
        yield emu


@pytest.fixture
async def tls_jobtype() -> AsyncIterator[BatchJobType]:
    jobtype = _jobtype(**{str(TOKEN_REF): BEARER})
    yield jobtype
    await jobtype.aclose()


async def test_bearer_token_run_over_tls_end_to_end(
    tls_emulator: EmulatorServer, tls_jobtype: BatchJobType
) -> None:
    assert tls_emulator.endpoint.startswith("https://")
    assert tls_emulator.tls_cert_path is not None
    platform = make_platform(
        tls_emulator,
        name="tls",
        auth=PlatformAuth(AuthMode.BEARER_TOKEN, secret=TOKEN_REF),
        ca_bundle=str(tls_emulator.tls_cert_path),
    )
    # Arrange the template with the SDK itself, also over TLS with the bearer token.
    from azure.core.credentials import AccessToken

    class _Token:
        def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
            return AccessToken(BEARER, 2**31)

    batch = BatchClient(
        tls_emulator.endpoint, _Token(), connection_verify=str(tls_emulator.tls_cert_path)
    )
    try:
        template_id = make_template(batch, command_line="/bin/sh -c 'echo over tls'")
    finally:
        batch.close()

    imported = await tls_jobtype.import_template(platform, template_id)
    assert imported.external_id == template_id
    run = make_run()
    await tls_jobtype.submit(request_for(platform, make_job(template_id), run))
    result = await wait_for(
        tls_jobtype, platform, run, [ProviderStatus.SUCCESS, ProviderStatus.FAILED]
    )
    assert result.status is ProviderStatus.SUCCESS
    out = await tls_jobtype.read_file(platform, run, "stdout.txt")
    assert out.data.decode().strip() == "over tls"


async def test_the_ca_bundle_is_loaded_once_for_all_calls(
    tls_emulator: EmulatorServer, tls_jobtype: BatchJobType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """azure-core would build an SSL context from the file on every request; we build one."""
    assert tls_emulator.tls_cert_path is not None
    bundle = str(tls_emulator.tls_cert_path)
    platform = make_platform(
        tls_emulator,
        name="tls-once",
        auth=PlatformAuth(AuthMode.BEARER_TOKEN, secret=TOKEN_REF),
        ca_bundle=bundle,
    )
    loads: list[str] = []
    real = ssl.create_default_context

    def counting(*args: object, **kwargs: object) -> ssl.SSLContext:
        if kwargs.get("cafile") == bundle:
            loads.append(bundle)
        return real(*args, **kwargs)  # type: ignore[arg-type]  # passed through as given

    monkeypatch.setattr(ssl, "create_default_context", counting)
    for _ in range(2):  # each: list one job, read a pool — over TLS, trusting the bundle
        report = await tls_jobtype.test_connectivity(platform)
        assert report.ok, report.checks
    assert loads == [bundle]


async def test_a_ca_bundle_that_cannot_be_read_is_one_clear_sentence(
    tls_emulator: EmulatorServer, tls_jobtype: BatchJobType, tmp_path: Path
) -> None:
    missing = tmp_path / "gone.pem"
    platform = make_platform(
        tls_emulator,
        name="tls-gone",
        auth=PlatformAuth(AuthMode.BEARER_TOKEN, secret=TOKEN_REF),
        ca_bundle=str(missing),
    )
    with pytest.raises(ConfigError) as caught:
        await tls_jobtype.import_template(platform, "any-template")
    message = str(caught.value)
    assert "'tls-gone'" in message
    assert str(missing) in message
    assert "--ca-bundle" in message


async def test_tls_without_trusting_the_certificate_is_refused(
    tls_emulator: EmulatorServer, tls_jobtype: BatchJobType
) -> None:
    platform = make_platform(
        tls_emulator, name="tls-strict", auth=PlatformAuth(AuthMode.BEARER_TOKEN, secret=TOKEN_REF)
    )
    with pytest.raises(PlatformError) as caught:
        [job async for job in tls_jobtype.discover(platform)]
    assert tls_emulator.endpoint in str(caught.value)

    insecure = make_platform(
        tls_emulator,
        name="tls-insecure",
        auth=PlatformAuth(AuthMode.BEARER_TOKEN, secret=TOKEN_REF),
        verify_tls=False,
    )
    assert isinstance([job async for job in tls_jobtype.discover(insecure)], list)


def test_cert_path_exists(tls_emulator: EmulatorServer) -> None:
    assert Path(str(tls_emulator.tls_cert_path)).read_text().startswith("-----BEGIN CERTIFICATE")
