from __future__ import annotations

import pytest

from polysync.domain.durations import format_duration_s, parse_duration_text, to_iso8601
from polysync.errors import InputError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        ("90", 90),
        (" 90 ", 90),
        ("90s", 90),
        ("90S", 90),
        ("15m", 900),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("1d2h3m4s", 93784),
        ("1 h", 3600),
        ("0s", 0),
        ("PT1H30M", 5400),
        ("pt1h30m", 5400),
        ("PT90S", 90),
        ("PT0S", 0),
        ("P1D", 86400),
        ("P1DT2H", 93600),
        ("PT02H00M00S", 7200),  # the shape Batch itself returns (NOTES.md §2.x examples)
        ("P7D", 604800),
    ],
)
def test_parse_duration_text_accepts(text: str, seconds: int) -> None:
    assert parse_duration_text(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  ",
        "abc",
        "1.5h",
        "-5",
        "-5m",
        "30m1h",
        "1h1h",
        "5x",
        "P",
        "PT",
        "P1DT",
        "P1M",
        "P1W",
        "PT1.5S",
        "1e3",
        "h",
        "1 hour",
    ],
)
def test_parse_duration_text_rejects_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_duration_text(text)
    message = str(info.value)
    assert "PT1H30M" in message
    assert "1h30m" in message


def test_parse_duration_text_says_negative() -> None:
    with pytest.raises(InputError, match="negative"):
        parse_duration_text("-5m")


@pytest.mark.parametrize(
    ("seconds", "text", "iso"),
    [
        (0, "0s", "PT0S"),
        (1, "1s", "PT1S"),
        (59, "59s", "PT59S"),
        (60, "1m", "PT1M"),
        (90, "1m30s", "PT1M30S"),
        (3600, "1h", "PT1H"),
        (5400, "1h30m", "PT1H30M"),
        (86400, "1d", "P1D"),
        (90000, "1d1h", "P1DT1H"),
        (93784, "1d2h3m4s", "P1DT2H3M4S"),
        (604800, "7d", "P7D"),
    ],
)
def test_format_and_iso(seconds: int, text: str, iso: str) -> None:
    assert format_duration_s(seconds) == text
    assert to_iso8601(seconds) == iso
    # Both forms read back to the same number of seconds.
    assert parse_duration_text(text) == seconds
    assert parse_duration_text(iso) == seconds


@pytest.mark.parametrize("func", [format_duration_s, to_iso8601])
def test_negative_durations_are_refused(func: object) -> None:
    assert callable(func)
    with pytest.raises(ValueError, match="negative"):
        func(-1)
