"""Store support for the worker: the vehicle index, effect claims, dead letters."""

from __future__ import annotations

import threading

import pytest
from store_helpers import T0, new_rental, step

from rental_fsm.store.base import RentalStore
from rental_fsm.store.dead_letters import InMemoryDeadLetters


def test_active_rental_follows_the_rental_through_its_life(store: RentalStore) -> None:
    rental = new_rental()
    store.create(rental)
    assert store.active_rental(rental.vehicle_id) is None  # IDLE holds nothing
    _, rental = step(store, rental, "start")
    assert store.active_rental(rental.vehicle_id) == rental.rental_id
    _, rental = step(store, rental, "force_end")
    assert store.active_rental(rental.vehicle_id) is None


def test_an_effect_is_claimed_by_exactly_one_of_many_senders(store: RentalStore) -> None:
    rental = new_rental()
    store.create(rental)
    _, rental = step(store, rental, "start")
    (entry,) = store.pending_effects(rental.rental_id)
    wins: list[str] = []

    def sender(name: str) -> None:
        if store.claim_effect(rental.rental_id, entry.effect_id, name, T0):
            wins.append(name)

    threads = [threading.Thread(target=sender, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(wins) == 1
    assert store.effect_claim(rental.rental_id, entry.effect_id) == (wins[0], T0)


def test_a_claim_is_never_taken_over_and_completion_clears_it(store: RentalStore) -> None:
    """At most once: an effect whose sender died may have run; nobody sends it again."""
    rental = new_rental()
    store.create(rental)
    _, rental = step(store, rental, "start")
    (entry,) = store.pending_effects(rental.rental_id)
    assert store.claim_effect(rental.rental_id, entry.effect_id, "dead-worker", T0)
    assert not store.claim_effect(rental.rental_id, entry.effect_id, "new-worker", T0)
    assert store.complete_effect(rental.rental_id, entry.effect_id)
    assert store.effect_claim(rental.rental_id, entry.effect_id) is None
    assert not store.claim_effect(rental.rental_id, entry.effect_id, "late", T0)


def test_an_unknown_effect_cannot_be_claimed(store: RentalStore) -> None:
    rental = new_rental()
    store.create(rental)
    assert not store.claim_effect(rental.rental_id, "nope:1:0", "w", T0)


@pytest.mark.redis
def test_redis_dead_letters_keep_body_reason_and_redacted_headers(
    redis_client, redis_namespace,  # type: ignore[no-untyped-def]
) -> None:
    from rental_fsm.store import Keys
    from rental_fsm.store.dead_letters import RedisDeadLetters

    letters = RedisDeadLetters(redis_client, Keys(redis_namespace))
    letters.put(b"not json", reason="not JSON", queue="q1",
                headers={"authorization": "Bearer abc.def.ghi", "x": 1})
    letters.put(b"\x80\x04binary", reason="content type", queue="q1")
    first, second = letters.list()
    assert (first["body"], first["reason"], first["encoding"]) == ("not json", "not JSON",
                                                                  "utf-8")
    assert "abc.def" not in first["headers"]
    assert second["encoding"] == "base64"


def test_memory_dead_letters_keep_every_message() -> None:
    letters = InMemoryDeadLetters()
    for i in range(3):
        letters.put(f"m{i}".encode(), reason="bad", queue="q")
    assert [x["body"] for x in letters.list()] == ["m0", "m1", "m2"]


def test_an_aborted_start_is_remembered_for_its_vehicle_until_it_expires(
    store: RentalStore,
) -> None:
    from datetime import timedelta

    assert store.aborted_rental("V-x") is None
    store.remember_abort("V-x", "R-x", timedelta(seconds=60))
    assert store.aborted_rental("V-x") == "R-x"
    store.remember_abort("V-y", "R-y", timedelta(milliseconds=1))
    import time

    time.sleep(0.01)
    clock = getattr(store, "_clock", None)
    if clock is not None:  # the in-memory store measures expiry on its (manual) clock
        clock.advance(timedelta(seconds=1))
    assert store.aborted_rental("V-y") is None
