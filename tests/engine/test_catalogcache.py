"""CatalogCache (decision 0008): Platform/Job/Task reads kept for ``max_age_s``.

A real SqlStore behind a wrapper that counts its reads, and a fake clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from polysync.dispatcher.catalogcache import CatalogCache
from polysync.domain.models import Job, Platform, Task
from polysync.errors import NotFoundError
from polysync.store.sql import SqlStore
from tests.store.conftest import make_job, make_platform, make_task, seed


class CountingCatalog:
    """The store's catalog reads, counted per (kind, name)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.reads: Counter[tuple[str, str]] = Counter()

    def get_platform(self, name: str) -> Platform:
        self.reads["platform", name] += 1
        return self.store.get_platform(name)

    def get_job(self, name: str) -> Job:
        self.reads["job", name] += 1
        return self.store.get_job(name)

    def get_task(self, name: str) -> Task:
        self.reads["task", name] += 1
        return self.store.get_task(name)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    st = SqlStore.open(f"sqlite:///{tmp_path / 'polysync.db'}")
    try:
        seed(st)
        yield st
    finally:
        st.close()


@pytest.fixture
def source(store: SqlStore) -> CountingCatalog:
    return CountingCatalog(store)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


Read = Callable[[CatalogCache], object]
KINDS: list[tuple[str, str, Read]] = [
    ("platform", "local", lambda c: c.get_platform("local")),
    ("job", "job1", lambda c: c.get_job("job1")),
    ("task", "task1", lambda c: c.get_task("task1")),
]


@pytest.mark.parametrize(("kind", "name", "read"), KINDS, ids=[k[0] for k in KINDS])
@pytest.mark.parametrize(
    ("ages", "reads"),
    [
        pytest.param([0.0], 1, id="first-read"),
        pytest.param([0.0, 0.0, 5.0, 9.999], 1, id="hits-within-max-age"),
        pytest.param([0.0, 10.0], 2, id="re-read-at-max-age"),
        pytest.param([0.0, 9.0, 10.5, 15.0, 20.5], 3, id="each-read-lasts-max-age"),
    ],
)
def test_reads_are_kept_for_max_age(
    source: CountingCatalog,
    clock: FakeClock,
    kind: str,
    name: str,
    read: Read,
    ages: list[float],
    reads: int,
) -> None:
    cache = CatalogCache(source, max_age_s=10.0, clock=clock)
    start = clock.now
    values = []
    for age in ages:
        clock.now = start + age
        values.append(read(cache))
    assert source.reads == {(kind, name): reads}
    assert all(v == values[0] for v in values)


def test_an_edit_shows_after_max_age(
    store: SqlStore, source: CountingCatalog, clock: FakeClock
) -> None:
    cache = CatalogCache(source, max_age_s=10.0, clock=clock)
    assert cache.get_task("task1").priority == 0
    store.update_task(replace(store.get_task("task1"), priority=7))
    clock.now += 9.0
    assert cache.get_task("task1").priority == 0  # still the cached read
    clock.now += 1.0
    assert cache.get_task("task1").priority == 7
    assert source.reads == {("task", "task1"): 2}


def test_clear_forgets_everything(source: CountingCatalog, clock: FakeClock) -> None:
    cache = CatalogCache(source, max_age_s=10.0, clock=clock)
    cache.get_platform("local")
    cache.get_job("job1")
    cache.clear()
    cache.get_platform("local")
    cache.get_job("job1")
    assert source.reads == {("platform", "local"): 2, ("job", "job1"): 2}


def test_not_found_is_not_cached(
    store: SqlStore, source: CountingCatalog, clock: FakeClock
) -> None:
    cache = CatalogCache(source, max_age_s=10.0, clock=clock)
    for _ in range(2):
        with pytest.raises(NotFoundError, match="ghost"):
            cache.get_task("ghost")
    assert source.reads == {("task", "ghost"): 2}
    store.add_task(make_task("ghost"))
    # Same instant: a cached failure would still raise here.
    assert cache.get_task("ghost").name == "ghost"
    assert cache.get_task("ghost").name == "ghost"
    assert source.reads == {("task", "ghost"): 3}


def test_a_failed_refresh_does_not_keep_serving_the_stale_value(
    store: SqlStore, source: CountingCatalog, clock: FakeClock
) -> None:
    store.add_task(make_task("temp"))
    cache = CatalogCache(source, max_age_s=10.0, clock=clock)
    assert cache.get_task("temp").name == "temp"
    store.remove_task("temp")
    clock.now += 10.0
    for _ in range(2):
        with pytest.raises(NotFoundError, match="temp"):
            cache.get_task("temp")
    assert source.reads == {("task", "temp"): 3}


def test_kinds_with_the_same_name_do_not_collide(
    store: SqlStore, source: CountingCatalog, clock: FakeClock
) -> None:
    store.add_platform(make_platform("same"))
    store.upsert_job(make_job("same", platform="same", external_id="tmpl-same"))
    store.add_task(make_task("same", job="same"))
    cache = CatalogCache(source, max_age_s=10.0, clock=clock)
    for _ in range(2):
        task = cache.get_task("same")
        job = cache.get_job("same")
        platform = cache.get_platform("same")
        assert isinstance(task, Task)
        assert isinstance(job, Job)
        assert isinstance(platform, Platform)
        assert (task.job, job.platform, platform.name) == ("same", "same", "same")
    assert source.reads == {("task", "same"): 1, ("job", "same"): 1, ("platform", "same"): 1}
