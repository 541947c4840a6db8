"""The /_emulator controls: faults, request log, reset, clock (see batch_emulator.control)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from batch_emulator.server import EmulatorServer


def test_request_log_records_batch_calls_oldest_first(
    fresh: EmulatorServer, client: Any, h: Any
) -> None:
    h.new_job(client, "j")
    client.get_job("j")
    fresh.control.advance_clock(1)  # controls are not logged
    log = fresh.control.requests()
    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("POST", "/jobs", 201),
        ("GET", "/jobs/j", 200),
    ]
    assert "api-version=2025-06-01" in log[0]["query"]
    assert log[0]["time"] <= log[1]["time"]
    fresh.control.clear_requests()
    assert fresh.control.requests() == []


def test_every_nth_fault_with_retry_after_is_retried_by_the_sdk(
    fresh: EmulatorServer, h: Any
) -> None:
    fresh.control.set_faults(
        [{"method": "GET", "path": "/jobs/*", "every": 2, "status": 503, "retry_after_s": 0}]
    )
    with h.sdk_client(fresh) as client:  # default retry policy
        h.new_job(client, "j")
        for _ in range(3):
            assert client.get_job("j").id == "j"
    statuses = [r["status"] for r in fresh.control.requests() if r["path"] == "/jobs/j"]
    # Every 2nd GET is a 503 that the SDK retries: 200, 503, 200, 200, 503, 200 ...
    assert statuses.count(503) >= 1
    assert statuses[-1] == 200


def test_fault_envelope_and_retry_after_header(
    fresh: EmulatorServer, raw: httpx.Client, h: Any
) -> None:
    fresh.control.set_faults(
        [
            {
                "method": "GET",
                "path": "/jobs",
                "status": 429,
                "code": "TooManyRequests",
                "retry_after_s": 2,
            }
        ]
    )
    response = raw.get("/jobs", params=h.API)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json()["code"] == "TooManyRequests"
    assert raw.get("/jobs/x", params=h.API).status_code == 404  # glob did not match
    fresh.control.clear_faults()
    assert raw.get("/jobs", params=h.API).status_code == 200


def test_probability_faults_are_reproducible(
    fresh: EmulatorServer, raw: httpx.Client, h: Any
) -> None:
    def run() -> list[int]:
        fresh.control.set_faults([{"path": "/jobs", "probability": 0.5, "status": 500}], seed=42)
        return [raw.get("/jobs", params=h.API).status_code for _ in range(20)]

    first, second = run(), run()
    assert first == second
    assert 500 in first
    assert 200 in first


def test_sdk_error_without_retries(fresh: EmulatorServer, client: Any, h: Any) -> None:
    fresh.control.set_faults([{"method": "POST", "path": "/jobs", "status": 500}])
    with pytest.raises(HttpResponseError) as info:
        h.new_job(client, "j")
    assert info.value.status_code == 500
    assert h.code(info.value) == "InternalError"


def test_drop_closes_the_connection(fresh: EmulatorServer, client: Any, h: Any) -> None:
    fresh.control.set_faults([{"method": "GET", "path": "/jobs", "drop": True, "every": 1}])
    with pytest.raises((ServiceResponseError, ServiceRequestError)):
        list(client.list_jobs())
    assert fresh.control.requests()[-1]["status"] is None
    with httpx.Client(base_url=fresh.endpoint) as c, pytest.raises(httpx.RemoteProtocolError):
        c.get("/jobs", params=h.API)
    fresh.control.clear_faults()
    assert list(client.list_jobs()) == []


def test_latency(fresh: EmulatorServer, raw: httpx.Client, h: Any) -> None:
    fresh.control.set_faults([{"path": "/jobs", "latency_ms": 300}])
    began = time.monotonic()
    assert raw.get("/jobs", params=h.API).status_code == 200
    assert time.monotonic() - began >= 0.3


def test_invalid_fault_rule_is_rejected(fresh: EmulatorServer) -> None:
    with pytest.raises(RuntimeError, match="400"):
        fresh.control.set_faults([{"path": "/jobs", "status": 200}])
    with pytest.raises(RuntimeError, match="Unknown fault rule fields"):
        fresh.control.set_faults([{"paths": "/jobs"}])


def test_reset_forgets_everything_but_seeded_pools(
    fresh: EmulatorServer, client: Any, h: Any
) -> None:
    h.new_job(client, "j")
    h.new_task(client, "j", "t", "/bin/sh -c 'sleep 30'")
    h.wait_task(client, "j", "t", "running")
    fresh.control.set_faults([{"path": "/nothing", "status": 503}])
    fresh.control.hold("x", "y", "active")
    fresh.control.advance_clock(100)
    fresh.control.reset()
    state = fresh.control.state()
    assert state["jobs"] == 0
    assert state["pools"] == 1
    assert state["holds"] == []
    assert state["scheduler"]["running"] == 0
    assert state["clock_offset_s"] == 0
    assert fresh.control.requests() == []
    assert [p.id for p in client.list_pools()] == [h.POOL]


def test_clock_moves_timestamps(fresh: EmulatorServer, client: Any, h: Any) -> None:
    before = fresh.control.advance_clock(0)
    after = fresh.control.advance_clock(86400)
    assert after["offset_s"] == before["offset_s"] + 86400
    h.new_job(client, "j")
    created = client.get_job("j").creation_time
    assert (created.timestamp() - time.time()) > 86000
