"""Secret Vault use cases: declare, list, test and remove vaults (decision 0010).

A vault holds where an Azure Key Vault is and how to authenticate to it — never a secret.
Its credential follows the same modes and secret-input rules as a platform's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from urllib.parse import urlsplit

from polysync.domain import limits
from polysync.domain.models import VAULT_PROVIDER_AZURE, AuthMode, SecretVault
from polysync.domain.secrets import Writer, auth_references
from polysync.errors import InputError
from polysync.services.context import Services
from polysync.services.platforms import (
    AuthInput,
    build_auth,
    ca_bundle_path,
    check_credentials,
    validate_name,
)
from polysync.services.secrets import forget_rules
from polysync.vaults.checks import VaultCheck

# Key Vault secret names are [0-9A-Za-z-]; a pattern adds the glob characters.
_PATTERN = re.compile(r"^[0-9A-Za-z*?\[\]!-]{1,127}$")
VAULT_AUTH_MODES = tuple(m for m in AuthMode if m is not AuthMode.SHARED_KEY)


@dataclass(frozen=True, slots=True, kw_only=True)
class VaultInput(AuthInput):
    """What `vault add` collects. ``task_secrets``: glob patterns of the secret names Task
    and run parameters may refer to (``("*",)``: all; ``()``: none)."""

    name: str
    url: str
    auth: AuthMode = AuthMode.MANAGED_IDENTITY
    verify_tls: bool = True
    ca_bundle: str | None = None
    task_secrets: tuple[str, ...] = ("*",)


def normalise_vault_url(url: str) -> str:
    """``https://NAME.vault.azure.net/`` (Key Vault speaks only TLS, even locally)."""
    text = url.strip()
    parts = urlsplit(text)
    shape = "give it as https://<vault-name>.vault.azure.net/"
    if parts.scheme != "https" or not parts.hostname or any(c.isspace() for c in text):
        raise InputError(f"vault URL {url!r} is not valid: {shape} (Key Vault needs https).")
    if parts.username or parts.password:
        raise InputError(f"vault URL {url!r} carries a user name or password: {shape}.")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InputError(f"vault URL {url!r} must have no path, query or fragment: {shape}.")
    try:
        parts.port  # noqa: B018 — raises ValueError for a port out of range
    except ValueError:
        raise InputError(f"vault URL {url!r} has an invalid port: {shape}.") from None
    return f"{parts.scheme}://{parts.netloc}/"


def _patterns(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if not _PATTERN.match(value):
            raise InputError(
                f"task secret pattern {value!r} is not valid: use secret names or globs of "
                "letters, digits, '-' and * ? [ ] (e.g. etl-* or *)."
            )
    return tuple(dict.fromkeys(values))


def build_vault(data: VaultInput) -> SecretVault:
    """Validate user input into a SecretVault; raises InputError with one clear sentence."""
    # The same text limits as a platform's fields (length, no NUL), from one place.
    for item in fields(data):
        value = getattr(data, item.name)
        if isinstance(value, str):
            limits.PLATFORM_FIELD.check(value, item.name.replace("_", " "))
    if len(data.task_secrets) > 100:
        raise InputError("give at most 100 task secret patterns; use globs such as etl-*.")
    validate_name("vault", data.name)
    if data.auth is AuthMode.SHARED_KEY:
        raise InputError(
            "a Secret Vault authenticates with Entra ID: use --auth "
            + ", ".join(m.value for m in VAULT_AUTH_MODES)
            + " (shared-key is for Batch accounts)."
        )
    auth = build_auth(data)
    for ref in auth_references(auth):
        if ref.kind == "vault" and (ref.vault or "").lower() == data.name.lower():
            raise InputError(
                f"the credential of vault {data.name} cannot be kept in vault {data.name} "
                "itself: keep it in another vault or on the host."
            )
    return SecretVault(
        name=data.name,
        url=normalise_vault_url(data.url),
        auth=auth,
        provider=VAULT_PROVIDER_AZURE,
        verify_tls=data.verify_tls,
        ca_bundle=ca_bundle_path(data.ca_bundle),
        task_secrets=_patterns(data.task_secrets),
    )


def add_vault(
    svc: Services, data: VaultInput, *, writer: Writer, replace_existing: bool = False
) -> SecretVault:
    """Declare (or, with ``replace_existing``, update) a vault written by ``writer``."""
    vault = build_vault(data)
    check_credentials(svc, f"vault {vault.name}", vault.auth, vault.ca_bundle, writer=writer)
    if replace_existing and any(
        v.name.lower() == vault.name.lower() for v in svc.store.list_vaults()
    ):
        updated = svc.store.update_vault(vault)
    else:
        updated = svc.store.add_vault(vault)
    forget_rules(svc)  # the next check sees the change at once
    return updated


async def test_vault(svc: Services, name: str) -> list[VaultCheck]:
    """Reach the vault and list one secret name; no secret value of the vault is read."""
    return await svc.secrets.test_vault(svc.store.get_vault(name))


def remove_vault(svc: Services, name: str) -> None:
    """Remove a vault; refused while anything refers to it (the message names them)."""
    svc.store.remove_vault(name)
    forget_rules(svc)
