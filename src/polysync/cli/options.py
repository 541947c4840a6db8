"""Command-line options shared by `platform add` and `vault add`: one credential, as a
reference (a vault, an env var or a file), never a flag value (decision 0010)."""

from __future__ import annotations

from typing import Annotated

import typer

_REF = "vault://VAULT/SECRET, env:NAME or file:PATH"

TenantId = Annotated[str | None, typer.Option(help="Entra ID tenant id.")]
ClientId = Annotated[
    str | None, typer.Option(help="App (client) id; for managed-identity, a user-assigned id.")
]
ClientSecret = Annotated[
    str | None,
    typer.Option(
        "--client-secret", help=f"service-principal: the client secret's reference ({_REF})."
    ),
]
ClientSecretEnv = Annotated[
    str | None, typer.Option(help="service-principal: env var holding the client secret.")
]
ClientSecretFile = Annotated[
    str | None, typer.Option(help="service-principal: file holding the client secret.")
]
CertificatePath = Annotated[
    str | None,
    typer.Option(
        help="certificate: PEM/PKCS12 file with the private key, or a vault://VAULT/SECRET "
        "reference to it."
    ),
]
CertificatePassword = Annotated[
    str | None,
    typer.Option("--certificate-password", help=f"certificate: the password's reference ({_REF})."),
]
CertificatePasswordEnv = Annotated[
    str | None, typer.Option(help="certificate: env var holding the certificate password.")
]
CertificatePasswordFile = Annotated[
    str | None, typer.Option(help="certificate: file holding the certificate password.")
]
Token = Annotated[
    str | None, typer.Option("--token", help=f"bearer-token: an access token's reference ({_REF}).")
]
TokenEnv = Annotated[
    str | None, typer.Option(help="bearer-token: env var holding an access token.")
]
TokenFile = Annotated[str | None, typer.Option(help="bearer-token: file holding an access token.")]
Insecure = Annotated[
    bool, typer.Option("--insecure", help="Do not verify TLS certificates (local only).")
]
