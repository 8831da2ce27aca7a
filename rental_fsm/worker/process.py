"""The worker process: the event consumer in the main thread, timers and outbox in another.

``Worker.run`` blocks until SIGTERM/SIGINT (or ``stop()``): it then stops consuming,
finishes and acks the message in hand, lets the background loop finish its turn, and
returns 0. ``Worker.drain`` is the ``--once`` mode for tests and batch jobs: it runs
until the queues stay empty and no timer or effect is due, then returns.

A heartbeat file (``--health-file``) is touched on every loop turn, so a supervisor can
restart a worker whose loop is stuck: it is stale when older than a few seconds.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from ..clock import Clock, SystemClock
from ..config import DEFAULT_TIMER_HORIZON, Settings
from ..effects import EffectRunner, VehicleCommands
from ..engine import Engine
from ..errors import ConfigurationError, RentalFSMError
from ..events.handler import DeadLetters, EventHandler
from ..store.base import RentalStore
from ..timers.base import TimerQueue
from .backoff import compute_backoff
from .consumer import KombuEventConsumer
from .timer_runner import TimerRunner

log = structlog.get_logger(__name__)

#: Pause between two background turns that found nothing to do (seconds).
IDLE_TICK_S = 0.05


@dataclass
class Parts:
    """Everything a worker is made of; built by ``build_parts`` or by hand in tests."""

    store: RentalStore
    timers: TimerQueue
    engine: Engine
    handler: EventHandler
    effects: EffectRunner
    connection: Any
    queues: tuple[str, ...]
    prefetch: int = 100
    declare: bool = False
    #: How far ahead the timer loop decides timers (``TimerRunner``; zero: never).
    timer_horizon: timedelta = DEFAULT_TIMER_HORIZON


class Worker:
    def __init__(self, parts: Parts, *, clock: Clock | None = None,
                 health_file: Path | None = None) -> None:
        self.parts = parts
        self.clock = clock or parts.engine.clock
        self.health_file = health_file
        self.consumer = KombuEventConsumer(
            parts.connection, parts.queues, parts.handler, prefetch=parts.prefetch,
            declare=parts.declare)
        self.timer_runner = TimerRunner(parts.store, parts.timers, parts.engine,
                                        clock=self.clock, horizon=parts.timer_horizon)
        # commands give way to a burst of due timers (EffectRunner.max_defer at most)
        parts.effects.defer_to = self.timer_runner.caught_up
        self._stop = threading.Event()

    # -- background: timers and the outbox ------------------------------------------------

    def turn(self) -> int:
        """One background turn: fire due timers, run pending effects. Returns work done."""
        timers = self.timer_runner.step()
        ran = self.parts.effects.sweep()
        self._heartbeat()
        return timers + len(ran)

    def _loop(self, step: Callable[[], int],
               pause: Callable[[float], float] | None = None) -> None:
        """Run ``step`` until stopped; timers and commands each get their own loop, so a
        slow vehicle command never delays a due timer. Idle, it waits ``IDLE_TICK_S``, or
        what ``pause(IDLE_TICK_S)`` says (the timer loop: until its next timer is due)."""
        errors = 0
        while not self._stop.is_set():
            try:
                busy = step()
                self._heartbeat()
                errors = 0
            except RentalFSMError as exc:
                errors += 1
                delay = compute_backoff(errors)
                log.warning("worker.loop_retrying", error=str(exc), transient=exc.transient,
                            retry_in_s=round(delay, 3))
                self._stop.wait(delay)
                continue
            except Exception:  # a bug: log it, keep the worker alive, back off
                errors += 1
                log.exception("worker.loop_failed")
                self._stop.wait(compute_backoff(errors))
                continue
            if not busy:
                self._stop.wait(IDLE_TICK_S if pause is None else pause(IDLE_TICK_S))

    def _heartbeat(self) -> None:
        if self.health_file is not None:
            self.health_file.touch()

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self, *_: object) -> None:
        self._stop.set()
        self.consumer.stop()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("worker.stopping", signal=signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self) -> int:
        """Consume and run timers/effects until stopped; returns the exit code (0)."""
        loops = [
            threading.Thread(target=self._loop,
                             args=(self.timer_runner.step, self.timer_runner.pause),
                             name="rental-fsm-timers", daemon=True),
            threading.Thread(target=self._loop, args=(self.parts.effects.dispatch,),
                             name="rental-fsm-effects", daemon=True),
        ]
        for loop in loops:
            loop.start()
        log.info("worker.started", queues=list(self.parts.queues), pid=os.getpid())
        try:
            self.consumer.run()  # type: ignore[no-untyped-call]
        finally:
            self.stop()
            for loop in loops:
                loop.join(timeout=30)
            self.timer_runner.close()  # a batch fired ahead is logged and counted
            self.parts.effects.close()  # let the commands in flight finish
        log.info("worker.stopped", handled=self.consumer.handled,
                 timers_fired=self.timer_runner.stats.fired)
        return 0

    def drain(self, *, idle_s: float = 1.0, timeout_s: float = 300.0) -> int:
        """Consume until the queues are idle for ``idle_s`` and nothing is due; return the
        number of messages handled. Raises TimeoutError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                consuming = self.consumer.consume(  # type: ignore[no-untyped-call]
                    timeout=idle_s, safety_interval=min(idle_s, 0.2))
                for _ in consuming:
                    if time.monotonic() > deadline:
                        break
            except TimeoutError:
                pass
            if self.turn() == 0:
                return self.consumer.handled
        if self._stop.is_set():
            return self.consumer.handled
        raise TimeoutError(f"worker did not drain within {timeout_s} s")


def build_parts(
    settings: Settings, *, clock: Clock | None = None, api: VehicleCommands | None = None,
    owner: str | None = None,
) -> Parts:
    """The composition root for a production worker: Redis, RabbitMQ, OneAPI."""
    problems = []
    if not settings.redis_url:
        problems.append("RENTAL_FSM_REDIS_URL is required for a worker")
    if not settings.amqp_url:
        problems.append("RENTAL_FSM_AMQP_URL is required for a worker")
    if not settings.event_queues:
        problems.append("RENTAL_FSM_EVENT_QUEUES is required for a worker")
    if api is None and not (settings.oneapi_client_id and settings.oneapi_client_secret):
        problems.append("RENTAL_FSM_ONEAPI_CLIENT_ID and _SECRET are required for a worker")
    if problems:
        raise ConfigurationError(problems)
    from ..store.base import Keys
    from ..store.dead_letters import RedisDeadLetters
    from ..store.redis import RedisRentalStore, connect
    from .amqp_reader import connection as amqp_connection

    clock = clock or SystemClock()
    client = connect(settings.redis_url)  # type: ignore[arg-type]
    keys = Keys(settings.namespace)
    store = RedisRentalStore(client, keys, retention=settings.retention)
    engine = Engine(store, clock=clock, durations=settings.durations())
    dead: DeadLetters = RedisDeadLetters(client, keys, clock)
    if api is None:
        from ..oneapi.client import OneAPIClient

        api = OneAPIClient(settings.oneapi_url, settings.oneapi_client_id,
                           settings.oneapi_client_secret, clock=clock)
    owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    return Parts(
        store=store, timers=store.timers, engine=engine,
        handler=EventHandler(store, engine, dead, clock=clock),
        effects=EffectRunner(store, engine, api, clock=clock, owner=owner),
        connection=amqp_connection(settings.amqp_url, heartbeat=30),  # type: ignore[arg-type]
        queues=settings.event_queues, prefetch=settings.prefetch,
        declare=settings.declare_queues, timer_horizon=settings.timer_horizon,
    )
