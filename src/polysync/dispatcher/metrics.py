"""What the worker measures, in memory, as Prometheus text and as a JSON snapshot.

* Batch API calls by platform and operation (``GET /jobs/{jobId}/tasks/{taskId}``),
  counted by an azure-core hook inside the SDK's retry loop, so every HTTP try counts.
* Throttling: 429/503 responses seen (the SDK retries many of them itself) and the pauses
  the engine took after one surfaced.
* Completion detection latency: Batch's task end time → the run terminal in the store.
* Runs by state (read from the store when a snapshot is taken).

The worker writes :meth:`Metrics.snapshot` to ``{POLYSYNC_HOME}/worker-metrics/{id}.json``
every few seconds and when it stops; ``polysync worker stats`` reads the newest file.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

LATENCY_BUCKETS_S: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_THROTTLE_STATUS = frozenset({429, 503})
_MAX_SAMPLES = 100_000


def quantile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank quantile of already sorted values; None when empty. Pure."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


class Metrics:
    """Counters of one worker process (also a ``CallObserver`` for the Batch client)."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.calls: Counter[tuple[str, str]] = Counter()
        self.throttled_responses: Counter[str] = Counter()
        self.throttle_pauses: Counter[str] = Counter()
        self.quota_holds: Counter[str] = Counter()
        self.events: Counter[str] = Counter()  # submitted, adopted, retried, timed_out, ...
        self.finished: Counter[str] = Counter()  # terminal state → count
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.latency_sum_s = 0.0
        self.latency_count = 0
        self._samples: list[float] = []
        self.runs_by_state: dict[str, int] = {}

    # --- CallObserver ------------------------------------------------------------------
    def request(self, platform: str, operation: str) -> None:
        self.calls[(platform, operation)] += 1

    def response(self, platform: str, operation: str, status: int) -> None:
        if status in _THROTTLE_STATUS:
            self.throttled_responses[platform] += 1

    # --- engine events -------------------------------------------------------------------
    def detected(self, latency_s: float) -> None:
        latency_s = max(latency_s, 0.0)
        self.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1
        self.latency_sum_s += latency_s
        self.latency_count += 1
        if len(self._samples) < _MAX_SAMPLES:
            self._samples.append(latency_s)

    def total_calls(self) -> int:
        return sum(self.calls.values())

    def calls_by_operation(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (_platform, op), n in self.calls.items():
            out[op] += n
        return dict(sorted(out.items()))

    # --- outputs ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        samples = sorted(self._samples)
        return {
            "worker_id": self.worker_id,
            "pid": os.getpid(),
            "runs_by_state": dict(self.runs_by_state),
            "calls_total": self.total_calls(),
            "calls_by_operation": self.calls_by_operation(),
            "throttled_responses": sum(self.throttled_responses.values()),
            "throttle_pauses": sum(self.throttle_pauses.values()),
            "quota_holds": sum(self.quota_holds.values()),
            "events": dict(sorted(self.events.items())),
            "finished": dict(sorted(self.finished.items())),
            "detection_latency": {
                "count": self.latency_count,
                "sum_s": round(self.latency_sum_s, 6),
                "p50_s": quantile(samples, 0.5),
                "p99_s": quantile(samples, 0.99),
                "max_s": samples[-1] if samples else None,
                "buckets": {
                    **{
                        str(b): n
                        for b, n in zip(LATENCY_BUCKETS_S, self.latency_buckets, strict=False)
                    },
                    "+Inf": self.latency_buckets[-1],
                },
            },
        }

    def write(self, path: Path) -> None:
        """Atomically replace ``path`` with the snapshot (readers never see half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.snapshot(), indent=2) + "\n")
        tmp.replace(path)

    def prometheus(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        wid = _label(self.worker_id)
        lines = [
            "# HELP polysync_batch_calls_total Batch API HTTP calls (each try counts).",
            "# TYPE polysync_batch_calls_total counter",
        ]
        for (platform, op), n in sorted(self.calls.items()):
            lines.append(
                f'polysync_batch_calls_total{{worker="{wid}",platform="{_label(platform)}",'
                f'operation="{_label(op)}"}} {n}'
            )
        lines += [
            "# HELP polysync_batch_throttled_total 429/503 answers from Batch.",
            "# TYPE polysync_batch_throttled_total counter",
        ]
        for platform, n in sorted(self.throttled_responses.items()):
            labels = f'worker="{wid}",platform="{_label(platform)}"'
            lines.append(f"polysync_batch_throttled_total{{{labels}}} {n}")
        lines += [
            "# HELP polysync_throttle_pauses_total Account pauses after a throttled call.",
            "# TYPE polysync_throttle_pauses_total counter",
            f'polysync_throttle_pauses_total{{worker="{wid}"}} '
            f"{sum(self.throttle_pauses.values())}",
            "# HELP polysync_quota_holds_total Submissions held back by the active job quota.",
            "# TYPE polysync_quota_holds_total counter",
            f'polysync_quota_holds_total{{worker="{wid}"}} {sum(self.quota_holds.values())}',
            "# HELP polysync_runs Runs by state (whole store).",
            "# TYPE polysync_runs gauge",
        ]
        for state, n in sorted(self.runs_by_state.items()):
            lines.append(f'polysync_runs{{state="{_label(state)}"}} {n}')
        lines += [
            "# HELP polysync_detection_latency_seconds Batch task end to run terminal.",
            "# TYPE polysync_detection_latency_seconds histogram",
        ]
        cumulative = 0
        for bound, n in zip(LATENCY_BUCKETS_S, self.latency_buckets, strict=False):
            cumulative += n
            lines.append(
                f'polysync_detection_latency_seconds_bucket{{worker="{wid}",le="{bound}"}} '
                f"{cumulative}"
            )
        lines += [
            f'polysync_detection_latency_seconds_bucket{{worker="{wid}",le="+Inf"}} '
            f"{self.latency_count}",
            f'polysync_detection_latency_seconds_sum{{worker="{wid}"}} {self.latency_sum_s:.6f}',
            f'polysync_detection_latency_seconds_count{{worker="{wid}"}} {self.latency_count}',
        ]
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_dir(home: Path) -> Path:
    return home / "worker-metrics"


def latest_snapshot(home: Path) -> dict[str, Any] | None:
    """The newest snapshot a worker of this home wrote, or None."""
    folder = metrics_dir(home)
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in files:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            data["path"] = str(path)
            return data
    return None


async def serve_metrics(port: int, render: Callable[[], str]) -> asyncio.Server:
    """A minimal HTTP endpoint on 127.0.0.1: ``GET /metrics`` → Prometheus text."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            parts = request.split(b"\r\n", 1)[0].split()
            ok = len(parts) >= 2 and parts[0] == b"GET" and parts[1].split(b"?")[0] == b"/metrics"
            body = render().encode() if ok else b"not found: try /metrics\n"
            status = b"200 OK" if ok else b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\n"
                b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                b"Connection: close\r\n\r\n" + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)
