"""``rental_ids``: the contract `rental-fsm export --all` relies on, on both stores."""

from __future__ import annotations

from datetime import timedelta

from store_helpers import new_rental, step

from rental_fsm.clock import ManualClock
from rental_fsm.config import DEFAULT_RETENTION_DAYS
from rental_fsm.store.base import RentalStore


def test_rental_ids_lists_every_stored_rental_sorted(store: RentalStore) -> None:
    assert store.rental_ids() == []
    ids = []
    for _ in range(3):
        rental = new_rental()
        store.create(rental)
        step(store, rental, "start")
        ids.append(rental.rental_id)
    assert store.rental_ids() == sorted(ids)


def test_rental_ids_forgets_expired_memory_rentals(clock: ManualClock) -> None:
    from rental_fsm.store import InMemoryRentalStore

    store = InMemoryRentalStore(clock=clock)
    rental = new_rental()
    store.create(rental)
    _, rental = step(store, rental, "start")
    step(store, rental, "force_end")
    assert store.rental_ids() == [rental.rental_id]
    clock.advance(timedelta(days=DEFAULT_RETENTION_DAYS, seconds=1))
    assert store.rental_ids() == []
