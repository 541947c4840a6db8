"""The roles of API tokens, ordered: each may do everything the ones before it may.

They live in the domain (not beside the tokens in ``polysync.api``) because use cases
decide with them too: who may change the code a run executes (decision 0011).
"""

from __future__ import annotations

import enum

__all__ = ["Role"]


class Role(enum.StrEnum):
    """Ordered: each role may do everything the ones before it may."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank
