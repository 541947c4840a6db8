"""The secrets operations over HTTP: api-version, paging links, and the backend calls.

Authentication, host checks and faults happen before this (in :mod:`keyvault_emulator.app`);
here a routed, authorised request becomes a call on :class:`~keyvault_emulator.backend.Vault`
and a JSON answer. Every operation answers 200 with a body except purge (204), as the
service does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from keyvault_emulator import errors, wire
from keyvault_emulator.backend import Vault
from keyvault_emulator.paging import (
    Page,
    PagingError,
    decode_marker,
    encode_marker,
    parse_maxresults,
)
from keyvault_emulator.routing import Route

# GA versions of the secrets API, oldest first. 2026-04-01 is the default of
# azure-keyvault-secrets 4.12 (its ApiVersion enum lists exactly these).
API_VERSIONS = (
    "2016-10-01",
    "7.0",
    "7.1",
    "7.2",
    "7.3",
    "7.4",
    "7.5",
    "7.6",
    "2025-07-01",
    "2026-04-01",
)
LATEST_API_VERSION = API_VERSIONS[-1]

# Operations that change the vault (so a data directory is rewritten after them).
MUTATING = frozenset(
    {"SetSecret", "UpdateSecret", "DeleteSecret", "PurgeDeletedSecret", "RecoverDeletedSecret"}
)


def check_api_version(query: Mapping[str, str]) -> str:
    version = query.get("api-version")
    if not version:
        raise errors.missing_api_version()
    if version not in API_VERSIONS:
        raise errors.unknown_api_version(version, LATEST_API_VERSION)
    return version


@dataclass(frozen=True, slots=True)
class Call:
    """One authorised request, as the handlers need it."""

    route: Route
    query: Mapping[str, str]  # decoded, first value per name
    body: bytes
    vault_url: str  # scheme://host:port of the request, no trailing slash
    api_version: str


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any = None  # JSON-ready, or None for no body


class SecretsApi:
    """Runs routed operations against one :class:`Vault`."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self._handlers: dict[str, Callable[[Call], Answer]] = {
            "SetSecret": self._set,
            "GetSecret": self._get,
            "UpdateSecret": self._update,
            "DeleteSecret": self._delete,
            "ListSecrets": self._list,
            "ListSecretVersions": self._list_versions,
            "ListDeletedSecrets": self._list_deleted,
            "GetDeletedSecret": self._get_deleted,
            "PurgeDeletedSecret": self._purge,
            "RecoverDeletedSecret": self._recover,
        }

    def execute(self, call: Call) -> Answer:
        handler = self._handlers.get(call.route.operation)
        if handler is None:
            raise errors.not_implemented(call.route.operation)
        return handler(call)

    # -- single secrets ---------------------------------------------------------------

    def _set(self, call: Call) -> Answer:
        request = wire.parse_set(call.body)
        secret, version = self.vault.set_secret(
            _name(call),
            request.value,
            content_type=request.content_type,
            tags=request.tags,
            enabled=request.enabled,
            not_before=request.not_before,
            expires=request.expires,
        )
        return Answer(200, wire.bundle_json(call.vault_url, secret, version, with_value=True))

    def _get(self, call: Call) -> Answer:
        secret, version = self.vault.get_secret(_name(call), call.route.version)
        return Answer(200, wire.bundle_json(call.vault_url, secret, version, with_value=True))

    def _update(self, call: Call) -> Answer:
        changes = wire.parse_update(call.body)
        secret, version = self.vault.update(_name(call), call.route.version, changes)
        return Answer(200, wire.bundle_json(call.vault_url, secret, version, with_value=False))

    def _delete(self, call: Call) -> Answer:
        deleted = self.vault.delete(_name(call))
        return Answer(200, wire.deleted_json(call.vault_url, deleted, item=False))

    def _get_deleted(self, call: Call) -> Answer:
        deleted = self.vault.get_deleted(_name(call))
        return Answer(200, wire.deleted_json(call.vault_url, deleted, item=False))

    def _purge(self, call: Call) -> Answer:
        self.vault.purge(_name(call))
        return Answer(204)

    def _recover(self, call: Call) -> Answer:
        secret = self.vault.recover(_name(call))
        body = wire.bundle_json(call.vault_url, secret, secret.current, with_value=False)
        return Answer(200, body)

    # -- lists ------------------------------------------------------------------------

    def _list(self, call: Call) -> Answer:
        after, size = _paging(call)
        page = self.vault.list_secrets(after, size)
        items = [wire.secret_item_json(call.vault_url, s) for s in page.items]
        return Answer(200, _list_body(call, items, page, size))

    def _list_versions(self, call: Call) -> Answer:
        after, size = _paging(call)
        name = _name(call)
        page = self.vault.list_versions(name, after, size)
        if page.items:
            secret, _ = self.vault.find(name)
            items = [wire.version_item_json(call.vault_url, secret, v) for v in page.items]
        else:
            items = []
        return Answer(200, _list_body(call, items, page, size))

    def _list_deleted(self, call: Call) -> Answer:
        after, size = _paging(call)
        page = self.vault.list_deleted(after, size)
        items = [wire.deleted_json(call.vault_url, d, item=True) for d in page.items]
        return Answer(200, _list_body(call, items, page, size))


def _name(call: Call) -> str:
    if call.route.name is None:  # pragma: no cover - routing always sets it for these
        raise errors.no_such_path()
    return call.route.name


def _paging(call: Call) -> tuple[str | None, int]:
    try:
        size = parse_maxresults(call.query.get("maxresults"))
        token = call.query.get("$skiptoken")
        after = decode_marker(token) if token else None
    except PagingError as exc:
        raise errors.bad_parameter(str(exc)) from None
    return after, size


def _list_body(call: Call, items: list[Any], page: Page[Any], size: int) -> dict[str, Any]:
    next_link = None
    if page.next_marker is not None:
        next_link = (
            f"{call.vault_url}{_list_path(call.route)}?api-version={call.api_version}"
            f"&$skiptoken={encode_marker(page.next_marker)}&maxresults={size}"
        )
    return {"value": items, "nextLink": next_link}


def _list_path(route: Route) -> str:
    if route.operation == "ListSecretVersions":
        return f"/secrets/{route.name}/versions"
    if route.operation == "ListDeletedSecrets":
        return "/deletedsecrets"
    return "/secrets"


__all__ = [
    "API_VERSIONS",
    "LATEST_API_VERSION",
    "MUTATING",
    "Answer",
    "Call",
    "SecretsApi",
    "check_api_version",
]
