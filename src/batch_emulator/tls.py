"""A self-signed certificate for ``127.0.0.1``/``localhost`` (``--tls``).

TLS exists so the Entra ID bearer-token path of the SDK can be exercised locally: the SDK
refuses bearer tokens over plain http (NOTES.md §3.3). Clients trust the generated
certificate explicitly (``connection_verify=cert_path`` for the SDK, ``verify=`` for httpx).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_NAME = "emulator-cert.pem"
KEY_NAME = "emulator-key.pem"


def generate_self_signed(hosts: tuple[str, ...] = ("localhost",)) -> tuple[bytes, bytes]:
    """PEM ``(certificate, private key)`` valid for localhost, 127.0.0.1, ::1 and ``hosts``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "batch-emulator")])
    alt_names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    for host in hosts:
        try:
            address = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            if host != "localhost":
                alt_names.append(x509.DNSName(host))
            continue
        if address not in alt_names:
            alt_names.append(address)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


def write_self_signed(directory: Path, hosts: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Write a fresh certificate and key into ``directory``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = generate_self_signed(hosts)
    cert_path = directory / CERT_NAME
    key_path = directory / KEY_NAME
    cert_path.write_bytes(cert_pem)
    # The key is only for this throw-away local certificate, but keep it private anyway.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem)
    return cert_path, key_path


__all__ = ["CERT_NAME", "KEY_NAME", "generate_self_signed", "write_self_signed"]
