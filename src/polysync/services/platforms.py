"""Platform use cases: register a Batch account, test it, discover its template jobs."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields, replace
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlsplit

from polysync.domain import limits
from polysync.domain.models import AuthMode, Platform, PlatformAuth, SecretRef
from polysync.domain.secrets import VAULT_PREFIX, Slot, Writer, parse_ref, require_ref
from polysync.errors import InputError
from polysync.jobtypes.base import ConnectivityReport, DiscoveredJob
from polysync.services.context import Services
from polysync.services.secrets import check_writable

_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{limits.NAME.max_len - 1}}}")
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_RESOURCE_GROUP = re.compile(r"^[-\w.()]{1,90}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthInput:
    """The credential part of `platform add` and `vault add` (same modes, same rules)."""

    auth: AuthMode = AuthMode.SHARED_KEY
    key_env: str | None = None
    key_file: str | None = None
    key_ref: str | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    client_secret_ref: str | None = None
    certificate_path: str | None = None
    certificate_password_env: str | None = None
    certificate_password_file: str | None = None
    certificate_password_ref: str | None = None
    token_env: str | None = None
    token_file: str | None = None
    token_ref: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformInput(AuthInput):
    """What `platform add` collects; secrets only as references (decision 0010).

    Each secret comes from exactly one of ``*_ref`` (``vault://…``, ``env:NAME`` or
    ``file:PATH``), ``*_env`` (a variable name) or ``*_file`` (a path).
    """

    name: str
    account_url: str
    account_name: str
    subscription_id: str
    resource_group: str
    verify_tls: bool = True
    ca_bundle: str | None = None


def validate_name(kind: str, name: str) -> str:
    # fullmatch, not match with $: "$" also matches before a trailing newline.
    if _NAME.fullmatch(name) is None:
        shown = name if len(name) <= 80 else name[:80] + "…"
        raise InputError(
            f"{kind} name {shown!r} is not valid: use 1-{limits.NAME.max_len} letters, digits, "
            "'.', '_' or '-', starting with a letter or digit."
        )
    return name


_URL_SHAPE = (
    "https://<account>.<region>.batch.azure.com (or http://127.0.0.1:PORT for the emulator)"
)


def normalise_account_url(url: str) -> str:
    """The account URL as the SDK takes it: scheme, host and maybe a port, nothing else.

    Anything more (credentials, a path, a query) would be sent to Batch or mangled by
    the SDK's URL building, so it is refused rather than guessed at.
    """
    limits.PLATFORM_FIELD.check(url, "the account URL")
    text = url.strip()  # surrounding blanks are a copy-paste accident, not a URL
    shown = repr(text if len(text) <= 100 else text[:100] + "…")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise InputError(
            f"account URL {shown} contains a space or control character: give it as {_URL_SHAPE}."
        )
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"account URL {shown} is not valid: give it as {_URL_SHAPE}.")
    if "@" in parts.netloc:
        raise InputError(
            f"account URL {shown} carries a user name or password: remove the 'user:pass@' "
            f"part (credentials go in --auth and its options) and give it as {_URL_SHAPE}."
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port == -1 or port == 0 or parts.netloc.endswith(":"):
        raise InputError(
            f"account URL {shown} has an invalid port: use a port from 1 to 65535, or none, "
            f"as in {_URL_SHAPE}."
        )
    if parts.path not in ("", "/"):
        raise InputError(
            f"account URL {shown} has a path ({parts.path}): give only the account's address, "
            f"as in {_URL_SHAPE}."
        )
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise InputError(
            f"account URL {shown} carries a query or fragment: remove the part from '?' or "
            f"'#' on and give it as {_URL_SHAPE}."
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise InputError(
            f"account URL {shown} uses plain http to a non-local host: Azure Batch only "
            "speaks https, so use https://."
        )
    return text.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def secret_ref(
    flag: str,
    env: str | None,
    file: str | None,
    ref: str | None = None,
    *,
    required: bool,
) -> SecretRef | None:
    """The one reference given as ``{flag}`` (a reference), ``{flag}-env`` or ``{flag}-file``."""
    given = [name for name, value in (("", ref), ("-env", env), ("-file", file)) if value]
    if len(given) > 1:
        raise InputError(
            f"give only one of {', '.join(flag + g for g in given)}: a secret has one source."
        )
    if ref:
        return require_ref(ref.strip(), flag)
    if env:
        if not _ENV_NAME.match(env):
            raise InputError(
                f"{flag}-env takes the NAME of an environment variable (like "
                "AZURE_BATCH_KEY), not the secret itself; export the secret and pass its name."
            )
        return SecretRef("env", env)
    if file:
        return SecretRef("file", str(Path(file).expanduser().resolve()))
    if required:
        raise InputError(
            f"this authentication mode needs {flag} vault://VAULT/SECRET, {flag}-env NAME or "
            f"{flag}-file PATH: secrets are never taken from a flag value, so they stay out of "
            "shell history and process lists."
        )
    return None


def _certificate(path: str) -> str:
    """A certificate kept in a vault (``vault://…``), or a file of this host (its absolute
    path; whether it exists is checked by :func:`check_credentials`, after the writer)."""
    if path.startswith(VAULT_PREFIX):
        require_ref(path, "--certificate-path")
        return path
    return str(Path(path).expanduser().resolve())


def build_auth(data: AuthInput) -> PlatformAuth:
    """The credential settings of a platform or a vault, validated (one sentence each)."""
    mode = data.auth
    if mode is AuthMode.SHARED_KEY:
        key = secret_ref("--key", data.key_env, data.key_file, data.key_ref, required=True)
        return PlatformAuth(mode, secret=key)
    if mode is AuthMode.SERVICE_PRINCIPAL:
        _need(mode, tenant_id=data.tenant_id, client_id=data.client_id)
        return PlatformAuth(
            mode,
            secret=secret_ref(
                "--client-secret",
                data.client_secret_env,
                data.client_secret_file,
                data.client_secret_ref,
                required=True,
            ),
            tenant_id=data.tenant_id,
            client_id=data.client_id,
        )
    if mode is AuthMode.CERTIFICATE:
        _need(
            mode,
            tenant_id=data.tenant_id,
            client_id=data.client_id,
            certificate_path=data.certificate_path,
        )
        return PlatformAuth(
            mode,
            secret=secret_ref(
                "--certificate-password",
                data.certificate_password_env,
                data.certificate_password_file,
                data.certificate_password_ref,
                required=False,
            ),
            tenant_id=data.tenant_id,
            client_id=data.client_id,
            certificate_path=_certificate(str(data.certificate_path)),
        )
    if mode is AuthMode.MANAGED_IDENTITY:
        return PlatformAuth(mode, client_id=data.client_id)
    if mode is AuthMode.DEFAULT:
        return PlatformAuth(mode, tenant_id=data.tenant_id)
    token = secret_ref("--token", data.token_env, data.token_file, data.token_ref, required=True)
    return PlatformAuth(mode, secret=token)


def ca_bundle_path(path: str | None) -> str | None:
    """The CA bundle's absolute path (checked to exist by :func:`check_credentials`)."""
    return str(Path(path).expanduser().resolve()) if path else None


def check_credentials(
    svc: Services, owner: str, auth: PlatformAuth, ca_bundle: str | None, *, writer: Writer
) -> None:
    """May ``writer`` point ``owner``'s credential (and the files it reads) there (0010 §3)?
    Then: do those files exist (asked only once the writer may name them)."""
    refs = [auth.secret] if auth.secret is not None else []
    for path in (auth.certificate_path, ca_bundle):
        if path:
            refs.append(parse_ref(path) or SecretRef("file", path))
    for ref in refs:
        check_writable(svc, ref, writer=writer, slot=Slot.CREDENTIAL, what=owner)
    _require_files(auth, ca_bundle)


def _require_files(auth: PlatformAuth, ca_bundle: str | None) -> None:
    """The host files a credential names must exist.

    Checked only after the writer was admitted: answering "does not exist" to someone who
    may not name server files would tell them which files exist (decision 0010 §4).
    """
    cert = auth.certificate_path
    if cert and not cert.startswith(VAULT_PREFIX) and not Path(cert).is_file():
        raise InputError(
            f"certificate file {cert!r} does not exist: give the path of a PEM or PKCS12 "
            "file holding the service principal's certificate and private key, or a "
            "vault://VAULT/SECRET reference to it."
        )
    if ca_bundle and not Path(ca_bundle).is_file():
        raise InputError(f"CA bundle {ca_bundle!r} does not exist: give the path of a PEM file.")


def build_platform(data: PlatformInput) -> Platform:
    """Validate user input into a Platform; raises InputError with one clear sentence."""
    for item in fields(data):
        value = getattr(data, item.name)
        if isinstance(value, str):
            limits.PLATFORM_FIELD.check(value, item.name.replace("_", " "))
    validate_name("platform", data.name)
    url = normalise_account_url(data.account_url)
    if not _ACCOUNT.match(data.account_name):
        raise InputError(
            f"Batch account name {data.account_name!r} is not valid: it is 3-24 lower-case "
            "letters and digits, as shown on the account's Overview page."
        )
    try:
        uuid.UUID(data.subscription_id)
    except ValueError:
        raise InputError(
            f"subscription id {data.subscription_id!r} is not a GUID: copy it from the Batch "
            "account's Overview page (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)."
        ) from None
    if not _RESOURCE_GROUP.match(data.resource_group) or data.resource_group.endswith("."):
        raise InputError(
            f"resource group name {data.resource_group!r} is not valid: 1-90 letters, digits, "
            "'-', '_', '.', '(' or ')', not ending with '.'."
        )
    auth = build_auth(data)
    ca_bundle = ca_bundle_path(data.ca_bundle)
    return Platform(
        name=data.name,
        account_url=url,
        account_name=data.account_name,
        subscription_id=data.subscription_id.lower(),
        resource_group=data.resource_group,
        auth=auth,
        verify_tls=data.verify_tls,
        ca_bundle=ca_bundle,
    )


def _need(mode: AuthMode, **values: str | None) -> None:
    missing = [k for k, v in values.items() if not v]
    if missing:
        flags = ", ".join("--" + k.replace("_", "-") for k in missing)
        raise InputError(f"authentication mode {mode.value} needs {flags}.")


def add_platform(
    svc: Services, data: PlatformInput, *, writer: Writer, replace_existing: bool = False
) -> Platform:
    """Register (or, with ``replace_existing``, update) a platform written by ``writer``."""
    platform = build_platform(data)
    check_credentials(
        svc, f"platform {platform.name}", platform.auth, platform.ca_bundle, writer=writer
    )
    if replace_existing and _exists(svc, platform.name):
        return svc.store.update_platform(replace(platform))
    return svc.store.add_platform(platform)


def _exists(svc: Services, name: str) -> bool:
    return any(p.name.lower() == name.lower() for p in svc.store.list_platforms())


async def test_platform(svc: Services, name: str) -> ConnectivityReport:
    platform = svc.store.get_platform(name)
    return await svc.jobtype.test_connectivity(platform)


def discover(
    svc: Services, name: str, *, id_prefix: str | None = None, page_size: int | None = None
) -> AsyncIterator[DiscoveredJob]:
    if page_size is not None:
        limits.BATCH_PAGE_SIZE.check(page_size)
    if id_prefix is not None:
        limits.BATCH_ID.check(id_prefix, "the job id prefix")
    platform = svc.store.get_platform(name)
    return svc.jobtype.discover(platform, id_prefix=id_prefix, page_size=page_size)
