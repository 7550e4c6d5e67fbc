"""Durations as people write them in request and policy files: `30m`, `2h`, `1h30m`, `PT2H`.

Two syntaxes, both whole numbers only:

- compact: hours, minutes and seconds in that order, each at most once: `2h`, `45m`, `1h30m`,
  `90s`;
- ISO 8601 time durations: `PT2H`, `PT1H30M`, `PT90M`, `PT45S`.

Refused on purpose: fractions (`1.5h`: ambiguous to read and to round), signs, zero, and ISO day
or calendar parts (`P1D`, `P1W`, `P1M`: a "day" is a calendar notion that is not always 24 hours,
and every limit in this product is counted in hours; write `PT24H` or `24h`). Values are bounded
(at most one year) so that absurd numbers are a clear error instead of an overflow.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

#: Longest duration accepted anywhere; far above any sensible policy limit.
MAX_DURATION = timedelta(days=366)

# [0-9] rather than \d: \d also matches other scripts' digits (e.g. Arabic-Indic), which int()
# would happily convert. {1,7} bounds the work and the size before the range check.
_COMPACT = re.compile(r"(?:(?P<h>[0-9]{1,7})h)?(?:(?P<m>[0-9]{1,7})m)?(?:(?P<s>[0-9]{1,7})s)?")
_ISO = re.compile(r"PT(?:(?P<h>[0-9]{1,7})H)?(?:(?P<m>[0-9]{1,7})M)?(?:(?P<s>[0-9]{1,7})S)?")
_ISO_WITH_DATE = re.compile(r"P[0-9]*[YMWD]", re.IGNORECASE)

_FORMS = "a duration like 30m, 2h, 1h30m or PT2H"


def parse_duration(text: object) -> timedelta:
    """Parse a compact (`1h30m`) or ISO 8601 (`PT1H30M`) duration; raise ValueError if invalid."""
    if not isinstance(text, str):
        raise ValueError(f"expected {_FORMS} (as text), got {_type_name(text)}")
    value = text.strip()
    if len(value) > 32:
        raise ValueError(f"expected {_FORMS}, got a {len(value)}-character value")
    match = _COMPACT.fullmatch(value) or _ISO.fullmatch(value)
    if match is None or not any(match.group("h", "m", "s")):
        if _ISO_WITH_DATE.match(value):
            raise ValueError(
                f"{value!r}: days, weeks, months and years are not supported; "
                "use hours, e.g. PT24H or 24h"
            )
        raise ValueError(f"expected {_FORMS}, got {value!r}")
    hours, minutes, seconds = (int(match.group(g) or 0) for g in ("h", "m", "s"))
    duration = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise ValueError(f"{value!r}: the duration must be longer than zero")
    if duration > MAX_DURATION:
        raise ValueError(f"{value!r}: the duration is too long (at most {MAX_DURATION.days} days)")
    return duration


def format_duration(duration: timedelta) -> str:
    """The compact form of a duration, e.g. `2h`, `1h30m`, `45m`, `30s` (`0s` for zero)."""
    total = int(duration.total_seconds())
    if total < 0:
        raise ValueError("negative durations have no compact form")
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n)
    return text or "0s"


def _type_name(value: object) -> str:
    """A person-friendly name for a YAML value's type."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a yes/no value"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a decimal number"
    return f"a {type(value).__name__}"


def utc_timestamp(moment: datetime, what: str = "") -> str:
    """RFC 3339 in UTC, whole seconds, with a `Z`: `2026-11-29T10:00:00Z`.

    A naive datetime is refused (ValueError naming `what`): guessing its zone could shift an
    access window or an audit time by hours.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} times must be timezone-aware".strip())
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_aware(moment: datetime) -> datetime:
    """A timezone-aware datetime; a naive one is taken as UTC (GitHub's timestamps are UTC).

    For ordering and comparing times read from GitHub, never for writing an access window
    (`utc_timestamp` refuses naive times there)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
