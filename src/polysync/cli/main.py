"""`polysync`: noun-verb commands over the services.

Exit codes: 0 success, 1 the run failed or was cancelled, 2 usage or input error,
3 platform/service error.
"""

from __future__ import annotations

import asyncio
import enum
import os
import sys
import time
import traceback
from typing import Annotated

import typer

from polysync.cli import options, render
from polysync.cli.runtime import Session, session, set_global_overrides
from polysync.cli.server import server_app, token_app
from polysync.cli.vault import vault_app
from polysync.cli.worker import worker_app
from polysync.domain import limits
from polysync.domain.durations import parse_duration_text
from polysync.domain.models import AuthMode, BackoffStrategy, RetryPolicy, RunState, TaskRun
from polysync.domain.secrets import Writer
from polysync.errors import InputError, PolysyncError
from polysync.jobtypes.base import DiscoveredJob
from polysync.services import claims, removal, views
from polysync.services import jobs as job_service
from polysync.services import platforms as platform_service
from polysync.services import runs as run_service
from polysync.services import tasks as task_service

EXIT_RUN_FAILED = 1


class Output(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


OutputOpt = Annotated[
    Output, typer.Option("--output", "-o", help="table for people, json for scripts.")
]

app = typer.Typer(
    name="polysync",
    help="Polysync for Azure Batch: run parameterised work from template Batch Jobs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
platform_app = typer.Typer(help="Batch accounts Polysync can run work on.", no_args_is_help=True)
job_app = typer.Typer(help="Template Batch Jobs imported as Jobs.", no_args_is_help=True)
param_app = typer.Typer(help="A Job's parameter schema.", no_args_is_help=True)
task_app = typer.Typer(help="Tasks: a Job with pinned parameter values.", no_args_is_help=True)
run_app = typer.Typer(help="Runs of Tasks (one Batch job + task each).", no_args_is_help=True)
app.add_typer(platform_app, name="platform")
app.add_typer(job_app, name="job")
job_app.add_typer(param_app, name="param")
app.add_typer(task_app, name="task")
app.add_typer(run_app, name="run")
app.add_typer(worker_app, name="worker")
app.add_typer(server_app, name="server")
app.add_typer(token_app, name="token")
app.add_typer(vault_app, name="vault")


@app.callback()
def _global(
    home: Annotated[
        str | None,
        typer.Option(
            "--home",
            envvar="POLYSYNC_HOME",
            help="Directory holding the database and config.toml (default: the user data dir).",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="POLYSYNC_DATABASE_URL",
            help="SQLAlchemy URL of the store (default: sqlite file in --home).",
        ),
    ] = None,
) -> None:
    set_global_overrides(home=home, database_url=database_url)


# -- platform ----------------------------------------------------------------------------


@platform_app.command("add")
def platform_add(
    name: Annotated[str, typer.Argument(help="A name for this platform, e.g. prod-westeu.")],
    account_url: Annotated[
        str, typer.Option(help="Batch Account URL, https://<account>.<region>.batch.azure.com.")
    ],
    account_name: Annotated[str, typer.Option(help="Batch Account Name.")],
    subscription_id: Annotated[str, typer.Option(help="Subscription Id (a GUID).")],
    resource_group: Annotated[str, typer.Option(help="Resource Group Name.")],
    auth: Annotated[AuthMode, typer.Option(help="How to authenticate.")] = AuthMode.SHARED_KEY,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="shared-key: reference to the account key: vault://VAULT/SECRET, env:NAME or "
            "file:PATH (never the key itself).",
        ),
    ] = None,
    key_env: Annotated[
        str | None, typer.Option(help="shared-key: environment variable holding the account key.")
    ] = None,
    key_file: Annotated[
        str | None, typer.Option(help="shared-key: file holding the account key.")
    ] = None,
    tenant_id: options.TenantId = None,
    client_id: options.ClientId = None,
    client_secret: options.ClientSecret = None,
    client_secret_env: options.ClientSecretEnv = None,
    client_secret_file: options.ClientSecretFile = None,
    certificate_path: options.CertificatePath = None,
    certificate_password: options.CertificatePassword = None,
    certificate_password_env: options.CertificatePasswordEnv = None,
    certificate_password_file: options.CertificatePasswordFile = None,
    token: options.Token = None,
    token_env: options.TokenEnv = None,
    token_file: options.TokenFile = None,
    ca_bundle: Annotated[
        str | None, typer.Option(help="PEM file of CAs to trust (e.g. the emulator's --tls cert).")
    ] = None,
    insecure: options.Insecure = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Update the platform if the name exists.")
    ] = False,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Register a Batch account. Secrets are references (a vault, an env var or a file),
    never flag values."""
    data = platform_service.PlatformInput(
        name=name,
        account_url=account_url,
        account_name=account_name,
        subscription_id=subscription_id,
        resource_group=resource_group,
        auth=auth,
        key_ref=key,
        key_env=key_env,
        key_file=key_file,
        tenant_id=tenant_id,
        client_id=client_id,
        client_secret_ref=client_secret,
        client_secret_env=client_secret_env,
        client_secret_file=client_secret_file,
        certificate_path=certificate_path,
        certificate_password_ref=certificate_password,
        certificate_password_env=certificate_password_env,
        certificate_password_file=certificate_password_file,
        token_ref=token,
        token_env=token_env,
        token_file=token_file,
        verify_tls=not insecure,
        ca_bundle=ca_bundle,
    )
    with session() as s:
        platform = platform_service.add_platform(
            s.services, data, writer=Writer.HOST, replace_existing=replace
        )
    if output is Output.JSON:
        render.print_json(views.platform_view(platform))
    else:
        render.info(
            f"Platform {platform.name} saved. "
            f"Check it with `polysync platform test {platform.name}`."
        )


@platform_app.command("list")
def platform_list(output: OutputOpt = Output.TABLE) -> None:
    """List platforms."""
    with session() as s:
        items = s.services.store.list_platforms()
    if output is Output.JSON:
        render.print_json([views.platform_view(p) for p in items])
    else:
        render.platforms(items)


@platform_app.command("show")
def platform_show(name: str, output: OutputOpt = Output.TABLE) -> None:
    """Show one platform (secrets appear only as their env:/file: source)."""
    with session() as s:
        p = s.services.store.get_platform(name)
    if output is Output.JSON:
        render.print_json(views.platform_view(p))
    else:
        render.platform(p)


@platform_app.command("test")
def platform_test(name: str, output: OutputOpt = Output.TABLE) -> None:
    """List one job and read one pool, reporting what the credential may do."""
    with session() as s:
        report = s.run(platform_service.test_platform(s.services, name))
    if output is Output.JSON:
        render.print_json(
            {
                "platform": name,
                "ok": report.ok,
                "checks": [{"name": c, "ok": ok, "detail": d} for c, ok, d in report.checks],
            }
        )
    else:
        render.connectivity(name, report)
    if not report.ok:
        raise typer.Exit(3)


@platform_app.command("remove")
def platform_remove(
    name: str,
    force: Annotated[
        bool,
        typer.Option(
            help="Also remove its jobs, tasks and run records; unfinished runs' Batch work is "
            "stopped first."
        ),
    ] = False,
) -> None:
    """Remove a platform (refused while jobs use it, unless --force)."""
    with session() as s:
        done = s.run(removal.remove_platform(s.services, name, force=force))
    render.info(done.message())


@platform_app.command("discover")
def platform_discover(
    name: str,
    filter_: Annotated[
        str | None,
        typer.Option("--filter", help="Only job ids starting with this prefix (server-side)."),
    ] = None,
    include_runs: Annotated[
        bool, typer.Option(help="Also list the Batch jobs Polysync created for runs.")
    ] = False,
    page_size: Annotated[
        int | None,
        typer.Option(
            help=f"Jobs per GET /jobs page (maxresults, {limits.BATCH_PAGE_SIZE.span()})."
        ),
    ] = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """List the account's Batch jobs (the templates you can import), every page."""
    with session() as s:

        async def collect() -> list[DiscoveredJob]:
            own = None
            if not include_runs:
                from polysync.domain.ids import job_id_prefix

                own = job_id_prefix(s.services.store.installation_id()).lower()
            found = []
            async for d in platform_service.discover(
                s.services, name, id_prefix=filter_, page_size=page_size
            ):
                if own and d.id.lower().startswith(own):
                    continue
                found.append(d)
            return found

        items = s.run(collect())
    if output is Output.JSON:
        render.print_json([views.discovered_view(d) for d in items])
    else:
        render.discovered(items)


# -- job ---------------------------------------------------------------------------------


@job_app.command("import")
def job_import(
    external_ids: Annotated[
        list[str] | None, typer.Argument(help="Template Batch job id(s) to import.")
    ] = None,
    platform: Annotated[str, typer.Option("--platform", "-p", help="Platform name.")] = "",
    all_: Annotated[
        bool, typer.Option("--all", help="Import every job the account lists.")
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="Job name for a single import (default: the template id).")
    ] = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Import templates as Jobs (Job Type `Batch Job`, External Id = template job id)."""
    if not platform:
        raise InputError("--platform is required: the platform whose templates to import.")
    with session() as s:
        outcomes = s.run(
            job_service.import_jobs(
                s.services, platform, external_ids or (), import_all=all_, name=name
            )
        )
    if output is Output.JSON:
        render.print_json(
            [
                {"action": o.action.value, "changes": list(o.changes), **views.job_view(o.job)}
                for o in outcomes
            ]
        )
        return
    for o in outcomes:
        render.console.print(
            f"[bold]{o.action.value.capitalize()}[/] job {o.job.name} "
            f"(Job Type {o.job.job_type}, External Id {o.job.external_id})"
        )
        render.job(o.job)
        for change in o.changes:
            render.info(f"  - {change}")
        render.console.print()


@job_app.command("list")
def job_list(
    platform: Annotated[str | None, typer.Option("--platform", "-p")] = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """List Jobs."""
    with session() as s:
        items = s.services.store.list_jobs(platform=platform)
    if output is Output.JSON:
        render.print_json([views.job_view(j) for j in items])
    else:
        render.jobs(items)


@job_app.command("show")
def job_show(name: str, output: OutputOpt = Output.TABLE) -> None:
    """Show a Job: schema, overrides, cloned defaults and where each came from, warnings."""
    with session() as s:
        j = s.services.store.get_job(name)
    if output is Output.JSON:
        render.print_json(views.job_view(j))
    else:
        render.job(j)


@job_app.command("sync")
def job_sync(name: str, output: OutputOpt = Output.TABLE) -> None:
    """Re-import the template, keeping your schema edits and overrides."""
    with session() as s:
        outcome = s.run(job_service.sync_job(s.services, name))
    if output is Output.JSON:
        render.print_json({"changes": list(outcome.changes), **views.job_view(outcome.job)})
        return
    render.info(f"Synced job {name} from template {outcome.job.external_id}.")
    for change in outcome.changes or ("no changes",):
        render.info(f"  - {change}")


@job_app.command("remove")
def job_remove(
    name: str,
    force: Annotated[
        bool,
        typer.Option(
            help="Also remove its tasks and run records; unfinished runs' Batch work is "
            "stopped first."
        ),
    ] = False,
) -> None:
    """Remove a Job (refused while tasks use it, unless --force)."""
    with session() as s:
        done = s.run(removal.remove_job(s.services, name, force=force))
    render.info(done.message())


def _seconds(value: str | None, flag: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration_text(value)
    except InputError as exc:
        raise InputError(f"{flag}: {exc}") from None


@job_app.command("set")
def job_set(
    name: str,
    command_line: Annotated[str | None, typer.Option(help="Task command line override.")] = None,
    image: Annotated[str | None, typer.Option(help="Container image override.")] = None,
    run_options: Annotated[str | None, typer.Option(help="containerRunOptions override.")] = None,
    max_wall_clock: Annotated[
        str | None, typer.Option(help="Task maxWallClockTime, e.g. 30m, 2h, PT1H.")
    ] = None,
    retention: Annotated[str | None, typer.Option(help="Task retentionTime, e.g. 1d.")] = None,
    max_task_retries: Annotated[
        int | None, typer.Option(help="Batch-level task retries (-1 = unlimited).")
    ] = None,
    description: Annotated[str | None, typer.Option()] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Replace the tags (repeatable).")] = None,
    unset: Annotated[
        list[str] | None,
        typer.Option(help="Drop an override, back to the template's value (repeatable)."),
    ] = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Override what the per-run task takes from the template (D2 precedence 1)."""
    changes: dict[str, object] = {}
    for key, value in (
        ("command_line", command_line),
        ("image", image),
        ("container_run_options", run_options),
    ):
        if value is not None:
            if not value.strip():
                raise InputError(f"--{key.replace('_', '-')} is empty: use --unset to drop it.")
            changes[key] = value
    if (v := _seconds(max_wall_clock, "--max-wall-clock")) is not None:
        changes["max_wall_clock_s"] = v
    if (v := _seconds(retention, "--retention")) is not None:
        changes["retention_s"] = v
    if max_task_retries is not None:
        changes["max_task_retries"] = max_task_retries
    with session() as s:
        j = job_service.set_overrides(
            s.services, name, changes=changes, unset=unset or (), description=description, tags=tag
        )
    if output is Output.JSON:
        render.print_json(views.job_view(j))
    else:
        render.job(j)


@param_app.command("set")
def param_set(
    job: str,
    name: str,
    type_: Annotated[
        str | None, typer.Option("--type", help="String, Int, Float, Bool, JSON or Secret.")
    ] = None,
    direction: Annotated[str | None, typer.Option(help="Input, Output or Input&Output.")] = None,
    default: Annotated[
        str | None,
        typer.Option(
            help="Default value (Secret: a reference only: vault://VAULT/SECRET, env:NAME or "
            "file:PATH)."
        ),
    ] = None,
    no_default: Annotated[bool, typer.Option("--no-default", help="Remove the default.")] = False,
    description: Annotated[str | None, typer.Option()] = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Add or change a parameter of a Job's schema."""
    edit = job_service.ParamEdit(
        name=name,
        data_type=type_,
        direction=direction,
        default=default,
        clear_default=no_default,
        description=description,
    )
    with session() as s:
        j, notices = job_service.set_parameter(s.services, job, edit, writer=Writer.HOST)
    for n in notices:
        render.notice(n)
    if output is Output.JSON:
        render.print_json(views.job_view(j))
    else:
        render.info(f"Parameter {name} of job {job} saved.")


@param_app.command("remove")
def param_remove(job: str, name: str) -> None:
    """Remove a parameter from a Job's schema."""
    with session() as s:
        job_service.remove_parameter(s.services, job, name)
    render.info(f"Parameter {name} removed from job {job}.")


# -- task --------------------------------------------------------------------------------


def _retry_policy(
    retries: int | None, backoff: str | None, initial: str | None, max_delay: str | None
) -> RetryPolicy | None:
    if retries is None and backoff is None and initial is None and max_delay is None:
        return None
    if retries is not None:
        limits.RETRIES.check(retries, "--retries")
    try:
        strategy = BackoffStrategy(backoff.capitalize()) if backoff else BackoffStrategy.FIXED
    except ValueError:
        raise InputError(
            f"--retry-backoff {backoff!r} is not valid: use Fixed, Linear or Exponential."
        ) from None
    attempts = 1 + (retries or 0)
    initial_s = _seconds(initial, "--retry-delay")
    max_s = _seconds(max_delay, "--retry-max-delay")
    defaults = RetryPolicy()
    return RetryPolicy(
        enabled=attempts > 1,
        max_attempts=attempts,
        backoff=strategy,
        initial_delay_s=defaults.initial_delay_s if initial_s is None else float(initial_s),
        max_delay_s=defaults.max_delay_s if max_s is None else float(max_s),
    )


RetriesOpt = Annotated[
    int | None, typer.Option("--retries", help="Retry a failed run this many times.")
]
BackoffOpt = Annotated[
    str | None, typer.Option("--retry-backoff", help="Fixed, Linear or Exponential.")
]
DelayOpt = Annotated[str | None, typer.Option("--retry-delay", help="Initial delay, e.g. 30s.")]
MaxDelayOpt = Annotated[str | None, typer.Option("--retry-max-delay", help="Cap, e.g. 10m.")]
TimeoutOpt = Annotated[
    str | None,
    typer.Option("--timeout", help="Execution timeout, e.g. 30m: the run is failed TimedOut."),
]


@task_app.command("create")
def task_create(
    name: str,
    job: Annotated[str, typer.Option("--job", "-j", help="The Job this task runs.")],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="NAME=VALUE (repeatable); a Secret parameter takes a reference: "
            "vault://VAULT/SECRET, env:NAME or file:PATH.",
        ),
    ] = None,
    timeout: TimeoutOpt = None,
    retries: RetriesOpt = None,
    retry_backoff: BackoffOpt = None,
    retry_delay: DelayOpt = None,
    retry_max_delay: MaxDelayOpt = None,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    description: Annotated[str, typer.Option()] = "",
    output: OutputOpt = Output.TABLE,
) -> None:
    """Create a Task: a Job with pinned parameter values and run settings."""
    params = task_service.parse_assignments(param or [])
    with session() as s:
        t = task_service.create_task(
            s.services,
            name,
            job,
            params,
            execution_timeout_s=_seconds(timeout, "--timeout"),
            retry_policy=_retry_policy(retries, retry_backoff, retry_delay, retry_max_delay),
            priority=priority,
            description=description,
            writer=Writer.HOST,
        )
        notes = task_service.literal_notices(s.services.store.get_job(t.job), params)
    for note in notes:
        render.notice(note)
    if output is Output.JSON:
        render.print_json(views.task_view(t))
    else:
        render.info(f"Task {t.name} created. Run it once with `polysync task run {t.name}`.")


@task_app.command("set")
def task_set(
    name: str,
    param: Annotated[list[str] | None, typer.Option("--param", help="NAME=VALUE to set.")] = None,
    unset_param: Annotated[
        list[str] | None, typer.Option("--unset-param", help="Parameter name to drop.")
    ] = None,
    timeout: TimeoutOpt = None,
    no_timeout: Annotated[bool, typer.Option("--no-timeout")] = False,
    retries: RetriesOpt = None,
    retry_backoff: BackoffOpt = None,
    retry_delay: DelayOpt = None,
    retry_max_delay: MaxDelayOpt = None,
    priority: Annotated[int | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Change a Task's parameter values or run settings."""
    set_params = task_service.parse_assignments(param or [])
    with session() as s:
        t = task_service.update_task(
            s.services,
            name,
            set_params=set_params,
            unset_params=unset_param or (),
            execution_timeout_s=_seconds(timeout, "--timeout"),
            clear_timeout=no_timeout,
            retry_policy=_retry_policy(retries, retry_backoff, retry_delay, retry_max_delay),
            priority=priority,
            description=description,
            writer=Writer.HOST,
        )
        notes = task_service.literal_notices(s.services.store.get_job(t.job), set_params)
    for note in notes:
        render.notice(note)
    if output is Output.JSON:
        render.print_json(views.task_view(t))
    else:
        render.task(t)


@task_app.command("list")
def task_list(
    job: Annotated[str | None, typer.Option("--job", "-j")] = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """List Tasks."""
    with session() as s:
        items = s.services.store.list_tasks(job=job)
    if output is Output.JSON:
        render.print_json([views.task_view(t) for t in items])
    else:
        render.tasks(items)


@task_app.command("show")
def task_show(name: str, output: OutputOpt = Output.TABLE) -> None:
    """Show a Task (and point out values that look like references but are sent as text)."""
    with session() as s:
        t = s.services.store.get_task(name)
        notes = task_service.literal_notices(s.services.store.get_job(t.job), t.params)
    if output is Output.JSON:
        render.print_json(views.task_view(t))
    else:
        render.task(t)
    for note in notes:
        render.notice(note)


@task_app.command("remove")
def task_remove(
    name: str,
    force: Annotated[
        bool,
        typer.Option(
            help="Also remove its run records; unfinished runs' Batch work is stopped first."
        ),
    ] = False,
) -> None:
    """Remove a Task (refused while one of its runs is not finished, unless --force)."""
    with session() as s:
        done = s.run(removal.remove_task(s.services, name, force=force))
    render.info(done.message())


def _exit_for(run: TaskRun) -> int:
    return 0 if run.state is RunState.SUCCEEDED else EXIT_RUN_FAILED


def _watch(
    s: Session,
    run: TaskRun,
    output: Output,
    timeout_s: float | None = None,
    owner: str | None = None,
) -> TaskRun:
    """Live status line with elapsed time until the run ends (or the user presses Ctrl-C)."""
    started = time.monotonic()
    live = output is Output.TABLE and render.console.is_terminal
    status = render.console.status("") if live else None

    def on_update(r: TaskRun) -> None:
        elapsed = render.duration(time.monotonic() - started)
        last = r.history[-1].reason if r.history else ""
        line = f"{render.state_text(r.state)}  {elapsed}  {render.escape(last)}"
        if status is not None:
            status.update(line)
        if output is Output.TABLE and (status is None or r.state.is_terminal):
            render.console.print(line)

    async def ticker() -> None:
        while status is not None:
            await asyncio.sleep(0.5)
            current = s.services.store.get_run(run.id)
            elapsed = render.duration(time.monotonic() - started)
            status.update(f"{render.state_text(current.state)}  {elapsed}")

    async def watch() -> TaskRun:
        tick = asyncio.create_task(ticker()) if status is not None else None
        try:
            return await run_service.wait_run(
                s.services, run.id, on_update=on_update, timeout_s=timeout_s, owner=owner
            )
        finally:
            if tick is not None:
                tick.cancel()

    try:
        if status is not None:
            with status:
                return s.run(watch())
        return s.run(watch())
    except KeyboardInterrupt:
        render.err_console.print(
            f"\nStopped watching; run {run.id} goes on in Batch. Resume with "
            f"`polysync run wait {run.id}`, or cancel it with `polysync run cancel {run.id}`."
        )
        raise typer.Exit(130) from None


@task_app.command("run")
def task_run(
    name: str,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="NAME=VALUE for this run only.")
    ] = None,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait",
            help="Return once submitted; a worker tracks the run, follow it with `run wait`.",
        ),
    ] = False,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Run Once: submit now, print the RunId and monitor link, follow it to the end."""
    overrides = task_service.parse_assignments(param or [])
    owner = claims.run_once_owner()
    with session() as s:
        svc = s.services
        # Created already claimed by this process, so it is the run's one submitter: no
        # worker can claim it in between (decision 0012).
        run = run_service.start_run(svc, name, overrides, writer=Writer.HOST, owner=owner)
        refused: PolysyncError | None = None
        try:
            run = s.run(run_service.submit_run(svc, run.id))
        except PolysyncError as exc:
            refused = exc
        if no_wait or refused is not None:
            # Hand the run over: a worker adopts it once Starting, or claims and submits it
            # if Batch did not take it yet.
            claims.RunClaim(svc, run.id, owner).release()
            if refused is not None and not no_wait:
                raise refused
            run = svc.store.get_run(run.id)
        if output is Output.TABLE:
            render.run_header(run)
        if no_wait or run.state.is_terminal:
            if output is Output.JSON:
                render.print_json(views.run_view(run))
            elif run.state.is_terminal:
                render.run(run)
            elif refused is not None:
                render.notice(
                    f"Batch did not take run {run.id} yet ({refused}); it stays Queued and a "
                    "worker submits it (start one with `polysync worker` if none runs). "
                    f"Follow it with `polysync run wait {run.id}`."
                )
            else:
                render.info(
                    "Submitted; a worker tracks it from here (start one with `polysync "
                    f"worker` if none runs). Follow it with `polysync run wait {run.id}`."
                )
            raise typer.Exit(_exit_for(run) if run.state.is_terminal else 0)
        run = _watch(s, run, output, owner=owner)
        _print_final(s, run, output)
    raise typer.Exit(_exit_for(run))


def _print_final(s: Session, run: TaskRun, output: Output) -> None:
    if output is Output.JSON:
        render.print_json(views.run_view(run))
        return
    if run.state is RunState.FAILED and run.failure is not None:
        render.console.print(f"[red]Failed:[/] {render.escape(run.failure.message)}")
        if run.failure.stderr_tail:
            render.console.print("[bold]stderr.txt (tail)[/]")
            render.console.print(render.escape(run.failure.stderr_tail.rstrip("\n")))
    render.info(f"Details: `polysync run show {run.id}`; output: `polysync run logs {run.id}`.")


# -- run ---------------------------------------------------------------------------------


def _parse_run_ref(s: Session, ref: str) -> int:
    """A run is named by its number or by its RunId `{jobId}/{taskId}`.

    Checked before the store sees it: a number beyond the databases' integers was an
    OverflowError, and str.isdigit() also accepts digits such as '²' that int() refuses.
    """
    limits.RUN_REF.check(ref, "the run reference")
    if ref.isascii() and ref.strip().isdigit():
        return limits.RUN_ID.parse(ref)
    job_id, sep, task_id = ref.partition("/")
    if sep and job_id and task_id:
        run = s.services.store.find_run_by_batch_ids(job_id, task_id)
        if run is not None:
            return run.id
    raise InputError(
        f"run {ref!r} does not exist: name a run by its number or RunId (see `polysync run list`)."
    )


@run_app.command("list")
def run_list(
    task: Annotated[str | None, typer.Option("--task", "-t")] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="Queued, Starting, Running, Succeeded, ...")
    ] = None,
    limit: Annotated[
        int,
        typer.Option(help=f"Runs to show, {limits.PAGE_SIZE.span()}."),
    ] = 50,
    offset: Annotated[int, typer.Option(help="Runs to skip (newest first).")] = 0,
    refresh: Annotated[
        bool, typer.Option(help="Poll Batch for runs that are not finished before listing.")
    ] = True,
    output: OutputOpt = Output.TABLE,
) -> None:
    """List runs, newest first."""
    limits.PAGE_SIZE.check(limit, "--limit")
    limits.OFFSET.check(offset, "--offset")
    state_value = None
    if state is not None:
        matches = [st for st in RunState if st.value.lower() == state.lower()]
        if not matches:
            raise InputError(
                f"--state {state!r} is not a run state: use one of "
                + ", ".join(st.value for st in RunState)
                + "."
            )
        state_value = matches[0]
    with session() as s:
        store = s.services.store
        if refresh:
            pending = [
                r
                for r in store.list_runs(task=task, limit=limit, offset=offset)
                if r.state in (RunState.STARTING, RunState.RUNNING)
            ]
            for r in pending:
                try:
                    s.run(run_service.refresh_run(s.services, r.id))
                except PolysyncError as exc:
                    render.notice(f"could not refresh run {r.id}: {exc}")
        items = store.list_runs(task=task, state=state_value, limit=limit, offset=offset)
        total = store.count_runs(task=task, state=state_value)
    if output is Output.JSON:
        render.print_json([views.run_view(r) for r in items])
    else:
        render.runs(items, total)


@run_app.command("show")
def run_show(run: str, output: OutputOpt = Output.TABLE) -> None:
    """Show a run: history, exit code, failure info, stderr tail, monitor link."""
    with session() as s:
        run_id = _parse_run_ref(s, run)
        current = s.run(run_service.refresh_run(s.services, run_id))
    if output is Output.JSON:
        render.print_json(views.run_view(current))
    else:
        render.run(current)


@run_app.command("wait")
def run_wait(
    run: str,
    timeout: Annotated[
        str | None, typer.Option(help="Stop waiting after this long (the run goes on).")
    ] = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Follow a run until it ends; exit 0 if it succeeded, 1 if it failed or was cancelled."""
    timeout_s = _seconds(timeout, "--timeout")
    if timeout_s is not None:
        limits.WAIT_TIMEOUT_S.check(timeout_s, "--timeout")
    with session() as s:
        run_id = _parse_run_ref(s, run)
        current = s.services.store.get_run(run_id)
        if output is Output.TABLE:
            render.run_header(current)
        current = _watch(s, current, output, float(timeout_s) if timeout_s else None)
        if not current.state.is_terminal:
            if output is Output.JSON:
                render.print_json(views.run_view(current))
            render.err_console.print(f"Run {current.id} is still {current.state.value}.")
            raise typer.Exit(EXIT_RUN_FAILED)
        _print_final(s, current, output)
    raise typer.Exit(_exit_for(current))


@run_app.command("cancel")
def run_cancel(run: str, output: OutputOpt = Output.TABLE) -> None:
    """Cancel a run: terminate its Batch task, then its job. Safe to repeat."""
    with session() as s:
        run_id = _parse_run_ref(s, run)
        result = s.run(run_service.cancel_run(s.services, run_id))
    if output is Output.JSON:
        render.print_json(views.run_view(result.run))
    else:
        render.info(result.message)


@run_app.command("logs")
def run_logs(
    run: str,
    stderr: Annotated[
        bool, typer.Option("--stderr", help="stderr.txt instead of stdout.txt.")
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")
    ] = False,
    file: Annotated[
        str | None, typer.Option(help="Another file of the task directory, e.g. wd/result.json.")
    ] = None,
) -> None:
    """Print the task's stdout.txt (or stderr.txt, or another file)."""
    path = run_service.check_task_file(
        file if file is not None else ("stderr.txt" if stderr else "stdout.txt")
    )
    with session() as s:
        run_id = _parse_run_ref(s, run)

        async def pump() -> None:
            async for chunk in run_service.follow_file(s.services, run_id, path, follow=follow):
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()

        try:
            s.run(pump())
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


# -- demo --------------------------------------------------------------------------------


@app.command("demo")
def demo(
    port: Annotated[
        int,
        typer.Option(
            help="Loopback port of the local emulator. One already listening there is used "
            "if it accepts the key in {home}/local-emulator.key."
        ),
    ] = 8045,
) -> None:
    """The embedded default: a full tour on the local Azure Batch emulator."""
    from polysync.cli.demo import run_demo

    limits.PORT.check(port, "--port")
    raise typer.Exit(run_demo(port=port))


def main() -> None:
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except PolysyncError as exc:
        render.error(str(exc))
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        render.err_console.print("Aborted.")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 — last-resort handler: one sentence, exit 3
        # Typer 0.29 ships its own copy of click: usage errors come from typer._click.
        from typer._click.exceptions import ClickException, UsageError

        if isinstance(exc, ClickException):
            exc.show()
            sys.exit(2 if isinstance(exc, UsageError) else exc.exit_code)
        if os.environ.get("POLYSYNC_DEBUG"):
            traceback.print_exc()
        render.error(
            f"unexpected {type(exc).__name__}: {exc}. Re-run with POLYSYNC_DEBUG=1 for details."
        )
        sys.exit(3)
