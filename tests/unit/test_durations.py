"""Duration syntax shared by request files and the policy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from webhook.core.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("1h0m5s", timedelta(hours=1, seconds=5)),
        ("  2h ", timedelta(hours=2)),
        ("PT2H", timedelta(hours=2)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("PT90M", timedelta(minutes=90)),
        ("PT45S", timedelta(seconds=45)),
        ("24h", timedelta(hours=24)),
        ("8784h", timedelta(days=366)),
    ],
)
def test_parse_valid(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a duration like 30m, 2h, 1h30m or PT2H, got ''"),
        ("2", "expected a duration like 30m, 2h, 1h30m or PT2H, got '2'"),
        ("1.5h", "got '1.5h'"),
        ("-1h", "got '-1h'"),
        ("+1h", "got '+1h'"),
        ("30m1h", "got '30m1h'"),
        ("1h1h", "got '1h1h'"),
        ("1h 30m", "got '1h 30m'"),
        ("2H", "got '2H'"),
        ("pt2h", "got 'pt2h'"),
        ("PT", "got 'PT'"),
        ("PT1.5H", "got 'PT1.5H'"),
        ("PT-1H", "got 'PT-1H'"),
        ("٢h", "got '٢h'"),  # Arabic-Indic digit two
        ("12345678h", "got '12345678h'"),
        ("P1D", "days, weeks, months and years are not supported; use hours"),
        ("P1DT2H", "days, weeks, months and years are not supported"),
        ("P1W", "days, weeks, months and years are not supported"),
        ("0m", "the duration must be longer than zero"),
        ("PT0S", "the duration must be longer than zero"),
        ("8785h", "the duration is too long (at most 366 days)"),
        ("x" * 33, "got a 33-character value"),
    ],
)
def test_parse_invalid(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (2, "(as text), got a number"),
        (1.5, "got a decimal number"),
        (True, "got a yes/no value"),
        (None, "got nothing"),
        ([], "got a list"),
    ],
)
def test_parse_non_text(value: object, message: str) -> None:
    with pytest.raises(ValueError, match="expected a duration") as info:
        parse_duration(value)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(hours=2), "2h"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(minutes=45), "45m"),
        (timedelta(seconds=30), "30s"),
        (timedelta(hours=1, seconds=5), "1h5s"),
        (timedelta(days=2), "48h"),
        (timedelta(seconds=90, microseconds=500), "1m30s"),
        (timedelta(0), "0s"),
    ],
)
def test_format(duration: timedelta, text: str) -> None:
    assert format_duration(duration) == text


def test_format_negative_raises() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


@pytest.mark.parametrize("text", ["2h", "1h30m", "45m", "30s", "1h5s", "PT90M"])
def test_round_trip(text: str) -> None:
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)
