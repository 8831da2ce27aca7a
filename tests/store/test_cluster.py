"""The Redis store on a real Redis Cluster.

By default the test starts a cluster of its own: three ``redis-server`` nodes on free
loopback ports (no persistence), joined with ``redis-cli --cluster create``, stopped
afterwards. ``RENTAL_FSM_TEST_REDIS_CLUSTER=host:port`` (any node) runs it on an existing
cluster instead. Every script touches keys of one namespace; the cluster would answer
CROSSSLOT otherwise, and its client refuses EVALSHA in a pipeline (the store then makes
its calls one by one).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from store_helpers import T0, new_rental, step

from rental_fsm.errors import VehicleBusy
from rental_fsm.store import CommitOutcome, Keys
from rental_fsm.store.base import LogAppend, VehicleRead
from rental_fsm.store.redis import RedisRentalStore

ADDRESS = os.environ.get("RENTAL_FSM_TEST_REDIS_CLUSTER", "")


def _free_port() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        with socket.socket() as s, socket.socket() as bus:
            port = 20000 + int.from_bytes(os.urandom(2), "big") % 30000
            try:
                s.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair for a test cluster node")


@pytest.fixture(scope="module")
def cluster_address() -> Iterator[str]:
    if ADDRESS:
        yield ADDRESS
        return
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if not (server and cli):
        pytest.fail("redis-server and redis-cli are needed to start a test cluster")
    ports = [_free_port() for _ in range(3)]
    with tempfile.TemporaryDirectory() as tmp:
        procs = [subprocess.Popen(
            [server, "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", f"{tmp}/nodes-{p}.conf", "--save", "",
             "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
        try:
            for p in ports:
                _wait_for(cli, p, ["ping"], "PONG", f"node on port {p} did not start")
            subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                            "--cluster-replicas", "0", "--cluster-yes"],
                           check=True, capture_output=True, timeout=60)
            _wait_for(cli, ports[0], ["cluster", "info"], "cluster_state:ok",
                      "did not reach cluster_state:ok")
            yield f"127.0.0.1:{ports[0]}"
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait_for(cli: str, port: int, command: list[str], answer: str, what: str) -> None:
    """Ask the node ``command`` until its reply holds ``answer`` (10 s at most)."""
    for _ in range(200):
        reply = subprocess.run([cli, "-p", str(port), *command], capture_output=True,
                               text=True).stdout
        if answer in reply:
            return
        time.sleep(0.05)
    pytest.fail(f"test cluster: {what}")


@pytest.fixture
def cluster_store(cluster_address: str) -> Iterator[RedisRentalStore]:
    from redis.cluster import RedisCluster

    host, port = cluster_address.rsplit(":", 1)
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
    [view] = store.read_vehicles([VehicleRead(rental.vehicle_id, "ev-1")])
    assert (view.rental_id, view.duplicate) == (rental.rental_id, True)
    assert view.rental is not None and view.rental.version == rental.version
    [outcome] = store.write_batch([LogAppend(rental.rental_id, (
        {"kind": "event", "at": "2026-01-01T00:00:02.000Z", "queue": "q", "event": {}},))])
    assert outcome is None
    step(store, rental, "force_end")
    assert [e["seq"] for e in store.log(rental.rental_id)] == [1, 2, 3, 4]
    assert store.expires_in(rental.rental_id) is not None
    assert store.merge_vehicle_state("V", {"x": {"timestamp": "2026-01-01T00:00:00Z",
                                                 "value": 1}})["x"]["value"] == 1
    # the event path's read, on the cluster client (it builds keys inside the script)
    ignition = {"ignition": {"timestamp": "2026-01-01T00:00:01.000Z", "value": "OFF"}}
    views = store.read_vehicles([VehicleRead(rental.vehicle_id, "ev-9", ignition),
                                 VehicleRead("V", "ev-10")])
    assert views[0].state["ignition"]["value"] == "OFF" and views[0].rental_id is None
    assert views[1].state["x"]["value"] == 1 and views[1].rental_id is None
