"""Input limits: every bound on what users send, and the checks that enforce them. Pure.

The CLI, the console and the API take the same inputs, so they must refuse the same
ones with the same sentence. The numbers live here once: the services call the checks
(so every door gets them), the API's pydantic annotations are built from the same
constants (so its schema says what the services enforce), and the CLI and console check
their own options and path values with them before anything reaches the store.

Why these bounds:

* integers stay within :data:`MAX_INT`, exact for every JSON reader and well inside
  the 64-bit integers SQLite and PostgreSQL store (a bigger one was an OverflowError);
* no text holds NUL: PostgreSQL refuses it in text and JSON, and no environment
  variable or command line can carry one;
* durations stay within ten years, lengths and counts within what a person writes, so
  one request cannot fill the database.

Each check raises :class:`~polysync.errors.InputError` with one sentence that names the
field, the bound and what to do. ``field`` lets an edge name its own spelling of the
field (``--offset``); the default is a plain-words name that suits every edge.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from polysync.domain.durations import format_duration_s
from polysync.domain.ids import BATCH_ID_MAX_LEN
from polysync.errors import InputError

MAX_INT = 2**53 - 1
"""The largest id or offset: JavaScript's ``Number.MAX_SAFE_INTEGER``, so every JSON
client reads it exactly, and far inside the databases' signed 64-bit integers."""

MAX_DURATION_S = 10 * 365 * 86_400
"""Ten years: longer than any run, timeout or retention anyone means."""

# Digits beyond this are refused before int() (slow on huge strings, capped in 3.11)
# and never echoed back in full.
_DIGITS_SHOWN = 24
_HUGE: int = 10**_DIGITS_SHOWN
_WHOLE = re.compile(r"[+-]?[0-9]+")


def _number(value: float) -> str:
    """``5`` → ``"5"``, ``0.5`` → ``"0.5"``, ``1e300`` → ``"1e+300"``."""
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and abs(value) < 1e15 and value == int(value):
        return str(int(value))
    return f"{value:g}"


def _huge(value: float) -> bool:
    """Too long to echo (and str() of a many-thousand-digit int is refused by Python)."""
    return abs(value) >= _HUGE


@dataclass(frozen=True, slots=True)
class Bound:
    """A closed range ``[low, high]`` for one kind of number."""

    what: str  # names the field in messages: "priority", "execution timeout"
    low: int | float
    high: int | float
    whole: bool = True  # an integer (else any finite number)
    duration: bool = False  # seconds, shown as 1h30m in messages
    hint: str = ""  # what the number means, appended to the range: "-1 = unlimited"

    def span(self) -> str:
        """``"1 to 1000"``: for help texts."""
        return f"{_number(self.low)} to {_number(self.high)}"

    def describe(self) -> str:
        """``"a whole number from 1 to 1000"``, ``"a duration from 1s to 3650d"``."""
        if self.duration:
            low, high = (format_duration_s(int(v)) for v in (self.low, self.high))
            text = f"a duration from {low} to {high}"
        else:
            kind = "a whole number" if self.whole else "a number"
            text = f"{kind} from {_number(self.low)} to {_number(self.high)}"
        return f"{text} ({self.hint})" if self.hint else text

    def _shown(self, value: int | float) -> str:
        if self.duration and value >= 0 and value == int(value):
            return format_duration_s(int(value))
        return _number(value)

    def check(self, value: int | float, field: str | None = None) -> None:
        """Raise :class:`InputError` unless ``value`` lies in the range (NaN never does)."""
        name = field or self.what
        if isinstance(value, bool) or (self.whole and not isinstance(value, int)):
            raise InputError(f"{name} must be {self.describe()}.")
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{name} {value} is not a finite number: give {self.describe()}.")
        if not self.low <= value <= self.high:
            if _huge(value):
                size = "large" if value > 0 else "small"
                raise InputError(f"{name} is far too {size}: give {self.describe()}.")
            raise InputError(
                f"{name} {self._shown(value)} is out of range: give {self.describe()}."
            )

    def parse(self, text: str, field: str | None = None) -> int:
        """Whole-number text (a form field, a path) → the checked int."""
        name = field or self.what
        cleaned = text.strip()
        if _WHOLE.fullmatch(cleaned) is None:
            shown = cleaned if len(cleaned) <= _DIGITS_SHOWN else cleaned[:_DIGITS_SHOWN] + "…"
            raise InputError(f"{name} {shown!r} is not a whole number: give {self.describe()}.")
        if len(cleaned.lstrip("+-").lstrip("0")) > _DIGITS_SHOWN:
            size = "small" if cleaned.startswith("-") else "large"
            raise InputError(f"{name} is far too {size}: give {self.describe()}.")
        value = int(cleaned)
        self.check(value, field)
        return value


def check_no_nul(value: str, what: str) -> None:
    """PostgreSQL cannot store or even look up text holding NUL; no field needs one."""
    if "\x00" in value:
        raise InputError(
            f"{what} contains a NUL character (\\0), which no field can hold: remove it."
        )


@dataclass(frozen=True, slots=True)
class Text:
    """A text field: at most ``max_len`` characters, never a NUL."""

    what: str
    max_len: int

    def check(self, value: str, field: str | None = None) -> None:
        name = field or self.what
        check_no_nul(value, name)
        if len(value) > self.max_len:
            raise InputError(
                f"{name} is {len(value)} characters long: keep it to {self.max_len} or fewer."
            )


# -- numbers -----------------------------------------------------------------------------

PRIORITY = Bound("priority", -1_000_000, 1_000_000, hint="higher runs first")
EXECUTION_TIMEOUT_S = Bound("execution timeout", 1, MAX_DURATION_S, duration=True)
MAX_ATTEMPTS = Bound("retry max attempts", 1, 100, hint="it counts the first try too")
RETRIES = Bound("retries", 0, int(MAX_ATTEMPTS.high) - 1, hint="after the first try")
RETRY_DELAY_S = Bound("retry delay", 0, MAX_DURATION_S, whole=False, duration=True)
MAX_WALL_CLOCK_S = Bound("task max wall clock time", 1, MAX_DURATION_S, duration=True)
RETENTION_S = Bound("task retention time", 1, MAX_DURATION_S, duration=True)
MAX_TASK_RETRIES = Bound("max task retries", -1, 100, hint="-1 = unlimited")
WAIT_TIMEOUT_S = Bound("wait timeout", 0, MAX_DURATION_S, duration=True, hint="0 = no limit")

RUN_ID = Bound("run id", 1, MAX_INT)
PAGE_SIZE = Bound("page size", 1, 1000)
OFFSET = Bound("offset", 0, MAX_INT)
BATCH_PAGE_SIZE = Bound("page size", 1, 1000, hint="Batch's maxresults range")
LOG_CHUNK_BYTES = Bound("max bytes", 1, 1024 * 1024)

PORT = Bound("port", 0, 65_535)
CONCURRENCY = Bound("concurrency", 1, 1_000_000)
SUBMIT_RATE = Bound("submit rate", 0.001, 100_000, whole=False, hint="calls per second")
SWEEP_INTERVAL_S = Bound("sweep interval", 0.05, 3_600, whole=False, hint="seconds")
LEASE_S = Bound("lease", 0.5, 86_400, whole=False, hint="seconds")

# -- text --------------------------------------------------------------------------------

NAME = Text("name", 64)  # platforms, jobs, tasks, tokens (services.platforms.validate_name)
DESCRIPTION = Text("description", 4_000)
TAG = Text("tag", 200)
TAGS_MAX_COUNT = 100
COMMAND_LINE = Text("command line", 8_000)
IMAGE = Text("container image", 1_000)
RUN_OPTIONS = Text("container run options", 4_000)
PARAM_NAME = Text("parameter name", 256)
PARAM_VALUE = Text("parameter value", 100_000)
PARAMS_MAX_COUNT = 500
CHOICE = Text("choice", 32)  # a data type, direction, state or backoff spelled out
PLATFORM_FIELD = Text("platform field", 2_000)
BATCH_ID = Text("Batch job id", BATCH_ID_MAX_LEN)
IMPORT_IDS_MAX_COUNT = 1000  # template ids in one import request
TASK_FILE = Text("task file path", 512)
RUN_REF = Text("run", 2 * BATCH_ID_MAX_LEN + 1)  # a number or "{jobId}/{taskId}"


def check_params(values: Mapping[str, str], what: str = "parameters") -> None:
    """Count, name and value lengths, no NUL. Values are never echoed (they may be secret)."""
    if len(values) > PARAMS_MAX_COUNT:
        raise InputError(
            f"{len(values)} {what} given: keep it to {PARAMS_MAX_COUNT} or fewer per request."
        )
    for name, value in values.items():
        shown = name if len(name) <= 40 else name[:40] + "…"
        PARAM_NAME.check(name, f"parameter name {shown!r}")
        PARAM_VALUE.check(value, f"the value of parameter {shown}")


def check_tags(tags: Sequence[str]) -> None:
    if len(tags) > TAGS_MAX_COUNT:
        raise InputError(f"{len(tags)} tags given: keep it to {TAGS_MAX_COUNT} or fewer.")
    for tag in tags:
        TAG.check(tag, f"tag {tag[:40]!r}")


# -- task files --------------------------------------------------------------------------

_FILE_CHARS = re.compile(r"[A-Za-z0-9_.\-/]+")
_FILE_EXAMPLES = "such as stdout.txt, stderr.txt or wd/result.json"


def check_task_file(path: str) -> str:
    """A file of the task directory: relative, plain segments, a safe charset.

    Batch serves only the task's own directory, but ``.``, ``..`` and empty segments
    make URLs that the service (and its shared-key signature) reads differently from
    the client, so they fail late and confusingly; refuse them here instead.
    """
    TASK_FILE.check(path, "task file path")
    shown = repr(path if len(path) <= 60 else path[:60] + "…")
    fix = f"give a relative path {_FILE_EXAMPLES}"
    if not path:
        raise InputError(f"the task file path is empty: {fix}.")
    if path.startswith("/"):
        raise InputError(f"task file path {shown} is absolute: {fix}.")
    if path.endswith("/"):
        raise InputError(f"task file path {shown} names a directory (it ends with /): {fix}.")
    if _FILE_CHARS.fullmatch(path) is None:
        raise InputError(
            f"task file path {shown} has characters other than letters, digits, '_', '-', "
            f"'.' and '/': {fix}."
        )
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise InputError(
                f"task file path {shown} has an empty, '.' or '..' segment: {fix}, without them."
            )
    return path
