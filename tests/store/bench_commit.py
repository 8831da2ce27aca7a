"""Lua script vs WATCH/MULTI for the commit: ``python tests/store/bench_commit.py``.

Not a test (pytest does not collect it). The WATCH variant below writes the same keys as
the Lua script (record, dedupe set, outbox, log, timers, indexes) so the comparison is
fair; it is kept here only as the measured alternative. Uses a throwaway namespace on the
local Redis and deletes it afterwards (never FLUSHDB: the server is shared).
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import redis
from store_helpers import T0, transition_entry

from rental_fsm.errors import VersionConflict
from rental_fsm.machine import decide
from rental_fsm.model import Rental
from rental_fsm.store import Commit, Keys
from rental_fsm.store.base import complete_log_line, log_entry_tail, outbox_entries
from rental_fsm.store.redis import RedisRentalStore
from rental_fsm.timers.redis import timer_args

N = 2000


def _commit_for(rental: Rental) -> Commit:
    decision = decide(rental, "state_check", now=T0)
    new = decision.apply(rental, T0)
    return Commit(new, rental.version, uuid.uuid4().hex, decision.effects,
                  (transition_entry(rental, "state_check", "STARTING", T0),))


def watch_commit(client: redis.Redis, keys: Keys, commit: Commit) -> bool:
    """The WATCH/MULTI equivalent; False = lost the race (retry)."""
    rental = commit.rental
    rid = rental.rental_id
    k = keys.commit_keys(rental)
    with client.pipeline(transaction=True) as pipe:
        try:
            pipe.watch(k[0], k[2], k[6], k[7], k[8], k[1])
            if commit.event_id and pipe.sismember(k[2], commit.event_id):
                return True
            if json.loads(pipe.get(k[0]))["version"] != commit.expected_version:  # type: ignore[arg-type]
                return False
            holder = pipe.get(k[7])
            assert holder in (None, rid.encode())
            current = pipe.hgetall(k[6])
            seq = pipe.llen(k[1])
            pipe.multi()
            pipe.set(k[0], json.dumps(rental.to_dict(), separators=(",", ":")))
            pipe.sadd(k[2], commit.event_id or "")
            pipe.set(k[7], rid)
            pipe.set(k[8], rid)
            args = timer_args(rid, rental.timers)
            for i in range(0, len(args), 3):
                name, member, score = args[i], args[i + 1], args[i + 2]
                old = current.get(str(name).encode())
                if old != str(member).encode():
                    if old:
                        pipe.zrem(k[5], old)
                    pipe.zadd(k[5], {str(member): score})
                    pipe.hset(k[6], str(name), str(member))
            for entry in outbox_entries(rental, commit.effects):
                pipe.hset(k[3], entry.effect_id, json.dumps(entry.to_dict()))
            for n, e in enumerate(commit.log_entries, start=seq + 1):
                pipe.rpush(k[1], complete_log_line(n, log_entry_tail(rid, e)))
            pipe.execute()
            return True
        except redis.WatchError:
            return False


def _setup(client: redis.Redis, keys: Keys) -> tuple[RedisRentalStore, Rental]:
    store = RedisRentalStore(client, keys)
    tag = uuid.uuid4().hex[:6]
    rental = Rental(f"R-{tag}", f"V-{tag}", f"C-{tag}", created_at=T0)
    store.create(rental)
    decision = decide(rental, "start", now=T0)
    started = decision.apply(rental, T0)
    store.commit(Commit(started, 0, "s", decision.effects))
    return store, started


def sequential(client: redis.Redis, keys: Keys, use_lua: bool) -> float:
    store, rental = _setup(client, keys)
    began = time.perf_counter()
    for _ in range(N):
        commit = _commit_for(rental)
        if use_lua:
            store.commit(commit)
        else:
            assert watch_commit(client, keys, commit)
        rental = commit.rental
    return (time.perf_counter() - began) / N * 1000


def contended(
    client: redis.Redis, keys: Keys, use_lua: bool, threads: int = 8
) -> tuple[float, int]:
    store, rental = _setup(client, keys)
    retries = [0]
    per_thread = N // threads

    def worker() -> None:
        for _ in range(per_thread):
            while True:
                commit = _commit_for(store.get(rental.rental_id))
                try:
                    ok = store.commit(commit) is not None if use_lua else watch_commit(
                        client, keys, commit)
                except VersionConflict:
                    ok = False
                if ok:
                    break
                retries[0] += 1

    began = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return (time.perf_counter() - began) / (per_thread * threads) * 1000, retries[0]


def main() -> None:
    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = Keys(f"bench-{uuid.uuid4().hex[:8]}")
    try:
        for use_lua in (True, False):
            name = "lua  " if use_lua else "watch"
            seq_ms = sequential(client, keys, use_lua)
            con_ms, retries = contended(client, keys, use_lua)
            print(f"{name}: sequential {seq_ms:.3f} ms/commit; 8 threads on one rental "
                  f"{con_ms:.3f} ms/commit, {retries} retries for {N} commits")
    finally:
        doomed = list(client.scan_iter(match=f"{keys.tag}*", count=1000))
        if doomed:
            client.delete(*doomed)


if __name__ == "__main__":
    main()
