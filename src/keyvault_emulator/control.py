"""The ``/_emulator/*`` test controls: request log, reset, fault injection.

They answer only ``Authorization: Bearer <admin token>`` — a token of its own that the
secrets API never accepts, and that no secrets token opens here.

* ``GET /_emulator/requests[?operation=GetSecret&status=200]`` → ``{"requests": [record]}``
  oldest first; ``DELETE /_emulator/requests`` empties the log.
* ``POST /_emulator/reset`` — forget every secret (live and deleted), fault and log entry.
* ``POST /_emulator/faults`` ``{"status": 503|429|..., "drop": false, "count": 1,
  "operation": "GetSecret"|null, "retry_after_s": null}`` — the next ``count`` requests
  (of ``operation``, or any) answer ``status`` in the service's error envelope, with
  ``Retry-After`` when ``retry_after_s`` is set, or have their connection dropped
  (``"drop": true``). Faults hit requests that would otherwise be served: the bearer
  challenge round-trip and refused requests never use one up. ``GET`` lists the pending
  faults, ``DELETE`` clears them.

A request record is ``{method, path, operation, status, role, time}``: ``path`` without
the query, ``operation`` as in :data:`keyvault_emulator.routing.OPERATIONS` (null for an
unknown path), ``status`` null for a dropped connection, ``role`` null when the caller was
not authenticated (the challenge round-trip), ``time`` epoch seconds from the vault clock.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypedDict

from keyvault_emulator import errors
from keyvault_emulator.auth import bearer_token
from keyvault_emulator.clock import Clock
from keyvault_emulator.routing import OPERATIONS

REQUEST_LOG_LIMIT = 100_000


class RequestRecord(TypedDict):
    method: str
    path: str
    operation: str | None
    status: int | None
    role: str | None
    time: float


class RequestLog:
    """Secrets API requests, oldest first (bounded; safe to read from any thread)."""

    def __init__(self, clock: Clock, limit: int = REQUEST_LOG_LIMIT) -> None:
        self._clock = clock
        self._entries: deque[RequestRecord] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def add(
        self, method: str, path: str, operation: str | None, status: int | None, role: str | None
    ) -> None:
        record = RequestRecord(
            method=method,
            path=path,
            operation=operation,
            status=status,
            role=role,
            time=self._clock(),
        )
        with self._lock:
            self._entries.append(record)

    def entries(
        self, operation: str | None = None, status: int | None = None
    ) -> list[RequestRecord]:
        with self._lock:
            snapshot = list(self._entries)
        return [
            r
            for r in snapshot
            if (operation is None or r["operation"] == operation)
            and (status is None or r["status"] == status)
        ]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass(slots=True)
class Fault:
    """Answer the next ``remaining`` matching requests with ``status``, or drop them."""

    status: int | None = 503
    drop: bool = False
    remaining: int = 1
    operation: str | None = None
    retry_after_s: int | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Fault:
        unknown = set(raw) - {"status", "drop", "count", "operation", "retry_after_s"}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        drop = raw.get("drop", False)
        if not isinstance(drop, bool):
            raise ValueError("drop must be true or false")
        status = raw.get("status")
        if status is None and not drop:
            status = 503
        if drop and status is not None:
            raise ValueError("a fault either drops the connection or answers a status")
        if status is not None and (
            isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599
        ):
            raise ValueError("status must be an HTTP error status between 400 and 599")
        count = raw.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive whole number")
        operation = raw.get("operation")
        if operation is not None and operation not in OPERATIONS:
            raise ValueError(f"operation must be one of {', '.join(OPERATIONS)}")
        retry_after = raw.get("retry_after_s")
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0
        ):
            raise ValueError("retry_after_s must be a non-negative whole number of seconds")
        return cls(status, drop, count, operation, retry_after)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["count"] = data.pop("remaining")
        return data


class FaultInjector:
    """Pending faults, used up in the order they were added."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def take(self, operation: str) -> Fault | None:
        """The fault that applies to this request, if any (using one of its count)."""
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.operation in (None, operation):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        del self._faults[i]
                    return fault
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


@dataclass(frozen=True, slots=True)
class ControlAnswer:
    status: int
    body: Any = None


class Controls:
    """The ``/_emulator`` routes (see the module docstring)."""

    def __init__(
        self,
        *,
        admin_token: str,
        log: RequestLog,
        faults: FaultInjector,
        reset: Callable[[], Awaitable[None]],
    ) -> None:
        self._admin = admin_token.encode()
        self.log = log
        self.faults = faults
        self._reset = reset

    async def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        authorization: str | None,
        body: bytes,
    ) -> ControlAnswer:
        token = bearer_token(authorization)
        if token is None or not hmac.compare_digest(token.encode(), self._admin):
            raise errors.admin_unauthorized()
        name = path.removeprefix("/_emulator").strip("/")
        if name == "requests":
            if method == "GET":
                status = query.get("status")
                records = self.log.entries(query.get("operation") or None, _int(status))
                return ControlAnswer(200, {"requests": records})
            if method == "DELETE":
                self.log.clear()
                return ControlAnswer(204)
        elif name == "reset":
            if method == "POST":
                await self._reset()
                return ControlAnswer(204)
        elif name == "faults":
            if method == "GET":
                return ControlAnswer(200, {"faults": [f.to_json() for f in self.faults.pending()]})
            if method == "POST":
                try:
                    fault = Fault.from_json(_object(body))
                except ValueError as exc:
                    raise errors.bad_parameter(f"Bad fault: {exc}.") from None
                self.faults.add(fault)
                return ControlAnswer(201, {"fault": fault.to_json()})
            if method == "DELETE":
                self.faults.clear()
                return ControlAnswer(204)
        else:
            raise errors.no_such_path()
        raise errors.method_not_allowed(method)


def _int(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise errors.bad_parameter("status must be a whole number.") from None


def _object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise ValueError("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


__all__ = [
    "ControlAnswer",
    "Controls",
    "Fault",
    "FaultInjector",
    "RequestLog",
    "RequestRecord",
]
