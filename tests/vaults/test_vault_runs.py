"""Runs whose secrets live in a Secret Vault (issue 10, acceptance 2 and 3).

Through the real ``azure-keyvault-secrets`` client against the local Key Vault and the real
Batch emulator: a platform whose shared key is ``vault://…`` runs a task; a Secret
parameter from the vault reaches the task (proved inside it by a hash); a version-pinned
reference; a rotated secret picked up once the cache time has passed (fake clock); and
each failure path fails the run in one sentence with nothing created on Batch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from azure.batch import BatchClient

from batch_emulator import DEFAULT_KEY
from batch_emulator.server import EmulatorServer
from keyvault_emulator.server import KeyVaultServer
from polysync.domain.models import RunState, Task, TaskRun
from polysync.domain.secrets import Writer
from polysync.services import jobs as job_service
from polysync.services import platforms as platform_service
from polysync.services import runs as run_service
from polysync.services import tasks as task_service
from polysync.services.context import Services
from tests.support import SUBSCRIPTION, add_local_vault, create_template
from tests.vaults.conftest import FakeMonotonic

pytestmark = pytest.mark.timeout(120)

HASH_COMMAND = "/bin/sh -c 'printf %s \"$TOKEN\" | sha256sum'"
ECHO_COMMAND = (
    '/bin/sh -c \'echo "out: $TOKEN"; echo "err: $TOKEN" >&2; '
    'echo "err json: {\\"t\\": \\"$TOKEN\\"}" >&2; exit 3\''
)


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def vault_platform(svc: Services, emulator: EmulatorServer, key_ref: str) -> None:
    platform_service.add_platform(
        svc,
        platform_service.PlatformInput(
            name="local",
            account_url=emulator.endpoint,
            account_name=emulator.account,
            subscription_id=SUBSCRIPTION,
            resource_group="rg",
            key_ref=key_ref,
        ),
        writer=Writer.HOST,
    )


async def secret_task(
    svc: Services, batch: BatchClient, name: str, token_ref: str, command: str = HASH_COMMAND
) -> None:
    template = create_template(batch, command, prefix=name, env={"TOKEN": "placeholder"})
    await job_service.import_jobs(svc, "local", [template], name=name)
    job_service.set_parameter(
        svc, name, job_service.ParamEdit("TOKEN", data_type="Secret"), writer=Writer.HOST
    )
    task_service.create_task(svc, name, name, {"TOKEN": token_ref}, writer=Writer.HOST)


async def run_to_end(svc: Services, task: str) -> TaskRun:
    run = run_service.start_run(svc, task, writer=Writer.HOST)
    return await run_service.wait_run(svc, run.id, timeout_s=60)


async def stdout(svc: Services, run: TaskRun) -> str:
    chunks = [c async for c in run_service.follow_file(svc, run.id, "stdout.txt", follow=False)]
    return b"".join(chunks).decode()


def batch_calls(emulator: EmulatorServer, method: str, path_prefix: str) -> int:
    return sum(
        1
        for r in emulator.control.requests()
        if r["method"] == method and str(r["path"]).startswith(path_prefix)
    )


async def test_platform_key_and_secret_parameter_from_the_vault(
    svc: Services, emulator: EmulatorServer, kv: KeyVaultServer, batch: BatchClient, tmp_path: Path
) -> None:
    kv.set_secret("batch-key", DEFAULT_KEY)
    kv.set_secret("etl-token", "tok-" + "7" * 20)
    add_local_vault(svc, kv, tmp_path)
    vault_platform(svc, emulator, "vault://kv/batch-key")
    await secret_task(svc, batch, "hashed", "vault://kv/etl-token")

    run = await run_to_end(svc, "hashed")

    assert run.state is RunState.SUCCEEDED, run.failure
    assert sha("tok-" + "7" * 20) in await stdout(svc, run)
    assert run.params_sent == {"TOKEN": "***"}
    # One read of each secret (the first run), however many Batch calls the run made.
    assert kv.control.count("GetSecret", status=200) == 2
    second = await run_to_end(svc, "hashed")
    assert second.state is RunState.SUCCEEDED
    assert kv.control.count("GetSecret", status=200) == 2


async def test_a_version_pinned_reference_keeps_its_value(
    svc: Services, emulator: EmulatorServer, kv: KeyVaultServer, batch: BatchClient, tmp_path: Path
) -> None:
    kv.set_secret("batch-key", DEFAULT_KEY)
    first = kv.set_secret("pinned", "first-value-1234")
    kv.set_secret("pinned", "second-value-5678")
    add_local_vault(svc, kv, tmp_path)
    vault_platform(svc, emulator, "vault://kv/batch-key")
    await secret_task(svc, batch, "pinned", f"vault://kv/pinned/{first}")
    await secret_task(svc, batch, "latest", "vault://kv/pinned")

    pinned = await run_to_end(svc, "pinned")
    latest = await run_to_end(svc, "latest")

    assert sha("first-value-1234") in await stdout(svc, pinned)
    assert sha("second-value-5678") in await stdout(svc, latest)


async def test_a_rotated_secret_is_used_once_the_cache_time_has_passed(
    svc: Services,
    emulator: EmulatorServer,
    kv: KeyVaultServer,
    batch: BatchClient,
    tmp_path: Path,
    clock: FakeMonotonic,
) -> None:
    kv.set_secret("batch-key", DEFAULT_KEY)
    kv.set_secret("rotating", "before-rotation-1")
    add_local_vault(svc, kv, tmp_path)
    vault_platform(svc, emulator, "vault://kv/batch-key")
    await secret_task(svc, batch, "rotating", "vault://kv/rotating")

    assert sha("before-rotation-1") in await stdout(svc, await run_to_end(svc, "rotating"))
    kv.set_secret("rotating", "after-rotation-2")
    clock.advance(30)  # within the 60 s cache: the value in hand is still used, no read
    reads = kv.control.count("GetSecret", status=200)
    assert sha("before-rotation-1") in await stdout(svc, await run_to_end(svc, "rotating"))
    assert kv.control.count("GetSecret", status=200) == reads
    clock.advance(31)  # past it: the next submission reads the vault again
    assert sha("after-rotation-2") in await stdout(svc, await run_to_end(svc, "rotating"))


async def test_a_rotated_platform_key_is_picked_up_without_a_restart(
    svc: Services,
    emulator: EmulatorServer,
    kv: KeyVaultServer,
    batch: BatchClient,
    tmp_path: Path,
    clock: FakeMonotonic,
) -> None:
    kv.set_secret("batch-key", DEFAULT_KEY)
    kv.set_secret("etl-token", "some-token-value")
    add_local_vault(svc, kv, tmp_path)
    vault_platform(svc, emulator, "vault://kv/batch-key")
    await secret_task(svc, batch, "keyed", "vault://kv/etl-token")
    assert (await run_to_end(svc, "keyed")).state is RunState.SUCCEEDED

    # Someone rotates the key in the vault to one the account does not accept.
    kv.set_secret("batch-key", "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=")
    assert (await run_to_end(svc, "keyed")).state is RunState.SUCCEEDED  # cached key
    clock.advance(61)
    refused = await run_to_end(svc, "keyed")
    assert refused.state is RunState.FAILED
    assert refused.failure is not None
    assert "refused the credential" in refused.failure.message


def _task_with(svc: Services, name: str, job: str, ref: str) -> None:
    """A Task pinning ``ref`` stored as-is (as if written before the vault changed)."""
    svc.store.add_task(Task(name=name, job=job, params={"TOKEN": ref}))


@pytest.mark.parametrize(
    ("case", "fragments"),
    [
        ("unknown vault", ["there is no Secret Vault named 'ghost'"]),
        ("missing secret", ["secret 'nope' of vault 'kv' does not exist", "create it"]),
        ("disabled secret", ["secret 'off' of vault 'kv' is disabled", "enable it"]),
        ("403", ["refused the request (403)", "Key Vault Secrets User"]),
        ("unreachable", ["cannot be reached", "network"]),
    ],
)
async def test_failures_fail_the_run_before_anything_is_created(
    svc: Services,
    emulator: EmulatorServer,
    kv: KeyVaultServer,
    batch: BatchClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    fragments: list[str],
) -> None:
    add_local_vault(svc, kv, tmp_path)
    platform_service.add_platform(
        svc,
        platform_service.PlatformInput(
            name="local",
            account_url=emulator.endpoint,
            account_name=emulator.account,
            subscription_id=SUBSCRIPTION,
            resource_group="rg",
            key_ref="env:PS_VAULT_TEST_KEY",
        ),
        writer=Writer.HOST,
    )
    monkeypatch.setenv("PS_VAULT_TEST_KEY", DEFAULT_KEY)
    kv.set_secret("off", "disabled-value")
    kv.disable("off")
    ref = {
        "unknown vault": "vault://ghost/etl-token",
        "missing secret": "vault://kv/nope",
        "disabled secret": "vault://kv/off",
        "403": "vault://readonly/etl-token",
        "unreachable": "vault://down/etl-token",
    }[case]
    if case == "403":
        add_local_vault(svc, kv, tmp_path, name="readonly", role="reader")
    if case == "unreachable":
        add_local_vault(svc, kv, tmp_path, name="down", url="https://127.0.0.1:9/")
    template = create_template(batch, HASH_COMMAND, env={"TOKEN": "x"})
    await job_service.import_jobs(svc, "local", [template], name="failing")
    job_service.set_parameter(
        svc, "failing", job_service.ParamEdit("TOKEN", data_type="Secret"), writer=Writer.HOST
    )
    _task_with(svc, "failing", "failing", ref)
    emulator.control.clear_requests()

    run = await run_to_end(svc, "failing")

    assert run.state is RunState.FAILED
    assert run.failure is not None
    message = run.failure.message
    assert message.startswith("parameter TOKEN: ")
    for fragment in fragments:
        assert fragment in message
    assert message.count(". ") == 0, message  # one sentence
    expected = "ReferenceNotAllowed" if case == "unknown vault" else "SecretUnavailable"
    assert run.failure.code == expected
    # Nothing was created on Batch: not a job, not a task (the request log shows it).
    assert batch_calls(emulator, "POST", "/jobs") == 0
    assert emulator.control.requests() == []


async def test_a_platform_key_that_cannot_be_read_creates_nothing(
    svc: Services, emulator: EmulatorServer, kv: KeyVaultServer, batch: BatchClient, tmp_path: Path
) -> None:
    kv.set_secret("batch-key", DEFAULT_KEY)
    add_local_vault(svc, kv, tmp_path)
    vault_platform(svc, emulator, "vault://kv/batch-key")
    template = create_template(batch, "/bin/true")
    await job_service.import_jobs(svc, "local", [template], name="plain")
    task_service.create_task(svc, "plain", "plain", {}, writer=Writer.HOST)
    # The admin points the platform at a secret that does not exist (a typo).
    platform_service.add_platform(
        svc,
        platform_service.PlatformInput(
            name="local",
            account_url=emulator.endpoint,
            account_name=emulator.account,
            subscription_id=SUBSCRIPTION,
            resource_group="rg",
            key_ref="vault://kv/no-such-key",
        ),
        writer=Writer.HOST,
        replace_existing=True,
    )
    emulator.control.clear_requests()

    run = await run_to_end(svc, "plain")

    assert run.state is RunState.FAILED
    assert run.failure is not None
    assert "secret 'no-such-key' of vault 'kv' does not exist" in run.failure.message
    assert emulator.control.requests() == []


async def test_secrets_a_task_echoes_are_masked_in_what_is_stored(
    svc: Services, emulator: EmulatorServer, kv: KeyVaultServer, batch: BatchClient, tmp_path: Path
) -> None:
    token = "echoed-" + "x9" * 12
    kv.set_secret("batch-key", DEFAULT_KEY)
    kv.set_secret("etl-token", token)
    add_local_vault(svc, kv, tmp_path)
    vault_platform(svc, emulator, "vault://kv/batch-key")
    await secret_task(svc, batch, "echo", "vault://kv/etl-token", ECHO_COMMAND)

    run = await run_to_end(svc, "echo")

    assert run.state is RunState.FAILED
    assert run.failure is not None
    tail = run.failure.stderr_tail or ""
    assert "err: ***" in tail
    assert '{"t": "***"}' in tail
    assert token not in repr(run)
    stored = svc.store.get_run(run.id)
    assert token not in repr(stored)
    assert all(token not in h.reason for h in stored.history)

    # Served logs too: the CLI's stream, and the API's windows (7 bytes: every secret is
    # cut by a window's edge somewhere, and still comes out masked whole).
    out = b"".join(
        [c async for c in run_service.follow_file(svc, run.id, "stdout.txt", follow=False)]
    )
    assert out.decode() == "out: ***\n"
    served, offset = b"", 0
    while True:
        chunk = await run_service.read_log(svc, stored, "stderr.txt", offset=offset, max_bytes=7)
        served += chunk.data
        if chunk.next_offset == offset:
            break
        offset = chunk.next_offset
    assert served.decode() == 'err: ***\nerr json: {"t": "***"}\n'
    assert offset == chunk.size
