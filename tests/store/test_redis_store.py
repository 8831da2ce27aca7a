"""Redis-only properties of the store: cluster slots, error translation, raw keys."""

from __future__ import annotations

import json
import uuid

import pytest
import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry
from store_helpers import T0, new_rental, step

from rental_fsm.errors import CorruptRecord, StoreUnavailable
from rental_fsm.model import Rental
from rental_fsm.store import Keys
from rental_fsm.store.base import VehicleRead
from rental_fsm.store.redis import RedisRentalStore
from rental_fsm.timers.base import DueTimer
from rental_fsm.timers.redis import RedisTimerQueue


def _tag(key: str) -> str:
    return key[key.index("{") + 1 : key.index("}")]


def test_every_key_of_one_commit_shares_one_cluster_slot() -> None:
    keys = Keys("prod-eu")
    rental = new_rental()
    commit_keys = keys.commit_keys(rental)
    assert len(set(commit_keys)) == 11
    assert {_tag(k) for k in commit_keys} == {"prod-eu"}
    assert len({key_slot(k.encode()) for k in commit_keys}) == 1
    others = [keys.vehicle_state("V"), keys.vehicle_state_ts("V"), keys.capabilities("V"),
              keys.outbox_pending, keys.timers, *keys.retained_keys("R")]
    assert {key_slot(k.encode()) for k in others} == {key_slot(commit_keys[0].encode())}


@pytest.mark.redis
def test_the_firing_script_builds_a_commit_s_keys_as_keys_does(redis_client) -> None:  # type: ignore[no-untyped-def]
    """Prepared timers are fired with keys built in Lua (store/redis.py COMMIT_KEYS_LUA)."""
    from rental_fsm.store.redis import COMMIT_KEYS_LUA

    keys = Keys("prod-eu")
    rental = new_rental(vehicle_id="V:ü/1", customer_id="C{x}")
    built = redis_client.eval(COMMIT_KEYS_LUA + "return commit_keys(ARGV[1], ARGV[2], "
                              "ARGV[3], ARGV[4])", 0, keys.prefix, rental.rental_id,
                              rental.vehicle_id, rental.customer_id)
    assert [k.decode() for k in built] == keys.commit_keys(rental)


def test_namespaces_are_validated() -> None:
    with pytest.raises(ValueError):
        Keys("has{brace}")


def test_unreachable_redis_raises_store_unavailable() -> None:
    # No client-side retries, so the test does not wait out redis-py's backoff.
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5,
                         socket_timeout=0.5, retry=Retry(NoBackoff(), 0))
    store = RedisRentalStore(client, Keys("unreachable"))
    rental = new_rental()
    calls = [
        lambda: store.get("R"),
        lambda: store.create(rental),
        lambda: step(store, rental, "start"),
        lambda: store.log("R"),
        lambda: store.merge_vehicle_state("V", {}),
        lambda: RedisTimerQueue(client, Keys("unreachable")).claim_due(T0),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable) as exc:
            call()
        assert isinstance(exc.value.__cause__, redis.ConnectionError)
    client.close()


@pytest.mark.redis
def test_records_are_plain_json_under_the_namespace(
    redis_client: redis.Redis, redis_namespace: str
) -> None:
    store = RedisRentalStore(redis_client, Keys(redis_namespace))
    rental = new_rental()
    store.create(rental)
    raw = redis_client.get(f"{{{redis_namespace}}}:rental:{rental.rental_id}")
    assert raw is not None and Rental.from_dict(json.loads(raw)) == rental


@pytest.mark.redis
def test_timer_queue_and_store_share_keys(
    redis_client: redis.Redis, redis_namespace: str
) -> None:
    store = RedisRentalStore(redis_client, Keys(redis_namespace))
    queue = RedisTimerQueue(redis_client, Keys(redis_namespace))  # e.g. another process
    rental = new_rental()
    store.create(rental)
    _, started = step(store, rental, "start")
    due = queue.claim_due(started.timers[min(started.timers)].due_at, limit=10)
    assert all(isinstance(d, DueTimer) for d in due) and due


@pytest.mark.redis
def test_an_expired_outbox_stops_being_listed(
    redis_client: redis.Redis, redis_namespace: str
) -> None:
    store = RedisRentalStore(redis_client, Keys(redis_namespace))
    rental = new_rental()
    store.create(rental)
    step(store, rental, "start")
    assert rental.rental_id in store.rentals_with_pending_effects()
    redis_client.delete(store.keys.outbox(rental.rental_id))  # as if its TTL ran out
    assert store.pending_effects(rental.rental_id) == []
    assert rental.rental_id not in store.rentals_with_pending_effects()


@pytest.mark.redis
def test_batched_writes_reload_a_script_missing_from_the_server_cache(
    redis_client: redis.Redis, redis_namespace: str,
) -> None:
    """write_batch and read_vehicles pipeline EVALSHA without asking SCRIPT EXISTS first;
    a script the server does not know (a restart or SCRIPT FLUSH) is loaded and rerun."""
    from rental_fsm.store.base import LogAppend, VehicleRead

    store = RedisRentalStore(redis_client, Keys(redis_namespace))
    rental = new_rental()
    store.create(rental)
    unknown = "0" * 40
    store._append_logs.sha = unknown
    store._read_vehicles.sha = unknown
    entry = {"at": "2026-01-01T12:00:00.000Z", "kind": "clock"}
    assert store.write_batch([LogAppend(rental.rental_id, (entry,))] * 2) == [None, None]
    assert len(store.log(rental.rental_id)) == 2  # each ran once, none twice
    prop = {"ignition": {"timestamp": "2026-01-01T12:00:05Z", "value": "OFF"}}
    [view] = store.read_vehicles([VehicleRead(rental.vehicle_id, "ev", prop)])
    assert view.state == prop
    assert store._append_logs.sha != unknown and store._read_vehicles.sha != unknown


@pytest.mark.redis
def test_read_vehicles_reports_a_corrupt_stored_state(
    redis_client: redis.Redis, redis_namespace: str
) -> None:
    store = RedisRentalStore(redis_client, Keys(redis_namespace))
    vid = f"V-{uuid.uuid4().hex[:8]}"
    key = store.keys.vehicle_state(vid)
    for garbage in ("{not json", "[1]"):
        redis_client.hset(key, "ignition", garbage)
        with pytest.raises(CorruptRecord) as exc:
            store.read_vehicles([VehicleRead(vid, "ev-c", {})])
        assert exc.value.key == key
