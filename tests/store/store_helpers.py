"""Helpers shared by the store tests: fresh rentals and one orchestrator-like step."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from rental_fsm.machine import decide
from rental_fsm.model import Facts, Rental, format_time
from rental_fsm.store import Commit, CommitOutcome
from rental_fsm.store.base import RentalStore

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def new_rental(**kw: Any) -> Rental:
    tag = uuid.uuid4().hex[:8]
    fields: dict[str, Any] = {
        "rental_id": f"R-{tag}",
        "vehicle_id": f"V-{tag}",
        "customer_id": f"C-{tag}",
        "created_at": T0,
    }
    fields.update(kw)
    return Rental(**fields)


def transition_entry(rental: Rental, trigger: str, dest: str, now: datetime) -> dict[str, Any]:
    return {
        "at": format_time(now),
        "kind": "transition",
        "trigger": trigger,
        "source": rental.state.value,
        "dest": dest,
    }


def step(
    store: RentalStore,
    rental: Rental,
    trigger: str,
    *,
    event_id: str | None = None,
    now: datetime = T0,
    facts: Facts | None = None,
) -> tuple[CommitOutcome, Rental]:
    """Decide ``trigger`` on ``rental`` and commit it the way the orchestrator will."""
    decision = decide(rental, trigger, now=now, facts=facts)
    new = decision.apply(rental, now)
    commit = Commit(
        rental=new,
        expected_version=rental.version,
        event_id=event_id or f"ev-{uuid.uuid4().hex}",
        effects=decision.effects,
        log_entries=(transition_entry(rental, trigger, decision.dest.value, now),),
    )
    return store.commit(commit), new
