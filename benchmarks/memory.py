"""Scenario 4: Redis bytes per active rental, worker RSS against rentals, RSS under churn.

All three run against a private ``redis-server`` on a free loopback port, so INFO
used_memory deltas mean something. Per-rental bytes come from ``MEMORY USAGE`` of every
key of the namespace (SAMPLES 0), grouped by kind; the rental log is reported apart.
"""

from __future__ import annotations

import gc
import json
import tempfile
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from rental_fsm.clock import ManualClock
from rental_fsm.effects import EffectRunner
from rental_fsm.engine import Engine
from rental_fsm.events.handler import EventHandler
from rental_fsm.model import Facts, Rental
from rental_fsm.store import Keys
from rental_fsm.store.dead_letters import RedisDeadLetters
from rental_fsm.store.redis import RedisRentalStore
from rental_fsm.worker.timer_runner import TimerRunner

from .common import (
    AMQP_URL,
    KEYLESS_CAR,
    amqp,
    declare,
    delete_queues,
    envelope,
    figure,
    private_redis,
    publish,
    redis_client,
    rss_kb,
    seed_running,
    unique,
)
from .stubs import NullAPI
from .workers import spawn, stop, wait_for_lines, worker_env


def _handler(store: RedisRentalStore, client: Any, keys: Keys, clock: Any) -> EventHandler:
    engine = Engine(store, clock=clock)
    return EventHandler(store, engine, RedisDeadLetters(client, keys, clock), clock=clock)


def redis_bytes(url: str, count: int) -> dict[str, Any]:
    """Rentals as a worker leaves them after a few events each, then MEMORY USAGE."""
    client = redis_client(url)
    namespace = unique("mem")
    keys = Keys(namespace)
    store = RedisRentalStore(client, keys)
    client.set("warm", "x")
    before = int(client.info("memory")["used_memory"])
    now = datetime.now(timezone.utc)
    rentals = seed_running(store, count, "m", now=now)
    handler = _handler(store, client, keys, ManualClock(now))
    for r in rentals:
        for i, props in enumerate(({"doors_status": "OPEN"}, {"doors_status": "CLOSED"},
                                   {"ignition": "OFF", "central_lock": "UNLOCKED"})):
            body = json.dumps(envelope(r.vehicle_id, props, now + timedelta(seconds=i + 1)))
            handler.handle(body, content_type="application/json", queue="q")
    after = int(client.info("memory")["used_memory"])
    by_kind: dict[str, int] = defaultdict(int)
    for key in client.scan_iter(match=f"{keys.tag}*", count=2000):
        kind = key.decode().split(":")[1]
        by_kind[kind] += int(client.memory_usage(key, samples=0) or 0)
    log = by_kind.get("log", 0)
    total = sum(by_kind.values())
    client.close()
    return {
        "rentals": count,
        "bytes_per_rental_excl_log": figure(round((total - log) / count), 1),
        "log_bytes_per_rental": figure(round(log / count), 1),
        "used_memory_delta_per_rental": figure(round((after - before) / count), 1),
        "by_kind_bytes_per_rental": {k: round(v / count) for k, v in sorted(by_kind.items())},
        "note": "MEMORY USAGE SAMPLES 0 of every key (vehicle state and capabilities "
                "included: one vehicle per rental), after 3 events per rental",
    }


def worker_rss(url: str, stages: tuple[int, ...]) -> dict[str, Any]:
    """A ``rental-fsm worker`` process's RSS after handling an event for each of N rentals."""
    client = redis_client(url)
    namespace, queue = unique("rss"), unique("rss-q")
    keys = Keys(namespace)
    store = RedisRentalStore(client, keys)
    log = Path(tempfile.gettempdir()) / f"{namespace}.log"
    with amqp() as conn:
        declare(conn, queue)
    proc = spawn(worker_env(url, AMQP_URL, namespace, [queue], 100), log)
    points = []
    try:
        seeded: list[Rental] = []
        points.append({"rentals": 0, "rss_kb": _wait_rss(proc.pid)})
        now = datetime.now(timezone.utc)
        for target in stages:
            fresh = seed_running(store, target - len(seeded), "w", start=len(seeded), now=now)
            seeded += fresh
            with amqp() as conn:
                publish(conn, queue, (json.dumps(envelope(
                    r.vehicle_id, {"doors_status": "OPEN"}, now + timedelta(seconds=1)))
                    .encode() for r in fresh))
            ids = [r.rental_id for r in seeded]
            wait_for_lines(client, keys, ids, 2 * len(ids), timeout_s=900, procs=[proc])
            points.append({"rentals": target, "rss_kb": rss_kb(proc.pid)})
    finally:
        stop([proc])
        delete_queues([queue])
        client.close()
    (n0, r0), (n1, r1) = ((p["rentals"], p["rss_kb"]) for p in points[-2:])
    slope = (r1 - r0) / (n1 - n0) * 1024
    return {"mode": "subprocess `python -m rental_fsm worker`", "points": points,
            "bytes_per_rental_slope": figure(round(slope, 1), 1),
            "rss_at_100k_extrapolated_mb": figure(
                round((r1 * 1024 + slope * (100_000 - n1)) / 2**20, 1), 1),
            "note": f"measured at {', '.join(map(str, stages))} active rentals (one event "
                    "each), extrapolated linearly to 100,000"}


def _wait_rss(pid: int) -> int:
    import time
    time.sleep(3)  # imports and connection
    return rss_kb(pid)


def churn(url: str, minutes: int, per_second: int) -> dict[str, Any]:
    """Rentals start and end for ``minutes`` of simulated time (a manual clock) in this
    process: engine, event handler, timer runner and outbox sweep. RSS is sampled every
    simulated minute; growth is last against the first sample after one minute of warmup."""
    client = redis_client(url)
    namespace = unique("churn")
    keys = Keys(namespace)
    store = RedisRentalStore(client, keys)
    clock = ManualClock(datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc))
    engine = Engine(store, clock=clock)
    handler = EventHandler(store, engine, RedisDeadLetters(client, keys, clock), clock=clock)
    effects = EffectRunner(store, engine, NullAPI(), clock=clock, owner="churn")
    timers = TimerRunner(store, store.timers, engine, clock=clock)
    pool = 400
    for v in range(pool):
        store.set_capabilities(f"cV{v}", KEYLESS_CAR)
    samples: list[dict[str, int]] = []
    n = 0
    plan: dict[int, list[tuple[str, str, Any]]] = defaultdict(list)

    def event(vehicle: str, props: dict[str, Any]) -> None:
        body = json.dumps(envelope(vehicle, props, clock.now()))
        handler.handle(body, content_type="application/json", queue="q")

    for second in range(minutes * 60):
        for _ in range(per_second):
            rid, vehicle = f"cR{n}", f"cV{n % pool}"
            store.create(Rental(rid, vehicle, f"cC{n}", created_at=clock.now()))
            engine.apply(rid, "start", event_id=f"start-{rid}")
            # confirmed after 1 s, a door after 2 s, ended after 20 s, locked after 21 s
            plan[second + 1].append(("event", vehicle, {"central_lock": "UNLOCKED",
                                                        "driving_enabled": True}))
            plan[second + 2].append(("event", vehicle, {"doors_status": "OPEN"}))
            plan[second + 3].append(("event", vehicle, {"doors_status": "CLOSED",
                                                        "ignition": "OFF"}))
            plan[second + 20].append(("end", rid, None))
            plan[second + 21].append(("event", vehicle, {"central_lock": "LOCKED",
                                                         "driving_enabled": False}))
            n += 1
        for kind, target, props in plan.pop(second, []):
            if kind == "event":
                event(target, props)
            else:
                engine.apply(target, "end", event_id=f"end-{target}",
                             facts=Facts(ignition_on=False))
        effects.sweep()
        timers.tick()
        clock.advance(timedelta(seconds=1))
        if second % 60 == 59:
            gc.collect()
            samples.append({"minute": second // 60 + 1, "rss_kb": rss_kb(),
                            "objects": len(gc.get_objects())})
    ended = sum(1 for i in range(n) if store.get(f"cR{i}").state.value == "ENDED")
    client.close()
    first, last = samples[min(1, len(samples) - 1)], samples[-1]
    growth = (last["rss_kb"] - first["rss_kb"]) / first["rss_kb"] * 100
    return {"mode": "in-process engine + EventHandler + TimerRunner + EffectRunner, "
                    "ManualClock", "simulated_minutes": minutes, "rentals": n,
            "ended": ended, "samples": samples,
            "rss_growth_pct": figure(round(growth, 2), 1),
            "objects_growth": last["objects"] - first["objects"]}


def run(quick: bool) -> dict[str, Any]:
    with private_redis() as url:
        out = {"redis": redis_bytes(url, 200 if quick else 2000)}
        out["worker_rss"] = worker_rss(url, (500, 1000) if quick else (10_000, 20_000))
        out["churn"] = churn(url, 2 if quick else 10, 2 if quick else 5)
    return out
