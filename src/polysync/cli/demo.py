"""`polysync demo`: the embedded default, a full tour on the local Azure Batch emulator.

The one place (with the test fixtures) where polysync touches ``batch_emulator``: it starts
the emulator in-process unless one already listens on the port, then drives the product
exactly as a user would, through the same services the other commands use.

Whoever holds an emulator's key runs command lines on this machine, so an emulator the
demo starts never uses the published development key: each start gets a random key,
written (0600) to ``{home}/local-emulator.key``, which the ``local`` platform reads. An
emulator already listening on the port is used only if it accepts the key in that file
(``batch-emulator serve --key-file {home}/local-emulator.key``, as the demo suggests at
its end); anything else on the port is an error, not a guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from polysync.cli import render
from polysync.cli.runtime import Session, session, settings
from polysync.domain.models import AuthMode, Platform, RunState, TaskRun
from polysync.domain.secrets import Writer
from polysync.errors import InputError, NotFoundError
from polysync.jobtypes.base import DiscoveredJob
from polysync.services import claims
from polysync.services import jobs as job_service
from polysync.services import platforms as platform_service
from polysync.services import runs as run_service
from polysync.services import tasks as task_service

PLATFORM = "local"
POOL_ID = "demo-pool"
TEMPLATE_ID = "demo-template"
TASK = "hello"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = "local-emulator"
KEY_FILE_NAME = "local-emulator.key"

# The template's command reads its parameters from the environment (seed: "the Task is
# responsible for parsing typed values"); it runs under /bin/sh because Batch does not
# use a shell (NOTES.md §10.2).
TEMPLATE_COMMAND = (
    "/bin/sh -c '"
    'echo "$GREETING, $NAME! (task $AZ_BATCH_TASK_ID on node $AZ_BATCH_NODE_ID)"; '
    'sleep "$SLEEP_S"; '
    'if [ "$EXIT_CODE" != 0 ]; then '
    'echo "demo: failing on purpose with exit code $EXIT_CODE" >&2; fi; '
    'exit "$EXIT_CODE"'
    "'"
)
TEMPLATE_ENV = {"GREETING": "Hello", "NAME": "world", "SLEEP_S": "0", "EXIT_CODE": "0"}

# The Secret Vault step: the local Key Vault (keyvault_emulator) holds a token, a Secret
# parameter refers to it, and the task proves it received the value by printing the start
# of its SHA-256 — never the value.
VAULT = "local-kv"
VAULT_SECRET = "demo-api-token"  # noqa: S105 — the name of a secret in the vault, not a value
VAULT_TEMPLATE_ID = "demo-vault-template"
VAULT_TASK = "vault-hello"
VAULT_TOKEN_FILE_NAME = "local-keyvault.token"  # noqa: S105 — a file name
VAULT_COMMAND = (
    "/bin/sh -c '"
    'printf "API_TOKEN reached the task; its sha256 starts %s\\n" '
    '"$(printf %s "$API_TOKEN" | sha256sum | cut -c1-12)"'
    "'"
)


def _listening(port: int) -> bool:
    if port == 0:
        return False  # 0 asks for a free port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def key_file(home: Path) -> Path:
    """Where the demo's emulator key lives (the ``local`` platform reads it from here)."""
    return home / KEY_FILE_NAME


def _accepts_key(endpoint: str, key_path: Path) -> bool:
    """Whether the emulator at ``endpoint`` accepts the key in ``key_path``."""
    import httpx

    from batch_emulator import DEFAULT_ACCOUNT
    from batch_emulator.keys import read_key_file
    from batch_emulator.server import SharedKeyAuth

    try:
        key = read_key_file(key_path)
    except (OSError, ValueError):
        return False
    try:
        # A signed control read: only an emulator holding this key answers 200.
        response = httpx.get(
            f"{endpoint}/_emulator/state", auth=SharedKeyAuth(DEFAULT_ACCOUNT, key), timeout=5
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


@contextlib.contextmanager
def _emulator(port: int, home: Path, *, port_flag: str = "--port") -> Iterator[str]:
    """Use the emulator already listening on the port (if it takes our key), or start one
    with a new random key; yields its endpoint. The key is in ``key_file(home)``."""
    from batch_emulator import DEFAULT_ACCOUNT
    from batch_emulator.keys import generate_key, write_key_file
    from batch_emulator.server import EmulatorConfig, EmulatorServer, PoolSeed

    path = key_file(home)
    if _listening(port):
        endpoint = f"http://127.0.0.1:{port}"
        if not _accepts_key(endpoint, path):
            raise InputError(
                f"something already listens on 127.0.0.1:{port} and does not accept the key "
                f"in {path}: stop it, start the emulator there with `batch-emulator serve "
                f"--port {port} --key-file {path}`, or choose another port with {port_flag}."
            )
        render.info(f"Using the emulator already listening on {endpoint} (key from {path}).")
        yield endpoint
        return
    key = generate_key()
    write_key_file(path, key)
    config = EmulatorConfig(
        host="127.0.0.1",
        port=port,
        account=DEFAULT_ACCOUNT,
        key=key,
        data_dir=home / "emulator",
        pools=(PoolSeed(POOL_ID, nodes=1, slots=4),),
    )
    with EmulatorServer(config) as emu:
        render.info(
            f"Started the local Azure Batch emulator at {emu.endpoint} (in-process; its "
            f"random key is in {path})."
        )
        yield emu.endpoint


def _step(title: str) -> None:
    render.console.print()
    render.console.rule(f"[bold]{render.escape(title)}")


def run_demo(*, port: int = 8045) -> int:
    from batch_emulator import DEFAULT_ACCOUNT

    started = time.monotonic()
    home = settings().home
    home.mkdir(parents=True, exist_ok=True)

    # The platform reads the emulator's key from its file, the way a real platform reads
    # its key (never from a flag).
    with _emulator(port, home) as endpoint, session() as s:
        svc = s.services
        _step("1. Platform")
        platform = platform_service.add_platform(
            svc,
            platform_service.PlatformInput(
                name=PLATFORM,
                account_url=endpoint,
                account_name=DEFAULT_ACCOUNT,
                subscription_id=SUBSCRIPTION,
                resource_group=RESOURCE_GROUP,
                auth=AuthMode.SHARED_KEY,
                key_file=str(key_file(home)),
            ),
            writer=Writer.HOST,
            replace_existing=True,
        )
        render.platform(platform)
        report = s.run(platform_service.test_platform(svc, PLATFORM))
        render.connectivity(PLATFORM, report)

        _step("2. A pool and a template Batch Job in the account")
        from polysync.jobtypes.azure_batch.demo_fixtures import ensure_demo_template
        from polysync.jobtypes.azure_batch.jobtype import BatchJobType

        assert isinstance(svc.jobtype, BatchJobType)
        s.run(
            ensure_demo_template(
                svc.jobtype,
                platform,
                pool_id=POOL_ID,
                template_id=TEMPLATE_ID,
                command_line=TEMPLATE_COMMAND,
                environment=TEMPLATE_ENV,
            )
        )
        render.info(f"Pool {POOL_ID} (1 node, 4 slots) and template job {TEMPLATE_ID} are ready.")

        _step("3. Discover the account's Batch jobs")
        items = s.run(_discover(s))
        render.discovered(items)

        _step(f"4. Import {TEMPLATE_ID} as a Job")
        outcome = s.run(job_service.import_jobs(svc, PLATFORM, [TEMPLATE_ID]))[0]
        render.console.print(
            f"{outcome.action.value.capitalize()} job {outcome.job.name}: Job Type "
            f"{outcome.job.job_type}, External Id {outcome.job.external_id}"
        )
        for name in ("SLEEP_S", "EXIT_CODE"):
            # Typed parameters are validated when a task is saved and again at run time.
            job_service.set_parameter(
                svc, TEMPLATE_ID, job_service.ParamEdit(name, data_type="Int"), writer=Writer.HOST
            )
        render.job(svc.store.get_job(TEMPLATE_ID))

        _step(f"5. A task: {TASK}, with NAME=Polysync")
        try:
            task = task_service.update_task(
                svc, TASK, set_params={"NAME": "Polysync"}, writer=Writer.HOST
            )
        except NotFoundError:
            task = task_service.create_task(
                svc, TASK, TEMPLATE_ID, {"NAME": "Polysync"}, writer=Writer.HOST
            )
        render.task(task)

        _step("6. Run once, and read its stdout")
        ok = _run(s, {})
        render.console.print("[bold]stdout.txt[/]")
        render.console.print(render.escape(s.run(_read(s, ok.id, "stdout.txt")).rstrip("\n")))

        _step("7. The same task failing (EXIT_CODE=3)")
        failed = _run(s, {"EXIT_CODE": "3"})
        render.run(failed)

        _step("8. A long run (SLEEP_S=300), cancelled while it runs")
        cancelled = s.run(_run_and_cancel(s))
        render.run(cancelled)

        _step(f"9. A Secret parameter from a Secret Vault (the local Key Vault, {VAULT})")
        vaulted = _vault_step(s, platform, home)

        results = (ok.state, failed.state, cancelled.state, vaulted.state)
        expected = (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.SUCCEEDED)
        _step("Done")
        render.info(
            f"Runs {ok.id}, {failed.id}, {cancelled.id}, {vaulted.id} ended "
            + ", ".join(st.value for st in results)
            + f" in {time.monotonic() - started:.1f}s."
        )
        used_port = endpoint.rsplit(":", 1)[1]
        render.info(
            "Keep exploring the `local` platform: keep an emulator running with "
            f"`.venv/bin/batch-emulator serve --port {used_port} --key-file {key_file(home)} "
            f"--data-dir {home / 'emulator'}` in another terminal, then try `./run run list`, "
            f"`./run run show {failed.id}`, `./run run logs {ok.id}`, "
            f"`./run task run {TASK} --param NAME=you`."
        )
        return 0 if results == expected else 1


def _vault_step(s: Session, platform: Platform, home: Path) -> TaskRun:
    """Start the local Key Vault, declare it, put a secret in it with the official SDK, and
    run a task whose Secret parameter refers to it (decision 0010)."""
    import hashlib
    import secrets

    from azure.keyvault.secrets import SecretClient

    from keyvault_emulator.server import KeyVaultConfig, KeyVaultServer
    from polysync.jobtypes.azure_batch.demo_fixtures import ensure_demo_template
    from polysync.jobtypes.azure_batch.jobtype import BatchJobType
    from polysync.services import vaults as vault_service

    svc = s.services
    token_file = home / VAULT_TOKEN_FILE_NAME
    config = KeyVaultConfig(data_dir=home / "keyvault")
    with KeyVaultServer(config) as kv:
        # The vault's credential is a reference too: a bearer token in a 0600 file.
        token_file.write_text(kv.tokens["secrets-user"] + "\n")
        token_file.chmod(0o600)
        value = "demo-" + secrets.token_urlsafe(24)
        with SecretClient(kv.url, kv.credential("secrets-officer"), **kv.client_options()) as c:
            c.set_secret(VAULT_SECRET, value)
        vault = vault_service.add_vault(
            svc,
            vault_service.VaultInput(
                name=VAULT,
                url=kv.url,
                auth=AuthMode.BEARER_TOKEN,
                token_file=str(token_file),
                ca_bundle=str(kv.cert_path),
            ),
            writer=Writer.HOST,
            replace_existing=True,
        )
        render.vault(vault)
        render.vault_checks(VAULT, s.run(vault_service.test_vault(svc, VAULT)))
        render.info(
            f"Secret {VAULT_SECRET} set in the vault with the official azure-keyvault-secrets "
            "client; Polysync stores only the reference to it."
        )
        assert isinstance(svc.jobtype, BatchJobType)
        s.run(
            ensure_demo_template(
                svc.jobtype,
                platform,
                pool_id=POOL_ID,
                template_id=VAULT_TEMPLATE_ID,
                command_line=VAULT_COMMAND,
                environment={"API_TOKEN": "placeholder"},
            )
        )
        s.run(job_service.import_jobs(svc, PLATFORM, [VAULT_TEMPLATE_ID]))
        job_service.set_parameter(
            svc,
            VAULT_TEMPLATE_ID,
            job_service.ParamEdit("API_TOKEN", data_type="Secret"),
            writer=Writer.HOST,
        )
        ref = {"API_TOKEN": f"vault://{VAULT}/{VAULT_SECRET}"}
        try:
            task = task_service.update_task(svc, VAULT_TASK, set_params=ref, writer=Writer.HOST)
        except NotFoundError:
            task = task_service.create_task(
                svc, VAULT_TASK, VAULT_TEMPLATE_ID, ref, writer=Writer.HOST
            )
        render.task(task)
        run = _run(s, {}, task=VAULT_TASK)
        out = s.run(_read(s, run.id, "stdout.txt")).strip()
        render.console.print("[bold]stdout.txt[/]")
        render.console.print(render.escape(out))
        expected = hashlib.sha256(value.encode()).hexdigest()[:12]
        if out.endswith(expected):
            render.info(
                f"That is the start of the SHA-256 of the value in the vault: the secret reached "
                f"the task, and was never stored (its record shows API_TOKEN="
                f"{run.params_sent.get('API_TOKEN')})."
            )
        else:
            render.notice("the task did not print the expected hash of the vault's secret.")
            return replace(run, state=RunState.FAILED)
        # The vault stops with the demo: let later runs fail on it clearly, not hang.
        svc.secrets.forget()
    return run


async def _discover(s: Session) -> list[DiscoveredJob]:
    from polysync.domain.ids import job_id_prefix

    own = job_id_prefix(s.services.store.installation_id()).lower()
    return [
        d
        async for d in platform_service.discover(s.services, PLATFORM)
        if not d.id.lower().startswith(own)
    ]


def _run(s: Session, params: dict[str, str], *, task: str = TASK) -> TaskRun:
    svc = s.services
    # Claimed from creation: this process submits it, never a worker beside it (0012).
    run = run_service.start_run(
        svc, task, params, writer=Writer.HOST, owner=claims.run_once_owner()
    )
    run = s.run(run_service.submit_run(svc, run.id))
    render.run_header(run)
    started = time.monotonic()

    def show(r: TaskRun) -> None:
        last = r.history[-1].reason if r.history else ""
        render.console.print(
            f"  {render.state_text(r.state)}  {render.duration(time.monotonic() - started)}  "
            f"{render.escape(last)}"
        )

    return s.run(run_service.wait_run(svc, run.id, on_update=show))


async def _read(s: Session, run_id: int, path: str) -> str:
    data = b"".join(
        [c async for c in run_service.follow_file(s.services, run_id, path, follow=False)]
    )
    return data.decode("utf-8", "replace")


async def _run_and_cancel(s: Session) -> TaskRun:
    svc = s.services
    run = run_service.start_run(
        svc, TASK, {"SLEEP_S": "300"}, writer=Writer.HOST, owner=claims.run_once_owner()
    )
    run = await run_service.submit_run(svc, run.id)
    render.run_header(run)
    run = await run_service.wait_run(
        svc,
        run.id,
        on_update=lambda r: render.console.print(f"  {render.state_text(r.state)}"),
        timeout_s=0.1,
    )
    deadline = time.monotonic() + 30
    while run.state is not RunState.RUNNING and time.monotonic() < deadline:
        run = await run_service.refresh_run(svc, run.id)
        if run.state.is_terminal:
            return run
        await asyncio.sleep(0.2)
    render.console.print(f"  {render.state_text(run.state)}  -> cancelling")
    result = await run_service.cancel_run(svc, run.id)
    render.info(result.message)
    return result.run
