"""Secret Vaults (migration 0004) and the references that point into them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, delete, select, update

from polysync.domain.models import SecretVault
from polysync.errors import AlreadyExistsError, InputError, NotFoundError
from polysync.store import schema as s
from polysync.store.sql.base import SqlBase
from polysync.store.sql.rows import (
    _NONTERMINAL,
    _key,
    _names,
    _require_name,
    _vault,
    _vault_values,
    utc_now,
)


def _points_into(value: object, prefix: str) -> bool:
    return isinstance(value, str) and value.lower().startswith(prefix)


def _vault_exists(name: str, existing: str) -> AlreadyExistsError:
    return AlreadyExistsError(
        f"a Secret Vault named {existing!r} already exists (names ignore case); choose another "
        f"name for {name!r}, or change it with `polysync vault add {existing} ... --replace`."
    )


class VaultQueries(SqlBase):
    """Secret Vaults: where ``vault://NAME/SECRET`` references resolve (decision 0010)."""

    @staticmethod
    def _vault_row(conn: Connection, name: str) -> Row[Any]:
        row = conn.execute(
            select(s.secret_vaults).where(s.secret_vaults.c.name_key == _key(name))
        ).first()
        if row is None:
            raise NotFoundError(
                f"Secret Vault {name!r} does not exist; run `polysync vault list` to see the "
                "vaults, or `polysync vault add` to declare one."
            )
        return row

    def add_vault(self, vault: SecretVault) -> SecretVault:
        _require_name("vault", vault.name)
        values = _vault_values(vault)
        now = utc_now()
        with self._write(f"adding Secret Vault {vault.name}") as conn:
            self._insert_named(
                conn,
                s.secret_vaults,
                {**values, "created_at": vault.created_at or now, "updated_at": now},
                lambda existing: _vault_exists(vault.name, existing),
            )
            return _vault(self._vault_row(conn, vault.name))

    def get_vault(self, name: str) -> SecretVault:
        with self._read(f"reading Secret Vault {name}") as conn:
            return _vault(self._vault_row(conn, name))

    def list_vaults(self) -> list[SecretVault]:
        with self._read("listing Secret Vaults") as conn:
            rows = conn.execute(select(s.secret_vaults).order_by(s.secret_vaults.c.name_key))
            return [_vault(r) for r in rows]

    def update_vault(self, vault: SecretVault) -> SecretVault:
        values = _vault_values(vault)
        with self._write(f"updating Secret Vault {vault.name}") as conn:
            row = self._vault_row(conn, vault.name)
            values.pop("name_key")
            values["name"] = row.name  # the key is the name: keep its stored spelling
            conn.execute(
                update(s.secret_vaults)
                .where(s.secret_vaults.c.id == row.id)
                .values(**values, updated_at=utc_now())
            )
            return _vault(self._vault_row(conn, vault.name))

    def vault_users(self, name: str) -> list[str]:
        """What refers to vault ``name``: "platform p1", "task etl (parameter TOKEN)", …"""
        with self._read(f"finding the users of Secret Vault {name}") as conn:
            row = self._vault_row(conn, name)
            return self._users(conn, row.name)

    @staticmethod
    def _users(conn: Connection, name: str) -> list[str]:
        prefix = f"vault://{name.lower()}/"
        users: list[str] = []
        for kind, table in (("platform", s.platforms), ("vault", s.secret_vaults)):
            credentials = select(table.c.name, table.c.auth_secret_ref, table.c.certificate_path)
            for cred in conn.execute(credentials):
                if _points_into(cred.auth_secret_ref, prefix) or _points_into(
                    cred.certificate_path, prefix
                ):
                    users.append(f"{kind} {cred.name}")
        for job in conn.execute(select(s.jobs.c.name, s.jobs.c.parameters)):
            for param in job.parameters:
                if _points_into(param.get("default"), prefix):
                    users.append(f"job {job.name} (parameter {param.get('name')} default)")
        for task in conn.execute(select(s.tasks.c.name, s.tasks.c.params)):
            names = [k for k, value in task.params.items() if _points_into(value, prefix)]
            if names:
                users.append(f"task {task.name} (parameter {', '.join(sorted(names))})")
        runs = select(s.task_runs.c.id, s.task_runs.c.param_overrides).where(
            s.task_runs.c.state.in_(_NONTERMINAL)
        )
        for run in conn.execute(runs):
            if any(_points_into(value, prefix) for value in run.param_overrides.values()):
                users.append(f"run {run.id}")
        return users

    def remove_vault(self, name: str) -> None:
        """Remove a vault; refused while anything refers to it (the message names them)."""
        with self._write(f"removing Secret Vault {name}") as conn:
            row = self._vault_row(conn, name)
            users = self._users(conn, row.name)
            if users:
                raise InputError(
                    f"Secret Vault {row.name} is still referred to by {_names(users)}; point "
                    "them at another vault (or wait for the runs to end) first."
                )
            conn.execute(delete(s.secret_vaults).where(s.secret_vaults.c.id == row.id))

    def credential_references(self) -> list[str]:
        """Every reference a platform or vault credential uses (decision 0010 §3)."""
        with self._read("listing credential references") as conn:
            return list(_credential_refs(conn))


def _credential_refs(conn: Connection) -> Iterable[str]:
    for table in (s.platforms, s.secret_vaults):
        for r in conn.execute(select(table.c.auth_secret_ref, table.c.certificate_path)):
            for value in (r.auth_secret_ref, r.certificate_path):
                if isinstance(value, str) and value:
                    yield value
