"""The batched event path (``EventHandler.handle_batch``) against one message at a time.

The consumer hands the handler every message the broker has delivered, and the handler
shares the store's round trips across them. Batching must change nothing but speed:
same outcomes, same rentals, same rental logs, whatever the batch boundaries.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from worker_helpers import KEYLESS_CAR, envelope

from rental_fsm.clock import ManualClock
from rental_fsm.engine import Engine
from rental_fsm.events.handler import EventHandler, Inbound, Outcome
from rental_fsm.model import Rental, RentalState
from rental_fsm.store import InMemoryRentalStore, Keys
from rental_fsm.store.base import Commit, LogAppend, RentalStore, WriteResult
from rental_fsm.store.dead_letters import InMemoryDeadLetters

START = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def make_store(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A factory of empty stores of one kind (Redis: a namespace each, removed after)."""
    if request.param == "memory":
        yield lambda clock: InMemoryRentalStore(clock=clock)
        return
    from rental_fsm.store.redis import RedisRentalStore

    client = request.getfixturevalue("redis_client")
    base = request.getfixturevalue("redis_namespace")
    made: list[str] = []

    def make(clock: ManualClock) -> RentalStore:
        namespace = f"{base}-{len(made)}"
        made.append(namespace)
        return RedisRentalStore(client, Keys(namespace))

    yield make
    for namespace in made:
        keys = list(client.scan_iter(match=f"{{{namespace}}}:*", count=1000))
        if keys:
            client.delete(*keys)


def fleet(store: RentalStore, clock: ManualClock) -> tuple[EventHandler, list[Rental]]:
    """Five started rentals; the last one's vehicle was marked unreachable."""
    engine = Engine(store, clock=clock)
    handler = EventHandler(store, engine, InMemoryDeadLetters(), clock=clock)
    rentals = []
    for i in range(5):
        store.set_capabilities(f"bV{i}", KEYLESS_CAR)
        store.create(Rental(f"bR{i}", f"bV{i}", f"bC{i}"))
        rentals.append(engine.apply(f"bR{i}", "start", event_id=f"start-{i}").rental)
    engine.note("bR4", {"vehicle_unreachable": True})
    return handler, rentals


def messages(rentals: list[Rental], start: Any) -> list[Inbound]:
    """Every outcome class, several events per vehicle, interleaved across vehicles."""
    def at(seconds: float) -> Any:
        return start + timedelta(seconds=seconds)

    per_vehicle: list[list[Any]] = []
    for rental in rentals:
        v = rental.vehicle_id
        confirm = envelope(v, {"central_lock": "UNLOCKED", "driving_enabled": True}, at(1))
        per_vehicle.append([
            envelope(v, {"doors_status": "CLOSED"}, at(0.5)),             # recorded
            confirm,                                                      # applied
            confirm,                                                      # duplicate
            envelope(v, {"doors_status": "OPEN"}, at(2)),                 # applied
            envelope(v, {"central_lock": "LOCKED"}, at(-60)),             # stale
            b"{not json",                                                 # dead-lettered
            envelope(v, {"x": 1}, at(2), type_="TripStarted"),            # ignored
            {"metadata": {"id": f"vc-{v}", "type": "VehicleChanged",
                          "schema_major_version": 2, "occurred_at": "2026-01-01T00:00:00Z"},
             "data": {"vehicle_id": v, "vehicle": {"capabilities": KEYLESS_CAR}}},
            *(envelope(v, {"doors_status": "OPEN" if k % 2 else "CLOSED"}, at(3 + k))
              for k in range(4)),                                         # recorded
        ])
    per_vehicle.append([envelope("nobody", {"ignition": "OFF"}, at(1))])  # no rental
    out = []
    for i in range(max(len(s) for s in per_vehicle)):
        for stream in per_vehicle:
            if i < len(stream):
                body = stream[i]
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                out.append(Inbound(raw, "application/json", "q"))
    return out


def snapshot(store: RentalStore, rentals: list[Rental]) -> dict[str, Any]:
    return {r.rental_id: (store.get(r.rental_id), store.log(r.rental_id)) for r in rentals}


@pytest.mark.parametrize("sizes", [(1,), (7,), (3, 50, 1), (1000,)], ids=str)
def test_a_batch_ends_exactly_as_one_message_at_a_time(make_store: Any, sizes: Any) -> None:
    clock_a, clock_b = ManualClock(START), ManualClock(START)
    one_by_one, rentals = fleet(make_store(clock_a), clock_a)
    batched, _ = fleet(make_store(clock_b), clock_b)
    inbound = messages(rentals, START)

    expected = [one_by_one.handle(m.body, content_type=m.content_type, queue=m.queue)
                for m in inbound]
    got = []
    sizes_left = list(sizes)
    i = 0
    while i < len(inbound):
        size = sizes_left.pop(0) if len(sizes_left) > 1 else sizes_left[0]
        got += batched.handle_batch(inbound[i:i + size])
        i += size

    assert got == expected
    assert snapshot(batched.store, rentals) == snapshot(one_by_one.store, rentals)
    assert batched.counts == one_by_one.counts
    assert {o.value for o in Outcome} - set(batched.counts) == {"rejected"}
    for rental in rentals:
        stored = batched.store.get(rental.rental_id)
        assert stored.state is RentalState.RUNNING
        assert stored.extra.get("vehicle_unreachable") in (None, False)


class RacingStore:
    """A store whose ``write_batch`` lets another writer move one rental first: the
    version the batch read is gone by the time it writes."""

    def __init__(self, inner: RentalStore, engine_of_other_writer: Engine, victim: str):
        self._inner = inner
        self._other = engine_of_other_writer
        self._victim = victim
        self.raced = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def write_batch(self, writes: list[Commit | LogAppend]) -> list[WriteResult]:
        if any(isinstance(w, Commit) and w.rental.rental_id == self._victim for w in writes):
            self._other.note(self._victim, {"desk": "called the customer"})
            self.raced += 1
        return self._inner.write_batch(writes)


def test_a_rental_moved_between_the_batch_read_and_write_is_decided_again(
    make_store: Any,
) -> None:
    clock = ManualClock(START)
    store = make_store(clock)
    handler, rentals = fleet(store, clock)
    racing = RacingStore(store, Engine(store, clock=clock), "bR0")
    engine = Engine(racing, clock=clock)  # type: ignore[arg-type]
    handler = EventHandler(racing, engine, InMemoryDeadLetters(),  # type: ignore[arg-type]
                           clock=clock)
    confirms = [Inbound(json.dumps(envelope(
        r.vehicle_id, {"central_lock": "UNLOCKED", "driving_enabled": True},
        START + timedelta(seconds=1))).encode(), "application/json", "q")
        for r in rentals[:3]]

    results = handler.handle_batch(confirms)

    assert racing.raced == 1
    assert [r.outcome for r in results] == [Outcome.APPLIED] * 3
    assert [(r.source, r.dest) for r in results] == [("STARTING", "RUNNING")] * 3
    raced = store.get("bR0")
    # started (1), the other writer's note (2), the confirmation decided again (3)
    assert (raced.state, raced.version) == (RentalState.RUNNING, 3)
    assert raced.extra["desk"] == "called the customer"
    assert [e["trigger"] for e in store.log("bR0") if e["kind"] == "transition"] == \
        ["start", "start_confirmed"]


def test_random_batch_boundaries_never_change_the_result(make_store: Any) -> None:
    """Property: for random cuts of the same stream the stores end up identical."""
    rng = random.Random(20261122)
    clock = ManualClock(START)
    reference, rentals = fleet(make_store(clock), clock)
    inbound = messages(rentals, START)
    reference.handle_batch(inbound)
    want = snapshot(reference.store, rentals)
    for _ in range(3):
        clock = ManualClock(START)
        handler, _ = fleet(make_store(clock), clock)
        cuts = sorted(rng.sample(range(1, len(inbound)), rng.randint(1, 12)))
        for a, b in zip([0, *cuts], [*cuts, len(inbound)], strict=True):
            handler.handle_batch(inbound[a:b])
        assert snapshot(handler.store, rentals) == want, cuts


def test_a_note_that_loses_its_compare_and_set_is_written_again(make_store: Any) -> None:
    """bR4's vehicle was unreachable: its next event only clears that flag (a versioned
    note, no transition). Another writer moves the rental first; the flag is still
    cleared and the other writer's update kept."""
    clock = ManualClock(START)
    store = make_store(clock)
    fleet(store, clock)
    racing = RacingStore(store, Engine(store, clock=clock), "bR4")
    handler = EventHandler(racing, Engine(racing, clock=clock),  # type: ignore[arg-type]
                           InMemoryDeadLetters(), clock=clock)
    heard = Inbound(json.dumps(envelope("bV4", {"doors_status": "CLOSED"},
                                        START + timedelta(seconds=1))).encode(),
                    "application/json", "q")

    [result] = handler.handle_batch([heard])

    assert racing.raced == 1 and result.outcome is Outcome.RECORDED
    rental = store.get("bR4")
    assert rental.extra["vehicle_unreachable"] is False
    assert rental.extra["desk"] == "called the customer"
    assert rental.state is RentalState.STARTING
    assert sum(e["kind"] == "event" for e in store.log("bR4")) == 1
