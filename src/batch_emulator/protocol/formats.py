"""Value formats of the Batch wire protocol: ETags, timestamps, HTTP dates, durations.

Choices (NOTES.md §5):

* Body timestamps are always written with **7 fractional digits** and ``Z``
  (``2023-10-17T08:48:43.7161816Z``), the .NET "o" form the service emits most of the time.
  ``datetime`` only has microseconds, so the 7th digit we write is always ``0``; parsing
  keeps full precision only through :func:`parse_timestamp_ticks`.
* ETags are ``0x`` + upper-case hex of the .NET ticks (100 ns since 0001-01-01) of
  ``lastModified``, unquoted.
* Durations are written like .NET ``XmlConvert.ToString(TimeSpan)``: zero components
  omitted (``PT1H``, ``P7D``, ``PT15M``, ``PT0.5S``, zero is ``PT0S``); "unlimited" is
  ``TimeSpan.MaxValue`` = :data:`UNLIMITED`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = [
    "TICKS_PER_MICROSECOND",
    "TICKS_PER_SECOND",
    "UNLIMITED",
    "UNLIMITED_TIMEDELTA",
    "datetime_from_ticks",
    "dotnet_ticks",
    "etag_for",
    "format_duration",
    "format_http_date",
    "format_timestamp",
    "is_unlimited",
    "parse_duration",
    "parse_duration_ticks",
    "parse_http_date",
    "parse_timestamp",
    "parse_timestamp_ticks",
]

TICKS_PER_MICROSECOND = 10
TICKS_PER_SECOND = 10_000_000
_TICKS_PER_DAY = 86_400 * TICKS_PER_SECOND
_EPOCH_0001 = datetime(1, 1, 1, tzinfo=UTC)

# .NET TimeSpan.MaxValue as the service writes it for "no limit" (NOTES.md §5, §10.5).
UNLIMITED = "P10675199DT2H48M5.4775807S"
# The same value truncated to microseconds. Anything >= this is "unlimited".
UNLIMITED_TIMEDELTA = timedelta(days=10675199, hours=2, minutes=48, seconds=5, microseconds=477580)


def _as_utc(dt: datetime) -> datetime:
    """Naive datetimes are taken to be UTC (the emulator never uses local time)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


# --------------------------------------------------------------------------- ticks / ETag


def dotnet_ticks(dt: datetime) -> int:
    """.NET ticks (100 ns units since 0001-01-01T00:00:00Z) of ``dt``."""
    delta = _as_utc(dt) - _EPOCH_0001
    return (
        delta.days * _TICKS_PER_DAY
        + delta.seconds * TICKS_PER_SECOND
        + delta.microseconds * TICKS_PER_MICROSECOND
    )


def datetime_from_ticks(ticks: int) -> datetime:
    """Inverse of :func:`dotnet_ticks`, truncated to microseconds."""
    return _EPOCH_0001 + timedelta(microseconds=ticks // TICKS_PER_MICROSECOND)


def etag_for(dt: datetime) -> str:
    """The unquoted ETag the service derives from ``lastModified`` (NOTES.md §5)."""
    return f"0x{dotnet_ticks(dt):X}"


# --------------------------------------------------------------------------- ISO timestamps

_TIMESTAMP_RE = re.compile(
    r"""^(?P<date>\d{4}-\d{2}-\d{2})[Tt ]
        (?P<h>\d{2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:\.(?P<frac>\d{1,7}))?)?
        (?P<tz>[Zz]|[+-]\d{2}:?\d{2})?$""",
    re.VERBOSE,
)


def _split_timestamp(s: str) -> tuple[datetime, int]:
    """Parse into (whole-second aware UTC datetime, fractional ticks 0..9_999_999)."""
    m = _TIMESTAMP_RE.match(s.strip())
    if m is None:
        raise ValueError(f"{s!r} is not an ISO 8601 timestamp like '2023-10-17T08:48:43.4236110Z'.")
    try:
        base = datetime.fromisoformat(f"{m['date']}T{m['h']}:{m['m']}:{m['s'] or '00'}")
    except ValueError as exc:
        raise ValueError(f"{s!r} is not a valid date/time: {exc}.") from exc
    tz = m["tz"]
    # No offset: the service only writes UTC, so a bare timestamp is read as UTC.
    if tz is None or tz in ("Z", "z"):
        offset = timedelta(0)
    else:
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        offset = sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    whole = (base - offset).replace(tzinfo=UTC)
    frac = m["frac"] or ""
    return whole, int(frac.ljust(7, "0")) if frac else 0


def parse_timestamp(s: str) -> datetime:
    """Parse an ISO 8601 timestamp (0–7 fractional digits, ``Z``/offset/none) to aware UTC.

    The 7th fractional digit is truncated (``datetime`` has microseconds only).
    """
    whole, frac_ticks = _split_timestamp(s)
    return whole + timedelta(microseconds=frac_ticks // TICKS_PER_MICROSECOND)


def parse_timestamp_ticks(s: str) -> int:
    """Parse an ISO 8601 timestamp to .NET ticks **exactly** (keeps the 7th digit)."""
    whole, frac_ticks = _split_timestamp(s)
    return dotnet_ticks(whole) + frac_ticks


def format_timestamp(dt: datetime) -> str:
    """ISO 8601 UTC with 7 fractional digits and ``Z``: ``2023-10-17T08:48:43.7161810Z``."""
    # isoformat, not strftime: it is in every rendered timestamp (a node list renders
    # one per running task) and takes a third less time. Microseconds + "0" = 7 digits.
    return _as_utc(dt).replace(tzinfo=None).isoformat(timespec="microseconds") + "0Z"


# --------------------------------------------------------------------------- HTTP dates

# Fixed English names: strftime's %a/%b follow the process locale, HTTP dates must not.
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUM = {name.lower(): i + 1 for i, name in enumerate(_MONTHS)}

_RFC1123_RE = re.compile(
    r"^[A-Za-z]{3},\s+(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{2}):(\d{2}):(\d{2})\s+(?:GMT|UTC)$"
)
_RFC850_RE = re.compile(
    r"^[A-Za-z]+,\s+(\d{1,2})-([A-Za-z]{3})-(\d{2})\s+(\d{2}):(\d{2}):(\d{2})\s+GMT$"
)
_ASCTIME_RE = re.compile(
    r"^[A-Za-z]{3}\s+([A-Za-z]{3})\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})\s+(\d{4})$"
)


def format_http_date(dt: datetime) -> str:
    """RFC 1123 date as in ``Last-Modified``/``ocp-date``: ``Tue, 17 Oct 2023 08:48:43 GMT``."""
    u = _as_utc(dt)
    return (
        f"{_DAYS[u.weekday()]}, {u.day:02d} {_MONTHS[u.month - 1]} {u.year:04d} "
        f"{u.hour:02d}:{u.minute:02d}:{u.second:02d} GMT"
    )


def _build_http_date(raw: str, year: int, mon: str, day: str, hms: tuple[str, ...]) -> datetime:
    month = _MONTH_NUM.get(mon.lower())
    if month is None:
        raise ValueError(f"{raw!r} has an unknown month name {mon!r}.")
    try:
        return datetime(year, month, int(day), int(hms[0]), int(hms[1]), int(hms[2]), tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"{raw!r} is not a valid HTTP date: {exc}.") from exc


def parse_http_date(s: str) -> datetime:
    """Parse an HTTP date (RFC 1123, RFC 850 or asctime form, NOTES.md §5) to aware UTC."""
    text = s.strip()
    if m := _RFC1123_RE.match(text):
        return _build_http_date(s, int(m[3]), m[2], m[1], (m[4], m[5], m[6]))
    if m := _RFC850_RE.match(text):
        # RFC 9110 §5.6.7 says to read a 2-digit year as the most recent matching century;
        # a fixed pivot (70) is enough for request dates.
        yy = int(m[3])
        year = 2000 + yy if yy < 70 else 1900 + yy
        return _build_http_date(s, year, m[2], m[1], (m[4], m[5], m[6]))
    if m := _ASCTIME_RE.match(text):
        return _build_http_date(s, int(m[6]), m[1], m[2], (m[3], m[4], m[5]))
    raise ValueError(f"{s!r} is not an HTTP date like 'Tue, 17 Oct 2023 08:48:43 GMT'.")


# --------------------------------------------------------------------------- durations

_DURATION_RE = re.compile(
    r"""^(?P<sign>-)?P
        (?:(?P<years>\d+(?:\.\d+)?)Y)?
        (?:(?P<months>\d+(?:\.\d+)?)M)?
        (?:(?P<weeks>\d+(?:\.\d+)?)W)?
        (?:(?P<days>\d+(?:\.\d+)?)D)?
        (?:T
           (?:(?P<hours>\d+(?:\.\d+)?)H)?
           (?:(?P<minutes>\d+(?:\.\d+)?)M)?
           (?:(?P<seconds>\d+(?:\.\d+)?)S)?
        )?$""",
    re.VERBOSE,
)

_UNIT_TICKS = {
    "weeks": 7 * _TICKS_PER_DAY,
    "days": _TICKS_PER_DAY,
    "hours": 3600 * TICKS_PER_SECOND,
    "minutes": 60 * TICKS_PER_SECOND,
    "seconds": TICKS_PER_SECOND,
}


def _component_ticks(value: str, unit_ticks: int) -> int:
    whole, _, frac = value.partition(".")
    ticks = int(whole) * unit_ticks
    if frac:
        # Exact decimal arithmetic; digits beyond tick precision are truncated.
        ticks += int(frac) * unit_ticks // 10 ** len(frac)
    return ticks


def parse_duration_ticks(s: str) -> int:
    """Parse an ISO 8601 duration to a signed number of .NET ticks."""
    text = s.strip()
    if text == "P":
        # azure-batch 15.1.0 serialises timedelta(0) as a bare "P" (verified).
        return 0
    m = _DURATION_RE.match(text)
    if m is None or text == "-P" or text.endswith("T"):
        raise ValueError(
            f"{s!r} is not an ISO 8601 duration such as 'PT1H', 'PT02H00M00S' or 'P7D'."
        )
    if m["years"] or m["months"]:
        # Years and months have no fixed length; the SDK never sends them.
        raise ValueError(
            f"{s!r} uses years or months; write the duration in days/hours/minutes/seconds."
        )
    ticks = sum(_component_ticks(m[unit], n) for unit, n in _UNIT_TICKS.items() if m[unit])
    return -ticks if m["sign"] else ticks


def parse_duration(s: str) -> timedelta:
    """Parse an ISO 8601 duration (``PT02H00M00S``, ``PT1H``, ``P7D``, ``PT0.5S``, ...).

    The unlimited value :data:`UNLIMITED` (and anything larger, capped at
    ``timedelta.max``) gives a timedelta ``>= UNLIMITED_TIMEDELTA``.
    """
    ticks = parse_duration_ticks(s)
    micros = abs(ticks) // TICKS_PER_MICROSECOND
    max_micros = timedelta.max // timedelta(microseconds=1)
    td = timedelta(microseconds=min(micros, max_micros))
    return -td if ticks < 0 else td


def is_unlimited(td: timedelta | None) -> bool:
    """True for None and for durations at or above .NET ``TimeSpan.MaxValue``."""
    return td is None or td >= UNLIMITED_TIMEDELTA


def format_duration(td: timedelta | None) -> str:
    """Write a duration the way the service does; None/unlimited → :data:`UNLIMITED`."""
    if td is None or td >= UNLIMITED_TIMEDELTA:
        return UNLIMITED
    sign = "-" if td < timedelta(0) else ""
    total_us = abs(td) // timedelta(microseconds=1)
    days, rem_us = divmod(total_us, 86_400 * 1_000_000)
    secs, micros = divmod(rem_us, 1_000_000)
    hours, secs = divmod(secs, 3600)
    minutes, secs = divmod(secs, 60)
    out = f"{sign}P"
    if days:
        out += f"{days}D"
    time_part = ""
    if hours:
        time_part += f"{hours}H"
    if minutes:
        time_part += f"{minutes}M"
    if secs or micros:
        frac = f".{micros:06d}".rstrip("0") if micros else ""
        time_part += f"{secs}{frac}S"
    if time_part:
        out += "T" + time_part
    elif not days:
        out += "T0S"
    return out
