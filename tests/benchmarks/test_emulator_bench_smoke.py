"""Smoke test of ``benchmarks/emulator_bench.py``: every phase runs end to end in a tiny
configuration and yields sane figures.

Not a timed test: the machine running the suite is shared, so no target is asserted, only
that each measurement exists and is a positive, finite number (a rate of 0 or a missing
phase means the harness or the emulator broke).
"""

from __future__ import annotations

import io
import json
import math

import pytest

from emulator_bench import main

TINY = [
    "--quick",
    "--json",
    "--duration",
    "0.2",
    "--client-duration",
    "0.1",
    "--warmup",
    "0.05",
    "--concurrency",
    "4",
    "--client-concurrency",
    "2",
    "--latency-tasks",
    "3",
    "--scale-jobs",
    "40",
    "--repeats",
    "1",
]

EXPECTED = {
    "get_task_rate": 5,  # aiohttp, httpx, SDK over loopback; bare ASGI, httpx in-process
    "post_task_rate": 5,
    "start_latency_from_201": 1,
    "start_latency_from_send": 1,
    "local_spawn_floor": 1,
    "scale_get_rate_empty": 1,
    "scale_create_rate": 1,
    "scale_get_rate_loaded": 2,  # same task, random task
    "scale_slowdown": 1,
    "start_latency_from_201_loaded": 1,
}


@pytest.mark.timeout(60)
def test_every_phase_yields_positive_figures() -> None:
    out = io.StringIO()
    figures = main(TINY, out=out)

    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    assert lines[0]["measurement"] == "context"
    measured = lines[1:]
    counts: dict[str, int] = {}
    for line in measured:
        counts[line["measurement"]] = counts.get(line["measurement"], 0) + 1
    assert counts == EXPECTED

    assert len(figures) == len(measured)
    for fig, line in zip(figures, measured, strict=True):
        assert fig.name == line["measurement"]
        assert math.isfinite(fig.value), fig
        # Latencies are differences of two clocks and could in principle be ~0; every
        # other figure is a rate or a ratio of rates and must be strictly positive.
        if fig.unit == "ms":
            assert line["p50_ms"] <= line["p95_ms"] <= line["max_ms"], line
            assert fig.name == "local_spawn_floor" or line["samples"] == 3, line
            assert fig.value > -1000.0, fig  # the stamp cannot precede the POST by a second
        else:
            assert fig.value > 0, fig
    rates = [line for line in measured if line["unit"] == "req/s" and "requests" in line]
    assert all(line["requests"] > 0 for line in rates)

    # A run with fewer than 10,000 jobs must not claim the scale target either way.
    (slowdown,) = [line for line in measured if line["measurement"] == "scale_slowdown"]
    assert slowdown["pass"] is None
    assert slowdown["jobs"] == 41  # the 40 created plus the GET benchmark's job
    (target,) = [line for line in measured if "pass" in line and line is not slowdown]
    assert target["measurement"] == "get_task_rate"
    assert target["client"] == "aiohttp"
    assert target["transport"] == "loopback"
