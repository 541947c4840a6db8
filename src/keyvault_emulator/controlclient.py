"""A small client of the ``/_emulator`` controls (``kv.control`` on a running server)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, cast

import httpx

from keyvault_emulator.control import RequestRecord


class ControlError(RuntimeError):
    """A control request the emulator refused."""


class ControlClient:
    """Reads the request log, resets the vault and arranges faults, over HTTPS."""

    def __init__(self, url: str, admin_token: str, *, cafile: Path, timeout: float = 30.0) -> None:
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"authorization": f"Bearer {admin_token}"},
            verify=ssl.create_default_context(cafile=str(cafile)),
            timeout=timeout,
        )

    def __repr__(self) -> str:
        return f"ControlClient({str(self._client.base_url)!r})"

    def close(self) -> None:
        self._client.close()

    def _call(
        self, method: str, name: str, *, body: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        response = self._client.request(method, f"/_emulator/{name}", json=body, params=params)
        if response.status_code >= 400:
            raise ControlError(
                f"{method} /_emulator/{name} answered {response.status_code}: {response.text}"
            )
        return response.json() if response.content else None

    # -- request log ------------------------------------------------------------------

    def requests(
        self, operation: str | None = None, *, status: int | None = None
    ) -> list[RequestRecord]:
        """Secrets API requests, oldest first, optionally only one operation / status."""
        params = {}
        if operation is not None:
            params["operation"] = operation
        if status is not None:
            params["status"] = str(status)
        return cast(list[RequestRecord], self._call("GET", "requests", params=params)["requests"])

    def count(self, operation: str | None = None, *, status: int | None = None) -> int:
        """How many requests match, e.g. ``count("GetSecret", status=200)`` = reads served."""
        return len(self.requests(operation, status=status))

    def clear_requests(self) -> None:
        self._call("DELETE", "requests")

    # -- state and faults -------------------------------------------------------------

    def reset(self) -> None:
        """Forget every secret (live and deleted), pending fault and log entry."""
        self._call("POST", "reset")

    def add_fault(
        self,
        status: int | None = 503,
        *,
        count: int = 1,
        operation: str | None = None,
        retry_after_s: int | None = None,
        drop: bool = False,
    ) -> dict[str, Any]:
        """Make the next ``count`` (matching) requests fail; returns the fault as stored."""
        body: dict[str, Any] = {"count": count, "operation": operation, "drop": drop}
        body["status"] = None if drop else status
        if retry_after_s is not None:
            body["retry_after_s"] = retry_after_s
        return cast(dict[str, Any], self._call("POST", "faults", body=body)["fault"])

    def faults(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._call("GET", "faults")["faults"])

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")


__all__ = ["ControlClient", "ControlError"]
