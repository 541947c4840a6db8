"""Table tests for batch_emulator.protocol.formats (NOTES.md §5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import isodate
import pytest
from azure.batch._utils.model_base import _timedelta_as_isostr

from batch_emulator.protocol.formats import (
    UNLIMITED,
    UNLIMITED_TIMEDELTA,
    datetime_from_ticks,
    dotnet_ticks,
    etag_for,
    format_duration,
    format_http_date,
    format_timestamp,
    is_unlimited,
    parse_duration,
    parse_http_date,
    parse_timestamp,
    parse_timestamp_ticks,
)

# Real (lastModified, ETag) pairs from recorded service traffic (NOTES.md §5).
REAL_PAIRS = [
    ("2023-10-17T08:48:43.4236110Z", "0x8DBCEEDDE3E0ACE"),
    ("2023-10-17T08:48:43.7161816Z", "0x8DBCEEDDE6AAF58"),
    ("2023-09-07T06:26:55.6167653Z", "0x8DBAF6B6EABBDE5"),
]


@pytest.mark.parametrize(("stamp", "etag"), REAL_PAIRS)
def test_real_etag_pairs_from_exact_ticks(stamp: str, etag: str) -> None:
    assert f"0x{parse_timestamp_ticks(stamp):X}" == etag


def test_etag_for_datetime_with_zero_seventh_digit() -> None:
    # The first pair's 7th digit is 0, so the microsecond datetime reproduces it exactly.
    assert etag_for(parse_timestamp(REAL_PAIRS[0][0])) == REAL_PAIRS[0][1]


def test_ticks_round_trip_and_epoch() -> None:
    assert dotnet_ticks(datetime(1, 1, 1, tzinfo=UTC)) == 0
    assert dotnet_ticks(datetime(1970, 1, 1, tzinfo=UTC)) == 621355968000000000
    dt = datetime(2026, 11, 24, 19, 37, 1, 123456, tzinfo=UTC)
    assert datetime_from_ticks(dotnet_ticks(dt)) == dt


def test_naive_datetime_is_utc() -> None:
    naive = datetime(2026, 1, 2, 3, 4, 5)
    assert dotnet_ticks(naive) == dotnet_ticks(naive.replace(tzinfo=UTC))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-10-17T08:48:43.4236110Z", datetime(2023, 10, 17, 8, 48, 43, 423611, tzinfo=UTC)),
        ("2023-10-17T08:48:43.7161816Z", datetime(2023, 10, 17, 8, 48, 43, 716181, tzinfo=UTC)),
        ("2016-11-19T00:05:25.311915Z", datetime(2016, 11, 19, 0, 5, 25, 311915, tzinfo=UTC)),
        ("2016-11-19T00:05:25Z", datetime(2016, 11, 19, 0, 5, 25, tzinfo=UTC)),
        ("2016-11-19T00:05:25.5Z", datetime(2016, 11, 19, 0, 5, 25, 500000, tzinfo=UTC)),
        ("2016-11-19T02:05:25+02:00", datetime(2016, 11, 19, 0, 5, 25, tzinfo=UTC)),
        ("2016-11-18T23:05:25-0100", datetime(2016, 11, 19, 0, 5, 25, tzinfo=UTC)),
        ("2016-11-19T00:05:25", datetime(2016, 11, 19, 0, 5, 25, tzinfo=UTC)),
        ("2016-11-19T00:05Z", datetime(2016, 11, 19, 0, 5, tzinfo=UTC)),
    ],
)
def test_parse_timestamp(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "2016-11-19", "2016-13-19T00:05:25Z", "2016-11-19T00:05:25.12345678Z"],
)
def test_parse_timestamp_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match=r"timestamp|date"):
        parse_timestamp(text)


@pytest.mark.parametrize(
    ("dt", "text"),
    [
        (datetime(2023, 10, 17, 8, 48, 43, 716181, tzinfo=UTC), "2023-10-17T08:48:43.7161810Z"),
        (datetime(2023, 10, 17, 8, 48, 43, tzinfo=UTC), "2023-10-17T08:48:43.0000000Z"),
        (
            datetime(2023, 10, 17, 10, 48, 43, tzinfo=timezone(timedelta(hours=2))),
            "2023-10-17T08:48:43.0000000Z",
        ),
    ],
)
def test_format_timestamp_uses_seven_digits(dt: datetime, text: str) -> None:
    assert format_timestamp(dt) == text
    assert parse_timestamp(text) == dt


def test_sdk_parses_our_timestamps() -> None:
    dt = datetime(2023, 10, 17, 8, 48, 43, 716181, tzinfo=UTC)
    assert isodate.parse_datetime(format_timestamp(dt)) == dt


@pytest.mark.parametrize(
    ("dt", "text"),
    [
        (datetime(2023, 10, 17, 8, 48, 43, tzinfo=UTC), "Tue, 17 Oct 2023 08:48:43 GMT"),
        (datetime(2026, 11, 24, 19, 37, 1, 999, tzinfo=UTC), "Tue, 24 Nov 2026 19:37:01 GMT"),
        (datetime(2014, 7, 29, 21, 49, 13, tzinfo=UTC), "Tue, 29 Jul 2014 21:49:13 GMT"),
        (datetime(2024, 2, 4, 1, 2, 3, tzinfo=UTC), "Sun, 04 Feb 2024 01:02:03 GMT"),
    ],
)
def test_format_http_date(dt: datetime, text: str) -> None:
    assert format_http_date(dt) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tue, 17 Oct 2023 08:48:43 GMT", datetime(2023, 10, 17, 8, 48, 43, tzinfo=UTC)),
        ("Sun, 08 May 2011 08:49:37 GMT", datetime(2011, 5, 8, 8, 49, 37, tzinfo=UTC)),
        ("Sunday, 06-Nov-94 08:49:37 GMT", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
        ("Thursday, 06-Nov-25 08:49:37 GMT", datetime(2025, 11, 6, 8, 49, 37, tzinfo=UTC)),
        ("Sun Nov  6 08:49:37 1994", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
    ],
)
def test_parse_http_date(text: str, expected: datetime) -> None:
    assert parse_http_date(text) == expected


@pytest.mark.parametrize(
    "text", ["", "2023-10-17T08:48:43Z", "Tue, 17 Foo 2023 08:48:43 GMT", "Tue, 31 Feb 2023 0:0:0"]
)
def test_parse_http_date_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match=r"HTTP date|month"):
        parse_http_date(text)


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (timedelta(hours=1), "PT1H"),
        (timedelta(days=7), "P7D"),
        (timedelta(minutes=15), "PT15M"),
        (timedelta(seconds=0.5), "PT0.5S"),
        (timedelta(0), "PT0S"),
        (timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=5), "P1DT2H3M4.000005S"),
        (timedelta(seconds=-90), "-PT1M30S"),
        (None, UNLIMITED),
        (UNLIMITED_TIMEDELTA, UNLIMITED),
        (timedelta.max, UNLIMITED),
    ],
)
def test_format_duration(td: timedelta | None, text: str) -> None:
    assert format_duration(td) == text


@pytest.mark.parametrize(
    ("text", "td"),
    [
        ("PT02H00M00S", timedelta(hours=2)),
        ("PT01H30M05S", timedelta(hours=1, minutes=30, seconds=5)),
        ("P7D", timedelta(days=7)),
        ("P1W", timedelta(days=7)),
        ("PT1H", timedelta(hours=1)),
        ("PT0.5S", timedelta(seconds=0.5)),
        ("PT00H00M00.500000S", timedelta(seconds=0.5)),
        ("PT1.5H", timedelta(minutes=90)),
        ("P1DT02H00M00S", timedelta(days=1, hours=2)),
        ("P0D", timedelta(0)),
        ("P", timedelta(0)),  # what the SDK writes for timedelta(0)
        ("PT0S", timedelta(0)),
        ("-PT1M", timedelta(minutes=-1)),
        ("P10675199DT2H48M5.4775807S", UNLIMITED_TIMEDELTA),
    ],
)
def test_parse_duration(text: str, td: timedelta) -> None:
    assert parse_duration(text) == td


def test_parse_duration_caps_huge_values_as_unlimited() -> None:
    assert is_unlimited(parse_duration(UNLIMITED))
    assert parse_duration("P99999999999D") == timedelta.max
    assert is_unlimited(parse_duration("P99999999999D"))
    assert not is_unlimited(parse_duration("P180D"))


@pytest.mark.parametrize(
    "td",
    [
        timedelta(hours=2),
        timedelta(hours=1, minutes=30, seconds=5),
        timedelta(days=7),
        timedelta(days=3, seconds=1, microseconds=250000),
        timedelta(0),
    ],
)
def test_parse_duration_reads_what_the_sdk_writes(td: timedelta) -> None:
    assert parse_duration(_timedelta_as_isostr(td)) == td


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-P",
        "PT",
        "1H",
        "PT1X",
        "P1Y",
        "P2M",
        "PT1H2",
        "P1DT",
        "forever",
        "PT-1H",
        "P-1DT23H00M00S",
    ],
)
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
