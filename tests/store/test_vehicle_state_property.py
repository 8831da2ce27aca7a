"""Property: merging vehicle states in any order never lets an older property win."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rental_fsm.model import parse_time
from rental_fsm.store.base import RentalStore

BASE = datetime(2026, 1, 1, tzinfo=timezone.utc)
NAMES = ("ignition", "central_lock", "position")


def _stamp(ms: int, offset_h: int) -> str:
    """The same instant written with different UTC offsets (``Z`` or ``+hh:00``)."""
    when = BASE + timedelta(milliseconds=ms)
    if offset_h == 0:
        return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return when.astimezone(timezone(timedelta(hours=offset_h))).isoformat(
        timespec="milliseconds"
    )


# Few distinct instants, so equal and older timestamps are common.
_prop = st.builds(
    lambda ms, off, value: {"timestamp": _stamp(ms, off), "value": value},
    st.sampled_from([0, 1, 999, 1000, 60_000]),
    st.sampled_from([0, 2, -5]),
    st.one_of(st.integers(-5, 5), st.sampled_from(["ON", "OFF"]), st.none()),
)
_merge = st.dictionaries(st.sampled_from(NAMES), _prop, min_size=1, max_size=3)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(merges=st.lists(_merge, min_size=1, max_size=8), data=st.data())
def test_older_properties_never_overwrite_newer(
    store: RentalStore, merges: list[dict[str, Any]], data: st.DataObject
) -> None:
    order = data.draw(st.permutations(merges))
    vehicle = f"V-{uuid.uuid4().hex[:10]}"
    model: dict[str, dict[str, Any]] = {}
    for merge in order:
        for name, prop in merge.items():  # strictly newer wins; equal keeps the first
            if name not in model or parse_time(prop["timestamp"]) > parse_time(
                model[name]["timestamp"]
            ):
                model[name] = prop
        assert store.merge_vehicle_state(vehicle, merge) == model
    assert store.vehicle_state(vehicle) == model
    for name, prop in model.items():  # the newest instant seen for each property survives
        newest = max(parse_time(m[name]["timestamp"]) for m in merges if name in m)
        assert parse_time(prop["timestamp"]) == newest
