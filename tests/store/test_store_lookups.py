"""Name lookups with text no name can hold: the caller's mistake, on every backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from polysync.errors import InputError, NotFoundError, StoreError
from polysync.store.sql import SqlStore

LOOKUPS: list[tuple[str, Callable[[SqlStore], Any]]] = [
    ("get_platform", lambda st: st.get_platform("lo\x00cal")),
    ("get_job", lambda st: st.get_job("j\x00")),
    ("get_task", lambda st: st.get_task("\x00")),
    ("list_jobs", lambda st: st.list_jobs(platform="p\x00")),
    ("list_tasks", lambda st: st.list_tasks(job="j\x00")),
    ("list_runs", lambda st: st.list_runs(task="t\x00")),
    ("count_runs", lambda st: st.count_runs(task="t\x00")),
    ("remove_task", lambda st: st.remove_task("t\x00")),
    ("remove_api_token", lambda st: st.remove_api_token("t\x00")),
]


@pytest.mark.parametrize(("what", "lookup"), LOOKUPS, ids=[w for w, _ in LOOKUPS])
def test_a_nul_in_a_looked_up_name_is_an_input_error(
    store: SqlStore, what: str, lookup: Callable[[SqlStore], Any]
) -> None:
    # PostgreSQL refused the query (StoreError: "the database failed"); SQLite said
    # "does not exist". Both now say what is wrong with the name.
    with pytest.raises(InputError) as info:
        lookup(store)
    assert not isinstance(info.value, NotFoundError | StoreError)
    assert "contains a NUL character" in str(info.value)
