"""The RentalStore contract, run on InMemoryRentalStore and on RedisRentalStore."""

from __future__ import annotations

import io
import json
import threading
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from store_helpers import T0, new_rental, step, transition_entry

from rental_fsm.config import DEFAULT_RETENTION_DAYS
from rental_fsm.errors import (
    CorruptRecord,
    CustomerBusy,
    InvalidInput,
    RentalExists,
    RentalNotFound,
    VehicleBusy,
    VersionConflict,
)
from rental_fsm.machine import decide
from rental_fsm.model import Effect, RentalState, Timer, format_time
from rental_fsm.store import Commit, CommitOutcome, InMemoryRentalStore, effect_id
from rental_fsm.store.base import LogAppend, RentalStore, VehicleRead


def test_create_get_round_trip(store: RentalStore) -> None:
    rental = new_rental(extra={"note": "ünïcode / slash"})
    store.create(rental)
    assert store.get(rental.rental_id) == rental
    with pytest.raises(RentalExists):
        store.create(rental)
    with pytest.raises(RentalNotFound):
        store.get("no-such-rental")


def test_commit_writes_record_log_outbox_timers_and_dedupe(store: RentalStore) -> None:
    rental = new_rental()
    store.create(rental)
    outcome, started = step(store, rental, "start", event_id="ev-1")
    assert outcome is CommitOutcome.APPLIED
    assert store.get(rental.rental_id) == started
    assert started.state is RentalState.STARTING and started.version == 1
    assert store.was_applied(rental.rental_id, "ev-1")
    assert not store.was_applied(rental.rental_id, "ev-2")
    [entry] = store.log(rental.rental_id)
    assert entry == {
        "v": 1, "seq": 1, "rental_id": rental.rental_id, "at": format_time(T0),
        "kind": "transition", "trigger": "start", "source": "IDLE", "dest": "STARTING",
    }
    [effect] = store.pending_effects(rental.rental_id)
    assert effect.effect is Effect.UNLOCK_VEHICLE
    assert effect.effect_id == effect_id(rental.rental_id, 1, 0) == f"{rental.rental_id}:1:0"
    claimed = store.timers.claim_due(T0 + timedelta(days=1))  # type: ignore[attr-defined]
    assert {(d.timer, d.token) for d in claimed} == {
        (Timer.START_TIMEOUT, f"{rental.rental_id}:1"),
        (Timer.STATE_CHECK, f"{rental.rental_id}:1"),
    }


def test_same_event_delivered_three_times_changes_the_rental_once(store: RentalStore) -> None:
    rental = new_rental()
    store.create(rental)
    outcomes = []
    for _ in range(3):  # the orchestrator's flow: pre-check, load, decide, commit
        if store.was_applied(rental.rental_id, "ev-start"):
            outcomes.append(CommitOutcome.DUPLICATE)
            continue
        outcomes.append(step(store, store.get(rental.rental_id), "start", event_id="ev-start")[0])
    assert outcomes == [CommitOutcome.APPLIED, CommitOutcome.DUPLICATE, CommitOutcome.DUPLICATE]
    # Without the pre-check the commit itself refuses, even with a fresh version.
    current = store.get(rental.rental_id)
    assert step(store, current, "state_check", event_id="ev-start")[0] is CommitOutcome.DUPLICATE
    after = store.get(rental.rental_id)
    assert after == current and after.version == 1
    assert len(store.log(rental.rental_id)) == 1
    assert len(store.pending_effects(rental.rental_id)) == 1


def test_stale_version_conflicts_and_writes_nothing(store: RentalStore) -> None:
    rental = new_rental()
    store.create(rental)
    step(store, rental, "start")
    with pytest.raises(VersionConflict):
        step(store, rental, "cancel", event_id="ev-late")  # decided on version 0
    assert store.get(rental.rental_id).state is RentalState.STARTING
    assert not store.was_applied(rental.rental_id, "ev-late")
    assert len(store.log(rental.rental_id)) == 1


def test_commit_input_is_validated() -> None:
    rental = new_rental()
    with pytest.raises(InvalidInput):
        Commit(rental=rental, expected_version=3)
    with pytest.raises(InvalidInput):
        Commit(rental=replace(rental, version=1), expected_version=0,
               log_entries=({"kind": "nonsense", "at": format_time(T0)},))
    with pytest.raises(InvalidInput):
        Commit(rental=replace(rental, version=1), expected_version=0,
               log_entries=({"kind": "clock", "at": "yesterday"},))
    with pytest.raises(InvalidInput):  # unhashable: a TypeError before
        Commit(rental=replace(rental, version=1), expected_version=0,
               log_entries=({"kind": ["clock"], "at": format_time(T0)},))


def test_eight_threads_racing_lose_no_update(store: RentalStore) -> None:
    """Each thread loads, decides a self-transition, commits with expected_version and
    retries on VersionConflict. Every commit must land exactly once, in version order."""
    rental = new_rental()
    store.create(rental)
    _, rental = step(store, rental, "start")  # STARTING: state_check is a self-transition
    threads, per_thread = 8, 20
    applied: list[str] = []
    conflicts = [0]
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(per_thread):
            event = f"ev-{n}-{i}"
            while True:
                current = store.get(rental.rental_id)
                decision = decide(current, "state_check", now=T0)
                new = decision.apply(current, T0)
                new = replace(new, extra={"count": int(current.extra.get("count", 0)) + 1})
                commit = Commit(new, current.version, event, decision.effects,
                                (transition_entry(current, "state_check", "STARTING", T0),))
                try:
                    assert store.commit(commit) is CommitOutcome.APPLIED
                except VersionConflict:
                    with lock:
                        conflicts[0] += 1
                    continue
                with lock:
                    applied.append(event)
                break

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    total = threads * per_thread
    final = store.get(rental.rental_id)
    assert len(applied) == len(set(applied)) == total
    assert final.version == total + 1  # +1: the start
    assert final.extra["count"] == total  # no lost update
    log = store.log(rental.rental_id)
    assert [e["seq"] for e in log] == list(range(1, total + 2))
    assert all(store.was_applied(rental.rental_id, e) for e in applied)
    effects = store.pending_effects(rental.rental_id)
    assert [e.version for e in effects] == list(range(1, total + 2))  # one per version


def test_vehicle_and_customer_busy(store: RentalStore) -> None:
    first = new_rental()
    store.create(first)
    _, first = step(store, first, "start")
    same_vehicle = new_rental(vehicle_id=first.vehicle_id)
    same_customer = new_rental(customer_id=first.customer_id)
    store.create(same_vehicle)  # IDLE rentals do not hold the indexes
    store.create(same_customer)
    with pytest.raises(VehicleBusy) as busy:
        step(store, same_vehicle, "start", event_id="ev-v")
    assert busy.value.rental_id == first.rental_id
    with pytest.raises(CustomerBusy) as cbusy:
        step(store, same_customer, "start", event_id="ev-c")
    assert cbusy.value.rental_id == first.rental_id
    for refused in (same_vehicle, same_customer):  # nothing written
        assert store.get(refused.rental_id) == refused
        assert store.log(refused.rental_id) == []
        assert store.pending_effects(refused.rental_id) == []
        assert not store.was_applied(refused.rental_id, "ev-v")
    # Leaving the active states releases both indexes.
    step(store, first, "force_end")
    assert step(store, same_vehicle, "start")[0] is CommitOutcome.APPLIED
    assert step(store, same_customer, "start")[0] is CommitOutcome.APPLIED
    with pytest.raises(RentalNotFound):  # a commit needs a stored rental
        step(store, new_rental(), "start")


def test_rental_created_active_takes_the_indexes(store: RentalStore) -> None:
    holder = new_rental(state=RentalState.RUNNING)
    store.create(holder)
    with pytest.raises(VehicleBusy):
        store.create(new_rental(state=RentalState.RUNNING, vehicle_id=holder.vehicle_id))


def _corrupt(store: RentalStore, rental_id: str, garbage: str) -> str:
    if isinstance(store, InMemoryRentalStore):
        store._records[rental_id] = garbage
        return f"memory:rental:{rental_id}"
    key = store.keys.rental(rental_id)  # type: ignore[attr-defined]
    store._client.set(key, garbage)  # type: ignore[attr-defined]
    return str(key)


@pytest.mark.parametrize("garbage", ["{not json", '{"record_version": 1}', "[1, 2]"])
def test_corrupt_record_is_reported_and_never_overwritten(
    store: RentalStore, garbage: str
) -> None:
    rental = new_rental()
    store.create(rental)
    key = _corrupt(store, rental.rental_id, garbage)
    with pytest.raises(CorruptRecord) as exc:
        store.get(rental.rental_id)
    assert exc.value.key == key and key in str(exc.value)
    with pytest.raises((CorruptRecord, VersionConflict)):
        step(store, rental, "start")
    if isinstance(store, InMemoryRentalStore):
        assert store._records[rental.rental_id] == garbage
    else:
        assert store._client.get(key) == garbage.encode()  # type: ignore[attr-defined]


def test_retention_ttl_only_on_ended_rentals(store: RentalStore) -> None:
    rental = new_rental()
    store.create(rental)
    assert store.expires_in(rental.rental_id) is None
    _, rental = step(store, rental, "start")
    _, rental = step(store, rental, "start_confirmed")
    assert store.expires_in(rental.rental_id) is None
    step(store, rental, "force_end")
    ttl = store.expires_in(rental.rental_id)
    retention = timedelta(days=DEFAULT_RETENTION_DAYS)
    assert ttl is not None and retention - timedelta(minutes=1) < ttl <= retention
    if not isinstance(store, InMemoryRentalStore):  # the log and dedupe set expire with it
        client, keys = store._client, store.keys  # type: ignore[attr-defined]
        for key in (keys.log(rental.rental_id), keys.applied(rental.rental_id),
                    keys.outbox(rental.rental_id)):
            assert client.pttl(key) > 0, key
        # a line appended later (one append, or a batch's) gives the log the record's
        # expiry again, whatever the log had
        log_key = keys.log(rental.rental_id)
        for append in (lambda: store.append_log(rental.rental_id, [{"kind": "clock",
                                                                    "at": format_time(T0)}]),
                       lambda: store.write_batch([LogAppend(rental.rental_id, (
                           {"kind": "clock", "at": format_time(T0)},))])):
            client.persist(log_key)
            assert client.pttl(log_key) == -1
            append()
            assert retention - timedelta(minutes=1) < timedelta(
                milliseconds=client.pttl(log_key)) <= retention


def test_retention_expires_memory_rentals(clock: Any) -> None:
    store = InMemoryRentalStore(clock=clock, retention=timedelta(hours=1))
    rental = new_rental()
    store.create(rental)
    step(store, rental, "cancel")
    clock.advance(timedelta(minutes=59))
    assert store.get(rental.rental_id).state is RentalState.ENDED
    clock.advance(timedelta(minutes=1))
    with pytest.raises(RentalNotFound):
        store.get(rental.rental_id)
    assert store.log(rental.rental_id) == []


def test_outbox_pending_complete_and_sweep(store: RentalStore) -> None:
    rental = new_rental()
    store.create(rental)
    _, rental = step(store, rental, "start")
    _, rental = step(store, rental, "start_confirmed")
    _, rental = step(store, rental, "force_end")
    pending = store.pending_effects(rental.rental_id)
    assert [(e.version, e.index, e.effect) for e in pending] == [
        (1, 0, Effect.UNLOCK_VEHICLE),
        (2, 0, Effect.SET_IN_RENTAL),
        (3, 0, Effect.SET_NOT_IN_RENTAL),
        (3, 1, Effect.SECURE_VEHICLE),
    ]
    assert rental.rental_id in store.rentals_with_pending_effects()
    for entry in pending:
        assert store.complete_effect(rental.rental_id, entry.effect_id)
        assert not store.complete_effect(rental.rental_id, entry.effect_id)  # redelivered
    assert store.pending_effects(rental.rental_id) == []
    assert rental.rental_id not in store.rentals_with_pending_effects()


def test_append_log_without_state_change(store: RentalStore) -> None:
    rental = new_rental()
    store.create(rental, [{"at": format_time(T0), "kind": "request", "op": "start",
                           "args": {}, "result": {"ok": True}}])
    rejected = {"at": format_time(T0), "kind": "request", "op": "end", "args": {},
                "result": {"error": "InvalidTransition"}, "seq": 99, "v": 7}
    [stored] = store.append_log(rental.rental_id, [rejected], expected_version=0)
    assert (stored["seq"], stored["v"], stored["rental_id"]) == (2, 1, rental.rental_id)
    with pytest.raises(VersionConflict):
        store.append_log(rental.rental_id, [rejected], expected_version=5)
    store.append_log(rental.rental_id, [{"at": format_time(T0), "kind": "clock"}])
    with pytest.raises(RentalNotFound):
        store.append_log("missing", [{"at": format_time(T0), "kind": "clock"}])
    with pytest.raises(InvalidInput):
        store.append_log(rental.rental_id, [{"at": format_time(T0), "kind": "bogus"}])
    assert [e["seq"] for e in store.log(rental.rental_id)] == [1, 2, 3]
    assert store.log(rental.rental_id)[1] == stored


def test_export_jsonl_parses_with_gapless_seq(store: RentalStore) -> None:
    ids = []
    for _ in range(2):
        rental = new_rental()
        store.create(rental)
        _, rental = step(store, rental, "start")
        _, rental = step(store, rental, "start_confirmed")
        step(store, rental, "force_end")
        ids.append(rental.rental_id)
    out = io.StringIO()
    assert store.export_jsonl(ids, out) == 6
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    for rid in ids:
        mine = [e for e in lines if e["rental_id"] == rid]
        assert [e["seq"] for e in mine] == [1, 2, 3]
        assert all(e["v"] == 1 and e["kind"] == "transition" for e in mine)
        assert [e["dest"] for e in mine] == ["STARTING", "RUNNING", "ENDED"]


def test_vehicle_state_merge_and_capabilities(store: RentalStore) -> None:
    vid = f"V-{uuid.uuid4().hex[:8]}"
    assert store.vehicle_state(vid) == {}
    first = {"ignition": {"timestamp": "2026-01-01T12:00:05Z", "value": "OFF"},
             "position": {"timestamp": "2026-01-01T12:00:05Z",
                          "value": {"lat": 50.8, "lon": 8.0}}}
    assert store.merge_vehicle_state(vid, first) == first
    older = {"ignition": {"timestamp": "2026-01-01T13:00:00+02:00", "value": "ON"},
             "central_lock": {"timestamp": "2026-01-01T11:00:00Z", "value": "LOCKED"}}
    merged = store.merge_vehicle_state(vid, older)
    assert merged["ignition"]["value"] == "OFF"  # 11:00Z is older than 12:00:05Z
    assert merged["central_lock"]["value"] == "LOCKED"
    assert store.vehicle_state(vid) == merged
    with pytest.raises(InvalidInput):
        store.merge_vehicle_state(vid, {"ignition": {"value": "ON"}})
    caps: dict[str, Any] = {"commands": ["unlock-and-enable-driving"],
                            "vehicle_state": ["IGNITION", "CENTRAL_LOCK"]}
    assert store.capabilities(vid) is None
    store.set_capabilities(vid, caps)
    assert store.capabilities(vid) == caps


def _commit_for(rental: Any, trigger: str, event_id: str) -> tuple[Commit, Any]:
    decision = decide(rental, trigger, now=T0)
    after = decision.apply(rental, T0)
    entry = transition_entry(rental, trigger, decision.dest.value, T0)
    return Commit(after, rental.version, event_id, decision.effects, (entry,)), after


def test_read_vehicles_merges_then_reads_in_order(store: RentalStore) -> None:
    """The event path's batched read answers what the single reads answer."""
    active, aborted = new_rental(), new_rental()
    store.create(active)
    _, started = step(store, active, "start", event_id="ev-start")
    store.create(aborted)
    store.remember_abort(aborted.vehicle_id, aborted.rental_id, timedelta(minutes=5))
    idle_vehicle = f"V-{uuid.uuid4().hex[:8]}"
    caps = {"commands": ["lock"], "vehicle_state": ["CENTRAL_LOCK"]}
    store.set_capabilities(active.vehicle_id, caps)
    lock = {"central_lock": {"timestamp": "2026-01-01T12:00:05Z", "value": "UNLOCKED"}}
    older = {"central_lock": {"timestamp": "2026-01-01T12:00:01Z", "value": "LOCKED"}}

    views = store.read_vehicles([
        VehicleRead(active.vehicle_id, "ev-start", lock),       # applied already
        VehicleRead(aborted.vehicle_id, "ev-new", {}),
        VehicleRead(idle_vehicle, "ev-x", older),
    ])

    assert [v.rental_id for v in views] == [active.rental_id, aborted.rental_id, None]
    assert views[0].rental == started and views[0].duplicate
    assert views[0].state == lock and views[0].capabilities == caps
    assert views[1].rental == aborted and not views[1].duplicate
    assert views[1].capabilities is None and views[1].state == {}
    assert views[2].rental is None and views[2].state == older
    # merged as merge_vehicle_state merges: an older property never replaces a newer one
    [again] = store.read_vehicles([VehicleRead(active.vehicle_id, "ev-2", older)])
    assert again.state == lock and not again.duplicate
    assert store.vehicle_state(active.vehicle_id) == lock
    with pytest.raises(InvalidInput):
        store.read_vehicles([VehicleRead(idle_vehicle, "ev-y", {"ignition": {"value": 1}})])


def test_write_batch_writes_each_item_or_returns_its_error(store: RentalStore) -> None:
    """One lost compare-and-set does not stop the rest; each item is all or nothing."""
    first, second, third = new_rental(), new_rental(), new_rental()
    for rental in (first, second, third):
        store.create(rental)
    _, moved = step(store, second, "start")  # second is now ahead of what we loaded
    ok, ok_after = _commit_for(first, "start", "ev-1")
    stale, _ = _commit_for(second, "start", "ev-2")
    clock_entry = {"at": format_time(T0), "kind": "clock"}

    results = store.write_batch([
        ok,
        stale,
        LogAppend(third.rental_id, (clock_entry,)),
        LogAppend("missing", (clock_entry,)),
        ok,  # the same event again
    ])

    assert results[0] is CommitOutcome.APPLIED
    assert isinstance(results[1], VersionConflict)
    assert results[2] is None
    assert isinstance(results[3], RentalNotFound)
    assert results[4] is CommitOutcome.DUPLICATE
    assert store.get(first.rental_id) == ok_after
    assert store.get(second.rental_id) == moved
    assert [e["trigger"] for e in store.log(second.rental_id)] == ["start"]
    assert [e["kind"] for e in store.log(third.rental_id)] == ["clock"]
    assert [e.effect for e in store.pending_effects(first.rental_id)] == \
        [Effect.UNLOCK_VEHICLE]
    with pytest.raises(InvalidInput):
        LogAppend(third.rental_id, ({"at": format_time(T0), "kind": "bogus"},))


def test_read_vehicles_returns_property_names_and_values_exactly(store: RentalStore) -> None:
    """The Redis script splices the stored JSON into one object: names that JSON must
    escape, and any value, come back as they went in."""
    vid = f"V-{uuid.uuid4().hex[:8]}"
    odd = {'quote"back\\slash/€': {"timestamp": "2026-01-01T12:00:05Z",
                                   "value": {"nested": [1, 2.5, None, "ü/\n"]}},
           "ignition": {"timestamp": "2026-01-01T12:00:05Z", "value": "OFF"}}
    [view] = store.read_vehicles([VehicleRead(vid, "ev-odd", odd)])
    assert view.state == odd
    [view] = store.read_vehicles([VehicleRead(vid, "ev-none", {})])
    assert view.state == odd == store.vehicle_state(vid)

