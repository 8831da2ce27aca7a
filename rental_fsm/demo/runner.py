"""``rental-fsm demo``: the whole system on one machine, with nothing to set up.

A simulated fleet (the simulator's vehicle models, real HTTP on 127.0.0.1), the OneAPI
client, an orchestrator and a worker consuming the vehicles' events run a few dozen
rentals at once through every scenario of the seeds. By default everything is embedded:
an in-memory store and kombu's in-process ``memory://`` transport. With
``RENTAL_FSM_REDIS_URL`` and ``RENTAL_FSM_AMQP_URL`` set, the same demo runs on the real
Redis and RabbitMQ (in a namespace and queues of its own, removed afterwards).

Durations are seed 002's (45 s, 60 s) divided by ``--speed``. The demo writes every
rental's log (rental-log.md) and a summary into the output folder, and exits 1 when any
scenario did not end as expected.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from ..clock import SystemClock
from ..config import Settings
from ..criteria import BusinessArea, Circle, EndPolicy
from ..events.handler import DeadLetters, EventHandler
from ..model import Decision, EndReason, Rental, RentalState, Timer
from ..oneapi.client import OneAPIClient
from ..orchestrator import Orchestrator
from ..simulator import EventRouting, Simulator
from ..simulator.events import connect
from ..store.base import RentalStore
from ..store.dead_letters import InMemoryDeadLetters
from ..store.memory import InMemoryRentalStore
from ..worker.process import Parts, Worker
from .display import Display
from .scenarios import SCENARIOS, Context, Scenario

#: The simulator parks its vehicles here (oneapi.md §5.1's example position).
HOME = (50.834, 8.0219)
#: The demo fleet's business area: 50 km around the simulator's home position.
_END_POLICY = EndPolicy(area=BusinessArea(circles=(Circle(HOME[0], HOME[1], 50_000),)))


@dataclass(frozen=True)
class DemoOptions:
    speed: float = 3.0
    rentals: int = 30
    output: Path = Path("demo-output")
    settings: Settings = field(default_factory=Settings)
    #: Redraw a live line (a terminal) instead of printing periodic lines.
    live: bool = False


@dataclass
class Result:
    scenario: Scenario
    rental_id: str
    vehicle_id: str
    state: RentalState | None = None
    end_reason: EndReason | None = None
    triggers: list[str] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (self.error is None and self.state is self.scenario.expect_state
                and self.end_reason is self.scenario.expect_reason
                and all(t in self.triggers for t in self.scenario.expect_triggers))

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario.name, "rental_id": self.rental_id,
                "vehicle_id": self.vehicle_id, "ok": self.ok,
                "state": self.state.value if self.state else None,
                "end_reason": self.end_reason.value if self.end_reason else None,
                "expected": {"state": self.scenario.expect_state.value,
                             "end_reason": self.scenario.expect_reason.value
                             if self.scenario.expect_reason else None,
                             "triggers": list(self.scenario.expect_triggers)},
                "triggers": self.triggers, "error": self.error, "notes": self.notes,
                "seconds": round(self.seconds, 2)}


@dataclass
class Report:
    results: list[Result]
    seconds: float
    transitions: int
    output: Path
    #: Divergences found when the demo replayed its own logs (must be none).
    replay_divergences: list[str] = field(default_factory=list)
    diagrams: list[Path] = field(default_factory=list)
    #: Values that must appear in no output: the client secret and every access token
    #: the simulator issued (for the hardening tests' secrets scan; never written).
    secrets: list[str] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results) and not self.replay_divergences

    def by_scenario(self) -> dict[str, list[Result]]:
        grouped: dict[str, list[Result]] = {}
        for result in self.results:
            grouped.setdefault(result.scenario.name, []).append(result)
        return grouped


class _Counter:
    """Counts committed transitions (an engine listener) for the live display."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, before: Rental, after: Rental, decision: Decision) -> None:
        with self._lock:
            self.count += 1


def run_demo(options: DemoOptions, *, out: TextIO) -> Report:
    """Run the demo; everything it starts is stopped before it returns."""
    options.output.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    settings = options.settings
    scale = 1.0 / options.speed
    durations = {t: d * scale for t, d in settings.durations().items()}
    timeout_s = settings.start_timeout.total_seconds() * scale
    routing = EventRouting(exchange=f"rental-fsm-demo-{run_id}",
                           vehicle_state_queue=f"rental-fsm-demo-{run_id}-state",
                           vehicle_queue=f"rental-fsm-demo-{run_id}-vehicle")
    amqp_url = settings.amqp_url or "memory://"
    publishing, consuming = connect(amqp_url), connect(amqp_url)
    sim = Simulator(connection=publishing, routing=routing, time_scale=scale)
    store, dead, cleanup = _store(settings, run_id)
    counter = _Counter()
    stop_display = threading.Event()
    started = time.monotonic()
    results: list[Result] = []
    secrets: list[str] = []
    try:
        sim.start()
        client = OneAPIClient(sim.url, sim.client_id, sim.client_secret, read_timeout=30.0)
        clock = SystemClock()
        orch = Orchestrator(store, client, authorize=lambda customer, vehicle: True,
                            clock=clock, durations=durations,
                            end_policy=_END_POLICY)
        orch.engine.listeners.append(counter)
        assert routing.vehicle_state_queue and routing.vehicle_queue
        worker = Worker(Parts(
            store=store, timers=store.timers, engine=orch.engine,  # type: ignore[attr-defined]
            handler=EventHandler(store, orch.engine, dead, clock=clock),
            effects=orch.effects, connection=consuming,
            queues=(routing.vehicle_state_queue, routing.vehicle_queue), prefetch=100))
        worker_thread = threading.Thread(target=worker.run, name="demo-worker", daemon=True)
        worker_thread.start()
        if not worker.consumer.ready.wait(30):
            raise RuntimeError(f"the worker could not consume from {amqp_url}")
        results = [_plan(i, sim, run_id) for i in range(options.rentals)]
        display = Display(out, live=options.live, store=store,
                          results=results, counter=lambda: counter.count)
        display_thread = threading.Thread(target=display.run, args=(stop_display,),
                                          daemon=True)
        display_thread.start()
        threads = [threading.Thread(target=_run_one, args=(r, orch, sim, timeout_s),
                                    name=f"demo-{r.rental_id}", daemon=True)
                   for r in results]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 40 * timeout_s + 60
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for result, thread in zip(results, threads, strict=True):
            if thread.is_alive():
                result.error = result.error or "did not finish in time"
        stop_display.set()
        display_thread.join(5)
        worker.stop()
        worker_thread.join(30)
        _export(store, results, options.output)
    finally:
        stop_display.set()
        secrets = [sim.client_secret.reveal(), *sim.issued_tokens]
        sim.stop()
        publishing.release()
        consuming.release()
        _delete_queues(amqp_url, routing)
        cleanup()
    report = Report(results, time.monotonic() - started, counter.count, options.output,
                    secrets=secrets)
    report.replay_divergences = _replay(options.output, durations, _END_POLICY)
    report.diagrams = _path_diagrams(store_logs(options.output), results, options.output)
    (options.output / "summary.json").write_text(json.dumps({
        "ok": report.ok, "seconds": round(report.seconds, 1), "speed": options.speed,
        "transitions": report.transitions, "replay_divergences": report.replay_divergences,
        "amqp": "memory" if not settings.amqp_url
        else "rabbitmq", "store": "redis" if settings.redis_url else "memory",
        "rentals": [r.to_dict() for r in results]}, indent=2))
    return report


def _plan(index: int, sim: Simulator, run_id: str) -> Result:
    scenario = SCENARIOS[index % len(SCENARIOS)]
    vehicle_id = sim.add_vehicle(scenario.model, f"V{index:03d}{run_id[:4].upper()}")
    return Result(scenario, f"{scenario.name}-{index:03d}", vehicle_id)


def _run_one(result: Result, orch: Orchestrator, sim: Simulator, timeout_s: float) -> None:
    ctx = Context(orch, sim, result.rental_id, result.vehicle_id,
                  f"customer-{result.rental_id}", timeout_s, result.notes,
                  sim_timeout_s=timeout_s / sim.fleet.time_scale)
    began = time.monotonic()
    try:
        result.scenario.run(ctx)
        ctx.wait_for(result.scenario.expect_state)
    except Exception as exc:  # a failed scenario is reported, never fatal to the demo
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.seconds = time.monotonic() - began
        try:
            status = orch.status(result.rental_id)
            result.state, result.end_reason = status.state, status.end_reason
            result.triggers = ctx.triggers()
        except Exception as exc:
            result.error = result.error or f"{type(exc).__name__}: {exc}"


def _store(settings: Settings, run_id: str) -> tuple[RentalStore, DeadLetters,
                                                      Callable[[], None]]:
    if not settings.redis_url:
        return InMemoryRentalStore(), InMemoryDeadLetters(), lambda: None
    from ..store.base import Keys
    from ..store.dead_letters import RedisDeadLetters
    from ..store.redis import RedisRentalStore
    from ..store.redis import connect as redis_connect

    client = redis_connect(settings.redis_url)
    keys = Keys(f"rental-fsm-demo-{run_id}")

    def cleanup() -> None:  # the logs were exported; leave nothing behind
        names = list(client.scan_iter(match=f"{keys.tag}*", count=1000))
        if names:
            client.delete(*names)
        client.close()

    return RedisRentalStore(client, keys), RedisDeadLetters(client, keys), cleanup


def _export(store: RentalStore, results: list[Result], output: Path) -> None:
    logs = output / "logs"
    logs.mkdir(exist_ok=True)
    with (output / "rentals.jsonl").open("w", encoding="utf-8") as combined:
        for result in results:
            with (logs / f"{result.rental_id}.jsonl").open("w", encoding="utf-8") as one:
                store.export_jsonl([result.rental_id], one)
            store.export_jsonl([result.rental_id], combined)


def _replay(output: Path, durations: Mapping[Timer, timedelta],
            policy: EndPolicy) -> list[str]:
    """Replay the demo's own logs: every rental must come out the same."""
    from ..replay import replay

    report = replay([output / "rentals.jsonl"], durations=durations, end_policy=policy)
    return [str(d) for d in report.divergences]


def store_logs(output: Path) -> dict[str, list[dict[str, Any]]]:
    logs: dict[str, list[dict[str, Any]]] = {}
    for line in (output / "rentals.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        logs.setdefault(entry["rental_id"], []).append(entry)
    return logs


def _path_diagrams(logs: Mapping[str, list[dict[str, Any]]], results: list[Result],
                   output: Path) -> list[Path]:
    """One path diagram per scenario (its first rental): Mermaid, and SVG with Graphviz."""
    from ..diagrams import DiagramError, Highlight, render

    folder = output / "diagrams"
    folder.mkdir(exist_ok=True)
    written: list[Path] = []
    seen: set[str] = set()
    for result in results:
        if result.scenario.name in seen:
            continue
        seen.add(result.scenario.name)
        transitions = [e for e in logs.get(result.rental_id, []) if e["kind"] == "transition"]
        highlight = Highlight.from_transitions(transitions)
        path = folder / f"{result.rental_id}.mmd"
        path.write_text(render("mermaid", highlight=highlight), encoding="utf-8")
        written.append(path)
        try:
            svg = render("svg", highlight=highlight)
        except DiagramError:  # Graphviz not installed: the Mermaid file is enough
            continue
        path = folder / f"{result.rental_id}.svg"
        path.write_text(svg, encoding="utf-8")
        written.append(path)
    return written


def _delete_queues(amqp_url: str, routing: EventRouting) -> None:
    conn = connect(amqp_url)
    try:
        channel = conn.channel()
        for name in (routing.vehicle_state_queue, routing.vehicle_queue):
            try:
                channel.queue_delete(name)
            except Exception:  # already gone (auto-deleted, or the broker restarted)
                channel = conn.channel()
    finally:
        conn.release()


def summary_lines(report: Report) -> list[str]:
    """The end-of-run table: per scenario, how many rentals ended as expected."""
    lines = [f"{'scenario':28} {'rentals':>7}  {'expected':28} {'result':>6}"]
    for name, results in report.by_scenario().items():
        expected = results[0].scenario.expect_state.value
        reason = results[0].scenario.expect_reason
        if reason is not None:
            expected += f" ({reason.value})"
        ok = sum(r.ok for r in results)
        lines.append(f"{name:28} {len(results):>7}  {expected:28} "
                     f"{'ok' if ok == len(results) else f'{ok}/{len(results)}':>6}")
        for r in results:
            if not r.ok:
                got = f"{r.state.value if r.state else '?'}"
                got += f" ({r.end_reason.value})" if r.end_reason else ""
                lines.append(f"    {r.rental_id}: got {got}; path {' > '.join(r.triggers)}"
                             + (f"; {r.error}" if r.error else ""))
    states = Counter(r.state.value if r.state else "?" for r in report.results)
    lines.append(f"{len(report.results)} rentals, {report.transitions} transitions in "
                 f"{report.seconds:.1f} s; final states: "
                 + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    return lines
