from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polysync.domain import ids

BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
INST = "ab12cd34"

installations = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=8, max_size=8)
run_ids = st.integers(min_value=1, max_value=10**18)
attempts = st.integers(min_value=1, max_value=1000)


def test_new_installation_id_shape_and_randomness() -> None:
    made = {ids.new_installation_id() for _ in range(50)}
    assert len(made) == 50
    for value in made:
        ids.validate_installation_id(value)
        assert re.fullmatch(r"[a-z0-9]{8}", value)


@pytest.mark.parametrize("bad", ["", "ab12cd3", "ab12cd345", "AB12CD34", "ab12-d34", "ab12cd3é"])
def test_validate_installation_id_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="installation id"):
        ids.validate_installation_id(bad)


@pytest.mark.parametrize(
    ("run_id", "attempt", "expected"),
    [
        (1, 1, "ps-ab12cd34-r1-a1"),
        (42, 3, "ps-ab12cd34-r42-a3"),
        (10**18, 100, f"ps-ab12cd34-r{10**18}-a100"),
    ],
)
def test_batch_job_id(run_id: int, attempt: int, expected: str) -> None:
    assert ids.batch_job_id(INST, run_id, attempt) == expected
    assert ids.parse_batch_job_id(expected) == (INST, run_id, attempt)


@pytest.mark.parametrize(("run_id", "attempt"), [(0, 1), (1, 0), (-1, 1)])
def test_batch_job_id_rejects_non_positive(run_id: int, attempt: int) -> None:
    with pytest.raises(ValueError, match="start at 1"):
        ids.batch_job_id(INST, run_id, attempt)


def test_batch_job_id_rejects_too_long() -> None:
    with pytest.raises(ValueError, match="64"):
        ids.batch_job_id(INST, 10**40, 10**10)


def test_batch_job_id_rejects_bad_installation() -> None:
    with pytest.raises(ValueError, match="installation id"):
        ids.batch_job_id("NOPE", 1, 1)


def test_job_id_prefix() -> None:
    prefix = ids.job_id_prefix(INST)
    assert prefix == "ps-ab12cd34-"
    assert ids.batch_job_id(INST, 7, 2).startswith(prefix)
    # Another installation's ids never start with this prefix.
    assert not ids.batch_job_id("ab12cd35", 7, 2).startswith(prefix)


@pytest.mark.parametrize(
    ("job_id", "expected"),
    [
        ("ps-ab12cd34-r1-a1", (INST, 1, 1)),
        ("PS-AB12CD34-R5-A2", (INST, 5, 2)),  # Batch ids are case-insensitive
        ("ps-ab12cd34-r01-a1", None),  # leading zero: not an id we would make
        ("ps-ab12cd34-r1-a0", None),
        ("ps-ab12cd34-r1", None),
        ("ps-ab12cd3-r1-a1", None),
        ("template-job", None),
        ("ps-ab12cd34-r1-a1-x", None),
        ("", None),
    ],
)
def test_parse_batch_job_id(job_id: str, expected: tuple[str, int, int] | None) -> None:
    assert ids.parse_batch_job_id(job_id) == expected


@given(installations, run_ids, attempts)
def test_job_ids_are_valid_and_round_trip(inst: str, run_id: int, attempt: int) -> None:
    job_id = ids.batch_job_id(inst, run_id, attempt)
    assert BATCH_ID.fullmatch(job_id)
    assert ids.is_valid_batch_id(job_id)
    assert job_id == job_id.lower()
    assert ids.parse_batch_job_id(job_id) == (inst, run_id, attempt)
    assert ids.parse_batch_job_id(job_id.upper()) == (inst, run_id, attempt)


@given(installations, run_ids, attempts, run_ids, attempts)
def test_distinct_attempts_never_collide_ignoring_case(
    inst: str, run_a: int, att_a: int, run_b: int, att_b: int
) -> None:
    a = ids.batch_job_id(inst, run_a, att_a)
    b = ids.batch_job_id(inst, run_b, att_b)
    assert (a.lower() == b.lower()) == ((run_a, att_a) == (run_b, att_b))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("nightly", "nightly"),
        ("Nightly_ETL-2", "Nightly_ETL-2"),
        ("nightly etl", "nightly-etl"),
        ("  a  b  ", "a-b"),
        ("a//b..c", "a-b-c"),
        ("a - b", "a-b"),
        ("--x--", "x"),
        ("café", "caf"),
        ("日本", "task"),
        ("", "task"),
        ("---", "task"),
        ("x" * 80, "x" * 64),
        ("x" * 63 + " y", "x" * 63),  # cut lands on a '-': trimmed
    ],
)
def test_batch_task_id(name: str, expected: str) -> None:
    assert ids.batch_task_id(name) == expected


@given(st.text(max_size=200))
def test_batch_task_id_always_valid(name: str) -> None:
    task_id = ids.batch_task_id(name)
    assert BATCH_ID.fullmatch(task_id)
    assert not task_id.startswith("-")
    assert not task_id.endswith("-")
    assert "--" not in task_id


def test_fingerprint_items() -> None:
    assert ids.fingerprint(INST, 12, 3) == [
        ("polysync.installation", INST),
        ("polysync.run", "12"),
        ("polysync.attempt", "3"),
    ]


@pytest.mark.parametrize(
    ("metadata", "matches"),
    [
        (ids.fingerprint(INST, 12, 3), True),
        (dict(ids.fingerprint(INST, 12, 3)), True),
        ([("owner", "team-a"), *ids.fingerprint(INST, 12, 3)], True),  # template metadata kept
        (ids.fingerprint(INST, 12, 4), False),  # another attempt of the same run
        (ids.fingerprint(INST, 13, 3), False),
        (ids.fingerprint("zz99zz99", 12, 3), False),  # another installation
        (ids.fingerprint(INST, 12, 3)[:2], False),  # attempt missing
        ([], False),
        (None, False),
    ],
)
def test_fingerprint_matches(
    metadata: list[tuple[str, str]] | dict[str, str] | None, matches: bool
) -> None:
    assert ids.fingerprint_matches(metadata, INST, 12, 3) is matches


@given(installations, run_ids, attempts, run_ids, attempts)
def test_fingerprint_matches_only_its_own_attempt(
    inst: str, run_a: int, att_a: int, run_b: int, att_b: int
) -> None:
    meta = ids.fingerprint(inst, run_a, att_a)
    assert ids.fingerprint_matches(meta, inst, run_b, att_b) == ((run_a, att_a) == (run_b, att_b))
