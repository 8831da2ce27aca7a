"""Prepared timers: decided ahead, fired inside the store, never different from the
ordinary path and never over a rental that moved since (worker/timer_runner.py).

Every test runs on the in-memory and on the Redis store, against the ordinary path on a
second (in-memory) store as the reference where it compares outcomes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from rental_fsm.clock import ManualClock
from rental_fsm.engine import Engine
from rental_fsm.model import Rental, RentalState, Timer, format_time
from rental_fsm.store import InMemoryRentalStore, Keys
from rental_fsm.store.base import PREPARE_LEASE, RentalStore
from rental_fsm.worker.timer_runner import TimerRunner

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)
S = timedelta(seconds=1)
AUTO_CANCEL = 60 * S  # DEFAULT_DURATIONS: seed 002's 60 s auto-cancel


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[RentalStore]:
    if request.param == "memory":
        yield InMemoryRentalStore(clock=clock)
        return
    from rental_fsm.store.redis import RedisRentalStore

    client = request.getfixturevalue("redis_client")
    yield RedisRentalStore(client, Keys(request.getfixturevalue("redis_namespace")))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def running(store: RentalStore, clock: ManualClock, rid: str = "r-1",
            at: datetime = NOW) -> tuple[Engine, datetime]:
    """A RUNNING rental started at ``at``; returns its engine and the due time of its
    auto-cancel."""
    clock.set(at)
    engine = Engine(store, clock=clock)
    store.create(Rental(rid, f"V-{rid}", f"C-{rid}"))
    engine.apply(rid, "start", event_id=f"{rid}-start")
    engine.apply(rid, "start_confirmed", event_id=f"{rid}-confirmed")
    return engine, at + AUTO_CANCEL


def ordinary(at: datetime) -> tuple[Rental, list[dict[str, Any]]]:
    """The reference: the ordinary path (no preparation) firing the auto-cancel at ``at``."""
    clock = ManualClock(NOW)
    store = InMemoryRentalStore(clock=clock)
    engine, _ = running(store, clock)
    runner = TimerRunner(store, store.timers, engine, clock=clock, horizon=timedelta(0))
    clock.set(at)
    assert [d.timer for d in runner.tick()] == [Timer.AUTO_CANCEL]
    return store.get("r-1"), store.log("r-1")


def test_a_prepared_timer_writes_exactly_what_the_ordinary_path_writes_at_its_due_time(
        store: RentalStore, clock: ManualClock) -> None:
    engine, due = running(store, clock)
    runner = TimerRunner(store, store.timers, engine, clock=clock)
    clock.set(due - 5 * S)  # inside the 10 s horizon
    assert runner.tick() == [] and runner.stats.prepared == 1
    assert runner.tick() == [] and runner.stats.prepared == 1  # decided once
    clock.set(due + timedelta(milliseconds=300))  # a little late, within the tolerance

    [fired] = runner.tick()

    assert fired.timer is Timer.AUTO_CANCEL
    assert (runner.stats.fired, runner.stats.fired_prepared) == (1, 1)
    rental, log = ordinary(due)
    assert store.get("r-1") == rental and rental.state is RentalState.ENDING
    assert store.log("r-1") == log
    [timer] = [e for e in log if e["kind"] == "timer"]
    assert timer["at"] == timer["due"] == format_time(due)  # recorded at its due time
    assert [e.effect.value for e in store.pending_effects("r-1") if e.version == 3] == [
        "set_not_in_rental", "secure_vehicle"]
    assert runner.tick() == [] and runner.stats.fired == 1  # fired once


def test_a_commit_after_the_preparation_wins_and_the_timer_goes_the_ordinary_way(
        store: RentalStore, clock: ManualClock) -> None:
    """Nothing decided on an old record may overwrite a newer one: here a note that
    changed the rental after its auto-cancel was prepared."""
    engine, due = running(store, clock)
    runner = TimerRunner(store, store.timers, engine, clock=clock)
    clock.set(due - 5 * S)
    runner.tick()
    assert runner.stats.prepared == 1
    engine.note("r-1", {"criteria_failed": ["doors"]})
    clock.set(due)

    [fired] = runner.tick()

    assert (runner.stats.fired, runner.stats.fired_prepared) == (1, 0)
    rental = store.get("r-1")
    assert rental.state is RentalState.ENDING and rental.version == 4
    assert rental.extra["criteria_failed"] == ["doors"]


def test_a_cancelled_timer_never_fires_from_its_prepared_commit(
        store: RentalStore, clock: ManualClock) -> None:
    """Seed 002: interaction within the first 60 s keeps the rental running."""
    engine, due = running(store, clock)
    runner = TimerRunner(store, store.timers, engine, clock=clock)
    clock.set(due - 5 * S)
    runner.tick()
    engine.apply("r-1", "customer_interacted", event_id="tap")
    clock.set(due + S / 2)

    assert runner.tick() == []

    assert store.get("r-1").state is RentalState.RUNNING
    assert runner.stats.fired == 0


def test_a_timer_later_than_the_tolerance_fires_the_ordinary_way_at_the_real_time(
        store: RentalStore, clock: ManualClock) -> None:
    engine, due = running(store, clock)
    runner = TimerRunner(store, store.timers, engine, clock=clock)
    clock.set(due - 5 * S)
    runner.tick()
    late = due + 5 * S  # after an outage, say
    clock.set(late)

    runner.tick()

    assert (runner.stats.fired, runner.stats.fired_prepared) == (1, 0)
    rental, log = ordinary(late)
    assert store.get("r-1") == rental and store.log("r-1") == log
    [timer] = [e for e in log if e["kind"] == "timer"]
    assert timer["at"] == format_time(late)


def test_a_prepared_start_timeout_watches_for_a_late_unlock(
        store: RentalStore, clock: ManualClock) -> None:
    """Seed 000: a timed-out unlock may still happen; the abort watch is in the commit."""
    engine = Engine(store, clock=clock)
    store.create(Rental("r-2", "V-2", "C-2"))
    engine.apply("r-2", "start", event_id="s")
    runner = TimerRunner(store, store.timers, engine, clock=clock)
    clock.set(NOW + 20 * S)  # the 20 s state check fires; the 45 s timeout is prepared
    runner.tick()
    clock.set(NOW + 40 * S)
    runner.tick()
    assert runner.stats.prepared >= 1
    clock.set(NOW + 45 * S)

    [fired] = runner.tick()

    assert fired.timer is Timer.START_TIMEOUT and runner.stats.fired_prepared >= 1
    assert store.get("r-2").state is RentalState.IDLE
    assert store.aborted_rental("V-2") == "r-2"


def test_listeners_hear_a_prepared_timer_and_only_its_own_preparer_fires_it(
        store: RentalStore, clock: ManualClock) -> None:
    engine, due = running(store, clock)
    heard: list[str] = []
    engine.listeners.append(lambda before, after, decision: heard.append(decision.trigger))
    other = TimerRunner(store, store.timers, engine, clock=clock, owner="other")
    runner = TimerRunner(store, store.timers, engine, clock=clock, owner="me")
    clock.set(due - 5 * S)
    other.tick()  # prepared by "other", which then goes away
    assert other.stats.prepared == 1
    clock.set(due)

    [fired] = runner.tick()

    assert runner.stats.fired_prepared == 0 and runner.stats.fired == 1  # not its own
    assert heard == ["auto_cancel"]

    engine2, due2 = running(store, clock, "r-3")
    engine2.listeners.append(lambda before, after, decision: heard.append(decision.trigger))
    runner2 = TimerRunner(store, store.timers, engine2, clock=clock, owner="me")
    clock.set(due2 - 5 * S)
    runner2.tick()
    clock.set(due2)
    runner2.tick()
    assert runner2.stats.fired_prepared == 1 and heard == ["auto_cancel", "auto_cancel"]


def test_upcoming_timers_are_handed_out_once_per_lease_and_only_inside_the_window(
        store: RentalStore, clock: ManualClock) -> None:
    running(store, clock)
    due = NOW + AUTO_CANCEL
    window = (due - 5 * S, due + 5 * S)

    first, reached = store.upcoming_timers(*window, 100, now=due - 5 * S)
    again, _ = store.upcoming_timers(*window, 100, now=due - 4 * S)
    outside, _ = store.upcoming_timers(due + S, due + 5 * S, 100, now=due - 4 * S)
    expired, _ = store.upcoming_timers(*window, 100, now=due - 5 * S + PREPARE_LEASE)

    assert [d.timer for d in first] == [Timer.AUTO_CANCEL] and reached == window[1]
    assert again == [] and outside == []
    assert [d.timer for d in expired] == [Timer.AUTO_CANCEL]  # its preparer died


def test_a_commit_racing_the_preparation_makes_the_store_refuse_it(
        store: RentalStore, clock: ManualClock) -> None:
    """Decided on version 2, kept only while the rental is at version 2."""
    from rental_fsm.store.base import PreparedTimer
    from rental_fsm.timers.base import DueTimer

    engine, due = running(store, clock)
    [up], _ = store.upcoming_timers(due - S, due + S, 10, now=due - S)
    rental = store.get("r-1")
    armed = rental.timers[Timer.AUTO_CANCEL]
    timer = DueTimer(armed.due_at, "r-1", Timer.AUTO_CANCEL, armed.token)
    planned = engine.plan(rental, "auto_cancel", event_id=timer.event_id, now=due)
    engine.note("r-1", {"moved": True})  # between the decision and its keeping

    assert store.prepare_timers([PreparedTimer(timer, planned.commit, {})]) == 0
    fired = store.fire_due(due, 10, S)
    assert fired.fired == [] and [d.timer for d in fired.claimed] == [Timer.AUTO_CANCEL]
    assert store.get("r-1").extra["moved"] is True


def test_the_horizon_is_capped_below_the_shortest_timer_and_zero_turns_it_off(
        store: RentalStore, clock: ManualClock) -> None:
    """A timer armed now must fall due after the window already scanned."""
    short = {t: 4 * S for t in Timer}
    engine = Engine(store, clock=clock, durations=short)
    runner = TimerRunner(store, store.timers, engine, clock=clock)
    assert runner.prepares and runner.horizon == 2 * S and runner.tolerance == S * 0.4
    off = TimerRunner(store, store.timers, engine, clock=clock, horizon=timedelta(0))
    assert not off.prepares
    other_queue = TimerRunner(store, InMemoryRentalStore().timers, engine, clock=clock)
    assert not other_queue.prepares
    with pytest.raises(ValueError):
        TimerRunner(store, store.timers, engine, clock=clock, horizon=-S)


def test_a_full_batch_of_one_millisecond_does_not_stall_the_scan(
        store: RentalStore, clock: ManualClock) -> None:
    """Rentals started at one instant have timers due at one instant (a ManualClock, a
    bulk start): a scan of ``limit`` of them must still move on."""
    for i in range(5):
        running(store, clock, f"same-{i}")
    due = NOW + AUTO_CANCEL
    start, handed = due - S, []
    for _ in range(10):
        found, start = store.upcoming_timers(start, due + S, 2, now=due - S)
        handed += found
        if start >= due + S:
            break
    assert start >= due + S  # it got to the end of the window
    assert len(handed) == 2 and len({d.rental_id for d in handed}) == 2


def test_a_burst_larger_than_a_batch_is_fired_ahead_and_each_timer_once(
        store: RentalStore, clock: ManualClock) -> None:
    """While one batch is handled, the store fires the next (``TimerRunner._ahead``);
    ``close`` handles a batch still in flight, and commands wait for the burst."""
    engine = None
    for i in range(7):
        engine, _ = running(store, clock, f"burst-{i}", NOW + timedelta(milliseconds=i))
    assert engine is not None
    runner = TimerRunner(store, store.timers, engine, clock=clock, batch=2)
    clock.set(NOW + AUTO_CANCEL - 5 * S)
    while runner.step():
        pass
    assert runner.stats.prepared == 7
    clock.set(NOW + AUTO_CANCEL + S / 2)

    fired = runner.tick()
    assert len(fired) == 2 and not runner.caught_up.is_set()  # more is due: behind
    while runner.tick():
        pass
    runner.close()

    assert runner.caught_up.is_set()
    assert (runner.stats.fired, runner.stats.fired_prepared) == (7, 7)
    for i in range(7):
        log = store.log(f"burst-{i}")
        assert [e["trigger"] for e in log if e["kind"] == "transition"].count("auto_cancel") == 1
        assert store.get(f"burst-{i}").state is RentalState.ENDING


def test_a_complete_scan_is_repeated_only_after_the_prepare_interval(
        store: RentalStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scan in every round would put a round trip into every round of a burst; one
    that stopped short of the horizon (a batch full) goes on at the next tick."""
    engine = None
    for i in range(3):
        engine, _ = running(store, clock, f"scan-{i}", NOW + timedelta(milliseconds=i))
    assert engine is not None
    scans: list[datetime] = []
    upcoming = store.upcoming_timers

    def counted(start: datetime, until: datetime, limit: int,
                now: datetime) -> Any:
        scans.append(now)
        return upcoming(start, until, limit, now)

    monkeypatch.setattr(store, "upcoming_timers", counted)
    runner = TimerRunner(store, store.timers, engine, clock=clock, batch=2)
    assert runner.prepare_interval == timedelta(milliseconds=250)
    at = NOW + AUTO_CANCEL - 5 * S
    clock.set(at)
    runner.tick()
    assert len(scans) == 1 and runner.stats.prepared == 2
    while runner.step():  # the first scan was cut short by the batch: it goes on
        pass
    assert runner.stats.prepared == 3
    complete = len(scans)  # the last one reached the horizon
    runner.tick()
    clock.set(at + timedelta(milliseconds=100))
    runner.tick()
    assert len(scans) == complete
    clock.set(at + timedelta(milliseconds=400))
    runner.tick()
    assert len(scans) == complete + 1

    clock.set(NOW + AUTO_CANCEL + timedelta(milliseconds=200))
    while runner.tick():
        pass
    assert runner.stats.fired == runner.stats.fired_prepared == 3


def test_a_timer_armed_between_two_scans_is_still_decided_before_it_is_due(
        store: RentalStore, clock: ManualClock) -> None:
    """The horizon is at most half the shortest duration, so a timer armed between two
    scans falls due after the horizon already scanned: a later scan finds it."""
    engine, _ = running(store, clock, "first")
    runner = TimerRunner(store, store.timers, engine, clock=clock)
    step = timedelta(milliseconds=200)
    at = NOW
    runner.tick()
    _, due = running(store, clock, "between", NOW + step / 2)  # no scan since
    clock.set(at)
    while at < due + step:
        at += step
        clock.set(at)
        runner.tick()
    assert runner.stats.fired_prepared == 2
    assert store.get("between").state is RentalState.ENDING


def test_the_idle_loop_waits_until_the_next_prepared_timer_and_never_spins(
        store: RentalStore, clock: ManualClock) -> None:
    """Worker._loop waits ``pause(IDLE_TICK_S)`` when idle: a timer falling due during a
    fixed 50 ms wait would fire up to 50 ms late."""
    engine, due = running(store, clock)
    runner = TimerRunner(store, store.timers, engine, clock=clock)
    assert runner.pause(0.05) == 0.05  # nothing prepared
    clock.set(due - 5 * S)
    runner.tick()
    assert runner.stats.prepared == 1
    assert runner.pause(0.05) == 0.05  # due in 5 s
    clock.set(due - timedelta(milliseconds=20))
    assert runner.pause(0.05) == pytest.approx(0.021)
    other = TimerRunner(store, store.timers, engine, clock=clock, owner="other")
    clock.set(due)
    [fired] = other.tick()  # another worker fires it; this runner still holds its plan
    assert fired.timer is Timer.AUTO_CANCEL
    assert runner.pause(0.05) == 0.05  # past due: no reason to wake at once
    runner.tick()
    assert runner.pause(0.05) == 0.05


def test_commands_wait_while_a_full_batch_of_prepared_timers_falls_due_shortly(
        store: RentalStore, clock: ManualClock) -> None:
    """``caught_up`` clears for a burst about to fall due (BURST_LOOKAHEAD), not only
    once a full batch is due: commands run beside a burst took its rounds' time."""
    engine = None
    for i in range(3):
        engine, _ = running(store, clock, f"soon-{i}", NOW + timedelta(milliseconds=i))
    assert engine is not None
    runner = TimerRunner(store, store.timers, engine, clock=clock, batch=2)
    due = NOW + AUTO_CANCEL
    clock.set(due - 5 * S)
    while runner.step():
        pass
    assert runner.stats.prepared == 3 and runner.caught_up.is_set()
    clock.set(due - timedelta(milliseconds=50))  # two of them within 100 ms
    runner.tick()
    assert not runner.caught_up.is_set()
    clock.set(due + timedelta(milliseconds=10))
    while runner.tick():
        pass
    runner.close()
    assert runner.stats.fired == 3 and runner.caught_up.is_set()
