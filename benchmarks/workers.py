"""``rental-fsm worker`` as real subprocesses, and progress read back from Redis.

The throughput, scale-out and RSS scenarios run the production entry point
(``python -m rental_fsm worker``) configured through ``RENTAL_FSM_*`` like an operator
would, at log level ``warning`` (``info`` logs one line per event). Progress is the
number of rental-log lines in Redis: every handled event appends one (two when it moved
the rental), so the clock stops at the commit of the last event, not at a process exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis

from rental_fsm.store import Keys

ROOT = Path(__file__).resolve().parents[1]


def worker_env(redis_url: str, amqp_url: str, namespace: str, queues: Sequence[str],
               prefetch: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RENTAL_FSM_")}
    env.update({
        "RENTAL_FSM_REDIS_URL": redis_url, "RENTAL_FSM_NAMESPACE": namespace,
        "RENTAL_FSM_AMQP_URL": amqp_url, "RENTAL_FSM_EVENT_QUEUES": ",".join(queues),
        # No event of the benchmark mix has a command; a closed loopback port otherwise.
        "RENTAL_FSM_ONEAPI_URL": "http://127.0.0.1:9", "RENTAL_FSM_ONEAPI_CLIENT_ID": "bench",
        "RENTAL_FSM_ONEAPI_CLIENT_SECRET": "bench", "RENTAL_FSM_LOG_FORMAT": "json",
        "RENTAL_FSM_LOG_LEVEL": "warning", "RENTAL_FSM_PREFETCH": str(prefetch),
        "PYTHONPATH": str(ROOT),
    })
    return env


def spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "rental_fsm", "worker"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)


def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


#: Sums the lengths of the logs server-side: the progress poll runs every 50 ms on the
#: machine under test, and a pipeline of 1,000 LLENs cost the harness 11.4 ms of CPU a
#: poll (about a fifth of a core taken from the worker), this script 0.6 ms.
_SUM_LLEN_LUA = """
local n = 0
for i = 1, #KEYS do n = n + redis.call('LLEN', KEYS[i]) end
return n
"""


def log_lines(client: redis.Redis, keys: Keys, rental_ids: Sequence[str]) -> int:
    """Lines in the rentals' logs, in one script call."""
    return int(client.eval(_SUM_LLEN_LUA, len(rental_ids),  # type: ignore[arg-type]
                           *(keys.log(rid) for rid in rental_ids)))


def wait_for_lines(client: redis.Redis, keys: Keys, rental_ids: Sequence[str],
                   expected: int, *, timeout_s: float, procs: Sequence[Any] = (),
                   poll_s: float = 0.05,
                   on_idle_poll: Callable[[], None] | None = None) -> tuple[float, int]:
    """Wait until the logs hold ``expected`` lines; returns (seconds from the last poll
    that saw no progress to the one that saw them all, lines done in that time). The work
    began after that poll, so the time is an upper bound (by ``poll_s`` at most) and is
    never zero, even when everything lands between two polls. ``on_idle_poll`` is called
    after the starting count and after each poll that saw no progress yet (the last call
    starts the measured time).
    Stops early when progress stalls 5 s."""
    base = log_lines(client, keys, rental_ids)
    idle_t, first_t = time.perf_counter(), 0.0
    if on_idle_poll is not None:  # the starting count is the first poll without progress
        on_idle_poll()
    last_n, last_change = base, time.monotonic()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = log_lines(client, keys, rental_ids)
        now = time.perf_counter()
        if n != last_n:
            last_n, last_change = n, time.monotonic()
            if not first_t:
                first_t = idle_t
        elif not first_t:
            idle_t = now
            if on_idle_poll is not None:
                on_idle_poll()
        if n >= expected:
            return now - first_t, n - base
        if first_t and time.monotonic() - last_change > 5:
            break
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a worker process exited during the benchmark")
        time.sleep(poll_s)
    raise TimeoutError(f"only {last_n} of {expected} log lines after the timeout")
