"""The ``/_emulator/*`` test controls, fault injection and the request log.

Controls (same authentication as the Batch API, no ``api-version`` needed):

* ``POST /_emulator/reset`` — kill every task process and forget every pool, job, task,
  fault rule, hold and log entry; the clock goes back to real time and the pools the
  server was started with are created again.
* ``GET|DELETE /_emulator/requests`` — the request log ``{"requests": [{method, path,
  query, status, time}]}``, Batch API calls only, oldest first (``status`` is null for a
  dropped connection).
* ``PUT|DELETE /_emulator/faults`` — fault rules ``{"rules": [{method, path, probability,
  every, status, code, retry_after_s, latency_ms, drop}]}``; optional ``"seed"`` for the
  random generator behind ``probability``.
* ``PUT /_emulator/hold`` ``{job_id, task_id, state}`` (globs; state ``active`` or
  ``running``), ``DELETE /_emulator/hold`` (release everything) and ``POST
  /_emulator/release`` ``{job_id, task_id}``.
* ``POST /_emulator/clock`` ``{"advance_s": N}`` and ``GET /_emulator/clock``.

A rule *fires* on a matching request when its ``every`` counter and ``probability`` say
so (both optional; neither means every time). A firing rule first waits ``latency_ms``,
then either drops the connection (``drop``), answers with ``status``/``code`` in the
service's error envelope (with ``Retry-After`` when ``retry_after_s`` is set), or — with
neither — lets the request through.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import random
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from batch_emulator.backend import Clock
from batch_emulator.protocol.auth import check_request_auth
from batch_emulator.protocol.errors import CATALOGUE, BatchError
from batch_emulator.protocol.formats import format_timestamp
from batch_emulator.routes import (
    ODATA_JSON,
    AuthConfig,
    Request,
    Response,
    common_headers,
    error_response,
)

REQUEST_LOG_LIMIT = 100_000
_DEFAULT_CODES = {
    408: "OperationTimedOut",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServerBusy",
}


class DropConnection(Exception):
    """Raised to make the ASGI layer close the connection without answering."""


@dataclass(slots=True)
class FaultRule:
    """One fault injection rule (see the module docstring)."""

    method: str | None = None
    path: str = "*"
    probability: float | None = None
    every: int | None = None
    status: int | None = None
    code: str | None = None
    retry_after_s: float | None = None
    latency_ms: float = 0.0
    drop: bool = False

    @classmethod
    def from_json(cls, raw: Any) -> FaultRule:
        if not isinstance(raw, dict):
            raise ValueError("Each fault rule must be a JSON object.")
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"Unknown fault rule fields: {', '.join(sorted(unknown))}.")
        rule = cls(**{k: v for k, v in raw.items() if v is not None})
        rule.validate()
        return rule

    def validate(self) -> None:
        if self.method is not None and not isinstance(self.method, str):
            raise ValueError("method must be a string such as 'GET' (or null for any).")
        if not isinstance(self.path, str) or not self.path:
            raise ValueError("path must be a glob such as '/jobs/*'.")
        if self.probability is not None and not 0.0 <= float(self.probability) <= 1.0:
            raise ValueError("probability must be between 0 and 1.")
        if self.every is not None and (
            isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1
        ):
            raise ValueError("every must be a positive integer.")
        if self.status is not None and (
            isinstance(self.status, bool)
            or not isinstance(self.status, int)
            or not 400 <= self.status <= 599
        ):
            raise ValueError("status must be an HTTP error status between 400 and 599.")
        if self.code is not None and not isinstance(self.code, str):
            raise ValueError("code must be a Batch error code string.")
        if self.latency_ms is not None and float(self.latency_ms) < 0:
            raise ValueError("latency_ms must not be negative.")
        if self.retry_after_s is not None and float(self.retry_after_s) < 0:
            raise ValueError("retry_after_s must not be negative.")

    def error(self) -> BatchError:
        status = self.status or 503
        code = self.code or _DEFAULT_CODES.get(status, "ServerBusy")
        known = CATALOGUE.get(code)
        message = known[1] if known else f"Fault injected by the emulator ({code})."
        return BatchError(code, status, message, retry_after_s=self.retry_after_s)


class FaultInjector:
    """Applies the fault rules to Batch API requests."""

    def __init__(self, seed: int = 0) -> None:
        self.rules: list[FaultRule] = []
        self._counts: list[int] = []
        self._patterns: list[re.Pattern[str]] = []
        self._rng = random.Random(seed)  # noqa: S311 - reproducible fault simulation, not crypto
        self._seed = seed

    def set_rules(self, rules: list[FaultRule], seed: int | None = None) -> None:
        self.rules = list(rules)
        self._counts = [0] * len(rules)
        self._patterns = [re.compile(fnmatch.translate(r.path)) for r in rules]
        self._rng = random.Random(  # noqa: S311 - reproducible fault simulation, not crypto
            self._seed if seed is None else seed
        )

    def clear(self) -> None:
        self.set_rules([])

    def _firing(self, req: Request) -> FaultRule | None:
        for i, rule in enumerate(self.rules):
            if rule.method is not None and rule.method.upper() not in ("*", req.method):
                continue
            if self._patterns[i].match(req.path) is None:
                continue
            self._counts[i] += 1
            if rule.every is not None and self._counts[i] % rule.every != 0:
                continue
            if rule.probability is not None and self._rng.random() >= float(rule.probability):
                continue
            return rule
        return None

    async def apply(self, req: Request) -> BatchError | None:
        """Run the first firing rule: sleep, then raise DropConnection or return an error."""
        if not self.rules:
            return None
        rule = self._firing(req)
        if rule is None:
            return None
        if rule.latency_ms:
            await asyncio.sleep(float(rule.latency_ms) / 1000.0)
        if rule.drop:
            raise DropConnection
        if rule.status is not None or rule.code is not None:
            return rule.error()
        return None


class RequestLog:
    """Batch API calls, oldest first (bounded)."""

    def __init__(self, clock: Clock, limit: int = REQUEST_LOG_LIMIT) -> None:
        self._clock = clock
        self._entries: deque[dict[str, Any]] = deque(maxlen=limit)

    def add(self, req: Request, status: int | None) -> None:
        self._entries.append(
            {
                "method": req.method,
                "path": req.path,
                "query": req.query_string,
                "status": status,
                "time": format_timestamp(self._clock.now()),
            }
        )

    def entries(self) -> list[dict[str, Any]]:
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()


class Controls:
    """The ``/_emulator`` routes. ``reset``/``hold``/... act through the callbacks given."""

    def __init__(
        self,
        *,
        auth: AuthConfig,
        clock: Clock,
        faults: FaultInjector,
        log: RequestLog,
        reset: Callable[[], Awaitable[None]],
        hold: Callable[[str, str, str], list[dict[str, str]]],
        release: Callable[[str, str], int],
        release_all: Callable[[], int],
        clock_advanced: Callable[[], None],
        state: Callable[[], dict[str, Any]],
    ) -> None:
        self.auth = auth
        self.clock = clock
        self.faults = faults
        self.log = log
        self._reset = reset
        self._hold = hold
        self._release = release
        self._release_all = release_all
        self._clock_advanced = clock_advanced
        self._state = state

    async def handle(self, req: Request) -> Response:
        try:
            check_request_auth(
                req.method,
                req.raw_path,
                req.query_string,
                req.headers,
                account=self.auth.account,
                key_b64=self.auth.key,
                bearer_tokens=self.auth.bearer_tokens,
            )
            return await self._route(req)
        except BatchError as err:
            return error_response(req, err, self.clock.now())

    def _ok(self, req: Request, body: Any = None, status: int = 200) -> Response:
        headers = common_headers(req)
        if body is None:
            return Response(204 if status == 200 else status, headers)
        headers.append((b"content-type", ODATA_JSON.encode()))
        return Response(status, headers, json.dumps(body).encode())

    def _body(self, req: Request) -> dict[str, Any]:
        if not req.body.strip():
            return {}
        try:
            body = json.loads(req.body)
        except ValueError:
            raise _bad_request("The control request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise _bad_request("The control request body must be a JSON object.")
        return body

    async def _route(self, req: Request) -> Response:
        name = req.path.rstrip("/").removeprefix("/_emulator").strip("/")
        method = req.method
        if name == "reset" and method == "POST":
            await self._reset()
            return self._ok(req)
        if name == "requests":
            if method == "GET":
                return self._ok(req, {"requests": self.log.entries()})
            if method == "DELETE":
                self.log.clear()
                return self._ok(req)
        if name == "faults":
            if method == "PUT":
                return self._ok(req, self._set_faults(self._body(req)))
            if method == "DELETE":
                self.faults.clear()
                return self._ok(req)
            if method == "GET":
                return self._ok(req, {"rules": [asdict(r) for r in self.faults.rules]})
        if name == "hold":
            if method == "PUT":
                body = self._body(req)
                state = str(body.get("state", "active"))
                try:
                    holds = self._hold(
                        str(body.get("job_id", "*")), str(body.get("task_id", "*")), state
                    )
                except ValueError as exc:
                    raise _bad_request(str(exc)) from None
                return self._ok(req, {"holds": holds})
            if method == "DELETE":
                return self._ok(req, {"released": self._release_all()})
        if name == "release" and method == "POST":
            body = self._body(req)
            released = self._release(str(body.get("job_id", "*")), str(body.get("task_id", "*")))
            return self._ok(req, {"released": released})
        if name == "clock":
            if method == "POST":
                body = self._body(req)
                try:
                    advance = float(body.get("advance_s", 0))
                    self.clock.advance(advance)
                except (TypeError, ValueError) as exc:
                    raise _bad_request(f"advance_s must be a non-negative number: {exc}") from None
                self._clock_advanced()
                return self._ok(req, self._clock_state())
            if method == "GET":
                return self._ok(req, self._clock_state())
        if name == "state" and method == "GET":
            return self._ok(req, self._state())
        raise BatchError.of("InvalidUri")

    def _clock_state(self) -> dict[str, Any]:
        return {"offset_s": self.clock.offset_s, "now": format_timestamp(self.clock.now())}

    def _set_faults(self, body: dict[str, Any]) -> dict[str, Any]:
        raw_rules = body.get("rules", [])
        if not isinstance(raw_rules, list):
            raise _bad_request("rules must be a list of fault rules.")
        try:
            rules = [FaultRule.from_json(r) for r in raw_rules]
        except (TypeError, ValueError) as exc:
            raise _bad_request(str(exc)) from None
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise _bad_request("seed must be an integer.")
        self.faults.set_rules(rules, seed)
        return {"rules": [asdict(r) for r in rules]}


def _bad_request(reason: str) -> BatchError:
    return BatchError.of("InvalidRequestBody", values=[("Reason", reason)])


__all__ = ["Controls", "DropConnection", "FaultInjector", "FaultRule", "RequestLog"]
