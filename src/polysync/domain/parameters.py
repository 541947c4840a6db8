"""Parameter names, types, directions, values and precedence (D11). Pure.

Azure Batch has one way to hand values to a task: ``environmentSettings``, a list of
name/value strings (NOTES.md §10.3). So, as the seed says, Input and Input&Output values
are sent as environment variables, "values are strings; the Task is responsible for
parsing typed values", and Output parameters are never sent nor read back.

Typed values are checked when a Task is saved and again at run time, and sent in a
canonical text form so the task's parser sees one spelling per value:

=======  ==========================================================================
String   as given (any text without NUL, which no environment variable can hold)
Int      base-10, optional sign, within signed 64 bits; leading zeros dropped
         (``"007"`` → ``"7"``: shells read ``08`` as bad octal, and ``007`` and ``7``
         are the same integer), ``"+5"`` → ``"5"``, ``"-0"`` → ``"0"``
Float    a finite decimal number, sent as typed (stripped); ``nan``/``inf`` refused;
         not re-printed through a binary float, so ``12.50`` stays ``12.50``
Bool     ``true/false/1/0/yes/no`` (any case) → ``true`` / ``false``
JSON     must parse (no ``NaN``/``Infinity``), sent compact: ``{"a":1}``
Secret   a reference (vault://, env:, file:), resolved at run time, never echoed in an
         error (decision 0010)
=======  ==========================================================================

Precedence of a value, highest first: the run's override (``task run --param``), the
Task's pinned value, the Job's schema default.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from polysync.domain import limits, secrets
from polysync.domain.models import DataType, Direction, Job, Parameter
from polysync.errors import ParameterError

NAME_MAX_LEN = limits.PARAM_NAME.max_len
RESERVED_PREFIX_BATCH = "AZ_BATCH_"
RESERVED_PREFIX_INTERNAL = "_"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_SHOWN_VALUE_MAX = 40

_BOOL_TRUE = frozenset({"true", "1", "yes"})
_BOOL_FALSE = frozenset({"false", "0", "no"})

SEND_DIRECTIONS = frozenset({Direction.INPUT, Direction.INPUT_OUTPUT})

OUTPUT_NOT_SUPPORTED = (
    "Output parameters are not supported. Persist task results to Azure Storage / "
    "Application Insights and reference them downstream."
)
"""The seed's sentence, verbatim."""

# Spellings seen across Polysync's pages (POLYSYNC-CONCEPTS.md §2.1 Job), after _squash.
_DATA_TYPES: dict[str, DataType] = {
    "string": DataType.STRING,
    "str": DataType.STRING,
    "text": DataType.STRING,
    "int": DataType.INT,
    "integer": DataType.INT,
    "long": DataType.INT,
    "float": DataType.FLOAT,
    "double": DataType.FLOAT,
    "number": DataType.FLOAT,
    "decimal": DataType.FLOAT,
    "bool": DataType.BOOL,
    "boolean": DataType.BOOL,
    "json": DataType.JSON,
    "jsonobject": DataType.JSON,
    "jsonarray": DataType.JSON,
    "object": DataType.JSON,
    "array": DataType.JSON,
    "secret": DataType.SECRET,
}

_DIRECTIONS: dict[str, Direction] = {
    "input": Direction.INPUT,
    "in": Direction.INPUT,
    "output": Direction.OUTPUT,
    "out": Direction.OUTPUT,
    "inputoutput": Direction.INPUT_OUTPUT,
    "inout": Direction.INPUT_OUTPUT,
    "io": Direction.INPUT_OUTPUT,
}


def _squash(text: str) -> str:
    """Lower-case and drop separators: ``"Input & Output"`` → ``"inputoutput"``."""
    return re.sub(r"[\s&/+_-]", "", text).lower()


def _choices(values: Iterable[str]) -> str:
    items = list(values)
    return ", ".join(items[:-1]) + f" or {items[-1]}"


# -- names -------------------------------------------------------------------------------


def validate_name(name: str) -> None:
    """A parameter name must be a usable, non-reserved environment variable name."""
    if not name:
        raise ParameterError(
            "a parameter needs a name: use letters, digits and _ (e.g. INPUT_PATH)."
        )
    if len(name) > NAME_MAX_LEN:
        raise ParameterError(
            f"parameter name {name[:20]}… is {len(name)} characters long; keep it to "
            f"{NAME_MAX_LEN} or fewer."
        )
    if _NAME.fullmatch(name) is None:
        suggestion = re.sub(r"[^A-Za-z0-9_]", "_", name)
        if suggestion[0].isdigit():
            suggestion = "P_" + suggestion
        raise ParameterError(
            f"parameter name {name!r} is not a valid environment variable name: use letters, "
            f"digits and _, not starting with a digit (e.g. {suggestion})."
        )
    if name.upper().startswith(RESERVED_PREFIX_BATCH):
        raise ParameterError(
            f"parameter name {name} starts with {RESERVED_PREFIX_BATCH}, which Azure Batch "
            "reserves for its own variables; rename it."
        )
    if name.startswith(RESERVED_PREFIX_INTERNAL):
        raise ParameterError(
            f"parameter name {name} starts with _, which Polysync reserves for internal "
            f"parameters (_response, _error); rename it (e.g. {name.lstrip('_') or 'P'})."
        )


def validate_schema(params: Sequence[Parameter]) -> None:
    """Every name valid, and no two names equal ignoring case.

    Windows nodes treat environment variable names case-insensitively, so ``Path`` and
    ``PATH`` would overwrite each other on the task.
    """
    seen: dict[str, str] = {}
    for param in params:
        validate_name(param.name)
        key = param.name.upper()
        if key in seen:
            raise ParameterError(
                f"parameters {seen[key]} and {param.name} differ only by case, and Windows "
                "nodes would see one variable; rename one of them."
            )
        seen[key] = param.name


# -- types and directions ----------------------------------------------------------------


def parse_data_type(text: str) -> DataType:
    """``"integer"`` → ``Int``; case and separators do not matter."""
    found = _DATA_TYPES.get(_squash(text))
    if found is None:
        raise ParameterError(
            f"data type {text!r} is not known: use {_choices(t.value for t in DataType)}."
        )
    return found


def parse_direction(text: str) -> Direction:
    """``"InputOutput"`` / ``"inout"`` / ``"Input&Output"`` → ``Input&Output``."""
    found = _DIRECTIONS.get(_squash(text))
    if found is None:
        raise ParameterError(
            f"direction {text!r} is not known: use {_choices(d.value for d in Direction)}."
        )
    return found


def output_parameter_notice(param: Parameter) -> str:
    """What to tell a user who defines an Output parameter (D11, seed)."""
    return (
        f"Parameter {param.name} is an Output parameter: Polysync never sends it to the Batch "
        "task and cannot read it back, because a Batch task only receives environment "
        f"variables and returns an exit code. {OUTPUT_NOT_SUPPORTED}"
    )


# -- values ------------------------------------------------------------------------------


def _shown(param: Parameter, value: str) -> str:
    if param.data_type is DataType.SECRET:
        return "(hidden)"
    if len(value) > _SHOWN_VALUE_MAX:
        return repr(value[:_SHOWN_VALUE_MAX] + "…")
    return repr(value)


def _bad(param: Parameter, value: str, problem: str, fix: str) -> ParameterError:
    return ParameterError(
        f"parameter {param.name} ({param.data_type.value}) value {_shown(param, value)} "
        f"{problem}; {fix}."
    )


def validate_value(param: Parameter, value: str) -> str:
    """Check ``value`` against the parameter's type; return the canonical text to send."""
    if "\x00" in value:
        raise _bad(param, value, "contains a NUL character", "remove it")
    kind = param.data_type
    if kind is DataType.STRING:
        return value
    if kind is DataType.SECRET:
        if value == "":
            raise ParameterError(
                f"parameter {param.name} (Secret) is empty; give a reference to a non-empty "
                f"secret ({secrets.FORMS})."
            )
        return value
    text = value.strip()
    if kind is DataType.INT:
        return _int(param, value, text)
    if kind is DataType.FLOAT:
        return _float(param, value, text)
    if kind is DataType.BOOL:
        lowered = text.lower()
        if lowered in _BOOL_TRUE:
            return "true"
        if lowered in _BOOL_FALSE:
            return "false"
        raise _bad(param, value, "is not a boolean", "use true/false, yes/no or 1/0")
    return _json(param, value)


def _int(param: Parameter, value: str, text: str) -> str:
    if _INT.fullmatch(text) is None:
        raise _bad(param, value, "is not a whole number", "write digits with an optional sign")
    # Checked on length first: int() of a huge digit string is slow (and capped in 3.11).
    number = None if len(text.lstrip("+-").lstrip("0")) > 19 else int(text)
    if number is None or not _INT64_MIN <= number <= _INT64_MAX:
        raise _bad(
            param,
            value,
            "does not fit in 64 bits",
            "make it a String parameter if the task parses big numbers itself",
        )
    return str(number)


def _float(param: Parameter, value: str, text: str) -> str:
    if _FLOAT.fullmatch(text) is None:
        raise _bad(param, value, "is not a finite decimal number", "write e.g. 3.14, -2 or 1e-3")
    if not math.isfinite(float(text)):
        raise _bad(param, value, "is too large to be a finite number", "use a smaller exponent")
    return text.removeprefix("+")


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _json(param: Parameter, value: str) -> str:
    try:
        parsed = json.loads(value, parse_constant=_reject_constant)
    except ValueError as exc:
        detail = f" ({exc.msg})" if isinstance(exc, json.JSONDecodeError) else f" ({exc})"
        raise _bad(
            param, value, f"is not valid JSON{detail}", 'quote strings and keys, e.g. {"k": 1}'
        ) from None
    return json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)


# -- effective values --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParamValue:
    """The value a run uses for one parameter, before references are resolved.

    ``raw`` is a literal (maybe ``literal:``-escaped) or, for a Secret parameter, a
    reference. ``secret`` is True for Secret parameters, the only ones whose value is a
    reference (decision 0010: elsewhere ``env:X`` is just text), so their resolved text
    is always masked.
    """

    name: str
    raw: str
    direction: Direction
    data_type: DataType
    secret: bool
    source: str  # "override" | "task" | "default"


def _unknown_names(job: Job, names: Iterable[str]) -> ParameterError:
    known = ", ".join(p.name for p in job.parameters) or "none yet"
    return ParameterError(
        f"job {job.name!r} has no parameter {', '.join(names)} (it has: {known}); fix the "
        f"name or add it with `polysync job param set {job.name} NAME`."
    )


def effective_values(
    job: Job,
    task_params: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
) -> list[ParamValue]:
    """Each schema parameter's value by precedence: run override > task value > default.

    Parameters that will be sent (Input, Input&Output) must end with a value; an Output
    parameter without one is simply left out. Order follows the Job's schema.
    """
    overrides = overrides or {}
    known = {p.name for p in job.parameters}
    unknown = [n for n in (*overrides, *task_params) if n not in known]
    if unknown:
        raise _unknown_names(job, dict.fromkeys(unknown))
    values: list[ParamValue] = []
    missing: list[str] = []
    for param in job.parameters:
        raw: str | None
        if param.name in overrides:
            raw, source = overrides[param.name], "override"
        elif param.name in task_params:
            raw, source = task_params[param.name], "task"
        else:
            raw, source = param.default, "default"
        if raw is None:
            if param.direction in SEND_DIRECTIONS:
                missing.append(param.name)
            continue
        values.append(
            ParamValue(
                name=param.name,
                raw=raw,
                direction=param.direction,
                data_type=param.data_type,
                secret=param.data_type is DataType.SECRET,
                source=source,
            )
        )
    if missing:
        first = missing[0]
        noun, verb = ("parameter", "has") if len(missing) == 1 else ("parameters", "have")
        raise ParameterError(
            f"{noun} {', '.join(missing)} of job {job.name!r} {verb} "
            f"no value: give --param {first}=... or set a default with "
            f"`polysync job param set {job.name} {first} --default ...`."
        )
    return values


def sendable(values: Iterable[ParamValue]) -> list[ParamValue]:
    """Only Input and Input&Output values travel to the task; Output never does (seed)."""
    return [v for v in values if v.direction in SEND_DIRECTIONS]
