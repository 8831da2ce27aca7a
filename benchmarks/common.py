"""Shared plumbing: loopback services, unique names, cleanup, seeding, statistics.

Redis and RabbitMQ on 127.0.0.1 are shared with other people's tests, so every run uses
its own key namespace and queue names and deletes them afterwards (never FLUSHDB). A
private ``redis-server`` on a free loopback port is started where a clean server is needed
(memory), and always stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import redis
from kombu import Connection, Queue

from rental_fsm.machine import decide
from rental_fsm.model import Rental, Timer, format_time
from rental_fsm.store.redis import RedisRentalStore

REDIS_URL = os.environ.get("RENTAL_FSM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("RENTAL_FSM_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
CORES = os.cpu_count() or 1

KEYLESS_CAR = {
    "commands": ["UNLOCK_AND_ENABLE_DRIVING", "LOCK_AND_DISABLE_DRIVING",
                 "REQUEST_VEHICLE_STATE"],
    "vehicle_state": ["CENTRAL_LOCK", "DRIVING_ENABLED", "IGNITION", "DOORS_STATUS"],
}
#: Seeded rentals get timers far away, so nothing fires during a throughput run.
FAR = {t: timedelta(days=1) for t in Timer}


def unique(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:10]}"


def figure(value: Any, runs: int, **extra: Any) -> dict[str, Any]:
    """A reported number with how it was obtained: every figure carries runs and cores."""
    return {"value": value, "runs": runs, "cores": CORES, **extra}


def percentiles(samples: Iterable[float]) -> dict[str, float]:
    data = sorted(samples)
    if not data:
        return {"n": 0}

    def pct(p: float) -> float:
        return round(data[min(len(data) - 1, int(p / 100 * len(data)))], 3)

    return {"n": len(data), "p50": pct(50), "p99": pct(99), "p99_9": pct(99.9),
            "max": round(data[-1], 3), "mean": round(statistics.fmean(data), 3)}


# -- Redis -------------------------------------------------------------------------------

def redis_client(url: str = REDIS_URL) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=30)


def drop_namespace(client: redis.Redis, namespace: str) -> None:
    """Delete every key of one of our namespaces (ours only: the server is shared)."""
    for pattern in (f"{{{namespace}}}*", f"{namespace}*"):
        batch = []
        for key in client.scan_iter(match=pattern, count=2000):
            batch.append(key)
            if len(batch) >= 2000:
                client.delete(*batch)
                batch = []
        if batch:
            client.delete(*batch)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of our own on a free loopback port; yields its URL, always stops it."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--daemonize", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- rentals -----------------------------------------------------------------------------

def running_rental(rental_id: str, vehicle_id: str, customer_id: str, now: datetime,
                   durations: Any = FAR) -> Rental:
    """A rental decided through start and start_confirmed (pure), ready to be created."""
    rental = Rental(rental_id, vehicle_id, customer_id, created_at=now)
    rental = decide(rental, "start", now=now, durations=durations).apply(rental, now)
    return decide(rental, "start_confirmed", now=now, durations=durations).apply(rental, now)


def seed_running(store: RedisRentalStore, count: int, prefix: str, *, start: int = 0,
                 now: datetime | None = None, durations: Any = FAR,
                 caps: dict[str, Any] = KEYLESS_CAR) -> list[Rental]:
    """``count`` RUNNING rentals on their own vehicles, through the store's create script."""
    now = now or datetime.now(timezone.utc)
    rentals = []
    for i in range(start, start + count):
        vehicle = f"{prefix}V{i}"
        store.set_capabilities(vehicle, caps)
        rental = running_rental(f"{prefix}R{i}", vehicle, f"{prefix}C{i}", now, durations)
        store.create(rental)
        rentals.append(rental)
    return rentals


# -- events ------------------------------------------------------------------------------

def envelope(vehicle_id: str, props: dict[str, Any], at: datetime, *,
             type_: str = "VehicleStateRecorded") -> dict[str, Any]:
    """A OneAPI envelope as the bus delivers it (VehicleStateRecorded or CentralLockChanged)."""
    meta = {"id": uuid.uuid4().hex, "type": type_, "schema_major_version": 2,
            "occurred_at": format_time(at), "flow_id": uuid.uuid4().hex}
    if type_ == "CentralLockChanged":
        data: dict[str, Any] = {"vehicle_id": vehicle_id, "central_lock": {
            "timestamp": format_time(at), "value": props["central_lock"]}}
    else:
        data = {"vehicle_id": vehicle_id, "vehicle_state": {
            k: {"timestamp": format_time(at), "value": v} for k, v in props.items()}}
    return {"metadata": meta, "data": data}


def vehicle_stream(vehicle_id: str, count: int, t0: datetime,
                   step: timedelta = timedelta(milliseconds=10)) -> list[dict[str, Any]]:
    """One vehicle's events in a rental: a door opens (the interaction), then a realistic
    mix of state records and lock changes, timestamps increasing by ``step``."""
    out = []
    for i in range(count):
        at = t0 + i * step
        if i % 4 == 3:
            lock = "LOCKED" if i % 8 == 3 else "UNLOCKED"
            out.append(envelope(vehicle_id, {"central_lock": lock}, at,
                                type_="CentralLockChanged"))
        else:
            door = "OPEN" if i % 2 == 0 else "CLOSED"
            props: dict[str, Any] = {"doors_status": door}
            if i % 4 == 1:
                props.update(ignition="OFF", driving_enabled=True)
            out.append(envelope(vehicle_id, props, at))
    return out


def interleaved(vehicles: list[str], per_vehicle: int, t0: datetime) -> list[bytes]:
    """Every vehicle's stream, round-robin. Vehicle k's i-th event happened at t0 + (i *
    len(vehicles) + k) ms: no two events of the run share a timestamp, as in a real
    fleet, so the worker's timestamp caches get no hit a real fleet would not give."""
    step = timedelta(milliseconds=len(vehicles))
    streams = [vehicle_stream(v, per_vehicle, t0 + timedelta(milliseconds=k), step)
               for k, v in enumerate(vehicles)]
    return [json.dumps(s[i]).encode() for i in range(per_vehicle) for s in streams]


# -- RabbitMQ ----------------------------------------------------------------------------

def amqp() -> Connection:
    conn = Connection(AMQP_URL, heartbeat=0, connect_timeout=5)
    conn.ensure_connection(max_retries=2)
    return conn


def publish(conn: Connection, queue: str, bodies: Iterable[bytes],
            headers: dict[str, Any] | None = None) -> int:
    count = 0
    with conn.Producer() as producer:
        Queue(queue, durable=True, auto_delete=False)(producer.channel).declare()
        for body in bodies:
            producer.publish(body, exchange="", routing_key=queue,
                             content_type="application/json", content_encoding="binary",
                             delivery_mode=2, headers=headers)
            count += 1
    return count


def declare(conn: Connection, queue: str) -> None:
    channel = conn.channel()
    Queue(queue, durable=True, auto_delete=False)(channel).declare()
    channel.close()


def queue_depth(conn: Connection, queue: str) -> tuple[int, int]:
    """(ready messages, consumers) of one of our queues."""
    channel = conn.channel()
    try:
        _, messages, consumers = channel.queue_declare(queue, passive=True)
        return int(messages), int(consumers)
    finally:
        channel.close()


def delete_queues(queues: Iterable[str]) -> None:
    with Connection(AMQP_URL, heartbeat=0) as conn:
        conn.ensure_connection(max_retries=3)
        channel = conn.channel()
        for name in queues:
            try:
                channel.queue_delete(name)
            except Exception:  # already gone: the broker closed the channel
                channel = conn.channel()
        channel.close()


# -- processes ---------------------------------------------------------------------------

def rss_kb(pid: int | None = None) -> int:
    """Resident set size (kB) of a process, from /proc (Linux)."""
    with open(f"/proc/{pid or 'self'}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


_TICKS = os.sysconf("SC_CLK_TCK")


def pids_named(name: str) -> list[int]:
    """Processes whose command name is ``name`` (/proc/<pid>/comm), e.g. the brokers."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as fh:
                    if fh.read().strip() == name:
                        found.append(int(entry))
            except OSError:  # gone meanwhile
                continue
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


class CpuWindow:
    """Where the CPU went between ``start`` and ``stop``: how many of the machine's cores
    were busy (``/proc/stat``, every process, the brokers too) and the CPU seconds of each
    named group of processes (say the workers, Redis and RabbitMQ)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self._stat: list[int] = []
        self._cpu: dict[str, float] = {}
        self.busy_cores: float | None = None
        self.cpu_s: dict[str, float] = {}

    @staticmethod
    def _read() -> list[int]:
        with open("/proc/stat") as fh:
            # user nice system idle iowait irq softirq steal (guest is counted in user)
            return [int(x) for x in fh.readline().split()[1:9]]

    def _group_cpu(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(pid) for pid in pids)
                for name, pids in self.groups.items()}

    def start(self) -> None:
        self._stat, self._cpu = self._read(), self._group_cpu()

    def stop(self) -> None:
        delta = [b - a for a, b in zip(self._stat, self._read(), strict=True)]
        total = sum(delta) or 1
        self.busy_cores = round((os.cpu_count() or 1) * (total - delta[3] - delta[4]) / total,
                                2)
        self.cpu_s = {name: round(cpu - self._cpu[name], 3)
                      for name, cpu in self._group_cpu().items()}
