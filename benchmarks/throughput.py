"""Scenarios 1 and 5: event throughput of real ``rental-fsm worker`` processes, and
scale-out from one to two processes on the same queue, against the two baselines. A third
run with more workers than cores (``CEILING_WORKERS``) shows what the machine does with
every core busy: how far two workers could go here at all, with Redis and RabbitMQ on
the same two cores.

1,000 RUNNING rentals on 1,000 keyless vehicles; each vehicle sends a realistic stream
(VehicleStateRecorded door/ignition records and CentralLockChanged), interleaved across
vehicles, pre-published to a queue of this run, then consumed by the worker(s).
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rental_fsm.store import Keys
from rental_fsm.store.redis import RedisRentalStore

from . import baselines
from .common import (
    AMQP_URL,
    REDIS_URL,
    CpuWindow,
    amqp,
    declare,
    delete_queues,
    drop_namespace,
    figure,
    interleaved,
    pids_named,
    publish,
    redis_client,
    seed_running,
    unique,
)
from .workers import spawn, stop, wait_for_lines, worker_env

PREFETCH = 100  # the worker's default (RENTAL_FSM_PREFETCH)
#: Events a vehicle sends in a full run (1,000 vehicles).
PER_VEHICLE = 50
#: Workers of the ceiling run: more than this machine's 2 cores, so that they are all busy.
CEILING_WORKERS = 3


def worker_run(vehicles: int, per_vehicle: int, processes: int, *,
               on_spawn: Callable[[int], None] | None = None,
               ) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """One run: returns (events/s, fingerprint of every rental after it, where the CPU
    went while the events were consumed). The CPU is counted from the last poll before
    the first commit, so the start of the worker that commits first is left out (that of
    a later one is not). ``on_spawn`` gets each worker's pid as it starts (the profiler
    attaches there)."""
    namespace, queue = unique("tp"), unique("tp-q")
    client = redis_client()
    keys = Keys(namespace)
    store = RedisRentalStore(client, keys)
    try:
        rentals = seed_running(store, vehicles, "b")
        bodies = interleaved([r.vehicle_id for r in rentals], per_vehicle,
                             datetime.now(timezone.utc))
        with amqp() as conn:
            declare(conn, queue)
            publish(conn, queue, bodies)
        ids = [r.rental_id for r in rentals]
        expected = len(bodies) + vehicles  # one line per event, one per transition
        env = worker_env(REDIS_URL, AMQP_URL, namespace, [queue], PREFETCH)
        log = Path(tempfile.gettempdir()) / f"{namespace}.log"
        procs = [spawn(env, log) for _ in range(processes)]
        if on_spawn is not None:
            for proc in procs:
                on_spawn(proc.pid)
        cpu = CpuWindow({"workers": [p.pid for p in procs],
                         "redis": pids_named("redis-server"),
                         "rabbitmq": pids_named("beam.smp")})
        try:
            elapsed, lines = wait_for_lines(client, keys, ids, expected, timeout_s=600,
                                            procs=procs, on_idle_poll=cpu.start)
            cpu.stop()
        finally:
            stop(procs)
        log.unlink()  # kept when the run failed, for its errors
        done = lines * len(bodies) / expected  # events consumed while the clock ran
        rate = done / elapsed
        prints = {}
        for rid in ids:
            rental = store.get(rid)
            entries = store.log(rid)
            prints[rid] = (rental.state.value, rental.version, len(entries),
                           tuple(e["trigger"] for e in entries if e["kind"] == "transition"))
        return rate, prints, {
            "busy_cores": cpu.busy_cores,
            "us_per_event": {name: round(seconds * 1e6 / done, 1)
                             for name, seconds in cpu.cpu_s.items()}}
    finally:
        drop_namespace(client, namespace)
        delete_queues([queue])
        client.close()


def _best(values: Sequence[float]) -> float:
    return round(max(values), 1)


def run(quick: bool) -> dict[str, Any]:
    vehicles = 100 if quick else 1000
    # PER_VEHICLE 50: runs of several seconds, so that a hiccup of the shared brokers moves
    # a figure less (raw_limit, four runs each on this machine: 13,342-15,680 events/s at
    # 20 a vehicle, a spread of 16.6 % of the median; 13,863-14,916 at 50, 7.3 %).
    per_vehicle = 5 if quick else PER_VEHICLE
    runs = 1 if quick else 3
    events = vehicles * per_vehicle
    vehicle_ids = [f"nV{i}" for i in range(vehicles)]
    t0 = datetime.now(timezone.utc)

    raw, naive_rates = [], []
    for _ in range(runs):
        ns, queue = unique("raw"), unique("raw-q")
        try:
            with amqp() as conn:
                declare(conn, queue)
            raw.append(baselines.raw_limit(interleaved(vehicle_ids, per_vehicle, t0), queue,
                                           ns, PREFETCH))
        finally:
            drop_namespace(redis_client(), ns)
            delete_queues([queue])
        ns, queue = unique("naive"), unique("naive-q")
        naive_events = min(events, 500 if quick else 4000)
        try:
            bodies = interleaved(vehicle_ids, per_vehicle, t0)[:naive_events]
            naive_rates.append(baselines.naive(bodies, vehicle_ids, queue, ns))
        finally:
            drop_namespace(redis_client(), ns)
            delete_queues([queue])

    # 1, 2 and CEILING_WORKERS workers alternate, so all see the same background load on
    # this shared box.
    one: list[float] = []
    two: list[float] = []
    ceiling: list[float] = []
    cpu: dict[str, list[dict[str, Any]]] = {"one": [], "two": [], "ceiling": []}
    prints_one: dict[str, Any] = {}
    prints_two: dict[str, Any] = {}
    for _ in range(runs):
        rate, prints_one, used = worker_run(vehicles, per_vehicle, 1)
        one.append(rate)
        cpu["one"].append(used)
        rate, prints_two, used = worker_run(vehicles, per_vehicle, 2)
        two.append(rate)
        cpu["two"].append(used)
        rate, _, used = worker_run(vehicles, per_vehicle, CEILING_WORKERS)
        ceiling.append(rate)
        cpu["ceiling"].append(used)

    raw_best, naive_best, one_best, two_best = _best(raw), _best(naive_rates), _best(one), \
        _best(two)
    same = _same(prints_one, prints_two)
    note = (f"{vehicles} rentals on {vehicles} vehicles, {events} events per run "
            f"(naive: {min(events, 500 if quick else 4000)}); best of the runs; "
            f"worker = `python -m rental_fsm worker` subprocesses, log level warning, "
            f"prefetch {PREFETCH}")
    return {
        "throughput": {
            "events_per_s": figure(one_best, len(one), samples=_round(one)),
            "raw_limit_events_per_s": figure(raw_best, len(raw), samples=_round(raw)),
            "naive_events_per_s": figure(naive_best, len(naive_rates),
                                         samples=_round(naive_rates)),
            "ratio_to_raw_limit": figure(round(one_best / raw_best, 3), len(one)),
            "ratio_to_naive": figure(round(one_best / naive_best, 2), len(one)),
            "events": events, "rentals": vehicles, "mode": "subprocess", "note": note,
        },
        "scale_out": {
            "one_worker_events_per_s": figure(one_best, len(one), samples=_round(one)),
            "two_workers_events_per_s": figure(two_best, len(two), samples=_round(two)),
            "ratio": figure(round(two_best / one_best, 3), len(two),
                            pair_ratios=[round(b / a, 3) for a, b in zip(one, two, strict=True)]),
            "rentals_identical": same,
            # More workers than cores: what the machine does with every core busy (the
            # brokers share them), so how far 2 workers could go here at all.
            "ceiling_workers": CEILING_WORKERS,
            "ceiling_events_per_s": figure(_best(ceiling), len(ceiling),
                                           samples=_round(ceiling)),
            "ceiling_ratio": figure(round(_best(ceiling) / one_best, 3), len(ceiling)),
            # While the events were consumed (medians of the runs): cores busy, and CPU
            # an event of the workers (all of them together), Redis and RabbitMQ.
            "busy_cores": {run: _median_figure([u["busy_cores"] for u in used])
                           for run, used in cpu.items()},
            "cpu_us_per_event": {
                run: {name: _median_figure([u["us_per_event"][name] for u in used])
                      for name in used[0]["us_per_event"]}
                for run, used in cpu.items()},
            "mode": "subprocess",
        },
    }


def _median_figure(samples: Sequence[float]) -> dict[str, Any]:
    return figure(statistics.median(samples), len(samples), samples=list(samples))


def _round(values: Sequence[float]) -> list[float]:
    return [round(v, 1) for v in values]


def _same(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Same final state, version, log length and transitions for every rental."""
    differ = [rid for rid in a if a[rid] != b.get(rid)]
    return {"value": not differ and len(a) == len(b), "rentals": len(a),
            "differing": len(differ), "examples": differ[:3]}
