"""End-rental criteria: seed 000's list, each only where the capabilities allow."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from rental_fsm.criteria import BusinessArea, Circle, EndPolicy, Status, evaluate

NOW = datetime(2024, 2, 19, 13, 30, tzinfo=timezone.utc)
FRESH = "2024-02-19T13:22:05Z"
ALL_CAPS = {"IGNITION", "POSITION", "VEHICLE_KEY", "CLOUDBOXX_CARDHOLDER_CARDS",
            "DOORS_STATUS", "WINDOWS_STATUS", "PARKING_BRAKE_ENGAGED", "HEADLIGHTS"}
# A square around Marburg's station, and a 300 m circle around a home location.
AREA = BusinessArea(polygons=(((50.80, 8.75), (50.80, 8.79), (50.83, 8.79), (50.83, 8.75)),),
                    circles=(Circle(50.7, 8.6, 300),))


def prop(value: Any, stamp: str = FRESH) -> dict[str, Any]:
    return {"timestamp": stamp, "value": value}


def good_state(**changes: Any) -> dict[str, dict[str, Any]]:
    state = {
        "ignition": prop("OFF"), "position": prop({"lat": 50.81, "lon": 8.77}),
        "vehicle_key": prop("PRESENT"), "cloudboxx_cardholder_cards": prop("PRESENT"),
        "doors_status": prop("CLOSED"), "windows_status": prop("CLOSED"),
        "parking_brake_engaged": prop(True), "headlights": prop("OFF"),
    }
    state.update({k: prop(v) for k, v in changes.items()})
    return state


def statuses(report: Any) -> dict[str, Status]:
    return {r.criterion: r.status for r in report.results}


def test_all_criteria_met_allows_the_end_and_lists_them_in_seed_order() -> None:
    report = evaluate("V1", good_state(), ALL_CAPS, now=NOW, policy=EndPolicy(area=AREA))
    assert report.ok
    assert [r.criterion for r in report.results] == [
        "IGNITION", "POSITION", "VEHICLE_KEY", "CLOUDBOXX_CARDHOLDER_CARDS",
        "DOORS_STATUS", "WINDOWS_STATUS", "PARKING_BRAKE_ENGAGED", "HEADLIGHTS"]
    assert set(statuses(report).values()) == {Status.MET}


def test_seed_000_example_doors_open_is_unmet_with_actual_and_expected() -> None:
    """Seed 000: 'one or more doors are still open (doors_status is OPEN) ... ask your
    customer to close all doors.'"""
    report = evaluate("V1", good_state(doors_status="OPEN"), ALL_CAPS, now=NOW)
    assert not report.ok
    assert report.unmet() == [{"criterion": "DOORS_STATUS", "actual": "OPEN",
                               "expected": "CLOSED"}]


@pytest.mark.parametrize(("prop_name", "bad", "criterion"), [
    ("ignition", "ON", "IGNITION"),
    ("vehicle_key", "NOT_PRESENT", "VEHICLE_KEY"),
    ("cloudboxx_cardholder_cards", "NOT_PRESENT", "CLOUDBOXX_CARDHOLDER_CARDS"),
    ("windows_status", "OPEN", "WINDOWS_STATUS"),
    ("parking_brake_engaged", False, "PARKING_BRAKE_ENGAGED"),
    ("headlights", "ON", "HEADLIGHTS"),
])
def test_each_criterion_can_fail(prop_name: str, bad: Any, criterion: str) -> None:
    report = evaluate("V1", good_state(**{prop_name: bad}), ALL_CAPS, now=NOW)
    assert [u["criterion"] for u in report.unmet()] == [criterion]


def test_a_criterion_without_its_capability_is_not_checked() -> None:
    """Seed 000: 'The conditions you can check depend on the capabilities of the vehicle';
    key and cards are 'not applicable for keyless go vehicles'."""
    keyless_moped = {"IGNITION", "POSITION"}
    report = evaluate("V1", good_state(vehicle_key="NOT_PRESENT", doors_status="OPEN"),
                      keyless_moped, now=NOW, policy=EndPolicy(area=AREA))
    assert report.ok
    assert statuses(report)["VEHICLE_KEY"] is Status.NOT_CHECKABLE
    assert statuses(report)["DOORS_STATUS"] is Status.NOT_CHECKABLE


def test_outside_the_business_area_is_unmet_inside_polygon_or_circle_is_met() -> None:
    """Seed 000: 'vehicle is parked within a designated business area, or close to its
    home location (POSITION)'."""
    policy = EndPolicy(area=AREA)
    outside = evaluate("V1", good_state(position={"lat": 51.0, "lon": 9.0}), ALL_CAPS,
                       now=NOW, policy=policy)
    assert [u["criterion"] for u in outside.unmet()] == ["POSITION"]
    near_home = evaluate("V1", good_state(position={"lat": 50.701, "lon": 8.601}), ALL_CAPS,
                         now=NOW, policy=policy)
    assert near_home.ok


def test_per_vehicle_areas_override_the_fleet_area() -> None:
    policy = EndPolicy(area=AREA, vehicle_areas={"V2": BusinessArea(
        circles=(Circle(51.0, 9.0, 100),))})
    state = good_state(position={"lat": 51.0, "lon": 9.0})
    assert evaluate("V2", state, ALL_CAPS, now=NOW, policy=policy).ok
    assert not evaluate("V1", state, ALL_CAPS, now=NOW, policy=policy).ok


def test_no_configured_area_makes_position_not_checkable() -> None:
    report = evaluate("V1", good_state(position={"lat": 0.0, "lon": 0.0}), ALL_CAPS, now=NOW)
    assert statuses(report)["POSITION"] is Status.NOT_CHECKABLE and report.ok


def test_missing_or_stale_values_are_unknown_and_block_only_when_strict() -> None:
    state = good_state()
    del state["headlights"]
    state["doors_status"] = prop("CLOSED", "2024-02-19T12:00:00Z")
    lenient = evaluate("V1", state, ALL_CAPS, now=NOW)
    assert statuses(lenient)["HEADLIGHTS"] is Status.UNKNOWN
    assert statuses(lenient)["DOORS_STATUS"] is Status.UNKNOWN
    assert lenient.ok
    strict = evaluate("V1", state, ALL_CAPS, now=NOW,
                      policy=EndPolicy(unknown_blocks=True, max_age=timedelta(minutes=10)))
    assert {u["criterion"] for u in strict.unmet()} == {"HEADLIGHTS", "DOORS_STATUS"}
