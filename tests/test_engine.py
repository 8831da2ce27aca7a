"""The engine applies triggers to stored rentals: once, atomically, with their log."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

from rental_fsm.clock import ManualClock
from rental_fsm.engine import Engine
from rental_fsm.errors import GuardRejected, VersionConflict
from rental_fsm.model import Effect, Facts, Rental, RentalState
from rental_fsm.store import InMemoryRentalStore

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def store() -> InMemoryRentalStore:
    store = InMemoryRentalStore()
    store.create(Rental("r-1", "V1", "c-1", created_at=NOW))
    return store


def engine(store: InMemoryRentalStore, **kw: object) -> Engine:
    return Engine(store, clock=ManualClock(NOW), **kw)  # type: ignore[arg-type]


def test_a_trigger_commits_state_effects_timers_and_the_log(store: InMemoryRentalStore) -> None:
    applied = engine(store).apply("r-1", "start", event_id="req-1",
                                  inputs=[{"kind": "request", "at": "2026-11-22T10:00:00Z",
                                           "op": "start", "args": {}, "result": {"ok": True}}])
    rental = store.get("r-1")
    assert rental.state is RentalState.STARTING and rental.version == 1
    assert applied.rental == rental
    assert rental.extra["waiting_since"] == "2026-11-22T10:00:00.000Z"
    assert [e.effect for e in store.pending_effects("r-1")] == [Effect.UNLOCK_VEHICLE]
    kinds = [(e["seq"], e["kind"]) for e in store.log("r-1")]
    assert kinds == [(1, "request"), (2, "transition")]
    transition = store.log("r-1")[1]
    assert (transition["trigger"], transition["source"], transition["dest"]) == (
        "start", "IDLE", "STARTING")
    assert transition["facts"]["can_unlock"] is True


def test_the_same_event_id_applies_once(store: InMemoryRentalStore) -> None:
    eng = engine(store)
    eng.apply("r-1", "start", event_id="e-1")
    again = eng.apply("r-1", "start", event_id="e-1")
    assert again.duplicate and again.decision is None
    assert store.get("r-1").version == 1 and len(store.pending_effects("r-1")) == 1


def test_a_rejected_trigger_writes_nothing(store: InMemoryRentalStore) -> None:
    with pytest.raises(GuardRejected):
        engine(store).apply("r-1", "start", facts=Facts(can_unlock=False))
    assert store.get("r-1").version == 0 and store.log("r-1") == []


def test_listeners_hear_committed_transitions_and_cannot_break_them(
    store: InMemoryRentalStore,
) -> None:
    heard: list[tuple[str, str]] = []

    def broken(before: Rental, after: Rental, decision: object) -> None:
        raise RuntimeError("listener bug")

    def listener(before: Rental, after: Rental, decision: object) -> None:
        heard.append((before.state.value, after.state.value))

    engine(store, listeners=[broken, listener]).apply("r-1", "start")
    assert heard == [("IDLE", "STARTING")]
    assert store.get("r-1").state is RentalState.STARTING


def test_racing_writers_each_apply_exactly_once(store: InMemoryRentalStore) -> None:
    eng = engine(store)
    eng.apply("r-1", "start")
    eng.apply("r-1", "start_confirmed")
    # Eight threads race the first interaction: one commits, the CAS makes the others
    # decide again on the new state, where the guard rejects them.
    results: list[str] = []

    def worker(n: int) -> None:
        try:
            eng.apply("r-1", "customer_interacted", event_id=f"e-{n}")
            results.append("applied")
        except GuardRejected:
            results.append("rejected")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == ["applied"] + ["rejected"] * 7
    assert store.get("r-1").version == 3


def test_exhausted_retries_raise_version_conflict(
    store: InMemoryRentalStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def always_conflict(commit: object) -> None:
        raise VersionConflict("r-1", 0)

    monkeypatch.setattr(store, "commit", always_conflict)
    with pytest.raises(VersionConflict):
        engine(store, max_attempts=3).apply("r-1", "start")
