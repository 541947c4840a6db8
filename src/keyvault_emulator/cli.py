"""``keyvault-emulator serve``: the local Key Vault secrets emulator in the foreground.

No secret is ever taken from a flag's value (a process listing shows those): role tokens
come from files (``--token-file PATH ROLE``), and every token not given is generated and
written with the admin token to a mode-0600 JSON file whose path is printed
(``--tokens-out``, by default ``tokens.json`` in the data directory or a temporary file).
That file is removed when the emulator stops, since its tokens die with the process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from keyvault_emulator import DEFAULT_TENANT, __version__
from keyvault_emulator.auth import Role
from keyvault_emulator.server import KeyVaultConfig, Started, serve

DEFAULT_PORT = 8046
ROLES = tuple(r.value for r in Role)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keyvault-emulator",
        description="A local Azure Key Vault secrets data plane for the official SDK.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")
    s = sub.add_parser("serve", help="Serve the secrets API over https until interrupted.")
    s.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
    s.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"Port; 0 picks a free one (default {DEFAULT_PORT}).",
    )
    s.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="Keep secrets (values included, file mode 0600) and the certificate here.",
    )
    s.add_argument(
        "--token-file",
        nargs=2,
        action="append",
        default=[],
        metavar=("PATH", "ROLE"),
        help=f"Accept the token in PATH with ROLE ({', '.join(ROLES)}); repeatable.",
    )
    s.add_argument(
        "--admin-token-file", type=Path, default=None, help="The /_emulator controls' token."
    )
    s.add_argument(
        "--tokens-out",
        type=Path,
        default=None,
        help="Where to write the tokens in force (JSON, mode 0600).",
    )
    s.add_argument(
        "--extra-host",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="Also answer requests whose Host is this (besides loopback); repeatable.",
    )
    s.add_argument("--tenant-id", default=DEFAULT_TENANT, help="Tenant named in the challenge.")
    s.add_argument(
        "--log-level",
        default="warning",
        choices=("critical", "error", "warning", "info", "debug"),
        help="Log level (default warning); debug logs one line per request.",
    )
    return parser


def _read_token(path: Path, what: str) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} token file {path}: {exc.strerror}") from None
    if not token:
        raise ValueError(f"the {what} token file {path} is empty")
    return token


def _write_private(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (
        args_list[0].startswith("-") and args_list[0] not in ("-h", "--help", "--version")
    ):
        args_list.insert(0, "serve")  # "keyvault-emulator --port 0" means serve
    args = parser.parse_args(args_list)
    if args.command != "serve":
        parser.print_help()
        return 2
    try:
        tokens: dict[str, str] = {}
        for path_text, role in args.token_file:
            if role not in ROLES:
                raise ValueError(f"--token-file role {role!r} is not one of {', '.join(ROLES)}")
            if role in tokens:
                raise ValueError(f"--token-file gives role {role!r} twice")
            tokens[role] = _read_token(Path(path_text), role)
        admin = _read_token(args.admin_token_file, "admin") if args.admin_token_file else None
    except ValueError as exc:
        parser.error(str(exc))
    if args.tokens_out is not None:
        tokens_out: Path = args.tokens_out
    elif args.data_dir is not None:
        tokens_out = args.data_dir / "tokens.json"
    else:
        fd, name = tempfile.mkstemp(prefix="keyvault-emulator-tokens-", suffix=".json")
        os.close(fd)
        tokens_out = Path(name)
    config = KeyVaultConfig(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        tokens=tokens,
        admin_token=admin,
        tenant_id=args.tenant_id,
        extra_hosts=tuple(args.extra_host),
        log_level=args.log_level,
    )
    # uvicorn configures only its own loggers; the emulator's request lines (method,
    # path, operation, status, role — never tokens or values) go to stderr.
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    def announce(started: Started) -> None:
        _write_private(
            tokens_out,
            {
                "url": started.url,
                "cert_path": str(started.cert_path),
                "tokens": started.tokens,
                "admin_token": started.admin_token,
            },
        )
        print(f"Azure Key Vault emulator (secrets) listening on {started.url}", flush=True)
        print(f"Certificate: {started.cert_path}", flush=True)
        print(f"Tokens (role -> bearer token, and the admin token): {tokens_out}", flush=True)
        print(
            f'SDK: SecretClient("{started.url}", credential, verify_challenge_resource=False, '
            f'connection_verify="{started.cert_path}")',
            flush=True,
        )

    try:
        serve(config, announce)
    except OSError as exc:
        print(
            f"keyvault-emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    except ValueError as exc:
        print(f"keyvault-emulator: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(OSError):
            tokens_out.unlink()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
