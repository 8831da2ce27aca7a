"""``rental-fsm worker`` as a real process: SIGKILL, restarts of Redis and RabbitMQ."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from services import AMQP_URL, in_ci, unique
from worker_helpers import KEYLESS_CAR, envelope, now_plus, publish, redis_parts

from rental_fsm.effects import DEFAULT_PARALLEL
from rental_fsm.model import RentalState
from rental_fsm.simulator import Simulator

pytestmark = [pytest.mark.redis, pytest.mark.rabbitmq, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def worker_env(namespace: str, queue: str, sim: Simulator, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RENTAL_FSM_")}
    env.update({
        "RENTAL_FSM_REDIS_URL": redis_url, "RENTAL_FSM_NAMESPACE": namespace,
        "RENTAL_FSM_AMQP_URL": AMQP_URL, "RENTAL_FSM_EVENT_QUEUES": queue,
        "RENTAL_FSM_ONEAPI_URL": sim.url, "RENTAL_FSM_ONEAPI_CLIENT_ID": sim.client_id,
        "RENTAL_FSM_ONEAPI_CLIENT_SECRET": sim.client_secret.reveal(),
        "RENTAL_FSM_LOG_FORMAT": "json", "RENTAL_FSM_LOG_LEVEL": "warning",
        "RENTAL_FSM_PREFETCH": "50", "PYTHONPATH": str(ROOT),
    })
    return env


def spawn(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "rental_fsm", "worker", *args], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)


def stream(vehicles: list[str], filler: int) -> list[dict[str, Any]]:
    out = []
    for i in range(filler + 1):
        for v in vehicles:
            props = ({"central_lock": "UNLOCKED", "driving_enabled": True} if i == 0
                     else {"doors_status": "OPEN" if i % 2 else "CLOSED"})
            out.append(envelope(v, props, now_plus(1 + i / 100)))
    return out


def running(parts: Any, rentals: list[Any]) -> int:
    return sum(parts.store.get(r.rental_id).state is RentalState.RUNNING for r in rentals)


def events_logged(parts: Any, rentals: list[Any]) -> int:
    return sum(e["kind"] == "event" for r in rentals for e in parts.store.log(r.rental_id))


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def assert_identical_to_an_uninterrupted_run(parts: Any, rentals: list[Any], sim: Simulator,
                                             claimed_left: int) -> None:
    for r in rentals:
        stored = parts.store.get(r.rental_id)
        assert (stored.state, stored.version) == (RentalState.RUNNING, 3), r.rental_id
        assert [e["trigger"] for e in parts.store.log(r.rental_id)
                if e["kind"] == "transition"] == ["start", "start_confirmed",
                                                  "customer_interacted"]
    puts = Counter(path.split("/")[2] for method, path, _ in sim.requests
                   if method == "PUT" and "rental-status" in path)
    assert max(puts.values()) == 1, "a command was sent twice for one transition"
    assert sum(puts.values()) >= len(rentals) - claimed_left


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


def test_a_worker_killed_mid_stream_and_restarted_loses_and_repeats_nothing(
    redis_client, redis_namespace, amqp_connection, amqp_queues, sim, tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    parts, rentals, env, log, _ = _stream_setup(
        redis_client, redis_namespace, amqp_connection, amqp_queues, sim, tmp_path, 50)

    first = spawn(env, log=log)
    total = 41 * len(rentals)  # events in the queue
    try:
        wait_until(lambda: events_logged(parts, rentals) >= total // 4, 60,
                   "a quarter of the stream")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert events_logged(parts, rentals) < total, "killed too late to prove anything"

    second = spawn(env, "--once", "--idle", "2", log=log)
    assert second.wait(180) == 0, log.read_text()[-3000:]
    left = [e for r in rentals for e in parts.store.pending_effects(r.rental_id)]
    # Only effects that were on the wire at the kill may be left: each is claimed (its
    # outcome is unknown, so it is never resent), at most one per parallel sender.
    assert len(left) <= DEFAULT_PARALLEL
    assert all(parts.store.effect_claim(e.rental_id, e.effect_id) for e in left)
    claimed_left = len(left)
    assert_identical_to_an_uninterrupted_run(parts, rentals, sim, claimed_left)


def _stream_setup(
    redis_client: Any, namespace: str, amqp_connection: Any, amqp_queues: list[str],
    sim: Simulator, tmp_path: Path, count: int, redis_url: str = "redis://127.0.0.1:6379/0",
) -> tuple[Any, list[Any], dict[str, str], Path, str]:
    """``count`` started rentals on simulator vehicles, a queue holding 41 events per
    vehicle, and the environment of a worker process for them."""
    queue = unique("rfsm-events")
    amqp_queues.append(queue)
    parts = redis_parts(redis_client, namespace, AMQP_URL, [queue], api=None)
    vehicles, rentals = _fleet(parts, sim, count)
    publish(amqp_connection, queue, stream(vehicles, 40))
    return parts, rentals, worker_env(namespace, queue, sim, redis_url), \
        tmp_path / "worker.log", queue


def _fleet(parts: Any, sim: Simulator, count: int) -> tuple[list[str], list[Any]]:
    """``count`` keyless simulator vehicles, each with a started rental (unlock sent)."""
    from rental_fsm.model import Rental

    vehicles = [sim.add_vehicle("keyless") for _ in range(count)]
    rentals = []
    for i, vid in enumerate(vehicles):
        parts.store.set_capabilities(vid, KEYLESS_CAR)
        rid = f"kr{i}"
        parts.store.create(Rental(rid, vid, f"kc{i}"))
        parts.engine.apply(rid, "start", event_id=f"start-{i}")
        for entry in parts.store.pending_effects(rid):
            parts.store.complete_effect(rid, entry.effect_id)
        rentals.append(parts.store.get(rid))
    return vehicles, rentals


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A redis-server of this test's own, with AOF, that the test may stop and restart."""
    if shutil.which("redis-server") is None:
        if in_ci():
            pytest.fail("redis-server is not installed (required when CI=true)")
        pytest.skip("redis-server is not installed")
    port = _free_port()
    data = tmp_path / "redis"
    data.mkdir()
    args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data),
            "--appendonly", "yes", "--appendfsync", "always", "--save", ""]
    info: dict[str, Any] = {"port": port, "args": args}

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: _answers(port), 20, "redis-server to start")
        info["proc"] = proc
        return proc

    info["start"] = start
    start()
    yield info
    proc = info["proc"]
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.mark.parametrize("how", ["terminate", "kill"])
def test_the_worker_rides_out_a_redis_restart_and_loses_nothing(
    private_redis, amqp_connection, amqp_queues, sim, tmp_path, how,  # type: ignore[no-untyped-def]
) -> None:
    """Redis stopped (gracefully, or SIGKILL with ``appendfsync always``) under a running
    worker and restarted: every committed transition, timer and outbox entry survives,
    and the worker carries on by itself."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=private_redis["port"])
    parts, rentals, env, log, queue = _stream_setup(
        client, unique("rfsm-test"), amqp_connection, amqp_queues, sim, tmp_path, 30,
        redis_url=f"redis://127.0.0.1:{private_redis['port']}/0")
    worker = spawn(env, log=log)
    try:
        wait_until(lambda: running(parts, rentals) >= 5, 60, "the first transitions")
        proc = private_redis["proc"]
        before = {r.rental_id: parts.store.get(r.rental_id).version for r in rentals}
        getattr(proc, how)()  # Redis goes away mid-run (AOF keeps what was committed)
        proc.wait(20)
        time.sleep(1.0)
        private_redis["start"]()
        after = {r.rental_id: parts.store.get(r.rental_id).version for r in rentals}
        assert all(after[rid] >= version for rid, version in before.items()), \
            "a committed transition was lost"
        wait_until(lambda: running(parts, rentals) == len(rentals), 120,
                   "every rental to run after the restart")
        wait_until(lambda: _queue_empty(amqp_connection, queue), 60, "the queue to drain")
        wait_until(lambda: not parts.store.rentals_with_pending_effects(), 60,
                   "the outbox to drain")
        assert worker.poll() is None, "the worker died instead of riding out the outage"
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log.read_text()[-3000:]
    assert_identical_to_an_uninterrupted_run(parts, rentals, sim, 0)
    assert b"event.retrying" in log.read_bytes() or b"worker.loop_retrying" in log.read_bytes()


def _queue_empty(connection: Any, queue: str) -> bool:
    channel = connection.channel()
    try:
        _, messages, _ = channel.queue_declare(queue, passive=True)
        return bool(messages == 0)
    finally:
        channel.close()


def test_the_worker_reconnects_after_rabbitmq_restarts(
    redis_client, redis_namespace, amqp_connection, amqp_queues, sim, tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    """RabbitMQ's application is restarted under a running worker (durable queue,
    persistent messages): the worker reconnects on its own and finishes the stream."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed") if not in_ci() else pytest.fail(
            "rabbitmqctl missing")
    parts, rentals, env, log, _ = _stream_setup(
        redis_client, redis_namespace, amqp_connection, amqp_queues, sim, tmp_path, 30)
    worker = spawn(env, log=log)
    try:
        wait_until(lambda: running(parts, rentals) >= 5, 60, "the first transitions")
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True,
                       timeout=120)
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True,
                       timeout=120)
        wait_until(lambda: running(parts, rentals) == len(rentals), 180,
                   "every rental to run after the broker restart")
        wait_until(lambda: not parts.store.rentals_with_pending_effects(), 60,
                   "the outbox to drain")
        assert worker.poll() is None, "the worker died instead of reconnecting"
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log.read_text()[-3000:]
    amqp_connection.ensure_connection(max_retries=10)
    assert_identical_to_an_uninterrupted_run(parts, rentals, sim, 0)
