"""Engine benchmark: Polysync's worker against two reference polling strategies.

    .venv/bin/python benchmarks/engine_bench.py                       # N = 100, 1000, 5000
    .venv/bin/python benchmarks/engine_bench.py --n 50 --task-seconds 1-3 --json

Every strategy runs the same workload (N runs of ``/bin/sh -c 'sleep $SECS'``, SECS drawn
once per N from a seeded RNG) on the same emulator, which is reset between strategies:

* ``polysync`` — the N runs are queued first through ``start_run`` (as users do), then
  ``polysync worker --exit-when-idle`` runs in a subprocess until they are all terminal;
* ``list-tasks-15s`` — submits each run (create job, add task), then lists the tasks of
  each active job every 15 s (Airflow's Batch operator);
* ``get-task-10s`` — submits the same way, then GETs each task every 10 s (Nextflow).
* ``polysync-vault`` (on request: ``--strategies polysync polysync-vault``) — ``polysync``
  with the platform's account key in a Secret Vault (the local Key Vault, in this
  process) instead of an environment variable: vault reads per run are counted from the
  vault's request log, and its figures are judged against the ``polysync`` row of the
  same N (issue 10, acceptance 5).

Figures, per strategy and N:

* calls per run — every Batch API call in the emulator's request log during the
  strategy's window (its process start to its exit; the log is cleared before) / N;
* detection latency — Batch's task ``executionInfo.endTime`` → the moment the strategy
  recorded the run terminal: for Polysync the store write of the terminal transition (the
  run row's ``updated_at``, which no later write touches in this workload), for the
  references the wall clock when their poll saw ``completed``; p50 and p99 (nearest rank);
* CPU seconds and peak RSS of the strategy's process alone (``wait4`` on its pid);
* lost — runs not terminal (Polysync) or never seen completed (references) at the end;
* duplicates — Batch jobs beyond one per run attempt: ``POST /jobs`` answered 201 beyond
  the attempts recorded, plus jobs in the emulator's job list that no attempt recorded.

The emulator (its own process) gets one pool with enough slots for N tasks at once, so a
task's queueing time never depends on the strategy. Loopback only; every wait has a
deadline; child processes are stopped on exit, on errors and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Run as a script: this file's directory is sys.path[0], so the shared harness imports
# as a top-level module (see _workload's docstring).
from _workload import (
    GET_TASK,
    LIST_TASKS,
    NONTERMINAL,
    REFERENCE_INTERVALS_S,
    Child,
    EmulatorProcess,
    RefRun,
    TaskSetup,
    clean_env,
    cleanup_on_exit,
    created_jobs,
    epoch,
    fetch_end_times,
    installation_prefix,
    list_job_ids,
    make_template,
    percentile,
    queue_runs,
    read_attempts,
    read_runs,
    reference_strategy,
    setup_polysync,
    start_worker,
    use_vault_key,
    worker_available,
)

POLYSYNC = "polysync"
POLYSYNC_VAULT = "polysync-vault"
STRATEGIES = (POLYSYNC, LIST_TASKS, GET_TASK)
ALL_STRATEGIES = (*STRATEGIES, POLYSYNC_VAULT)
POOL_ID = "bench"
TEMPLATE_ID = "bench-template"
TASK_NAME = "bench"
COMMAND = "/bin/sh -c 'sleep $SECS'"

# Targets (issue 4, acceptance 5).
MAX_CALLS_PER_SUCCESSFUL_RUN = 6.0
MAX_DETECT_P99_S = 2.0
CPU_TARGET_N = 5000
# Targets (issue 10, acceptance 5): a vault-held key costs (almost) nothing per run.
MAX_VAULT_READS_PER_RUN = 0.01
MAX_VAULT_OVERHEAD = 0.10


@dataclass
class Row:
    strategy: str
    n: int
    calls_per_run: float
    detect_p50_s: float | None
    detect_p99_s: float | None
    cpu_s: float
    rss_mb: float
    lost: int
    duplicates: int
    # Not in the JSON lines (their shape is fixed); used by the table and the targets.
    calls: int = 0
    succeeded: int = 0
    wall_s: float = 0.0
    note: str = ""
    vault_reads: int | None = None  # polysync-vault: GetSecret calls the vault served

    def json_line(self) -> str:
        keys = (
            "strategy",
            "n",
            "calls_per_run",
            "detect_p50_s",
            "detect_p99_s",
            "cpu_s",
            "rss_mb",
            "lost",
            "duplicates",
        )
        data = asdict(self)
        line = {k: _round(data[k]) for k in keys}
        if self.vault_reads is not None:
            line["vault_reads_per_run"] = _round(self.vault_reads / self.n)
        return json.dumps(line)


def _round(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value


def workload(n: int, seed: int, low_s: float, high_s: float) -> list[float]:
    """N task durations, one decimal, the same for every strategy at this N."""
    rng = random.Random(f"{seed}-{n}")
    return [round(rng.uniform(low_s, high_s), 1) for _ in range(n)]


def deadline_for(n: int, seconds: Sequence[float]) -> float:
    """How long a strategy may take before its unfinished runs count as lost."""
    return 120.0 + max(seconds, default=0.0) + 0.12 * n


def latencies(detected: dict[str, float], ends: dict[tuple[str, str], float | None]) -> list[float]:
    out: list[float] = []
    for (job_id, _task_id), end in ends.items():
        if end is not None and job_id in detected:
            out.append(detected[job_id] - end)
    return out


# --- strategies -------------------------------------------------------------------------


def run_polysync(
    emu: EmulatorProcess,
    n: int,
    seconds: Sequence[float],
    workdir: Path,
    worker_args: Sequence[str],
    kv: Any = None,
) -> Row:
    """The ``polysync`` strategy; with ``kv`` (a KeyVaultServer), ``polysync-vault``."""
    strategy = POLYSYNC if kv is None else POLYSYNC_VAULT
    emu.control.reset()
    make_template(emu.endpoint, TEMPLATE_ID, COMMAND, pool_id=POOL_ID, env={"SECS": "1"})
    home = workdir / f"{strategy}-{n}"
    db_url = f"sqlite:///{home / 'polysync.db'}"
    svc = setup_polysync(home, db_url, emu.endpoint, TEMPLATE_ID, [TaskSetup(TASK_NAME)])
    try:
        if kv is not None:
            use_vault_key(svc, emu.endpoint, kv, home, "bench-kv")
        queue_runs(svc, [(TASK_NAME, {"SECS": f"{s:g}"}) for s in seconds])
        prefix = installation_prefix(svc)
    finally:
        svc.close()
    emu.control.clear_requests()
    if kv is not None:
        kv.control.clear_requests()
    started = time.monotonic()
    worker = start_worker(
        home, db_url, workdir / f"worker-{n}.log", "--exit-when-idle", *worker_args
    )
    usage = worker.wait(deadline_for(n, seconds))
    note = ""
    if usage is None:
        note = "worker did not exit before the deadline (stopped with SIGTERM)"
        usage = worker.stop()
    elif usage.returncode != 0:
        note = f"worker exited {usage.returncode}: {worker.log_tail(5)}"
    wall = time.monotonic() - started
    entries = emu.control.requests()
    runs = read_runs(db_url)
    attempts = read_attempts(db_url)
    detected = {
        r.batch_job_id: epoch(r.updated_at)
        for r in runs
        if r.state not in NONTERMINAL and r.batch_job_id is not None
    }
    pairs = [
        (r.batch_job_id, r.batch_task_id)
        for r in runs
        if r.batch_job_id in detected and r.batch_task_id is not None
    ]
    ends = asyncio.run(fetch_end_times(emu.endpoint, [(j, t) for j, t in pairs if j and t]))
    listed = set(asyncio.run(list_job_ids(emu.endpoint, prefix)))
    recorded = {a.batch_job_id for a in attempts}
    duplicates = max(0, created_jobs(entries) - len(recorded)) + len(listed - recorded)
    lat = latencies(detected, ends)
    return Row(
        strategy=strategy,
        n=n,
        calls_per_run=len(entries) / n,
        detect_p50_s=percentile(lat, 50),
        detect_p99_s=percentile(lat, 99),
        cpu_s=usage.cpu_s,
        rss_mb=usage.rss_mb,
        lost=sum(1 for r in runs if r.state in NONTERMINAL),
        duplicates=duplicates,
        calls=len(entries),
        succeeded=sum(1 for r in runs if r.state == "Succeeded"),
        wall_s=wall,
        note=note,
        vault_reads=None if kv is None else kv.control.count("GetSecret", status=200),
    )


def run_reference(
    emu: EmulatorProcess,
    strategy: str,
    n: int,
    seconds: Sequence[float],
    workdir: Path,
) -> Row:
    emu.control.reset()
    prefix = f"ref-{strategy.split('-')[0]}-{n}-"
    runs = [RefRun(f"{prefix}{i}", "task", s) for i, s in enumerate(seconds)]
    deadline = deadline_for(n, seconds)
    spec = workdir / f"{strategy}-{n}-spec.json"
    out = workdir / f"{strategy}-{n}-out.json"
    spec.write_text(
        json.dumps(
            {
                "endpoint": emu.endpoint,
                "pool_id": POOL_ID,
                "mode": strategy,
                "interval_s": REFERENCE_INTERVALS_S[strategy],
                "deadline_s": deadline,
                "runs": [asdict(r) for r in runs],
            }
        )
    )
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", str(spec), str(out)]
    emu.control.clear_requests()
    started = time.monotonic()
    child = Child(argv, env=clean_env(), log_path=workdir / f"{strategy}-{n}.log")
    usage = child.wait(deadline + 60.0)
    note = ""
    if usage is None:
        note = "reference did not exit before the deadline (killed)"
        usage = child.kill()
    elif usage.returncode != 0:
        note = f"reference exited {usage.returncode}: {child.log_tail(5)}"
    wall = time.monotonic() - started
    entries = emu.control.requests()
    result = json.loads(out.read_text()) if out.exists() else {"detected": {}, "exit_codes": {}}
    detected: dict[str, float] = {k: float(v) for k, v in result["detected"].items()}
    ends = asyncio.run(
        fetch_end_times(emu.endpoint, [(r.job_id, r.task_id) for r in runs if r.job_id in detected])
    )
    expected = {r.job_id for r in runs}
    listed = set(asyncio.run(list_job_ids(emu.endpoint, prefix)))
    duplicates = max(0, created_jobs(entries) - len(expected)) + len(listed - expected)
    lat = latencies(detected, ends)
    return Row(
        strategy=strategy,
        n=n,
        calls_per_run=len(entries) / n,
        detect_p50_s=percentile(lat, 50),
        detect_p99_s=percentile(lat, 99),
        cpu_s=usage.cpu_s,
        rss_mb=usage.rss_mb,
        lost=n - len(detected),
        duplicates=duplicates,
        calls=len(entries),
        succeeded=sum(1 for c in result["exit_codes"].values() if c == 0),
        wall_s=wall,
        note=note,
    )


def child_main(spec_path: Path, out_path: Path) -> int:
    """The reference strategy process: submit and poll, then write what it detected."""
    spec = json.loads(spec_path.read_text())
    runs = [RefRun(**r) for r in spec["runs"]]
    result = asyncio.run(
        reference_strategy(
            spec["endpoint"],
            spec["pool_id"],
            runs,
            mode=spec["mode"],
            interval_s=float(spec["interval_s"]),
            deadline_s=float(spec["deadline_s"]),
        )
    )
    out_path.write_text(
        json.dumps(
            {
                "detected": result.detected,
                "exit_codes": result.exit_codes,
                "submit_errors": result.submit_errors,
            }
        )
    )
    for job_id, error in list(result.submit_errors.items())[:5]:
        print(f"submit failed for {job_id}: {error}", file=sys.stderr)
    return 0


# --- reporting --------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def print_table(rows: Sequence[Row]) -> None:
    header = (
        f"{'strategy':<15} {'N':>5} {'calls/run':>9} {'p50':>7} {'p99':>7} {'cpu':>8} "
        f"{'rss':>8} {'lost':>5} {'dup':>4} {'wall':>7} {'vault/run':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.strategy:<15} {r.n:>5} {r.calls_per_run:>9.2f} {_fmt(r.detect_p50_s, 's'):>7} "
            f"{_fmt(r.detect_p99_s, 's'):>7} {r.cpu_s:>7.1f}s {r.rss_mb:>6.0f}MB {r.lost:>5} "
            f"{r.duplicates:>4} {r.wall_s:>6.0f}s "
            f"{'-' if r.vault_reads is None else f'{r.vault_reads / r.n:.4f}':>9}"
        )
        if r.note:
            print(f"    note: {r.note}")


def vault_targets(rows: Sequence[Row]) -> list[str]:
    """Issue 10, acceptance 5: vault reads per run, and the other figures within 10 % of
    the same N without a vault (CPU, calls per run, detection p50/p99, RSS)."""
    lines: list[str] = []
    for r in (x for x in rows if x.strategy == POLYSYNC_VAULT):
        reads = (r.vault_reads or 0) / r.n
        verdict = "PASS" if reads <= MAX_VAULT_READS_PER_RUN and not r.lost else "FAIL"
        lines.append(
            f"{verdict}  N={r.n}: {reads:.4f} vault reads per run ({r.vault_reads} in all; "
            f"target <= {MAX_VAULT_READS_PER_RUN:g}, lost {r.lost})"
        )
        base = next((x for x in rows if x.strategy == POLYSYNC and x.n == r.n), None)
        if base is None:
            lines.append(f"n/a   N={r.n}: the 10 % comparison needs the polysync row")
            continue
        for label, ours, theirs in (
            ("calls/run", r.calls_per_run, base.calls_per_run),
            ("detection p50", r.detect_p50_s, base.detect_p50_s),
            ("detection p99", r.detect_p99_s, base.detect_p99_s),
            ("worker CPU", r.cpu_s, base.cpu_s),
            ("peak RSS", r.rss_mb, base.rss_mb),
        ):
            if ours is None or theirs is None or theirs == 0:
                lines.append(f"n/a   N={r.n}: {label} has no figure to compare")
                continue
            change = ours / theirs - 1
            verdict = "PASS" if change <= MAX_VAULT_OVERHEAD else "FAIL"
            lines.append(
                f"{verdict}  N={r.n}: {label} with the vault {ours:.3f} vs {theirs:.3f} "
                f"({change:+.1%}; target <= +{MAX_VAULT_OVERHEAD:.0%})"
            )
    return lines


def targets(rows: Sequence[Row]) -> list[str]:
    """One PASS/FAIL line per target (issue 4, acceptance 5; issue 10, acceptance 5)."""
    lines: list[str] = vault_targets(rows)
    ours = [r for r in rows if r.strategy == POLYSYNC]
    if not ours:
        return [*lines, "targets: n/a (the polysync strategy was not run)"]
    for r in ours:
        per_ok = r.calls / r.succeeded if r.succeeded else float("inf")
        verdict = "PASS" if per_ok <= MAX_CALLS_PER_SUCCESSFUL_RUN else "FAIL"
        lines.append(
            f"{verdict}  N={r.n}: {per_ok:.2f} Batch calls per successful run "
            f"(target <= {MAX_CALLS_PER_SUCCESSFUL_RUN:g}, {r.succeeded}/{r.n} succeeded)"
        )
        p99 = r.detect_p99_s
        verdict = "PASS" if p99 is not None and p99 <= MAX_DETECT_P99_S and not r.lost else "FAIL"
        lines.append(
            f"{verdict}  N={r.n}: detection p99 {_fmt(p99, 's')} "
            f"(target <= {MAX_DETECT_P99_S:g}s, lost {r.lost})"
        )
    big = [r for r in ours if r.n == CPU_TARGET_N]
    if not big:
        lines.append(f"n/a   CPU target is judged at N={CPU_TARGET_N}, which was not run")
    for r in big:
        refs = [x for x in rows if x.n == r.n and x.strategy not in (POLYSYNC, POLYSYNC_VAULT)]
        if not refs:
            lines.append(f"n/a   N={r.n}: CPU target needs a reference strategy in the run")
            continue
        cheaper = min(refs, key=lambda x: x.cpu_s)
        verdict = "PASS" if r.cpu_s <= cheaper.cpu_s else "FAIL"
        lines.append(
            f"{verdict}  N={r.n}: worker CPU {r.cpu_s:.1f}s vs {cheaper.cpu_s:.1f}s for "
            f"{cheaper.strategy} (target: no higher than the cheaper reference)"
        )
    return lines


# --- main -------------------------------------------------------------------------------


def _seconds_range(text: str) -> tuple[float, float]:
    low, sep, high = text.partition("-")
    try:
        lo, hi = float(low), float(high if sep else low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--task-seconds {text!r}: expected MIN-MAX") from None
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"--task-seconds {text!r}: need 0 < MIN <= MAX")
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--n", type=int, nargs="+", default=[100, 1000, 5000], help="run counts")
    p.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    p.add_argument(
        "--strategies",
        nargs="+",
        choices=ALL_STRATEGIES,
        default=list(STRATEGIES),
        metavar="S",
        help=f"of {', '.join(ALL_STRATEGIES)} (default: the first three)",
    )
    p.add_argument("--task-seconds", type=_seconds_range, default=(1.0, 20.0), metavar="MIN-MAX")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--pool",
        default="24x256",
        help="emulator pool NODESxSLOTS, enough slots for every task at once (default "
        "24x256 = 6144; Batch allows at most 256 slots per node)",
    )
    p.add_argument(
        "--submit-rate",
        type=float,
        default=300.0,
        help="`polysync worker --submit-rate` (Batch create calls/s; default 300, about 100 "
        "runs/s — what the references reach on the emulator unthrottled)",
    )
    p.add_argument(
        "--worker-arg",
        action="append",
        default=[],
        help="extra `polysync worker` argument (repeatable), e.g. --worker-arg=--concurrency=200",
    )
    p.add_argument("--workdir", type=Path, default=None, help="keep logs and stores here")
    p.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        return child_main(args.child[0], args.child[1])
    if any(n < 1 for n in args.n):
        print("--n values must be positive", file=sys.stderr)
        return 2
    if {POLYSYNC, POLYSYNC_VAULT} & set(args.strategies) and not worker_available():
        print(
            "`polysync worker` is not available in this checkout; run the references only "
            f"with --strategies {LIST_TASKS} {GET_TASK}.",
            file=sys.stderr,
        )
        return 2
    out = sys.stderr if args.json else sys.stdout
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp,
        cleanup_on_exit(),
        contextlib.ExitStack() as stack,
    ):
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        kv = None
        if POLYSYNC_VAULT in args.strategies:
            from keyvault_emulator.server import KeyVaultConfig, KeyVaultServer

            kv = stack.enter_context(KeyVaultServer(KeyVaultConfig()))
        emu = EmulatorProcess(workdir, [f"{POOL_ID}={args.pool}"]).start()
        try:
            for n in args.n:
                seconds = workload(n, args.seed, *args.task_seconds)
                for strategy in args.strategies:
                    print(f"... {strategy} N={n}", file=out, flush=True)
                    if strategy in (POLYSYNC, POLYSYNC_VAULT):
                        worker_args = [f"--submit-rate={args.submit_rate:g}", *args.worker_arg]
                        vault = kv if strategy == POLYSYNC_VAULT else None
                        row = run_polysync(emu, n, seconds, workdir, worker_args, vault)
                    else:
                        row = run_reference(emu, strategy, n, seconds, workdir)
                    rows.append(row)
                    if args.json:
                        print(row.json_line(), flush=True)
        except KeyboardInterrupt:
            print("interrupted: stopping the strategy and the emulator", file=sys.stderr)
            return 130
        finally:
            emu.stop()
    if not args.json:
        print_table(rows)
    print("\n".join(targets(rows)), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
