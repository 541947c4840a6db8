"""The input limits shared by the CLI, the console and the API (domain/limits.py)."""

from __future__ import annotations

import math

import pytest

from polysync.domain import limits
from polysync.domain.durations import parse_duration_text
from polysync.errors import InputError

TEN_YEARS = 10 * 365 * 86_400


@pytest.mark.parametrize(
    ("bound", "value"),
    [
        (limits.PRIORITY, -1_000_000),
        (limits.PRIORITY, 0),
        (limits.PRIORITY, 1_000_000),
        (limits.EXECUTION_TIMEOUT_S, 1),
        (limits.EXECUTION_TIMEOUT_S, TEN_YEARS),
        (limits.MAX_TASK_RETRIES, -1),
        (limits.MAX_TASK_RETRIES, 100),
        (limits.RETRY_DELAY_S, 0.0),
        (limits.RETRY_DELAY_S, 30.5),
        (limits.RUN_ID, 1),
        (limits.RUN_ID, 2**53 - 1),
        (limits.OFFSET, 0),
        (limits.LEASE_S, 0.5),
        (limits.PORT, 65_535),
    ],
)
def test_values_within_a_bound_pass(bound: limits.Bound, value: float) -> None:
    bound.check(value)


@pytest.mark.parametrize(
    ("bound", "value", "field", "fragments"),
    [
        (
            limits.PRIORITY,
            1_000_001,
            None,
            ["priority 1000001 is out of range", "from -1000000 to 1000000", "higher runs first"],
        ),
        (limits.PRIORITY, -(10**30), None, ["priority is far too small", "-1000000"]),
        (limits.PRIORITY, 10**400, "--priority", ["--priority is far too large"]),
        (limits.PRIORITY, 1.5, None, ["priority must be a whole number"]),
        (limits.PRIORITY, True, None, ["priority must be a whole number"]),
        (limits.EXECUTION_TIMEOUT_S, 0, None, ["execution timeout 0s", "from 1s to 3650d"]),
        (limits.EXECUTION_TIMEOUT_S, TEN_YEARS + 1, None, ["3650d1s is out of range"]),
        (limits.MAX_WALL_CLOCK_S, 0, None, ["task max wall clock time 0s", "1s to 3650d"]),
        (limits.MAX_TASK_RETRIES, -2, None, ["max task retries -2", "-1 = unlimited"]),
        (limits.RETRY_DELAY_S, math.nan, None, ["retry delay nan is not a finite number"]),
        (limits.RETRY_DELAY_S, math.inf, None, ["retry delay inf is not a finite number"]),
        (limits.RETRY_DELAY_S, -1.0, None, ["retry delay -1 is out of range", "0s to 3650d"]),
        (limits.RUN_ID, 0, None, ["run id 0 is out of range", "from 1 to 9007199254740991"]),
        (limits.RUN_ID, 2**53, None, ["run id 9007199254740992 is out of range"]),
        (limits.OFFSET, -1, "--offset", ["--offset -1 is out of range"]),
        (limits.LEASE_S, 0.1, "--lease", ["--lease 0.1 is out of range", "0.5 to 86400"]),
        (limits.PORT, 65_536, "--port", ["--port 65536 is out of range", "0 to 65535"]),
        (limits.WAIT_TIMEOUT_S, -1, None, ["wait timeout -1 is out of range", "0 = no limit"]),
    ],
)
def test_values_outside_a_bound_name_the_field_and_range(
    bound: limits.Bound, value: float, field: str | None, fragments: list[str]
) -> None:
    with pytest.raises(InputError) as info:
        bound.check(value, field)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    assert message.endswith(".")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", 1), (" 42 ", 42), ("+7", 7), ("0009", 9), ("9007199254740991", 2**53 - 1)],
)
def test_parse_whole_numbers(text: str, expected: int) -> None:
    assert limits.RUN_ID.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("abc", "run id 'abc' is not a whole number"),
        ("", "run id '' is not a whole number"),
        ("1e3", "is not a whole number"),
        ("1.0", "is not a whole number"),
        ("²", "is not a whole number"),  # str.isdigit() says yes, int() says no
        ("٣", "is not a whole number"),  # Arabic-Indic digits: ASCII only
        ("0", "run id 0 is out of range"),
        ("9007199254740992", "out of range"),
        ("9" * 5000, "run id is far too large"),  # no int() of it, no echo of it
        ("-" + "9" * 40, "run id is far too small"),
    ],
)
def test_parse_refuses_with_one_sentence(text: str, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        limits.RUN_ID.parse(text)
    assert fragment in str(info.value)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    ("limit", "value", "fragment"),
    [
        (limits.DESCRIPTION, "x" * 4001, "description is 4001 characters long: keep it to 4000"),
        (limits.DESCRIPTION, "a\x00b", "description contains a NUL character"),
        (limits.COMMAND_LINE, "x" * 8001, "command line is 8001 characters long"),
        (limits.IMAGE, "x" * 1001, "container image is 1001 characters long"),
        (limits.RUN_OPTIONS, "x" * 4001, "container run options is 4001 characters long"),
        (limits.TAG, "x" * 201, "tag is 201 characters long"),
        (limits.PARAM_NAME, "A" * 257, "parameter name is 257 characters long"),
        (limits.PLATFORM_FIELD, "x" * 2001, "platform field is 2001 characters long"),
    ],
)
def test_text_limits(limit: limits.Text, value: str, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        limit.check(value)


@pytest.mark.parametrize(
    "limit", [limits.DESCRIPTION, limits.COMMAND_LINE, limits.TAG, limits.PARAM_VALUE]
)
def test_text_at_its_limit_passes(limit: limits.Text) -> None:
    limit.check("é" * limit.max_len)  # characters, not bytes


def test_params_are_bounded_in_count_name_and_value_without_echoing_values() -> None:
    limits.check_params({f"P{i}": "v" for i in range(limits.PARAMS_MAX_COUNT)})
    with pytest.raises(InputError, match="501 parameters given: keep it to 500"):
        limits.check_params({f"P{i}": "v" for i in range(501)})
    with pytest.raises(InputError, match="the value of parameter TOKEN contains a NUL") as info:
        limits.check_params({"TOKEN": "s3cret\x00"})
    assert "s3cret" not in str(info.value)
    with pytest.raises(InputError, match="the value of parameter BIG is 100001 characters"):
        limits.check_params({"BIG": "x" * 100_001})
    with pytest.raises(InputError, match="parameter name 'A\\\\x00' contains a NUL"):
        limits.check_params({"A\x00": "v"})


def test_tags_are_bounded() -> None:
    limits.check_tags(["t"] * limits.TAGS_MAX_COUNT)
    with pytest.raises(InputError, match="101 tags given"):
        limits.check_tags(["t"] * 101)
    with pytest.raises(InputError, match="tag 'a\\\\x00' contains a NUL"):
        limits.check_tags(["a\x00"])


@pytest.mark.parametrize(
    "path", ["stdout.txt", "stderr.txt", "wd/result.json", "wd/out/a-b_c.1.log", "...", ".hidden"]
)
def test_task_file_paths_accepted(path: str) -> None:
    assert limits.check_task_file(path) == path


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("", "the task file path is empty"),
        (".", "has an empty, '.' or '..' segment"),
        ("..", "has an empty, '.' or '..' segment"),
        ("wd/../../etc/passwd", "has an empty, '.' or '..' segment"),
        ("wd/./x", "has an empty, '.' or '..' segment"),
        ("wd//x", "has an empty, '.' or '..' segment"),
        ("/etc/passwd", "is absolute"),
        ("wd/", "names a directory"),
        ("a b.txt", "has characters other than"),
        ("a\\b", "has characters other than"),
        ("é.txt", "has characters other than"),
        ("a\x00", "contains a NUL character"),
        ("x" * 513, "is 513 characters long: keep it to 512"),
    ],
)
def test_task_file_paths_refused(path: str, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        limits.check_task_file(path)
    assert fragment in str(info.value)
    assert "stdout.txt" in str(info.value) or "NUL" in str(info.value) or "long" in str(info.value)


def test_duration_text_is_bounded_before_int() -> None:
    with pytest.raises(InputError, match="is 5001 characters long: keep it to 40"):
        parse_duration_text("9" * 5000 + "s")
    assert parse_duration_text("P3650DT23H59M59S") == 3650 * 86_400 + 86_399


def test_api_ranges_are_the_limits() -> None:
    """The API builds its pydantic bounds from the same Bound (no second copy)."""
    from polysync.api.routes.common import within

    assert within(limits.PRIORITY) == {"ge": -1_000_000, "le": 1_000_000}
    assert within(limits.RUN_ID) == {"ge": 1, "le": limits.MAX_INT}
