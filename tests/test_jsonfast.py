"""jsonfast: orjson where it can, the standard library where orjson refuses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rental_fsm import jsonfast


def stdlib_compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_output_is_the_stdlib_compact_form_and_reads_back(value: Any) -> None:
    """Floats aside (1e-07 vs 1e-7, both JSON), the bytes are what json.dumps wrote before,
    so log lines and records written by older workers compare equal."""
    text = jsonfast.dumps(value)
    assert text == stdlib_compact(value)
    assert jsonfast.loads(text) == value
    assert jsonfast.loads(text.encode()) == value


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_read_back_exactly(value: float) -> None:
    assert jsonfast.loads(jsonfast.dumps(value)) == value
    assert json.loads(jsonfast.dumps(value)) == value


def test_what_orjson_refuses_goes_to_the_stdlib() -> None:
    big = 2**70
    assert jsonfast.dumps({"n": big}) == '{"n":1180591620717411303424}'
    assert jsonfast.loads('{"n":1180591620717411303424}') == {"n": big}
    assert jsonfast.dumps({1: "a", None: "b"}) == '{"1":"a","null":"b"}'
    assert jsonfast.dumps("\ud800") == stdlib_compact("\ud800")
    assert jsonfast.loads('"\\ud800"') == "\ud800"


def test_datetimes_and_dataclasses_are_refused_as_before() -> None:
    @dataclass
    class Point:
        x: int

    for value in (datetime(2026, 1, 1, tzinfo=timezone.utc), Point(1)):
        with pytest.raises(TypeError, match="not JSON serializable"):
            jsonfast.dumps({"v": value})


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"x":-Infinity}'])
def test_nan_and_infinity_are_not_json(text: str) -> None:
    """RFC 8259 §6; the stdlib alone would accept them."""
    assert json.loads(text) is not None  # what we no longer take
    with pytest.raises(ValueError, match="not JSON|unexpected|invalid"):
        jsonfast.loads(text)


@pytest.mark.parametrize("text", ["", "{", '{"a":1,}', "nul", b"\xff\xfe"])
def test_what_is_not_json_raises_value_error(text: str | bytes) -> None:
    with pytest.raises(ValueError):
        jsonfast.loads(text)
