"""Which secrets operation a method and path name (the service's URL scheme).

Paths as the SDK's generated client builds them (``{vaultBaseUrl}`` is the vault URL):

=========  ======================================  =====================
Method     Path                                     Operation
=========  ======================================  =====================
GET        /secrets                                 ListSecrets
PUT        /secrets/{name}                          SetSecret
GET        /secrets/{name}[/[{version}]]            GetSecret
PATCH      /secrets/{name}/[{version}]              UpdateSecret
DELETE     /secrets/{name}                          DeleteSecret
GET        /secrets/{name}/versions                 ListSecretVersions
POST       /secrets/{name}/backup                   BackupSecret (501)
POST       /secrets/restore                         RestoreSecret (501)
GET        /deletedsecrets                          ListDeletedSecrets
GET        /deletedsecrets/{name}                   GetDeletedSecret
DELETE     /deletedsecrets/{name}                   PurgeDeletedSecret
POST       /deletedsecrets/{name}/recover           RecoverDeletedSecret
=========  ======================================  =====================

An empty version segment (``/secrets/{name}/``) means the latest version: the SDK sends
``get_secret(name)`` that way. Segments are split on the raw path and then decoded, so an
encoded ``/`` inside a name stays part of the (then invalid) name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from keyvault_emulator import errors

OPERATIONS = (
    "ListSecrets",
    "SetSecret",
    "GetSecret",
    "UpdateSecret",
    "DeleteSecret",
    "ListSecretVersions",
    "BackupSecret",
    "RestoreSecret",
    "ListDeletedSecrets",
    "GetDeletedSecret",
    "PurgeDeletedSecret",
    "RecoverDeletedSecret",
)


@dataclass(frozen=True, slots=True)
class Route:
    operation: str
    name: str | None = None
    version: str | None = None  # "" or None: the latest


def _pick(method: str, table: Mapping[str, str], name: str | None, version: str | None) -> Route:
    operation = table.get(method)
    if operation is None:
        raise errors.method_not_allowed(method)
    return Route(operation, name, version)


def match(method: str, raw_path: str) -> Route:
    """The route of a request, or raise 404 (unknown path) / 405 (known path, other method)."""
    parts = [unquote(p) for p in raw_path.split("?", 1)[0].split("/")[1:]]
    if len(parts) == 2 and parts[1] == "" and parts[0] in ("secrets", "deletedsecrets"):
        parts = parts[:1]  # "/secrets/" lists like "/secrets"
    if not parts:
        raise errors.no_such_path()
    head, rest = parts[0], parts[1:]
    if head == "secrets":
        if not rest:
            return _pick(method, {"GET": "ListSecrets"}, None, None)
        name = rest[0]
        if len(rest) == 1:
            if name == "restore" and method == "POST":
                return Route("RestoreSecret")
            table = {"PUT": "SetSecret", "GET": "GetSecret", "DELETE": "DeleteSecret"}
            return _pick(method, table, name, None)
        if len(rest) == 2:
            tail = rest[1]
            if tail == "versions" and method == "GET":
                return Route("ListSecretVersions", name)
            if tail == "backup" and method == "POST":
                return Route("BackupSecret", name)
            return _pick(method, {"GET": "GetSecret", "PATCH": "UpdateSecret"}, name, tail)
    elif head == "deletedsecrets":
        if not rest:
            return _pick(method, {"GET": "ListDeletedSecrets"}, None, None)
        name = rest[0]
        if len(rest) == 1:
            table = {"GET": "GetDeletedSecret", "DELETE": "PurgeDeletedSecret"}
            return _pick(method, table, name, None)
        if len(rest) == 2 and rest[1] == "recover":
            return _pick(method, {"POST": "RecoverDeletedSecret"}, name, None)
    raise errors.no_such_path()


__all__ = ["OPERATIONS", "Route", "match"]
