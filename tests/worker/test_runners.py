"""Effect runner, timer runner and backoff on the in-memory seams (fast, no services)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from rental_fsm.clock import ManualClock
from rental_fsm.effects import EffectRunner, plan
from rental_fsm.engine import Engine
from rental_fsm.errors import CommandNotSupported, ConflictingCommand, OutcomeUnknown
from rental_fsm.model import Effect, Rental, RentalState, Timer
from rental_fsm.oneapi.resources import Result
from rental_fsm.oneapi.vehicle_state import Capabilities, Command, VehicleState
from rental_fsm.store import InMemoryRentalStore
from rental_fsm.worker.backoff import compute_backoff
from rental_fsm.worker.timer_runner import TimerRunner

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)
CAR = {"commands": ["UNLOCK_AND_ENABLE_DRIVING", "LOCK_AND_DISABLE_DRIVING"],
       "vehicle_state": ["CENTRAL_LOCK", "DRIVING_ENABLED", "IGNITION", "DOORS_STATUS"]}
SEPARATE = {"commands": ["UNLOCK_CENTRAL_LOCK", "ENABLE_DRIVING", "LOCK_CENTRAL_LOCK",
                         "DISABLE_DRIVING"], "vehicle_state": CAR["vehicle_state"]}


class ScriptedAPI:
    """Answers commands from a script: a state dict, or an exception to raise."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[str] = []

    def _next(self) -> Any:
        item = self.script.pop(0) if self.script else {}
        if isinstance(item, Exception):
            raise item
        return Result(VehicleState.from_json(item), "flow-1", 200)

    def command(self, vehicle_id: str, command: Command) -> Result[VehicleState]:
        self.calls.append(command.value)
        return self._next()  # type: ignore[no-any-return]

    def set_rental_status(self, vehicle_id: str, value: str, *,
                          request_new_vehicle_state: bool = True) -> Any:
        self.calls.append(f"rental-status {value}")
        return self._next()


def setup(api: ScriptedAPI, caps: dict[str, Any] = CAR) -> tuple[Any, Engine, EffectRunner,
                                                                   ManualClock]:
    clock = ManualClock(NOW)
    store = InMemoryRentalStore(clock=clock)
    store.set_capabilities("V1", caps)
    store.create(Rental("r-1", "V1", "c-1"))
    engine = Engine(store, clock=clock)
    runner = EffectRunner(store, engine, api, clock=clock, owner="w", sleep=lambda s: None)
    return store, engine, runner, clock


def state(**props: Any) -> dict[str, Any]:
    return {k: {"timestamp": "2026-11-22T10:00:01Z", "value": v} for k, v in props.items()}


def test_the_combined_command_is_used_when_supported_else_the_single_ones() -> None:
    """Seed 000: unlock-and-enable-driving 'is not supported by all telematics brands'."""
    car = Capabilities.from_json(CAR)
    separate = Capabilities.from_json(SEPARATE)
    moped = Capabilities.from_json({"commands": ["ENABLE_DRIVING", "DISABLE_DRIVING"],
                                    "vehicle_state": []})
    assert plan(Effect.UNLOCK_VEHICLE, car) == [Command.UNLOCK_AND_ENABLE_DRIVING]
    assert plan(Effect.UNLOCK_VEHICLE, separate) == [Command.UNLOCK_CENTRAL_LOCK,
                                                     Command.ENABLE_DRIVING]
    assert plan(Effect.SECURE_VEHICLE, moped) == [Command.DISABLE_DRIVING]
    assert plan(Effect.REQUEST_VEHICLE_STATE, car) == []


def test_a_command_response_showing_the_unlock_confirms_the_start() -> None:
    api = ScriptedAPI(state(central_lock="UNLOCKED", driving_enabled=True))
    store, engine, runner, _ = setup(api)
    engine.apply("r-1", "start")
    runner.sweep()
    assert api.calls == ["unlock-and-enable-driving", "rental-status IN_RENTAL"]
    assert store.get("r-1").state is RentalState.RUNNING
    calls = [e for e in store.log("r-1") if e["kind"] == "call"]
    assert calls[0]["path"] == "/vehicles/V1/commands/unlock-and-enable-driving"
    assert calls[0]["status"] == 200 and store.pending_effects("r-1") == []


def test_an_unknown_outcome_is_never_resent_and_the_rental_keeps_waiting() -> None:
    """Seed 000: 'the request may time out ... but ultimately the command might still be
    executed'."""
    api = ScriptedAPI(OutcomeUnknown("timed out", vehicle_id="V1"))
    store, engine, runner, _ = setup(api)
    engine.apply("r-1", "start")
    runner.sweep()
    runner.sweep()
    assert api.calls == ["unlock-and-enable-driving"]
    assert store.get("r-1").state is RentalState.STARTING
    (call,) = [e for e in store.log("r-1") if e["kind"] == "call"]
    assert (call["status"], call["error"]) == (None, "timeout")


def test_a_refused_unlock_fails_the_start_back_to_idle() -> None:
    """Seed 002: 'If an error in the communication to the vehicle occurs earlier than the
    timeout, the status will change earlier as well.'"""
    api = ScriptedAPI(CommandNotSupported("no", status=409))
    store, engine, runner, _ = setup(api)
    engine.apply("r-1", "start")
    runner.sweep()
    rental = store.get("r-1")
    assert rental.state is RentalState.IDLE and rental.last_reason == "start_failed"


def test_a_conflicting_command_is_retried_then_sent() -> None:
    api = ScriptedAPI(ConflictingCommand("busy", status=409), {})
    store, engine, runner, _ = setup(api)
    engine.apply("r-1", "start")
    runner.sweep()
    assert api.calls == ["unlock-and-enable-driving"] * 2
    assert store.get("r-1").state is RentalState.STARTING


def test_no_lock_command_goes_out_while_the_ignition_is_on() -> None:
    """Seed 000: 'you should not execute any commands while the customer is driving'."""
    api = ScriptedAPI(state(central_lock="UNLOCKED", driving_enabled=True), {})
    store, engine, runner, _ = setup(api)
    engine.apply("r-1", "start")
    runner.sweep()
    store.merge_vehicle_state("V1", state(ignition="ON"))
    engine.apply("r-1", "force_end")
    api.calls.clear()
    runner.sweep()
    assert api.calls == ["rental-status NOT_IN_RENTAL"]


def test_two_runners_never_send_the_same_effect() -> None:
    api = ScriptedAPI()
    store, engine, runner, clock = setup(api)
    other = EffectRunner(store, engine, api, clock=clock, owner="w2")
    engine.apply("r-1", "start")
    (entry,) = store.pending_effects("r-1")
    assert store.claim_effect("r-1", entry.effect_id, "w2", NOW)  # w2 is mid-call
    runner.sweep()
    assert api.calls == []
    clock.advance(timedelta(minutes=5))  # w2 died: the effect is closed, never resent
    runner.sweep()
    assert api.calls == [] and store.pending_effects("r-1") == []
    del other


def test_the_timer_runner_fires_due_timers_once_and_drops_stale_ones() -> None:
    """Seed 002: 45 s to rental/start; a cancelled timer must never fire late."""
    store, engine, _, clock = setup(ScriptedAPI())
    engine.apply("r-1", "start")
    timers = TimerRunner(store, store.timers, engine, clock=clock)
    assert timers.tick() == []
    clock.advance(timedelta(seconds=46))
    fired = timers.tick()
    assert [d.timer for d in fired] == [Timer.STATE_CHECK, Timer.START_TIMEOUT]
    assert store.get("r-1").state is RentalState.IDLE
    assert timers.stats.max_lateness == timedelta(seconds=26)
    assert timers.tick() == []
    entries = [e for e in store.log("r-1") if e["kind"] == "timer"]
    assert [e["timer"] for e in entries] == ["state_check", "start_timeout"]


def test_a_timer_cancelled_after_being_queued_does_not_fire() -> None:
    store, engine, _, clock = setup(ScriptedAPI())
    engine.apply("r-1", "start")
    engine.apply("r-1", "start_confirmed")  # cancels start_timeout and state_check
    clock.advance(timedelta(seconds=50))
    timers = TimerRunner(store, store.timers, engine, clock=clock)
    assert timers.tick() == []
    assert store.get("r-1").state is RentalState.RUNNING


@pytest.mark.parametrize("attempt", [1, 2, 5, 40])
def test_backoff_grows_with_jitter_and_is_capped(attempt: int) -> None:
    rng = random.Random(7)
    delays = [compute_backoff(attempt, rng=rng) for _ in range(200)]
    ceiling = min(10.0, 0.1 * 2 ** (attempt - 1))
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 100
    with pytest.raises(ValueError):
        compute_backoff(0)


def test_securing_with_single_commands_after_an_aborted_start_does_not_loop() -> None:
    """Regression (found by the stateful property test): the response to
    lock-central-lock still shows driving enabled; judged half-way through the sequence
    it looked like a late unlock, which secured again, forever."""
    api = ScriptedAPI(
        state(central_lock="LOCKED", driving_enabled=True),    # lock-central-lock
        state(central_lock="LOCKED", driving_enabled=False),   # disable-driving
    )
    store, engine, runner, clock = setup(api, SEPARATE)
    engine.apply("r-1", "start")
    for entry in store.pending_effects("r-1"):
        store.complete_effect("r-1", entry.effect_id)
    engine.apply("r-1", "start_timeout")
    for entry in store.pending_effects("r-1"):  # its own securing already went out
        store.complete_effect("r-1", entry.effect_id)
    store.merge_vehicle_state("V1", state(central_lock="UNLOCKED", driving_enabled=True))
    engine.apply("r-1", "unlock_after_abort")
    api.calls.clear()
    runner.sweep()
    assert api.calls == ["lock-central-lock", "disable-driving"]
    assert [e["trigger"] for e in store.log("r-1") if e["kind"] == "transition"].count(
        "unlock_after_abort") == 1


def test_a_response_revealing_the_ignition_stops_the_rest_of_the_sequence() -> None:
    """Regression (found by the stateful property test): unlock-central-lock's response
    showed the ignition ON, and enable-driving still went out. Seed 000: no command while
    the customer is driving."""
    api = ScriptedAPI(state(central_lock="UNLOCKED", ignition="ON"))
    store, engine, runner, _ = setup(api, SEPARATE)
    engine.apply("r-1", "start")
    runner.sweep()
    assert api.calls == ["unlock-central-lock"]
    rental = store.get("r-1")
    assert rental.state is RentalState.IDLE and "ignition is on" in rental.extra["last_failure"]


def test_a_slow_command_does_not_hold_up_other_rentals() -> None:
    """OneAPI commands are synchronous and may take up to the read timeout: one hanging
    vehicle must not delay every other rental's commands (they run in parallel)."""
    import threading
    import time as _time

    release = threading.Event()
    sent: dict[str, float] = {}

    class SlowForV1(ScriptedAPI):
        def command(self, vehicle_id: str, command: Command) -> Result[VehicleState]:
            if vehicle_id == "V1":
                release.wait(10)
            sent[vehicle_id] = _time.monotonic()
            return Result(VehicleState({}), "flow", 200)

    api = SlowForV1()
    store, engine, runner, _ = setup(api)
    store.set_capabilities("V2", CAR)
    store.create(Rental("r-2", "V2", "c-2"))
    engine.apply("r-1", "start")
    engine.apply("r-2", "start")
    began = _time.monotonic()
    assert runner.dispatch() == 2
    deadline = began + 5
    while "V2" not in sent and _time.monotonic() < deadline:
        _time.sleep(0.01)
    assert "V2" in sent and "V1" not in sent  # r-2 went out while V1 still hung
    assert runner.dispatch() == 0  # r-1 is in flight: never handed twice
    release.set()
    runner.close()
    assert "V1" in sent and store.pending_effects("r-1") == []


def test_a_claim_interrupted_before_sending_is_resumed_by_its_owner() -> None:
    """Regression (found by the Redis-restart test): the store failed after the claim and
    before the call; the command waited out the 2-minute lease although it was never
    sent. Its owner resumes it; what was sent is still never resent."""
    api = ScriptedAPI({})
    store, engine, runner, _ = setup(api)
    engine.apply("r-1", "start")
    real_get = store.get
    failures = {"left": 1}

    def flaky_get(rental_id: str) -> Rental:
        if failures["left"]:
            failures["left"] -= 1
            from rental_fsm.errors import StoreUnavailable

            raise StoreUnavailable("redis restarting")
        return real_get(rental_id)

    store.get = flaky_get  # type: ignore[method-assign]
    with pytest.raises(Exception, match="redis restarting"):
        runner.sweep()
    assert api.calls == [] and store.pending_effects("r-1") != []
    runner.sweep()
    assert api.calls == ["unlock-and-enable-driving"]
    assert store.pending_effects("r-1") == []


def test_a_command_sent_before_the_store_failed_is_completed_not_resent() -> None:
    """At most once: the call went out, then recording it failed; the runner finishes the
    bookkeeping later without sending it again."""
    api = ScriptedAPI({})
    store, engine, runner, _ = setup(api)
    engine.apply("r-1", "start")
    real_append = store.append_log
    failures = {"left": 1}

    def flaky_append(*args: object, **kw: object) -> object:
        if failures["left"]:
            failures["left"] -= 1
            from rental_fsm.errors import StoreUnavailable

            raise StoreUnavailable("redis went away")
        return real_append(*args, **kw)  # type: ignore[arg-type]

    store.append_log = flaky_append  # type: ignore[method-assign]
    with pytest.raises(Exception, match="redis went away"):
        runner.sweep()
    runner.sweep()
    assert api.calls == ["unlock-and-enable-driving"]
    assert store.pending_effects("r-1") == []


def test_a_batch_of_timers_fires_each_once_even_when_a_rental_moves_mid_batch() -> None:
    """The timer loop reads a batch of rentals at once and commits them at once. A rental
    confirmed between that read and that write must not be timed out (seed 002: a start
    confirmed in time stays started); the others fire as usual, each exactly once."""
    clock = ManualClock(NOW)
    store = InMemoryRentalStore(clock=clock)
    engine = Engine(store, clock=clock)
    for i in range(5):
        store.set_capabilities(f"V{i}", CAR)
        store.create(Rental(f"r-{i}", f"V{i}", f"c-{i}"))
        engine.apply(f"r-{i}", "start")
    real_write = store.write_batch
    moved = []

    def racing_write(writes: Any) -> Any:
        if not moved:  # the vehicle confirmed r-2's unlock just before our write
            moved.append(engine.apply("r-2", "start_confirmed", event_id="confirm"))
        return real_write(writes)

    store.write_batch = racing_write  # type: ignore[method-assign]
    timers = TimerRunner(store, store.timers, engine, clock=clock)
    clock.advance(timedelta(seconds=46))

    fired = timers.tick()

    assert sorted((d.rental_id, d.timer.value) for d in fired) == sorted(
        (f"r-{i}", t) for i in (0, 1, 3, 4) for t in ("start_timeout", "state_check"))
    assert store.get("r-2").state is RentalState.RUNNING
    assert [store.get(f"r-{i}").state for i in (0, 1, 3, 4)] == [RentalState.IDLE] * 4
    assert (timers.stats.fired, timers.stats.stale) == (8, 2)
    assert timers.tick() == []
    for i in range(5):
        triggers = [e["trigger"] for e in store.log(f"r-{i}") if e["kind"] == "transition"]
        assert triggers.count("start_timeout") == (0 if i == 2 else 1)


def test_new_commands_wait_while_a_burst_of_due_timers_is_fired() -> None:
    """The worker wires EffectRunner.defer_to to TimerRunner.caught_up: a due timer is a
    deadline, so its commit comes before more commands start (each waits 1 s at most)."""
    import threading
    import time as _time

    api = ScriptedAPI(state(central_lock="UNLOCKED", driving_enabled=True))
    store, engine, runner, _ = setup(api)
    engine.apply("r-1", "start")
    caught_up = threading.Event()  # clear: timers are behind
    runner.defer_to, runner.max_defer = caught_up, 0.2

    assert runner.dispatch() == 0 and api.calls == []  # nothing handed while behind
    caught_up.set()
    assert runner.dispatch() == 1
    runner.close()
    assert api.calls[0] == "unlock-and-enable-driving"

    caught_up.clear()  # a rental already handed waits, but not for ever
    started = _time.monotonic()
    runner._run_and_release("r-1")
    assert 0.15 <= _time.monotonic() - started < 5


def test_commands_give_way_to_timers_for_max_defer_at_most_even_if_the_burst_goes_on(
        ) -> None:
    """A fleet whose timers keep falling due faster than a batch per BURST_LOOKAHEAD keeps
    caught_up clear for good; its commands (the lock of an auto-cancel end, seed 002's
    45 s end timeout running) must still go out, after max_defer, not never."""
    import threading
    import time as _time

    api = ScriptedAPI(state(central_lock="UNLOCKED", driving_enabled=True))
    store, engine, runner, _ = setup(api)
    engine.apply("r-1", "start")
    caught_up = threading.Event()  # clear, and never set again: the burst goes on
    runner.defer_to, runner.max_defer = caught_up, 0.2

    assert runner.dispatch() == 0  # the hold begins
    started = _time.monotonic()
    handed = 0
    while not handed and _time.monotonic() - started < 5:  # bounded
        _time.sleep(0.02)
        handed = runner.dispatch()
    waited = _time.monotonic() - started
    runner.close()
    assert handed == 1 and 0.15 <= waited < 1
    assert api.calls[0] == "unlock-and-enable-driving"
    # the hold spent, the handed rental did not wait another max_defer
    assert _time.monotonic() - started < 0.2 + waited

    caught_up.set()  # caught up, then a new burst: it holds the next commands again
    assert runner.dispatch() == 0  # nothing pending
    sent = len(api.calls)
    store.set_capabilities("V2", CAR)
    store.create(Rental("r-2", "V2", "c-2"))
    engine.apply("r-2", "start")
    caught_up.clear()
    assert runner.dispatch() == 0
    runner.close()
    assert len(api.calls) == sent and "r-2" in store.rentals_with_pending_effects()


def test_the_idle_timer_loop_waits_what_the_runner_says_and_other_loops_the_idle_tick(
        ) -> None:
    """Worker._loop: the timer loop wakes for its next prepared timer (TimerRunner.pause)
    rather than after a fixed IDLE_TICK_S, which would fire it up to that much late."""
    from kombu import Connection

    from rental_fsm.events.handler import EventHandler
    from rental_fsm.store.dead_letters import InMemoryDeadLetters
    from rental_fsm.worker.process import IDLE_TICK_S, Parts, Worker

    store, engine, effects, clock = setup(ScriptedAPI())
    parts = Parts(store=store, timers=store.timers, engine=engine,
                  handler=EventHandler(store, engine, InMemoryDeadLetters(), clock=clock),
                  effects=effects, connection=Connection("memory://"), queues=("q",))
    worker = Worker(parts, clock=clock)
    waits: list[float] = []

    class Stop:  # two idle turns a loop
        limit = 2

        def is_set(self) -> bool:
            return len(waits) >= self.limit

        def wait(self, seconds: float) -> None:
            waits.append(seconds)

    worker._stop = stop = Stop()  # type: ignore[assignment]
    worker._loop(lambda: 0, lambda longest: longest / 5)
    stop.limit = 4
    worker._loop(lambda: 0)

    assert waits == [IDLE_TICK_S / 5, IDLE_TICK_S / 5, IDLE_TICK_S, IDLE_TICK_S]
