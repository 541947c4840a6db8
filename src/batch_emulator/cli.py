"""``batch-emulator serve``: run the local Azure Batch emulator in the foreground.

Prints one line with the endpoint URL and the account name once it accepts requests,
optionally writes ``--ready-file`` (JSON), and stops cleanly on SIGINT/SIGTERM, killing
every task process it started. Secrets: the key is ``--key``, or the one in
``--key-file`` (a random one is generated there, 0600, when the file does not exist),
else ``$BATCH_EMULATOR_KEY``, else the public development key; bearer tokens can come
from ``$BATCH_EMULATOR_BEARER_TOKEN`` so they need not appear in a process listing.
``--allow-host`` names the hosts clients reach it by besides loopback (see
:mod:`batch_emulator.protocol.hosts`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from batch_emulator import DEFAULT_ACCOUNT, DEFAULT_KEY, __version__
from batch_emulator.backend import ID_RE
from batch_emulator.keys import generate_key, is_valid_key, read_key_file, write_key_file
from batch_emulator.protocol.hosts import parse_host
from batch_emulator.server import EmulatorConfig, PoolSeed, serve

KEY_ENV = "BATCH_EMULATOR_KEY"
BEARER_ENV = "BATCH_EMULATOR_BEARER_TOKEN"


def _pool(text: str) -> PoolSeed:
    try:
        seed = PoolSeed.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not ID_RE.match(seed.id):
        raise argparse.ArgumentTypeError(
            f"--pool {text!r}: a pool id has 1-64 letters, digits, '-' or '_'."
        )
    return seed


def _quota(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--active-job-quota must be a whole number.") from None
    if value < 0:
        raise argparse.ArgumentTypeError("--active-job-quota must not be negative.")
    return value


def _allowed_host(text: str) -> str:
    if text.strip() == "*":
        return "*"
    try:
        parse_host(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--allow-host {exc}.") from None
    return text.strip()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batch-emulator",
        description="A local Azure Batch data-plane emulator that runs tasks as processes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")
    s = sub.add_parser("serve", help="Serve the Batch REST API until interrupted.")
    s.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
    s.add_argument("--port", type=int, default=0, help="Port; 0 picks a free one (default 0).")
    s.add_argument(
        "--account", default=DEFAULT_ACCOUNT, help=f"Account name (default {DEFAULT_ACCOUNT})."
    )
    keys = s.add_mutually_exclusive_group()
    keys.add_argument(
        "--key",
        default=None,
        help=f"Base64 account key (default: ${KEY_ENV}, else the public development key).",
    )
    keys.add_argument(
        "--key-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="Read the account key from PATH; if PATH does not exist, write a new random "
        "key there (mode 0600) and use it.",
    )
    s.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="Where task directories and files live (default: a temporary directory).",
    )
    s.add_argument(
        "--pool",
        type=_pool,
        action="append",
        default=[],
        metavar="ID=NODES[xSLOTS]",
        help="Pre-create a pool, e.g. --pool pool1=2x4 (repeatable).",
    )
    s.add_argument(
        "--allow-host",
        type=_allowed_host,
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="Also answer requests addressed to HOST (any port, or only PORT), e.g. the "
        "name containers reach it by; '*' answers every host (repeatable). By default only "
        "localhost, loopback addresses and the --host address are answered, on the bound "
        "port (any IP address when --host is 0.0.0.0 or ::).",
    )
    s.add_argument("--tls", action="store_true", help="Serve https with a self-signed certificate.")
    s.add_argument(
        "--bearer-token",
        action="append",
        default=[],
        metavar="TOKEN",
        help=f"Also accept 'Authorization: Bearer TOKEN' (repeatable; or ${BEARER_ENV}).",
    )
    s.add_argument(
        "--ready-file",
        type=Path,
        default=None,
        help="Write the endpoint as JSON to this file once requests are accepted.",
    )
    s.add_argument(
        "--active-job-quota",
        type=_quota,
        default=None,
        help="Maximum number of jobs that are not completed (default: unlimited).",
    )
    s.add_argument(
        "--log-level",
        default="warning",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn log level (default warning).",
    )
    return parser


def _key_from_file(path: Path) -> str:
    """The key in ``path``; a new random one written there (0600) if it does not exist."""
    if not path.exists():
        key = generate_key()
        write_key_file(path, key)
        return key
    return read_key_file(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (
        args_list[0].startswith("-")
        and args_list[0]
        not in (
            "-h",
            "--help",
            "--version",
        )
    ):
        # "python -m batch_emulator --port 8000" means serve.
        args_list.insert(0, "serve")
    args = parser.parse_args(args_list)
    if args.command != "serve":
        parser.print_help()
        return 2
    if args.key_file is not None:
        try:
            key = _key_from_file(args.key_file)
        except ValueError:
            parser.error(
                f"--key-file {args.key_file} does not hold a base64 key: fix it, or delete "
                "it to get a new random key."
            )
        except OSError as exc:
            parser.error(f"--key-file {args.key_file} cannot be used ({exc.strerror}).")
    else:
        key = args.key or os.environ.get(KEY_ENV) or DEFAULT_KEY
        if not is_valid_key(key):
            parser.error("--key must be base64, like the keys the Azure portal shows.")
    tokens = list(args.bearer_token)
    env_token = os.environ.get(BEARER_ENV)
    if env_token:
        tokens.append(env_token)
    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        account=args.account,
        key=key,
        data_dir=args.data_dir,
        pools=tuple(args.pool),
        bearer_tokens=tuple(tokens),
        tls=args.tls,
        active_job_quota=args.active_job_quota,
        log_level=args.log_level,
        allowed_hosts=tuple(args.allow_host),
    )
    try:
        serve(
            config,
            ready_file=args.ready_file,
            key_file=args.key_file,
            announce=lambda line: print(line, flush=True),
        )
    except OSError as exc:
        print(f"batch-emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
