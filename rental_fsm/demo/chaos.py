"""``make chaos``: the demo's fleet under faults, and an account of what got through.

Worker processes (``rental-fsm worker``) consume the simulator's events on the real
RabbitMQ and share rentals in the real Redis, while a driver randomly SIGKILLs and
restarts them, restarts RabbitMQ's application, and makes the simulator drop, duplicate
and reorder events. Waves of the demo's scenarios keep rentals going meanwhile.

At the end it counts: faults injected, events published and handled, events lost (a
published event no worker ever handled: must be 0), effects done twice (a command the
vehicle received more often than the rental's transitions asked for it: must be 0), and
rentals whose recorded path is not a valid walk through the table ending in their stored
state (must be 0). Scenario outcomes themselves may differ from the demo's expectations
(a dropped confirmation legitimately times a start out); what must hold is that every
rental is in the state its own events and timers say.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from ..clock import SystemClock
from ..config import Settings
from ..errors import ConfigurationError
from ..machine import TRANSITIONS
from ..model import Effect, RentalState, Timer
from ..oneapi.client import OneAPIClient
from ..orchestrator import Orchestrator
from ..simulator import EventRouting, Simulator
from ..simulator.events import connect
from .runner import _END_POLICY, Result, _delete_queues, _plan, _run_one

EFFECT_NAMES = frozenset(e.value for e in Effect)
#: Commands that carry out each effect on the demo's models (combined or single).
EFFECT_COMMANDS = {
    Effect.UNLOCK_VEHICLE: ("unlock-and-enable-driving", "unlock-central-lock"),
    Effect.SECURE_VEHICLE: ("lock-and-disable-driving", "lock-central-lock"),
}


@dataclass(frozen=True)
class ChaosOptions:
    seconds: float = 180.0
    workers: int = 2
    speed: float = 10.0
    rentals_per_wave: int = 10
    #: Mean seconds between two injected faults.
    fault_every: float = 3.0
    broker_restarts: int = 1
    seed: int = 0
    output: Path = Path("chaos-output")


@dataclass
class ChaosReport:
    faults: Counter[str] = field(default_factory=Counter)
    events_published: int = 0
    events_not_taken_by_broker: int = 0
    events_handled: int = 0
    rentals: int = 0
    lost: list[str] = field(default_factory=list)
    done_twice: list[str] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)
    final_states: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.done_twice or self.inconsistent)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "seconds": round(self.seconds, 1),
                "faults": dict(self.faults), "faults_total": sum(self.faults.values()),
                "events_published": self.events_published,
                "events_not_taken_by_broker": self.events_not_taken_by_broker,
                "events_handled": self.events_handled, "rentals": self.rentals,
                "lost": len(self.lost), "done_twice": len(self.done_twice),
                "inconsistent": len(self.inconsistent), "lost_ids": self.lost[:20],
                "done_twice_details": self.done_twice[:20],
                "inconsistent_details": self.inconsistent[:20],
                "final_states": dict(self.final_states)}


class _Workers:
    """Worker processes the driver may kill and restart."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def start(self) -> None:
        self.started += 1
        log = (self.logs / f"worker-{self.started}.log").open("ab")
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "rental_fsm", "worker"], env=self.env, stdout=log,
            stderr=subprocess.STDOUT))

    def kill_one(self, rng: random.Random) -> None:
        alive = [p for p in self.procs if p.poll() is None]
        if alive:
            victim = rng.choice(alive)
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def run_chaos(options: ChaosOptions, settings: Settings, *, out: TextIO) -> ChaosReport:
    if not (settings.redis_url and settings.amqp_url):
        raise ConfigurationError(["the chaos run needs RENTAL_FSM_REDIS_URL and "
                                  "RENTAL_FSM_AMQP_URL (real Redis and RabbitMQ)"])
    from ..store.base import Keys
    from ..store.redis import RedisRentalStore
    from ..store.redis import connect as redis_connect

    rng = random.Random(options.seed)
    run_id = uuid.uuid4().hex[:8]
    output = options.output
    (output / "logs").mkdir(parents=True, exist_ok=True)
    scale = 1.0 / options.speed
    routing = EventRouting(exchange=f"rental-fsm-chaos-{run_id}",
                           vehicle_state_queue=f"rental-fsm-chaos-{run_id}-state",
                           vehicle_queue=f"rental-fsm-chaos-{run_id}-vehicle", durable=True)
    publishing = connect(settings.amqp_url)
    sim = Simulator(connection=publishing, routing=routing, time_scale=scale)
    client = redis_connect(settings.redis_url)
    namespace = f"rental-fsm-chaos-{run_id}"
    store = RedisRentalStore(client, Keys(namespace))
    report = ChaosReport()
    started = time.monotonic()
    results: list[Result] = []
    workers: _Workers | None = None
    try:
        sim.start()
        timeout_s = settings.start_timeout.total_seconds() * scale
        env = {k: v for k, v in os.environ.items() if not k.startswith("RENTAL_FSM_")}
        env.update({
            "RENTAL_FSM_REDIS_URL": settings.redis_url, "RENTAL_FSM_NAMESPACE": namespace,
            "RENTAL_FSM_AMQP_URL": settings.amqp_url,
            "RENTAL_FSM_EVENT_QUEUES": f"{routing.vehicle_state_queue},{routing.vehicle_queue}",
            "RENTAL_FSM_ONEAPI_URL": sim.url, "RENTAL_FSM_ONEAPI_CLIENT_ID": sim.client_id,
            "RENTAL_FSM_ONEAPI_CLIENT_SECRET": sim.client_secret.reveal(),
            "RENTAL_FSM_START_TIMEOUT_S": str(settings.start_timeout.total_seconds() * scale),
            "RENTAL_FSM_END_TIMEOUT_S": str(settings.end_timeout.total_seconds() * scale),
            "RENTAL_FSM_AUTO_CANCEL_S": str(settings.auto_cancel.total_seconds() * scale),
            "RENTAL_FSM_LOG_FORMAT": "json", "RENTAL_FSM_LOG_LEVEL": "info",
            "RENTAL_FSM_PREFETCH": "20"})
        workers = _Workers(env, output / "logs")
        for _ in range(options.workers):
            workers.start()
        api = OneAPIClient(sim.url, sim.client_id, sim.client_secret, read_timeout=30.0)
        durations = {t: d * scale for t, d in settings.durations().items()}
        orch = Orchestrator(store, api, authorize=lambda c, v: True, clock=SystemClock(),
                            durations=durations, end_policy=_END_POLICY)
        stop = threading.Event()
        driver = threading.Thread(target=_drive, args=(options, rng, workers, sim, results,
                                                       report, stop), daemon=True)
        driver.start()
        wave = 0
        deadline = started + options.seconds
        while time.monotonic() < deadline:
            batch = [_plan(wave * 1000 + i, sim, run_id)
                     for i in range(options.rentals_per_wave)]
            results.extend(batch)
            threads = [threading.Thread(target=_run_one, args=(r, orch, sim, timeout_s),
                                        daemon=True) for r in batch]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(max(1.0, deadline - time.monotonic() + 20 * timeout_s))
            wave += 1
            out.write(f"[{time.monotonic() - started:5.0f}s] wave {wave} done: "
                      f"{len(results)} rentals, faults {dict(report.faults)}\n")
            out.flush()
        stop.set()
        driver.join(60)
        for _ in range(options.workers - sum(p.poll() is None for p in workers.procs)):
            workers.start()  # a full team again for the quiet end
        _settle(orch, results, timeout_s)
        workers.stop_all()
        report.seconds = time.monotonic() - started
        _export(store, results, output)
        _account(report, sim, store, results, output)
        report.inconsistent += _replay(output, durations)
    finally:
        if workers is not None:
            workers.stop_all()
        sim.stop()
        publishing.release()
        _delete_queues(settings.amqp_url, routing)
        _clean(client, namespace)
    (output / "chaos-report.json").write_text(json.dumps(report.to_dict(), indent=2))
    return report


def _drive(options: ChaosOptions, rng: random.Random, workers: _Workers, sim: Simulator,
           results: list[Result], report: ChaosReport, stop: threading.Event) -> None:
    """Inject one fault at a time, at random, until told to stop."""
    restarts_left = options.broker_restarts
    restart_at = rng.uniform(0.3, 0.6) * options.seconds
    began = time.monotonic()
    while not stop.wait(rng.expovariate(1.0 / options.fault_every)):
        if restarts_left and time.monotonic() - began >= restart_at:
            restarts_left -= 1
            if _restart_rabbitmq():
                report.faults["rabbitmq_restart"] += 1
            continue
        action = rng.choice(["kill_worker", "lose_event", "duplicate_events",
                             "reorder_events"])
        if action == "kill_worker":
            workers.kill_one(rng)
            workers.start()
            report.faults["worker_sigkill"] += 1
            continue
        if not results:
            continue
        vehicle = rng.choice(results).vehicle_id
        knob = {"lose_event": ("lose_events", 1), "duplicate_events": ("duplicate_events", 2),
                "reorder_events": ("reorder_events", 1)}[action]
        sim.set_faults(vehicle, **{knob[0]: knob[1]})
        report.faults[action] += 1


def _restart_rabbitmq() -> bool:
    try:
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True,
                       timeout=120)
        time.sleep(1.0)
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True,
                       timeout=120)
        return True
    except (OSError, subprocess.SubprocessError):
        subprocess.run(["rabbitmqctl", "start_app"], capture_output=True, timeout=120)
        return False


def _settle(orch: Orchestrator, results: list[Result], timeout_s: float) -> None:
    """Give every rental time to finish what its timers bound (no new input arrives)."""
    waiting = {RentalState.STARTING, RentalState.PAUSING, RentalState.RESUMING,
               RentalState.ENDING}
    deadline = time.monotonic() + 6 * timeout_s + 30
    while time.monotonic() < deadline:
        states = [orch.status(r.rental_id).state for r in results if _exists(orch, r)]
        if not any(s in waiting for s in states):
            return
        time.sleep(0.2)


def _exists(orch: Orchestrator, result: Result) -> bool:
    try:
        orch.status(result.rental_id)
        return True
    except Exception:
        return False


def _account(report: ChaosReport, sim: Simulator, store: Any, results: list[Result],
             output: Path) -> None:
    published = {e["metadata"]["id"] for e in sim.publisher.published}
    report.events_published = len(published)
    report.events_not_taken_by_broker = len(sim.publisher.failed)
    handled = set()
    for log_file in (output / "logs").glob("worker-*.log"):
        for line in log_file.read_text(errors="replace").splitlines():
            if '"event.handled"' in line:
                try:
                    handled.add(json.loads(line)["event_id"])
                except (ValueError, KeyError):
                    continue
    report.events_handled = len(handled & published)
    report.lost = sorted(published - handled)
    rows = {(src.value, r.trigger): r.dest.value for r in TRANSITIONS for src in r.source}
    # A refused command (4xx) did not run; a timed-out one may have, and counts.
    received = Counter(path for method, path, status in list(sim.requests)
                       if method == "POST" and not 400 <= status < 500)
    for result in results:
        try:
            rental = store.get(result.rental_id)
        except Exception:
            continue
        report.rentals += 1
        report.final_states[rental.state.value] += 1
        entries = [e for e in store.log(result.rental_id) if e.get("kind") == "transition"]
        state = "IDLE"
        asked: Counter[Effect] = Counter()
        for entry in entries:
            if entry["source"] != state or rows.get((state, entry["trigger"])) != entry["dest"]:
                report.inconsistent.append(f"{result.rental_id}: {state} -{entry['trigger']}->")
                break
            state = entry["dest"]
            asked.update(Effect(e) for e in entry.get("effects", ()) if e in EFFECT_NAMES)
        if state != rental.state.value:
            report.inconsistent.append(f"{result.rental_id}: log ends in {state}, "
                                       f"stored {rental.state.value}")
        for effect, names in EFFECT_COMMANDS.items():
            sent = sum(received[f"/vehicles/{result.vehicle_id}/commands/{n}"] for n in names)
            if sent > asked[effect]:
                report.done_twice.append(f"{result.rental_id}: {effect.value} asked "
                                         f"{asked[effect]}x, sent {sent}x")


def _export(store: Any, results: list[Result], output: Path) -> None:
    with (output / "rentals.jsonl").open("w", encoding="utf-8") as combined:
        for result in results:
            store.export_jsonl([result.rental_id], combined)


def _replay(output: Path, durations: Mapping[Timer, timedelta]) -> list[str]:
    """Every rental must be in the state its own events and timers say: replay its log."""
    from ..replay import replay

    report = replay([output / "rentals.jsonl"], durations=durations,
                    end_policy=_END_POLICY)
    return [f"replay: {d}" for d in report.divergences]


def _clean(client: Any, namespace: str) -> None:
    names = list(client.scan_iter(match="{" + namespace + "}*", count=1000))
    if names:
        client.delete(*names)
    client.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m rental_fsm.demo.chaos [--seconds S] [--workers N] [--seed N]``."""
    from .cli import add_chaos_arguments

    parser = argparse.ArgumentParser(prog="rental-fsm chaos")
    add_chaos_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    from ..logs import configure_logging

    args.output.mkdir(parents=True, exist_ok=True)
    log_file = (args.output / "chaos.log").open("w", encoding="utf-8")
    configure_logging(fmt="json", level="warning", stream=log_file)
    options = ChaosOptions(seconds=args.seconds, workers=args.workers, speed=args.speed,
                           rentals_per_wave=args.rentals_per_wave,
                           broker_restarts=args.broker_restarts, seed=args.seed,
                           output=args.output)
    print(f"chaos run: {args.seconds:g} s, {args.workers} workers, seed {args.seed}")
    report = run_chaos(options, Settings.from_env(), out=sys.stdout)
    data = report.to_dict()
    print(f"faults injected: {data['faults_total']} {data['faults']}")
    print(f"events published: {data['events_published']}, handled: "
          f"{data['events_handled']} (not taken by the broker while it restarted: "
          f"{data['events_not_taken_by_broker']})")
    print(f"rentals: {data['rentals']} {data['final_states']}")
    print(f"lost: {data['lost']}, done twice: {data['done_twice']}, "
          f"inconsistent: {data['inconsistent']}")
    print(f"report: {args.output / 'chaos-report.json'}")
    print("chaos run passed" if report.ok else "CHAOS RUN FAILED")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
