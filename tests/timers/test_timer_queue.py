"""The TimerQueue contract, run on InMemoryTimerQueue and RedisTimerQueue, plus fencing
end to end through the store (timers armed by commits, stale ones never fire)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from rental_fsm.machine import decide
from rental_fsm.model import ArmedTimer, Facts, Rental, RentalState, Timer
from rental_fsm.store import Commit, CommitOutcome, InMemoryRentalStore, Keys
from rental_fsm.timers import DueTimer, InMemoryTimerQueue, TimerQueue, is_current
from rental_fsm.timers.base import CLAIM_LEASE

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
S = timedelta(seconds=1)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


@pytest.fixture
def make_queue(request: pytest.FixtureRequest, backend: str):  # type: ignore[no-untyped-def]
    """A factory: every call returns a queue over the same storage (a "new worker")."""
    if backend == "memory":
        shared = InMemoryTimerQueue()
        yield lambda: shared
        return
    from rental_fsm.timers.redis import RedisTimerQueue

    client = request.getfixturevalue("redis_client")
    namespace = request.getfixturevalue("redis_namespace")
    yield lambda: RedisTimerQueue(client, Keys(namespace))


@pytest.fixture
def queue(make_queue) -> TimerQueue:  # type: ignore[no-untyped-def]
    return make_queue()  # type: ignore[no-any-return]


@pytest.fixture
def store(request: pytest.FixtureRequest, backend: str):  # type: ignore[no-untyped-def]
    if backend == "memory":
        return InMemoryRentalStore()
    from rental_fsm.store.redis import RedisRentalStore

    client = request.getfixturevalue("redis_client")
    return RedisRentalStore(client, Keys(request.getfixturevalue("redis_namespace")))


def test_schedule_is_idempotent_and_claims_once(queue: TimerQueue) -> None:
    queue.schedule("R1", Timer.START_TIMEOUT, "R1:1", T0)
    queue.schedule("R1", Timer.START_TIMEOUT, "R1:1", T0)
    queue.schedule("R1", Timer.STATE_CHECK, "R1:1", T0 + 10 * S)
    assert queue.pending() == 2
    assert queue.claim_due(T0 - S) == []
    assert queue.claim_due(T0) == [DueTimer(T0, "R1", Timer.START_TIMEOUT, "R1:1")]
    assert queue.claim_due(T0) == []
    # Scheduling the claimed token again does nothing: it stays leased to its claimer.
    queue.schedule("R1", Timer.START_TIMEOUT, "R1:1", T0)
    assert queue.claim_due(T0 + 20 * S) == [
        DueTimer(T0 + 10 * S, "R1", Timer.STATE_CHECK, "R1:1")
    ]
    queue.sync_rental("R1", {})  # the claimers' commits spent both timers
    assert queue.claim_due(T0 + 10 * CLAIM_LEASE) == []
    assert queue.pending() == 0


def test_claims_come_earliest_first_within_limit(queue: TimerQueue) -> None:
    for i in range(5):
        queue.schedule(f"R{i}", Timer.AUTO_CANCEL, f"R{i}:1", T0 - i * S)
    first = queue.claim_due(T0, limit=2)
    assert [d.rental_id for d in first] == ["R4", "R3"]
    assert [d.rental_id for d in queue.claim_due(T0, limit=10)] == ["R2", "R1", "R0"]


def test_cancelled_and_superseded_timers_never_fire(queue: TimerQueue) -> None:
    queue.schedule("R1", Timer.START_TIMEOUT, "R1:1", T0)
    queue.cancel("R1", Timer.START_TIMEOUT)
    queue.cancel("R1", Timer.START_TIMEOUT)  # cancelling twice is harmless
    queue.schedule("R2", Timer.END_TIMEOUT, "R2:3", T0)
    queue.schedule("R2", Timer.END_TIMEOUT, "R2:5", T0 + 30 * S)  # re-armed, new token
    claimed = queue.claim_due(T0 + 3600 * S, limit=100)
    assert claimed == [DueTimer(T0 + 30 * S, "R2", Timer.END_TIMEOUT, "R2:5")]


def test_sync_rental_matches_the_rentals_timers(queue: TimerQueue) -> None:
    queue.schedule("R1", Timer.START_TIMEOUT, "R1:1", T0)
    queue.schedule("R1", Timer.STATE_CHECK, "R1:1", T0)
    queue.sync_rental("R1", {Timer.AUTO_CANCEL: ArmedTimer(T0 + S, "R1:2"),
                             Timer.STATE_CHECK: ArmedTimer(T0, "R1:1")})
    claimed = queue.claim_due(T0 + 5 * S)
    assert {(d.timer, d.token) for d in claimed} == {
        (Timer.STATE_CHECK, "R1:1"), (Timer.AUTO_CANCEL, "R1:2")
    }


def test_overdue_timers_fire_when_the_next_worker_starts(make_queue) -> None:  # type: ignore[no-untyped-def]
    make_queue().schedule("R1", Timer.AUTO_CANCEL, "R1:2", T0)
    # ... every worker is down for an hour; a new one starts and claims at once.
    later = T0 + timedelta(hours=1)
    [due] = make_queue().claim_due(later)
    assert (due.rental_id, due.token) == ("R1", "R1:2")
    assert due.lateness(later) == timedelta(hours=1)
    assert due.lateness(T0 - S) == timedelta(0)


def test_two_workers_claim_10000_timers_exactly_once(make_queue) -> None:  # type: ignore[no-untyped-def]
    setup = make_queue()
    n = 10_000
    pipe_schedule = getattr(setup, "_client", None)
    if pipe_schedule is not None:  # Redis: arm them through a pipeline, not 10k round trips
        from rental_fsm.timers.base import member, to_ms

        pipe = pipe_schedule.pipeline(transaction=False)
        for i in range(n):
            armed = member(f"R{i}", Timer.AUTO_CANCEL, f"R{i}:1")
            pipe.zadd(setup.keys.timers, {armed: to_ms(T0 + (i % 100) * S)})
            pipe.hset(setup.keys.rental_timers(f"R{i}"), Timer.AUTO_CANCEL.value, armed)
        pipe.execute()
    else:
        for i in range(n):
            setup.schedule(f"R{i}", Timer.AUTO_CANCEL, f"R{i}:1", T0 + (i % 100) * S)
    assert setup.pending() == n
    results: list[list[DueTimer]] = [[], []]
    start = threading.Barrier(2)

    def worker(slot: int) -> None:
        queue = make_queue()
        start.wait()
        while batch := queue.claim_due(T0 + 100 * S, limit=50):
            results[slot].extend(batch)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [d.rental_id for d in results[0] + results[1]]
    assert len(claimed) == n and len(set(claimed)) == n
    assert setup.pending() == n  # leased until their commits spend them


def test_is_current_fences_by_token() -> None:
    rental = Rental("R1", "V1", "C1", timers={Timer.END_TIMEOUT: ArmedTimer(T0, "R1:4")})
    assert is_current(rental, DueTimer(T0, "R1", Timer.END_TIMEOUT, "R1:4"))
    assert not is_current(rental, DueTimer(T0, "R1", Timer.END_TIMEOUT, "R1:3"))
    assert not is_current(rental, DueTimer(T0, "R1", Timer.START_TIMEOUT, "R1:4"))
    assert not is_current(rental, DueTimer(T0, "R2", Timer.END_TIMEOUT, "R1:4"))
    assert DueTimer(T0, "R1", Timer.END_TIMEOUT, "R1:4").event_id == "timer:end_timeout:R1:4"


# -- end to end through the store: commits arm and cancel, is_current drops stale ones ---


def _commit(  # type: ignore[no-untyped-def]
    store, rental: Rental, trigger: str, now: datetime, event: str | None = None,
    facts: Facts | None = None,
):
    decision = decide(rental, trigger, now=now, facts=facts)
    new = decision.apply(rental, now)
    outcome = store.commit(Commit(new, rental.version, event or uuid.uuid4().hex,
                                  decision.effects))
    return outcome, new


def _fire(  # type: ignore[no-untyped-def]
    store, now: datetime, claimed: list[DueTimer] | None = None
) -> list[tuple[str, str]]:
    """A timer worker's loop body: claim, fence, decide, commit under the timer's id."""
    fired = []
    batch = store.timers.claim_due(now, limit=100)
    if claimed is not None:
        claimed.extend(batch)
    for due in batch:
        rental = store.get(due.rental_id)
        if not is_current(rental, due):
            continue
        outcome, _ = _commit(store, rental, due.timer.value, now, due.event_id)
        if outcome is CommitOutcome.APPLIED:
            fired.append((due.rental_id, due.timer.value))
    return fired


def test_commits_arm_and_cancel_timers_in_the_stores_queue(store) -> None:  # type: ignore[no-untyped-def]
    rental = Rental(f"R-{uuid.uuid4().hex[:8]}", "V-x" + uuid.uuid4().hex[:6],
                    "C-x" + uuid.uuid4().hex[:6])
    store.create(rental)
    _, rental = _commit(store, rental, "start", T0)  # arms start_timeout + state_check
    _, rental = _commit(store, rental, "start_confirmed", T0 + S)  # cancels both, arms AC
    # Long after every deadline, only the auto-cancel may fire: the cancelled start
    # timers are gone from the queue, not merely fenced.
    assert _fire(store, T0 + timedelta(hours=2)) == [(rental.rental_id, "auto_cancel")]
    assert store.get(rental.rental_id).state is RentalState.ENDING
    assert _fire(store, T0 + timedelta(hours=2)) == []


def test_a_timer_claimed_before_it_was_cancelled_is_dropped(store) -> None:  # type: ignore[no-untyped-def]
    rental = Rental(f"R-{uuid.uuid4().hex[:8]}", "V-y" + uuid.uuid4().hex[:6],
                    "C-y" + uuid.uuid4().hex[:6])
    store.create(rental)
    _, rental = _commit(store, rental, "start", T0)
    late = T0 + timedelta(minutes=5)
    claimed = store.timers.claim_due(late, limit=10)  # worker A claims both timers...
    assert {d.timer for d in claimed} == {Timer.START_TIMEOUT, Timer.STATE_CHECK}
    _, rental = _commit(store, rental, "start_confirmed", late)  # ...the vehicle confirms
    fresh = store.get(rental.rental_id)
    assert not any(is_current(fresh, d) for d in claimed)  # so A drops them


def test_a_superseded_timer_never_fires(store) -> None:  # type: ignore[no-untyped-def]
    rental = Rental(f"R-{uuid.uuid4().hex[:8]}", "V-z" + uuid.uuid4().hex[:6],
                    "C-z" + uuid.uuid4().hex[:6])
    store.create(rental)
    parked = Facts(ignition_on=False)
    for trigger in ("start", "start_confirmed", "end", "end_failed", "end"):
        _, rental = _commit(store, rental, trigger, T0, facts=parked)
    # end_timeout was armed at v3 and re-armed at v5 with a new token.
    assert rental.timers[Timer.END_TIMEOUT].token == f"{rental.rental_id}:5"
    claimed: list[DueTimer] = []
    fired = _fire(store, T0 + timedelta(hours=1), claimed)
    # state_check (due after 20 s) fires first, then end_timeout (45 s); no v3 timer.
    assert fired == [(rental.rental_id, "state_check"), (rental.rental_id, "end_timeout")]
    assert {d.token for d in claimed} == {f"{rental.rental_id}:5"}  # v3 never came out
    assert store.get(rental.rental_id).state is RentalState.RUNNING


def test_a_timer_claimed_by_a_worker_that_died_fires_after_the_claim_lease(store) -> None:  # type: ignore[no-untyped-def]
    """Regression: a worker claimed the start timeout and died (or lost Redis) before its
    commit. The claim took the timer off the queue for good, so the rental waited in
    STARTING forever. A claim is a lease: unless the rental no longer holds the timer, it
    is due again once the lease runs out (seed 002: the 45 s timeout must end the start)."""
    rental = Rental(f"R-{uuid.uuid4().hex[:8]}", "V-l" + uuid.uuid4().hex[:6],
                    "C-l" + uuid.uuid4().hex[:6])
    store.create(rental)
    _, rental = _commit(store, rental, "start", T0)
    due_at = T0 + timedelta(seconds=46)
    lost = store.timers.claim_due(due_at, limit=10)  # ...and the claimer is gone
    assert {d.timer for d in lost} == {Timer.START_TIMEOUT, Timer.STATE_CHECK}
    assert store.timers.claim_due(due_at + CLAIM_LEASE - S) == []  # still leased
    fired = _fire(store, due_at + CLAIM_LEASE)
    # Both leases end together; the start timeout ends the start (the state check, if it
    # came first, only asks the vehicle; afterwards it is cancelled).
    assert "start_timeout" in [t for _, t in fired]
    assert store.get(rental.rental_id).state is RentalState.IDLE
    # Fired (the commit spent them): never again, however long we wait.
    assert store.timers.claim_due(due_at + 10 * CLAIM_LEASE) == []
    assert store.timers.pending() == 0


def test_a_leased_timer_the_rental_no_longer_holds_is_dropped(queue: TimerQueue) -> None:
    queue.schedule("R1", Timer.START_TIMEOUT, "R1:1", T0)
    [claimed] = queue.claim_due(T0)
    queue.cancel("R1", Timer.START_TIMEOUT)  # e.g. the start was confirmed meanwhile
    assert queue.claim_due(T0 + 2 * CLAIM_LEASE) == []
    assert queue.pending() == 0
    assert claimed.token == "R1:1"
