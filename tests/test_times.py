"""RFC 3339 timestamps (rental-log.md: UTC, ``Z``, milliseconds), parsed and written
through caches on the event path: the caches must never change an answer."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rental_fsm.model import format_now, format_time, normalize_time, parse_time

PLUS_TWO = timezone(timedelta(hours=2))


def test_equal_instants_in_other_zones_write_the_same_text() -> None:
    utc = datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=timezone.utc)
    assert format_time(utc) == "2026-12-02T10:00:00.123Z"
    assert format_time(utc.astimezone(PLUS_TWO)) == "2026-12-02T10:00:00.123Z"
    assert format_time(utc.replace(tzinfo=None)) == "2026-12-02T10:00:00.123Z"  # naive = UTC
    later = utc + timedelta(hours=2)
    assert format_time(later.replace(tzinfo=None)) == "2026-12-02T12:00:00.123Z"


def test_a_bad_timestamp_fails_every_time_not_only_the_first() -> None:
    for _ in range(2):
        with pytest.raises(ValueError, match="time zone"):
            parse_time("2026-12-02T10:00:00")
        with pytest.raises(ValueError):
            parse_time("yesterday")
        with pytest.raises(ValueError, match="must be a string"):
            parse_time(["2026-12-02T10:00:00Z"])  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1),
                    timezones=st.sampled_from([timezone.utc, PLUS_TWO,
                                               timezone(timedelta(hours=-7, minutes=-30))])))
def test_parse_and_format_agree_with_the_uncached_arithmetic(when: datetime) -> None:
    text = when.isoformat()
    expected = when.astimezone(timezone.utc)
    for _ in range(2):  # the second answer comes from the cache
        assert parse_time(text) == expected and parse_time(text).tzinfo == timezone.utc
        assert parse_time(text.replace("+00:00", "Z")) == expected
        written = format_time(when)
        assert written.endswith("Z") and len(written) == 24
        assert parse_time(written) == expected.replace(
            microsecond=expected.microsecond // 1000 * 1000)


def test_normalize_keeps_canonical_text_and_rewrites_the_rest() -> None:
    assert normalize_time("2026-12-02T10:00:00.123Z") == "2026-12-02T10:00:00.123Z"
    assert normalize_time("2026-12-02T12:00:00.123456+02:00") == "2026-12-02T10:00:00.123Z"
    assert normalize_time("2026-12-02T10:00:00Z") == "2026-12-02T10:00:00.000Z"
    assert normalize_time("2026-12-02 10:00:00.123Z") == "2026-12-02T10:00:00.123Z"


def test_text_of_the_canonical_shape_is_still_checked() -> None:
    for text in ("2026-13-02T10:00:00.123Z", "2026-02-30T10:00:00.123Z",
                 "2026-12-02T24:00:00.123Z"):
        for _ in range(2):
            with pytest.raises(ValueError):
                parse_time(text)
            with pytest.raises(ValueError):
                normalize_time(text)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1),
                    timezones=st.sampled_from([timezone.utc, PLUS_TWO, None])))
def test_the_fast_paths_agree_with_the_cached_ones(when: datetime) -> None:
    assert format_now(when) == format_time(when)
    canonical = format_time(when)
    assert normalize_time(canonical) == canonical
    assert parse_time(canonical) == utc_ms(when)
    assert normalize_time(when.isoformat() if when.tzinfo else canonical) == canonical


def utc_ms(when: datetime) -> datetime:
    aware = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when
    aware = aware.astimezone(timezone.utc)
    return aware.replace(microsecond=aware.microsecond // 1000 * 1000)
