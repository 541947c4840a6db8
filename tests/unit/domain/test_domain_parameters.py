from __future__ import annotations

import json

import pytest

from polysync.domain import parameters
from polysync.domain.models import DataType, Direction, Job, Parameter
from polysync.domain.parameters import ParamValue
from polysync.errors import ParameterError

STR, INT, FLT, BOOL, JSN, SEC = (
    DataType.STRING,
    DataType.INT,
    DataType.FLOAT,
    DataType.BOOL,
    DataType.JSON,
    DataType.SECRET,
)
IN, OUT, IO = Direction.INPUT, Direction.OUTPUT, Direction.INPUT_OUTPUT
SECRET = "Sup3r-Secret-Value"


def p(
    name: str, data_type: DataType = STR, direction: Direction = IN, default: str | None = None
) -> Parameter:
    return Parameter(name=name, data_type=data_type, direction=direction, default=default)


# -- names -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["A", "a", "INPUT_PATH", "x1", "Mixed_Case_9", "A" * 256])
def test_valid_names(name: str) -> None:
    parameters.validate_name(name)


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("", ["needs a name", "letters, digits and _"]),
        ("1ABC", ["'1ABC'", "not a valid environment variable name", "e.g. P_1ABC"]),
        ("my-param", ["'my-param'", "e.g. my_param"]),
        ("has space", ["'has space'", "e.g. has_space"]),
        ("é", ["'é'"]),
        ("A=B", ["'A=B'", "e.g. A_B"]),
        ("AZ_BATCH_NODE", ["AZ_BATCH_NODE", "reserves", "rename"]),
        ("az_batch_x", ["az_batch_x", "AZ_BATCH_", "rename"]),
        ("_response", ["_response", "Polysync reserves", "e.g. response"]),
        ("_", ["e.g. P"]),
        ("A" * 257, ["257 characters", "256 or fewer"]),
    ],
)
def test_invalid_names(name: str, fragments: list[str]) -> None:
    with pytest.raises(ParameterError) as info:
        parameters.validate_name(name)
    assert info.value.exit_code == 2
    for fragment in fragments:
        assert fragment in str(info.value)


def test_validate_schema_refuses_names_equal_ignoring_case() -> None:
    parameters.validate_schema([p("A"), p("B")])
    with pytest.raises(ParameterError, match="Path and PATH differ only by case"):
        parameters.validate_schema([p("Path"), p("PATH")])
    with pytest.raises(ParameterError, match="AZ_BATCH_"):
        parameters.validate_schema([p("AZ_BATCH_X")])


# -- types and directions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("String", STR), ("string", STR), ("str", STR), ("TEXT", STR),
        ("Int", INT), ("int", INT), ("integer", INT), ("Long", INT),
        ("Float", FLT), ("double", FLT), ("number", FLT), ("decimal", FLT),
        ("Bool", BOOL), ("boolean", BOOL),
        ("JSON", JSN), ("json", JSN), ("JsonArray", JSN), ("json-object", JSN), ("object", JSN),
        ("array", JSN),
        ("Secret", SEC), (" secret ", SEC),
    ],
)  # fmt: skip
def test_parse_data_type(text: str, expected: DataType) -> None:
    assert parameters.parse_data_type(text) is expected


@pytest.mark.parametrize("text", ["", "date", "int32", "bytes"])
def test_parse_data_type_lists_choices(text: str) -> None:
    with pytest.raises(ParameterError) as info:
        parameters.parse_data_type(text)
    assert repr(text) in str(info.value)
    assert "String, Int, Float, Bool, JSON or Secret" in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Input", IN), ("input", IN), ("in", IN), ("IN", IN),
        ("Output", OUT), ("out", OUT),
        ("Input&Output", IO), ("InputOutput", IO), ("input & output", IO), ("inout", IO),
        ("Input/Output", IO), ("input_output", IO), ("in-out", IO), ("IO", IO),
    ],
)  # fmt: skip
def test_parse_direction(text: str, expected: Direction) -> None:
    assert parameters.parse_direction(text) is expected


@pytest.mark.parametrize("text", ["", "both", "inputs", "none"])
def test_parse_direction_lists_choices(text: str) -> None:
    with pytest.raises(ParameterError) as info:
        parameters.parse_direction(text)
    assert "Input, Output or Input&Output" in str(info.value)


def test_output_parameter_notice() -> None:
    notice = parameters.output_parameter_notice(p("RESULT", direction=OUT))
    assert "RESULT" in notice
    assert "never sends" in notice
    assert notice.endswith(
        "Output parameters are not supported. Persist task results to Azure Storage / "
        "Application Insights and reference them downstream."
    )


# -- values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_type", "value", "canonical"),
    [
        (STR, "anything at all", "anything at all"),
        (STR, "", ""),
        (STR, "  spaces kept  ", "  spaces kept  "),
        (STR, "multi\nline", "multi\nline"),
        (INT, "7", "7"),
        (INT, "007", "7"),
        (INT, "+5", "5"),
        (INT, "-0", "0"),
        (INT, " -42 ", "-42"),
        (INT, "9223372036854775807", "9223372036854775807"),
        (INT, "-9223372036854775808", "-9223372036854775808"),
        (INT, "0000000000000000000000001", "1"),
        (FLT, "3.14", "3.14"),
        (FLT, "12.50", "12.50"),  # sent as typed, not through a binary float
        (FLT, "-2", "-2"),
        (FLT, "+1.5", "1.5"),
        (FLT, ".5", ".5"),
        (FLT, "5.", "5."),
        (FLT, "1e-3", "1e-3"),
        (FLT, " 2E10 ", "2E10"),
        (BOOL, "true", "true"),
        (BOOL, "TRUE", "true"),
        (BOOL, "Yes", "true"),
        (BOOL, "1", "true"),
        (BOOL, "false", "false"),
        (BOOL, "No", "false"),
        (BOOL, " 0 ", "false"),
        (JSN, '{"a": 1, "b": [true, null]}', '{"a":1,"b":[true,null]}'),
        (JSN, "[1, 2]", "[1,2]"),
        (JSN, ' "text" ', '"text"'),
        (JSN, "42", "42"),
        (JSN, '{"name": "café"}', '{"name":"café"}'),
        (JSN, '{"b": 1, "a": 2}', '{"b":1,"a":2}'),  # key order kept
        (SEC, SECRET, SECRET),
        (SEC, " padded ", " padded "),  # secrets are sent exactly
    ],
)
def test_validate_value_canonical(data_type: DataType, value: str, canonical: str) -> None:
    assert parameters.validate_value(p("P1", data_type), value) == canonical


@pytest.mark.parametrize(
    ("data_type", "value", "fragments"),
    [
        (INT, "", ["parameter P1 (Int)", "not a whole number", "digits"]),
        (INT, "1.0", ["'1.0'", "not a whole number"]),
        (INT, "1e3", ["not a whole number"]),
        (INT, "1_000", ["not a whole number"]),
        (INT, "0x10", ["not a whole number"]),
        (INT, "9223372036854775808", ["64 bits", "String parameter"]),
        (INT, "-9223372036854775809", ["64 bits"]),
        (INT, "9" * 5000, ["64 bits", "…"]),  # long values are shortened in the message
        (FLT, "", ["parameter P1 (Float)", "not a finite decimal number", "e.g. 3.14"]),
        (FLT, "nan", ["'nan'", "not a finite"]),
        (FLT, "NaN", ["not a finite"]),
        (FLT, "inf", ["not a finite"]),
        (FLT, "-Infinity", ["not a finite"]),
        (FLT, "1e999", ["too large", "smaller exponent"]),
        (FLT, "1,5", ["not a finite"]),
        (FLT, "0x1p3", ["not a finite"]),
        (FLT, "1_0.5", ["not a finite"]),
        (BOOL, "", ["parameter P1 (Bool)", "not a boolean", "true/false, yes/no or 1/0"]),
        (BOOL, "maybe", ["'maybe'", "not a boolean"]),
        (BOOL, "2", ["not a boolean"]),
        (JSN, "", ["parameter P1 (JSON)", "not valid JSON"]),
        (JSN, "{a: 1}", ["not valid JSON", "quote strings and keys"]),
        (JSN, "[1, 2", ["not valid JSON"]),
        (JSN, "NaN", ["not valid JSON"]),
        (JSN, '{"x": Infinity}', ["not valid JSON"]),
        (STR, "a\x00b", ["parameter P1 (String)", "NUL", "remove it"]),
        (SEC, "", ["parameter P1 (Secret) is empty", "env:NAME or file:PATH"]),
    ],
)
def test_validate_value_rejects(data_type: DataType, value: str, fragments: list[str]) -> None:
    with pytest.raises(ParameterError) as info:
        parameters.validate_value(p("P1", data_type), value)
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize("value", [SECRET + "\x00", "\x00" + SECRET])
def test_secret_value_is_never_echoed(value: str) -> None:
    with pytest.raises(ParameterError) as info:
        parameters.validate_value(p("DB_PASSWORD", SEC), value)
    message = str(info.value)
    assert SECRET not in message
    assert "DB_PASSWORD" in message
    assert "(hidden)" in message


def test_json_output_parses_back_to_the_same_value() -> None:
    value = '{ "nested": {"list": [1, 2.5, "x"]}, "flag": false }'
    sent = parameters.validate_value(p("CFG", JSN), value)
    assert json.loads(sent) == json.loads(value)
    assert " " not in sent


# -- effective values --------------------------------------------------------------------

JOB = Job(
    name="etl",
    platform="prod",
    external_id="template-etl",
    parameters=(
        p("DATE", STR, IN, default="2024-01-01"),
        p("COUNT", INT, IN),
        p("TOKEN", SEC, IN, default="env:ETL_TOKEN"),
        p("STATE", JSN, IO, default="{}"),
        p("RESULT", STR, OUT),
        p("SUMMARY", STR, OUT, default="n/a"),
    ),
)


def _by_name(values: list[ParamValue]) -> dict[str, ParamValue]:
    return {v.name: v for v in values}


@pytest.mark.parametrize(
    ("task_params", "overrides", "expected"),
    [
        # Defaults fill what the task does not pin.
        ({"COUNT": "5"}, {}, {"DATE": ("2024-01-01", "default"), "COUNT": ("5", "task")}),
        # Task value beats the default.
        ({"COUNT": "5", "DATE": "2025-02-02"}, {}, {"DATE": ("2025-02-02", "task")}),
        # Run override beats task value and default.
        (
            {"COUNT": "5"},
            {"COUNT": "9", "DATE": "x"},
            {"COUNT": ("9", "override"), "DATE": ("x", "override")},
        ),
        # No task value at all: override alone.
        ({}, {"COUNT": "1"}, {"COUNT": ("1", "override"), "TOKEN": ("env:ETL_TOKEN", "default")}),
        # An Output parameter with a default is listed (sendable() drops it).
        ({"COUNT": "5"}, {}, {"SUMMARY": ("n/a", "default")}),
    ],
)
def test_effective_values_precedence(
    task_params: dict[str, str], overrides: dict[str, str], expected: dict[str, tuple[str, str]]
) -> None:
    values = _by_name(parameters.effective_values(JOB, task_params, overrides))
    for name, (raw, source) in expected.items():
        assert values[name].raw == raw
        assert values[name].source == source


def test_effective_values_order_flags_and_output_without_value() -> None:
    values = parameters.effective_values(JOB, {"COUNT": "5", "DATE": "env:DAY"}, None)
    assert [v.name for v in values] == ["DATE", "COUNT", "TOKEN", "STATE", "SUMMARY"]
    flags = {v.name: (v.direction, v.data_type, v.secret) for v in values}
    # Outside a Secret parameter "env:DAY" is text (decision 0010): not a secret.
    assert flags["DATE"] == (IN, STR, False)
    assert flags["COUNT"] == (IN, INT, False)
    assert flags["TOKEN"] == (IN, SEC, True)
    assert flags["STATE"] == (IO, JSN, False)
    assert flags["SUMMARY"] == (OUT, STR, False)


@pytest.mark.parametrize(
    ("task_params", "overrides", "fragments"),
    [
        (
            {"COUNT": "1", "NOPE": "x"},
            {},
            ["job 'etl' has no parameter NOPE", "it has: DATE, COUNT"],
        ),
        ({"COUNT": "1"}, {"Count": "2"}, ["no parameter Count", "polysync job param set etl NAME"]),
        ({"A": "1"}, {"B": "2", "A": "3"}, ["no parameter B, A"]),
        ({}, {}, ["parameter COUNT of job 'etl' has no value", "--param COUNT=...", "--default"]),
    ],
)
def test_effective_values_errors(
    task_params: dict[str, str], overrides: dict[str, str], fragments: list[str]
) -> None:
    with pytest.raises(ParameterError) as info:
        parameters.effective_values(JOB, task_params, overrides)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_effective_values_lists_every_missing_sendable() -> None:
    job = Job(name="j", platform="p", external_id="t", parameters=(p("A"), p("B", direction=IO)))
    with pytest.raises(ParameterError, match="parameters A, B of job 'j' have no value"):
        parameters.effective_values(job, {}, {})


def test_effective_values_job_without_parameters() -> None:
    job = Job(name="bare", platform="p", external_id="t")
    assert parameters.effective_values(job, {}, {}) == []
    with pytest.raises(ParameterError, match="it has: none yet"):
        parameters.effective_values(job, {"X": "1"}, {})


def test_sendable_keeps_input_and_input_output_only() -> None:
    values = parameters.effective_values(JOB, {"COUNT": "5", "RESULT": "ignored"}, {})
    sent = parameters.sendable(values)
    assert [v.name for v in sent] == ["DATE", "COUNT", "TOKEN", "STATE"]
    assert all(v.direction is not OUT for v in sent)
