"""The vault's state and rules: secrets, their versions, soft delete. Pure — no I/O.

What it mirrors of Key Vault (REST reference for secrets, and the service's observed
behaviour):

* A secret name is 1-127 of ``[0-9a-zA-Z-]``; names are case-insensitive (``Db-Pass`` and
  ``db-pass`` are one secret), and the spelling of the first set is the one shown.
* Every set creates a new version, a 32-character lower-case hex id; the latest is the
  most recently created version. Versions are never removed one by one.
* ``get`` of a disabled version fails (403 ``SecretDisabled``); ``nbf``/``exp`` are
  informational — the service still answers ``get`` outside that window.
* Lists are sorted: secrets by (case-folded) name, versions by version id, which is the
  order the service returns them in.
* Delete is soft (recovery level ``Recoverable+Purgeable``, 90 days): the name then
  answers 404 to ``get``, cannot be set again until purged or recovered, and is purged
  automatically once its scheduled purge date has passed.

Callers serialise access (the server holds one lock around every call).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from keyvault_emulator import errors
from keyvault_emulator.clock import Clock, system_clock
from keyvault_emulator.paging import Page, take_page

NAME_RE = re.compile(r"[0-9a-zA-Z-]{1,127}")
VERSION_RE = re.compile(r"[0-9a-f]{32}")
RECOVERY_LEVEL = "Recoverable+Purgeable"
RECOVERABLE_DAYS = 90
MAX_VALUE_BYTES = 25 * 1024  # the service's size limit for a secret value (25 KB)
MAX_TAGS = 15  # the service's limit of tags per object
SNAPSHOT_FORMAT = 1


def random_version_id() -> str:
    return uuid.uuid4().hex


def validate_name(name: str) -> None:
    if NAME_RE.fullmatch(name) is None:
        raise errors.invalid_name(name)


@dataclass(slots=True)
class SecretVersion:
    version: str
    value: str
    content_type: str | None
    tags: dict[str, str] | None
    enabled: bool
    not_before: int | None
    expires: int | None
    created: int
    updated: int


@dataclass(slots=True)
class Secret:
    name: str  # as spelled when first set
    latest: str
    versions: dict[str, SecretVersion] = field(default_factory=dict)

    @property
    def current(self) -> SecretVersion:
        return self.versions[self.latest]

    def sorted_versions(self) -> list[SecretVersion]:
        return [self.versions[v] for v in sorted(self.versions)]


@dataclass(slots=True)
class DeletedSecret:
    secret: Secret
    deleted_date: int
    scheduled_purge_date: int


@dataclass(frozen=True, slots=True)
class SecretChanges:
    """An update of a version's properties; ``None`` leaves a property as it is."""

    enabled: bool | None = None
    not_before: int | None = None
    expires: int | None = None
    content_type: str | None = None
    tags: dict[str, str] | None = None  # replaces the whole tag set when given


class Vault:
    """All secrets of one vault, live and soft-deleted."""

    def __init__(
        self,
        clock: Clock = system_clock,
        new_version_id: Callable[[], str] = random_version_id,
    ) -> None:
        self._clock = clock
        self._new_version_id = new_version_id
        self._secrets: dict[str, Secret] = {}  # by case-folded name
        self._deleted: dict[str, DeletedSecret] = {}

    def now(self) -> int:
        return int(self._clock())

    # -- live secrets -----------------------------------------------------------------

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
        enabled: bool | None = None,
        not_before: int | None = None,
        expires: int | None = None,
    ) -> tuple[Secret, SecretVersion]:
        """Add a version (creating the secret if needed); it becomes the latest."""
        validate_name(name)
        if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise errors.bad_parameter(
                f"The secret value exceeds the maximum size of {MAX_VALUE_BYTES} bytes."
            )
        checked_tags = _check_tags(tags)
        key = name.lower()
        self._expire_deleted()
        if key in self._deleted:
            raise errors.deleted_but_recoverable(self._deleted[key].secret.name)
        secret = self._secrets.get(key)
        version_id = self._new_version_id()
        while secret is not None and version_id in secret.versions:
            version_id = self._new_version_id()
        now = self.now()
        version = SecretVersion(
            version=version_id,
            value=value,
            content_type=content_type,
            tags=checked_tags,
            enabled=True if enabled is None else enabled,
            not_before=not_before,
            expires=expires,
            created=now,
            updated=now,
        )
        if secret is None:
            secret = Secret(name=name, latest=version_id)
            self._secrets[key] = secret
        secret.versions[version_id] = version
        secret.latest = version_id
        return secret, version

    def find(self, name: str, version: str | None = None) -> tuple[Secret, SecretVersion]:
        """The named version (latest when ``version`` is empty), enabled or not."""
        validate_name(name)
        secret = self._secrets.get(name.lower())
        if secret is None:
            raise errors.secret_not_found(name, version)
        if not version:
            return secret, secret.current
        found = secret.versions.get(version)
        if found is None:
            raise errors.secret_not_found(name, version)
        return secret, found

    def get_secret(self, name: str, version: str | None = None) -> tuple[Secret, SecretVersion]:
        """What ``GET /secrets/{name}[/{version}]`` returns: refuses a disabled version."""
        secret, found = self.find(name, version)
        if not found.enabled:
            raise errors.secret_disabled()
        return secret, found

    def update(
        self, name: str, version: str | None, changes: SecretChanges
    ) -> tuple[Secret, SecretVersion]:
        secret, found = self.find(name, version)
        tags = _check_tags(changes.tags)
        if changes.enabled is not None:
            found.enabled = changes.enabled
        if changes.not_before is not None:
            found.not_before = changes.not_before
        if changes.expires is not None:
            found.expires = changes.expires
        if changes.content_type is not None:
            found.content_type = changes.content_type
        if tags is not None:
            found.tags = tags
        found.updated = self.now()
        return secret, found

    def list_secrets(self, after: str | None, size: int) -> Page[Secret]:
        ordered = [self._secrets[k] for k in sorted(self._secrets)]
        return take_page(ordered, lambda s: s.name.lower(), after, size)

    def list_versions(self, name: str, after: str | None, size: int) -> Page[SecretVersion]:
        validate_name(name)
        secret = self._secrets.get(name.lower())
        versions = secret.sorted_versions() if secret is not None else []
        return take_page(versions, lambda v: v.version, after, size)

    def __len__(self) -> int:
        return len(self._secrets)

    # -- soft delete ------------------------------------------------------------------

    def delete(self, name: str) -> DeletedSecret:
        validate_name(name)
        secret = self._secrets.pop(name.lower(), None)
        if secret is None:
            raise errors.secret_not_found(name)
        now = self.now()
        deleted = DeletedSecret(secret, now, now + RECOVERABLE_DAYS * 86_400)
        self._deleted[name.lower()] = deleted
        return deleted

    def get_deleted(self, name: str) -> DeletedSecret:
        validate_name(name)
        self._expire_deleted()
        deleted = self._deleted.get(name.lower())
        if deleted is None:
            raise errors.deleted_secret_not_found(name)
        return deleted

    def list_deleted(self, after: str | None, size: int) -> Page[DeletedSecret]:
        self._expire_deleted()
        ordered = [self._deleted[k] for k in sorted(self._deleted)]
        return take_page(ordered, lambda d: d.secret.name.lower(), after, size)

    def purge(self, name: str) -> None:
        self.get_deleted(name)
        del self._deleted[name.lower()]

    def recover(self, name: str) -> Secret:
        deleted = self.get_deleted(name)
        key = name.lower()
        del self._deleted[key]
        self._secrets[key] = deleted.secret
        return deleted.secret

    def _expire_deleted(self) -> None:
        now = self.now()
        for key in [k for k, d in self._deleted.items() if d.scheduled_purge_date <= now]:
            del self._deleted[key]

    # -- whole-vault ------------------------------------------------------------------

    def reset(self) -> None:
        self._secrets.clear()
        self._deleted.clear()

    def snapshot(self) -> dict[str, Any]:
        """Everything, values included, as JSON-ready data (for the data directory)."""
        return {
            "format": SNAPSHOT_FORMAT,
            "secrets": [_secret_json(s) for _, s in sorted(self._secrets.items())],
            "deleted": [
                {
                    "deletedDate": d.deleted_date,
                    "scheduledPurgeDate": d.scheduled_purge_date,
                    "secret": _secret_json(d.secret),
                }
                for _, d in sorted(self._deleted.items())
            ],
        }

    def load_snapshot(self, data: Mapping[str, Any]) -> None:
        """Replace the state with a :meth:`snapshot`; raises ValueError if it is not one."""
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported vault file format {data.get('format')!r}")
        try:
            secrets = {s.name.lower(): s for s in map(_secret_from_json, data["secrets"])}
            deleted = {}
            for raw in data["deleted"]:
                secret = _secret_from_json(raw["secret"])
                deleted[secret.name.lower()] = DeletedSecret(
                    secret, int(raw["deletedDate"]), int(raw["scheduledPurgeDate"])
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed vault file: {exc!r}") from None
        self._secrets = secrets
        self._deleted = deleted


def _check_tags(tags: Mapping[str, str] | None) -> dict[str, str] | None:
    if tags is None:
        return None
    if len(tags) > MAX_TAGS:
        raise errors.bad_parameter(f"A secret can have at most {MAX_TAGS} tags.")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise errors.bad_parameter("Tags must map strings to strings.")
    return dict(tags)


def _secret_json(secret: Secret) -> dict[str, Any]:
    return {
        "name": secret.name,
        "latest": secret.latest,
        "versions": [
            {
                "version": v.version,
                "value": v.value,
                "contentType": v.content_type,
                "tags": v.tags,
                "enabled": v.enabled,
                "nbf": v.not_before,
                "exp": v.expires,
                "created": v.created,
                "updated": v.updated,
            }
            for v in secret.sorted_versions()
        ],
    }


def _secret_from_json(raw: Mapping[str, Any]) -> Secret:
    secret = Secret(name=str(raw["name"]), latest=str(raw["latest"]))
    for v in raw["versions"]:
        secret.versions[str(v["version"])] = SecretVersion(
            version=str(v["version"]),
            value=str(v["value"]),
            content_type=v.get("contentType"),
            tags=v.get("tags"),
            enabled=bool(v["enabled"]),
            not_before=v.get("nbf"),
            expires=v.get("exp"),
            created=int(v["created"]),
            updated=int(v["updated"]),
        )
    if secret.latest not in secret.versions:
        raise ValueError(f"secret {secret.name!r}: latest version {secret.latest!r} missing")
    return secret


__all__ = [
    "MAX_TAGS",
    "MAX_VALUE_BYTES",
    "NAME_RE",
    "RECOVERABLE_DAYS",
    "RECOVERY_LEVEL",
    "DeletedSecret",
    "Secret",
    "SecretChanges",
    "SecretVersion",
    "Vault",
    "random_version_id",
    "validate_name",
]
