"""JSON in and out: request bodies to backend arguments, backend objects to Key Vault shapes.

Shapes follow the SDK's generated models (``SecretBundle``, ``SecretItem``,
``DeletedSecretBundle``, ``DeletedSecretItem``, ``SecretAttributes``): camelCase names,
times as whole epoch seconds, and — like the service — optional members (``contentType``,
``tags``, ``nbf``, ``exp``) left out rather than sent as null. Ids are
``{vault}/secrets/{name}/{version}``; a list of secrets names each secret without a
version, with the latest version's attributes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from keyvault_emulator import errors
from keyvault_emulator.backend import (
    RECOVERABLE_DAYS,
    RECOVERY_LEVEL,
    DeletedSecret,
    Secret,
    SecretChanges,
    SecretVersion,
)

JSON = dict[str, Any]


def attributes_json(version: SecretVersion) -> JSON:
    attrs: JSON = {"enabled": version.enabled}
    if version.not_before is not None:
        attrs["nbf"] = version.not_before
    if version.expires is not None:
        attrs["exp"] = version.expires
    attrs["created"] = version.created
    attrs["updated"] = version.updated
    attrs["recoveryLevel"] = RECOVERY_LEVEL
    attrs["recoverableDays"] = RECOVERABLE_DAYS
    return attrs


def _common(ident: str, version: SecretVersion) -> JSON:
    body: JSON = {"id": ident, "attributes": attributes_json(version)}
    if version.content_type is not None:
        body["contentType"] = version.content_type
    if version.tags is not None:
        body["tags"] = dict(version.tags)
    return body


def secret_id(vault: str, secret: Secret, version: SecretVersion | None = None) -> str:
    base = f"{vault}/secrets/{secret.name}"
    return f"{base}/{version.version}" if version is not None else base


def bundle_json(vault: str, secret: Secret, version: SecretVersion, *, with_value: bool) -> JSON:
    body = _common(secret_id(vault, secret, version), version)
    if with_value:
        body = {"value": version.value, **body}
    return body


def secret_item_json(vault: str, secret: Secret) -> JSON:
    return _common(secret_id(vault, secret), secret.current)


def version_item_json(vault: str, secret: Secret, version: SecretVersion) -> JSON:
    return _common(secret_id(vault, secret, version), version)


def deleted_json(vault: str, deleted: DeletedSecret, *, item: bool) -> JSON:
    """A deleted secret: its latest version's properties (never the value) and dates."""
    secret = deleted.secret
    ident = secret_id(vault, secret) if item else secret_id(vault, secret, secret.current)
    body = _common(ident, secret.current)
    body["recoveryId"] = f"{vault}/deletedsecrets/{secret.name}"
    body["deletedDate"] = deleted.deleted_date
    body["scheduledPurgeDate"] = deleted.scheduled_purge_date
    return body


# -- request bodies --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetRequest:
    value: str
    content_type: str | None
    tags: dict[str, str] | None
    enabled: bool | None
    not_before: int | None
    expires: int | None


def _object(body: bytes) -> JSON:
    if not body.strip():
        raise errors.bad_parameter("The request body is required.")
    try:
        data = json.loads(body)
    except ValueError:
        raise errors.bad_parameter("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise errors.bad_parameter("The request body must be a JSON object.")
    return data


def _optional_str(data: JSON, key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise errors.bad_parameter(f"The property '{key}' must be a string.")
    return value


def _tags(data: JSON) -> dict[str, str] | None:
    tags = data.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise errors.bad_parameter("The property 'tags' must map strings to strings.")
    return tags


def _attributes(data: JSON) -> tuple[bool | None, int | None, int | None]:
    attrs = data.get("attributes")
    if attrs is None:
        return None, None, None
    if not isinstance(attrs, dict):
        raise errors.bad_parameter("The property 'attributes' must be an object.")
    enabled = attrs.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise errors.bad_parameter("The attribute 'enabled' must be true or false.")
    times: list[int | None] = []
    for key in ("nbf", "exp"):
        value = attrs.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise errors.bad_parameter(f"The attribute '{key}' must be epoch seconds.")
        times.append(None if value is None else int(value))
    return enabled, times[0], times[1]


def parse_set(body: bytes) -> SetRequest:
    data = _object(body)
    value = data.get("value")
    if not isinstance(value, str):
        raise errors.bad_parameter("The property 'value' is required and must be a string.")
    enabled, nbf, exp = _attributes(data)
    return SetRequest(value, _optional_str(data, "contentType"), _tags(data), enabled, nbf, exp)


def parse_update(body: bytes) -> SecretChanges:
    data = _object(body)
    enabled, nbf, exp = _attributes(data)
    return SecretChanges(
        enabled=enabled,
        not_before=nbf,
        expires=exp,
        content_type=_optional_str(data, "contentType"),
        tags=_tags(data),
    )


__all__ = [
    "SetRequest",
    "attributes_json",
    "bundle_json",
    "deleted_json",
    "parse_set",
    "parse_update",
    "secret_id",
    "secret_item_json",
    "version_item_json",
]
