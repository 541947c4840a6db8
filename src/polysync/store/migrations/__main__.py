"""Developer helper: ``python -m polysync.store.migrations revision -m MSG --url URL``."""

from __future__ import annotations

import argparse

from alembic import command
from sqlalchemy import create_engine

from polysync.store.migrations import alembic_config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m polysync.store.migrations")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rev = sub.add_parser("revision", help="autogenerate a migration against a database at head")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--url", required=True, help="a database already upgraded to head")
    args = parser.parse_args(argv)
    engine = create_engine(args.url)
    try:
        with engine.begin() as conn:
            command.revision(alembic_config(conn), message=args.message, autogenerate=True)
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
