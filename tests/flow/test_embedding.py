"""Embedding: building from settings, and RentalStateChanged over a real RabbitMQ."""

from __future__ import annotations

import json
from typing import Any

import pytest
from services import AMQP_URL, unique

from rental_fsm import Orchestrator, Settings
from rental_fsm.model import RentalState
from rental_fsm.simulator import Simulator
from rental_fsm.store import InMemoryRentalStore


@pytest.mark.rabbitmq
def test_every_state_change_is_published_as_rental_state_changed(
    amqp_connection, amqp_queues,  # type: ignore[no-untyped-def]
) -> None:
    """Seed 002: 'the rental might be ended any time by our Customer Service' - the
    booking backend learns it from the notification, not by polling."""
    from kombu import Exchange, Queue

    exchange = unique("rfsm-notify")
    queue_name = unique("rfsm-notify-q")
    amqp_queues.append(queue_name)
    queue = Queue(queue_name, Exchange(exchange, type="topic", durable=True),
                  routing_key="rental.#", durable=True)
    queue(amqp_connection.channel()).declare()
    seen: list[dict[str, Any]] = []
    with Simulator() as sim:
        sim.add_vehicle("keyless", "N1")
        settings = Settings.from_env({
            "RENTAL_FSM_AMQP_URL": AMQP_URL, "RENTAL_FSM_NOTIFY_EXCHANGE": exchange,
            "RENTAL_FSM_ONEAPI_URL": sim.url, "RENTAL_FSM_ONEAPI_CLIENT_ID": sim.client_id,
            "RENTAL_FSM_ONEAPI_CLIENT_SECRET": sim.client_secret.reveal()})
        orch = Orchestrator.from_settings(settings, authorize=lambda c, v: True,
                                          on_change=seen.append)
        assert isinstance(orch.store, InMemoryRentalStore)  # no RENTAL_FSM_REDIS_URL
        orch.start_rental("n-1", vehicle_id="N1", customer_id="c-1")
        orch.run_pending()  # unlock; its response confirms the start
        orch.force_end("n-1")
        orch.run_pending()
    assert orch.status("n-1").state is RentalState.ENDED
    bodies = []
    simple = amqp_connection.SimpleQueue(queue)
    for _ in range(3):
        message = simple.get(timeout=10)
        bodies.append(json.loads(message.body))
        message.ack()
    simple.close()
    assert [(b["type"], b["source"], b["dest"]) for b in bodies] == [
        ("RentalStateChanged", "IDLE", "STARTING"), ("RentalStateChanged", "STARTING",
                                                     "RUNNING"),
        ("RentalStateChanged", "RUNNING", "ENDED")]
    assert [b["message_id"] for b in bodies] == ["n-1:1", "n-1:2", "n-1:3"]
    assert bodies[-1]["status"]["end_reason"] == "force_ended"
    assert [c["dest"] for c in seen] == ["STARTING", "RUNNING", "ENDED"]


def test_a_notifier_that_fails_keeps_the_notification_until_it_is_delivered() -> None:
    from datetime import datetime, timezone

    from rental_fsm.clock import ManualClock
    from rental_fsm.notify import CallbackNotifier

    failing = {"on": True}
    delivered: list[dict[str, Any]] = []

    def callback(change: dict[str, Any]) -> None:
        if failing["on"]:
            raise ConnectionError("broker down")
        delivered.append(change)

    class NoVehicle:
        def command(self, *a: Any) -> Any:
            raise AssertionError("no command expected")

        set_rental_status = get_vehicle = command

    store = InMemoryRentalStore()
    store.set_capabilities("V1", {"commands": ["UNLOCK_AND_ENABLE_DRIVING"],
                                  "vehicle_state": []})
    orch = Orchestrator(store, NoVehicle(), authorize=lambda c, v: True,  # type: ignore[arg-type]
                        clock=ManualClock(datetime(2026, 1, 1, tzinfo=timezone.utc)),
                        notifier=CallbackNotifier(callback))
    from rental_fsm.model import Rental

    store.create(Rental("r", "V1", "c"))
    orch.engine.apply("r", "cancel")
    orch.run_pending()
    assert delivered == [] and store.pending_effects("r") != []
    failing["on"] = False
    orch.run_pending()
    assert [d["dest"] for d in delivered] == ["ENDED"] and store.pending_effects("r") == []
