"""The Redis store on a real Redis Cluster (opt-in: it needs a cluster of its own).

Set ``RENTAL_FSM_TEST_REDIS_CLUSTER=host:port`` (any node) to run it, e.g. with three
local nodes made by ``redis-cli --cluster create ... --cluster-replicas 0``. Every commit
script touches keys of one namespace; the cluster would answer CROSSSLOT otherwise.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from store_helpers import T0, new_rental, step

from rental_fsm.errors import VehicleBusy
from rental_fsm.store import CommitOutcome, Keys
from rental_fsm.store.redis import RedisRentalStore

ADDRESS = os.environ.get("RENTAL_FSM_TEST_REDIS_CLUSTER", "")

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not ADDRESS, reason="RENTAL_FSM_TEST_REDIS_CLUSTER is not set"),
]


@pytest.fixture
def cluster_store() -> Iterator[RedisRentalStore]:
    from redis.cluster import RedisCluster

    host, port = ADDRESS.rsplit(":", 1)
    client = RedisCluster(host=host, port=int(port))
    keys = Keys(f"rfsm-cluster-{uuid.uuid4().hex[:8]}")
    yield RedisRentalStore(client, keys)
    node = client.get_node_from_key(keys.timers)
    doomed = list(client.scan_iter(match=f"{keys.tag}*", count=1000, target_nodes=node))
    for key in doomed:
        client.delete(key)
    client.close()


def test_a_whole_rental_runs_on_a_cluster(cluster_store: RedisRentalStore) -> None:
    store = cluster_store
    rental = new_rental()
    store.create(rental)
    outcome, rental = step(store, rental, "start", event_id="ev-1")
    assert outcome is CommitOutcome.APPLIED
    assert step(store, rental, "start_confirmed", event_id="ev-1")[0] is CommitOutcome.DUPLICATE
    rival = new_rental(vehicle_id=rental.vehicle_id)
    store.create(rival)
    with pytest.raises(VehicleBusy):
        step(store, rival, "start")
    due = store.timers.claim_due(T0 + timedelta(hours=1))
    assert {d.rental_id for d in due} == {rental.rental_id}
    _, rental = step(store, rental, "start_confirmed")
    step(store, rental, "force_end")
    assert [e["seq"] for e in store.log(rental.rental_id)] == [1, 2, 3]
    assert store.expires_in(rental.rental_id) is not None
    assert store.merge_vehicle_state("V", {"x": {"timestamp": "2026-01-01T00:00:00Z",
                                                 "value": 1}})["x"]["value"] == 1
