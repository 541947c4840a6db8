"""Each PlatformAuth mode builds the right credential (acceptance 4); secrets stay hidden."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.identity import aio as identity

from polysync.domain.models import AuthMode, Platform, PlatformAuth, SecretRef
from polysync.errors import ConfigError, SecretError
from polysync.jobtypes.azure_batch.credentials import (
    BATCH_SCOPE,
    StaticTokenCredential,
    build_credential,
    connection_verify,
)

KEY = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
SECRETS = {"env:KEY": KEY, "env:SECRET": "client-s3cret", "env:TOKEN": "tok-123", "env:PW": "pw"}


def resolve(ref: SecretRef) -> str:
    return SECRETS[str(ref)]


def _platform(auth: PlatformAuth, **extra: object) -> Platform:
    return Platform(
        name="p1",
        account_url="https://acct.westeurope.batch.azure.com",
        account_name="acct",
        subscription_id="sub",
        resource_group="rg",
        auth=auth,
        **extra,  # type: ignore[arg-type]  # verify_tls / ca_bundle only
    )


@pytest.mark.parametrize(
    ("auth", "cls", "is_token"),
    [
        (
            PlatformAuth(AuthMode.SHARED_KEY, secret=SecretRef("env", "KEY")),
            AzureNamedKeyCredential,
            False,
        ),
        (
            PlatformAuth(
                AuthMode.SERVICE_PRINCIPAL,
                secret=SecretRef("env", "SECRET"),
                tenant_id="tenant",
                client_id="client",
            ),
            identity.ClientSecretCredential,
            True,
        ),
        (
            PlatformAuth(
                AuthMode.CERTIFICATE,
                secret=SecretRef("env", "PW"),
                tenant_id="tenant",
                client_id="client",
                certificate_path="CERT",
            ),
            identity.CertificateCredential,
            True,
        ),
        (
            PlatformAuth(AuthMode.MANAGED_IDENTITY, client_id="mi-client"),
            identity.ManagedIdentityCredential,
            True,
        ),
        (PlatformAuth(AuthMode.MANAGED_IDENTITY), identity.ManagedIdentityCredential, True),
        (PlatformAuth(AuthMode.DEFAULT), identity.DefaultAzureCredential, True),
        (
            PlatformAuth(AuthMode.BEARER_TOKEN, secret=SecretRef("env", "TOKEN")),
            StaticTokenCredential,
            True,
        ),
    ],
)
async def test_mode_builds_the_right_credential(
    auth: PlatformAuth, cls: type, is_token: bool, tmp_path: Path, cert_pem: Path
) -> None:
    if auth.certificate_path == "CERT":
        auth = PlatformAuth(
            auth.mode, auth.secret, auth.tenant_id, auth.client_id, certificate_path=str(cert_pem)
        )
    built = build_credential(_platform(auth), resolve)
    try:
        assert isinstance(built.credential, cls)
        assert built.is_token is is_token
    finally:
        await built.close()


async def test_shared_key_carries_account_and_key() -> None:
    auth = PlatformAuth(AuthMode.SHARED_KEY, secret=SecretRef("env", "KEY"))
    built = build_credential(_platform(auth), resolve)
    assert isinstance(built.credential, AzureNamedKeyCredential)
    assert built.credential.named_key == ("acct", KEY)


async def test_bearer_token_answers_with_the_token_and_hides_it() -> None:
    credential = StaticTokenCredential("tok-123")
    token = await credential.get_token(BATCH_SCOPE)
    assert token.token == "tok-123"
    assert token.expires_on > 0
    assert "tok-123" not in repr(credential)


@pytest.mark.parametrize(
    ("auth", "missing"),
    [
        (
            PlatformAuth(AuthMode.SERVICE_PRINCIPAL, secret=SecretRef("env", "SECRET")),
            "--tenant-id, --client-id",
        ),
        (
            PlatformAuth(AuthMode.CERTIFICATE, tenant_id="t", client_id="c"),
            "--certificate-path",
        ),
        (PlatformAuth(AuthMode.SHARED_KEY), "account key"),
        (PlatformAuth(AuthMode.BEARER_TOKEN), "bearer token"),
    ],
)
def test_incomplete_auth_is_a_config_error(auth: PlatformAuth, missing: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_credential(_platform(auth), resolve)
    assert missing in str(caught.value)
    assert "'p1'" in str(caught.value)


def test_invalid_key_is_refused_without_echoing_it() -> None:
    secret = "not base64 !!! sup3r-secret-value"
    auth = PlatformAuth(AuthMode.SHARED_KEY, secret=SecretRef("env", "BAD"))
    with pytest.raises(SecretError) as caught:
        build_credential(_platform(auth), lambda _ref: secret)
    # Names no host reference (a viewer may read this in a run's failure), never the value.
    assert "its host reference" in str(caught.value)
    assert "env:BAD" not in str(caught.value)
    assert secret not in str(caught.value)
    assert "sup3r" not in repr(caught.value)


def test_empty_secret_is_refused() -> None:
    auth = PlatformAuth(AuthMode.BEARER_TOKEN, secret=SecretRef("env", "EMPTY"))
    with pytest.raises(
        SecretError, match=r"bearer token of platform 'p1' \(its host reference\) is empty"
    ):
        build_credential(_platform(auth), lambda _ref: "  ")


def test_a_vault_reference_is_named_in_errors() -> None:
    auth = PlatformAuth(AuthMode.SHARED_KEY, secret=SecretRef("vault", "kv/batch-key"))
    with pytest.raises(SecretError, match=r"\(vault://kv/batch-key\) is not valid base64"):
        build_credential(_platform(auth), lambda _ref: "not base64 !!!")


@pytest.mark.parametrize(
    ("verify", "bundle", "expected"),
    [(True, None, True), (False, None, False), (True, "/ca.pem", "/ca.pem"), (False, "/c", "/c")],
)
def test_connection_verify(verify: bool, bundle: str | None, expected: bool | str) -> None:
    auth = PlatformAuth(AuthMode.DEFAULT)
    assert connection_verify(_platform(auth, verify_tls=verify, ca_bundle=bundle)) == expected


@pytest.fixture
def cert_pem(tmp_path: Path) -> Path:
    """A throwaway self-signed certificate + key (CertificateCredential reads it eagerly)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "polysync-test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "client.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    return path


def test_a_certificate_kept_in_a_vault_is_passed_as_data(cert_pem: Path) -> None:
    """`--certificate-path vault://…`: Key Vault keeps a PEM certificate as its text (and a
    PKCS#12 one base64-encoded); the credential gets the bytes, never a file."""
    import base64

    from polysync.identity import certificate_kwargs

    pem = cert_pem.read_text()
    auth = PlatformAuth(
        AuthMode.CERTIFICATE,
        secret=SecretRef("env", "PW"),
        tenant_id="t",
        client_id="c",
        certificate_path="vault://kv/sp-cert",
    )
    values = {"vault://kv/sp-cert": pem, "env:PW": "pw"}
    kwargs = certificate_kwargs("platform 'p1'", auth, lambda r: values[str(r)])
    assert kwargs == {"certificate_data": pem.strip().encode(), "password": "pw"}
    built = build_credential(_platform(auth), lambda r: values[str(r)])
    assert isinstance(built.credential, identity.CertificateCredential)

    values["vault://kv/sp-cert"] = base64.b64encode(b"pkcs12-bytes").decode()
    assert certificate_kwargs("x", auth, lambda r: values[str(r)])["certificate_data"] == (
        b"pkcs12-bytes"
    )
    values["vault://kv/sp-cert"] = "neither pem nor base64 !!"
    with pytest.raises(SecretError, match=r"\(vault://kv/sp-cert\) is neither PEM"):
        certificate_kwargs("platform 'p1'", auth, lambda r: values[str(r)])
