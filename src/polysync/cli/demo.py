"""`polysync demo`: the embedded default, a full tour on the local Azure Batch emulator.

The one place (with the test fixtures) where polysync touches ``batch_emulator``: it starts
the emulator in-process unless one already listens on the port, then drives the product
exactly as a user would, through the same services the other commands use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from polysync.cli import render
from polysync.cli.runtime import Session, session, settings
from polysync.domain.models import AuthMode, RunState, TaskRun
from polysync.errors import NotFoundError
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


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def _emulator(port: int, data_dir: Path) -> Iterator[str]:
    """Use the emulator already listening on the port, or start one for the demo."""
    from batch_emulator import DEFAULT_ACCOUNT, DEFAULT_KEY
    from batch_emulator.server import EmulatorConfig, EmulatorServer, PoolSeed

    if _listening(port):
        render.info(f"Using the emulator already listening on http://127.0.0.1:{port}.")
        yield f"http://127.0.0.1:{port}"
        return
    config = EmulatorConfig(
        host="127.0.0.1",
        port=port,
        account=DEFAULT_ACCOUNT,
        key=DEFAULT_KEY,
        data_dir=data_dir,
        pools=(PoolSeed(POOL_ID, nodes=1, slots=4),),
    )
    with EmulatorServer(config) as emu:
        render.info(f"Started the local Azure Batch emulator at {emu.endpoint} (in-process).")
        yield emu.endpoint


def _step(title: str) -> None:
    render.console.print()
    render.console.rule(f"[bold]{render.escape(title)}")


def run_demo(*, port: int = 8045) -> int:
    from batch_emulator import DEFAULT_ACCOUNT, DEFAULT_KEY

    started = time.monotonic()
    home = settings().home
    home.mkdir(parents=True, exist_ok=True)
    key_file = home / "local-emulator.key"
    # The emulator's well-known development key, kept in a file so the platform reads it
    # the way a real one would read its key (never from a flag).
    key_file.write_text(DEFAULT_KEY + "\n")
    os.chmod(key_file, 0o600)

    with _emulator(port, home / "emulator") as endpoint, session() as s:
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
                key_file=str(key_file),
            ),
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
                svc, TEMPLATE_ID, job_service.ParamEdit(name, data_type="Int")
            )
        render.job(svc.store.get_job(TEMPLATE_ID))

        _step(f"5. A task: {TASK}, with NAME=Polysync")
        try:
            task = task_service.update_task(svc, TASK, set_params={"NAME": "Polysync"})
        except NotFoundError:
            task = task_service.create_task(svc, TASK, TEMPLATE_ID, {"NAME": "Polysync"})
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

        results = (ok.state, failed.state, cancelled.state)
        expected = (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)
        _step("Done")
        render.info(
            f"Runs {ok.id}, {failed.id}, {cancelled.id} ended "
            + ", ".join(st.value for st in results)
            + f" in {time.monotonic() - started:.1f}s."
        )
        render.info(
            "Keep exploring the `local` platform: keep an emulator running with "
            f"`.venv/bin/batch-emulator serve --port {port} --data-dir {home / 'emulator'}` "
            "in another terminal, then try `./run run list`, `./run run show "
            f"{failed.id}`, `./run run logs {ok.id}`, `./run task run {TASK} --param NAME=you`."
        )
        return 0 if results == expected else 1


async def _discover(s: Session) -> list[DiscoveredJob]:
    from polysync.domain.ids import job_id_prefix

    own = job_id_prefix(s.services.store.installation_id()).lower()
    return [
        d
        async for d in platform_service.discover(s.services, PLATFORM)
        if not d.id.lower().startswith(own)
    ]


def _run(s: Session, params: dict[str, str]) -> TaskRun:
    svc = s.services
    # Claimed from creation: this process submits it, never a worker beside it (0012).
    run = run_service.start_run(svc, TASK, params, owner=claims.run_once_owner())
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
    run = run_service.start_run(svc, TASK, {"SLEEP_S": "300"}, owner=claims.run_once_owner())
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
