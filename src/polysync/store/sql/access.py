"""API tokens of ``polysync server``."""

from __future__ import annotations

from sqlalchemy import (
    delete,
    insert,
    select,
)

from polysync.errors import (
    AlreadyExistsError,
    NotFoundError,
)
from polysync.store import schema as s
from polysync.store.base import ApiToken
from polysync.store.sql.base import SqlBase
from polysync.store.sql.rows import (
    _api_token,
    _key,
    _require_name,
    utc_now,
)


class AccessQueries(SqlBase):
    """API tokens of ``polysync server``."""

    def add_api_token(self, name: str, role: str, digest: str) -> ApiToken:
        _require_name("token", name)
        t = s.api_tokens
        with self._write(f"adding API token {name}") as conn:
            existing = conn.execute(
                select(t.c.name).where(t.c.name_key == _key(name))
            ).scalar_one_or_none()
            if existing is not None:
                raise AlreadyExistsError(
                    f"an API token named {existing!r} already exists (names ignore case); "
                    f"choose another name, or revoke it first with "
                    f"`polysync token revoke {existing}`."
                )
            conn.execute(
                insert(t).values(
                    name=name.strip(),
                    name_key=_key(name),
                    role=role,
                    digest=digest,
                    created_at=utc_now(),
                )
            )
            row = conn.execute(select(t).where(t.c.name_key == _key(name))).one()
        return _api_token(row)

    def find_api_token(self, digest: str) -> ApiToken | None:
        t = s.api_tokens
        with self._read("checking an API token") as conn:
            row = conn.execute(select(t).where(t.c.digest == digest)).first()
        return None if row is None else _api_token(row)

    def list_api_tokens(self) -> list[ApiToken]:
        t = s.api_tokens
        with self._read("listing API tokens") as conn:
            rows = conn.execute(select(t).order_by(t.c.name_key)).all()
        return [_api_token(r) for r in rows]

    def remove_api_token(self, name: str) -> None:
        t = s.api_tokens
        with self._write(f"revoking API token {name}") as conn:
            result = conn.execute(delete(t).where(t.c.name_key == _key(name)))
            if result.rowcount == 0:
                raise NotFoundError(
                    f"API token {name!r} does not exist; run `polysync token list` to see "
                    "the tokens."
                )
