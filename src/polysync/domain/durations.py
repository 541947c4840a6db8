"""Durations typed by users and sent to Batch. Pure.

Users write durations on the command line (``--retry-delay 30s``, ``--timeout 1h30m``);
Batch wants ISO 8601 (``constraints.maxWallClockTime``, NOTES.md §10.5). Internally a
duration is a whole number of seconds in a name ending in ``_s``.

Accepted text forms (case-insensitive, surrounding spaces ignored):

* a bare number of seconds: ``90``;
* units in the order d, h, m, s, each at most once: ``90s``, ``15m``, ``2h``, ``1d``,
  ``1h30m``, ``1d2h``, ``1h 30m``;
* ISO 8601 days/time: ``PT1H30M``, ``P1D``, ``P1DT2H``, ``PT90S``.

Only whole seconds are accepted: Batch rounds nothing for us, and a fraction of a second is
never what a user means by a delay or a timeout. Years, months and weeks are refused
because a month has no fixed length.
"""

from __future__ import annotations

import re

from polysync.errors import InputError

_ACCEPTED = "use seconds (90), units like 90s, 15m, 2h, 1d, 1h30m, or ISO 8601 like PT1H30M"

_UNIT_S = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}

# "P3650DT23H59M59S" is 16 characters: anything much longer is a typo or an attack, and
# int() of thousands of digits is slow (and refused by Python itself past 4300).
TEXT_MAX_LEN = 40

_SHORT = re.compile(
    r"(?:(?P<d>\d+)\s*d)?\s*(?:(?P<h>\d+)\s*h)?\s*(?:(?P<m>\d+)\s*m)?\s*(?:(?P<s>\d+)\s*s)?"
)
_ISO = re.compile(r"p(?:(?P<d>\d+)d)?(?:t(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?)?")


def _total(match: re.Match[str]) -> int | None:
    parts = {unit: match.group(unit) for unit in _UNIT_S}
    if all(value is None for value in parts.values()):
        return None
    return sum(int(value) * _UNIT_S[unit] for unit, value in parts.items() if value is not None)


def parse_duration_text(text: str) -> int:
    """``"1h30m"`` → ``5400``. Raises :class:`InputError` naming the accepted forms."""
    cleaned = text.strip().lower()
    if not cleaned:
        raise InputError(f"the duration is empty: {_ACCEPTED}.")
    if len(cleaned) > TEXT_MAX_LEN:
        raise InputError(
            f"duration {cleaned[:TEXT_MAX_LEN]}… is {len(cleaned)} characters long: keep it to "
            f"{TEXT_MAX_LEN} or fewer; {_ACCEPTED}."
        )
    if cleaned.isdigit():
        return int(cleaned)
    iso = _ISO.fullmatch(cleaned)
    if iso is not None and not cleaned.endswith("t"):
        total = _total(iso)
        if total is not None:
            return total
    short = _SHORT.fullmatch(cleaned)
    if short is not None:
        total = _total(short)
        if total is not None:
            return total
    if cleaned.startswith("-"):
        raise InputError(f"duration {text.strip()!r} is negative: durations are >= 0; {_ACCEPTED}.")
    raise InputError(f"duration {text.strip()!r} is not understood: {_ACCEPTED}.")


def _parts(seconds: int) -> list[tuple[int, str]]:
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {seconds} s")
    out: list[tuple[int, str]] = []
    rest = seconds
    for unit, size in _UNIT_S.items():
        amount, rest = divmod(rest, size)
        if amount:
            out.append((amount, unit))
    return out


def format_duration_s(seconds: int) -> str:
    """``5400`` → ``"1h30m"``; ``0`` → ``"0s"``. The inverse of the short text form."""
    parts = _parts(seconds)
    if not parts:
        return "0s"
    return "".join(f"{amount}{unit}" for amount, unit in parts)


def to_iso8601(seconds: int) -> str:
    """``5400`` → ``"PT1H30M"``, ``90000`` → ``"P1DT1H"``, ``0`` → ``"PT0S"``.

    Batch itself answers with days when it can (``P7D`` for the default retention,
    NOTES.md §10.5), so days are used here too; both shapes are valid ISO 8601.
    """
    parts = _parts(seconds)
    if not parts:
        return "PT0S"
    days = "".join(f"{amount}D" for amount, unit in parts if unit == "d")
    time = "".join(f"{amount}{unit.upper()}" for amount, unit in parts if unit != "d")
    return f"P{days}" + (f"T{time}" if time else "")
