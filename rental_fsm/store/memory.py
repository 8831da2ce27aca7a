"""``InMemoryRentalStore``: the RentalStore contract in dicts behind one lock.

For tests, the simulator and the demo. Records are kept as JSON text, exactly as Redis
keeps them, so the encoding (and a corrupt record) behaves the same in both. Retention is
measured on the injected clock and applied lazily when a rental is read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TextIO

from .. import jsonfast
from ..clock import Clock, SystemClock
from ..config import DEFAULT_RETENTION_DAYS
from ..errors import (
    CorruptRecord,
    CustomerBusy,
    InvalidInput,
    RentalExists,
    RentalFSMError,
    RentalNotFound,
    VehicleBusy,
    VersionConflict,
)
from ..model import Rental, RentalState
from ..timers.base import DueTimer, is_current, member, parse_member, to_ms
from ..timers.memory import InMemoryTimerQueue
from .base import (
    PREPARE_LEASE,
    Commit,
    CommitOutcome,
    FiredTimer,
    LogAppend,
    OutboxEntry,
    PreparedTimer,
    TimerRound,
    VehicleRead,
    VehicleView,
    WriteResult,
    check_log_entry,
    complete_log_line,
    decode_claim,
    encode_claim,
    log_entry_tail,
    outbox_entries,
    read_vehicles_one_by_one,
    retention_ms,
    scan_reached,
    timestamp_us,
    write_jsonl,
    write_one_by_one,
)


class InMemoryRentalStore:
    """Thread-safe in-memory store; ``timers`` is the queue its commits arm and cancel."""

    def __init__(
        self,
        timers: InMemoryTimerQueue | None = None,
        *,
        retention: timedelta = timedelta(days=DEFAULT_RETENTION_DAYS),
        clock: Clock | None = None,
    ) -> None:
        retention_ms(retention)
        self.timers = timers or InMemoryTimerQueue()
        self._retention = retention
        self._clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._records: dict[str, str] = {}
        self._logs: dict[str, list[str]] = {}
        self._applied: dict[str, set[str]] = {}
        self._outbox: dict[str, dict[str, OutboxEntry]] = {}
        self._expires: dict[str, datetime] = {}
        self._vehicle_active: dict[str, str] = {}
        self._customer_active: dict[str, str] = {}
        self._vstate: dict[str, dict[str, tuple[int, dict[str, Any]]]] = {}
        self._caps: dict[str, str] = {}
        self._claims: dict[str, dict[str, str]] = {}
        self._aborted: dict[str, tuple[str, datetime]] = {}
        #: rental id -> the PreparedTimer of its next timer, or the end of a preparation
        #: lease (one per rental, as in Redis: the first to fire drops the others anyway).
        self._prepared: dict[str, PreparedTimer | datetime] = {}

    # -- rentals -------------------------------------------------------------------------

    def create(self, rental: Rental, log_entries: Sequence[Mapping[str, Any]] = ()) -> None:
        for entry in log_entries:
            check_log_entry(entry)
        with self._lock:
            self._expire(rental.rental_id)
            if rental.rental_id in self._records:
                raise RentalExists(rental.rental_id)
            self._write(rental, None, (), log_entries)

    def get(self, rental_id: str) -> Rental:
        with self._lock:
            return self._load(rental_id)

    def commit(self, commit: Commit) -> CommitOutcome:
        rental = commit.rental
        rid = rental.rental_id
        with self._lock:
            self._expire(rid)
            if commit.event_id is not None and commit.event_id in self._applied.get(rid, ()):
                return CommitOutcome.DUPLICATE
            stored = self._load(rid)
            if stored.version != commit.expected_version:
                raise VersionConflict(rid, commit.expected_version)
            self._write(rental, commit.event_id, commit.effects, commit.log_entries)
            if commit.abort_watch is not None:
                self.remember_abort(rental.vehicle_id, rid, commit.abort_watch)
            return CommitOutcome.APPLIED

    def get_many(self, rental_ids: Sequence[str]) -> list[Rental | None]:
        out: list[Rental | None] = []
        for rid in rental_ids:
            try:
                out.append(self.get(rid))
            except RentalNotFound:
                out.append(None)
        return out

    def write_batch(self, writes: Sequence[Commit | LogAppend]) -> list[WriteResult]:
        return write_one_by_one(self, writes)

    def read_vehicles(self, reads: Sequence[VehicleRead]) -> list[VehicleView]:
        return read_vehicles_one_by_one(self, reads)

    def _write(
        self,
        rental: Rental,
        event_id: str | None,
        effects: Sequence[Any],
        log_entries: Sequence[Mapping[str, Any]],
    ) -> None:
        """Check the indexes, then write everything (the caller holds the lock)."""
        rid = rental.rental_id
        if rental.active:
            holder = self._vehicle_active.get(rental.vehicle_id, rid)
            if holder != rid:
                raise VehicleBusy(rental.vehicle_id, holder)
            holder = self._customer_active.get(rental.customer_id, rid)
            if holder != rid:
                raise CustomerBusy(rental.customer_id, holder)
            self._vehicle_active[rental.vehicle_id] = rid
            self._customer_active[rental.customer_id] = rid
        else:
            if self._vehicle_active.get(rental.vehicle_id) == rid:
                del self._vehicle_active[rental.vehicle_id]
            if self._customer_active.get(rental.customer_id) == rid:
                del self._customer_active[rental.customer_id]
        self._records[rid] = jsonfast.dumps(rental.to_dict())
        self._prepared.pop(rid, None)  # decided on the record this replaces
        if event_id is not None:
            self._applied.setdefault(rid, set()).add(event_id)
        self.timers.sync_rental(rid, rental.timers)
        for entry in outbox_entries(rental, effects):
            self._outbox.setdefault(rid, {})[entry.effect_id] = entry
        self._append(rid, log_entries)
        if rental.state is RentalState.ENDED:
            self._expires[rid] = self._clock.now() + self._retention

    def _load(self, rental_id: str) -> Rental:
        self._expire(rental_id)
        text = self._records.get(rental_id)
        if text is None:
            raise RentalNotFound(rental_id)
        try:
            return Rental.from_dict(jsonfast.loads(text))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptRecord(f"memory:rental:{rental_id}", repr(exc)) from exc

    def _expire(self, rental_id: str) -> None:
        deadline = self._expires.get(rental_id)
        if deadline is not None and self._clock.now() >= deadline:
            for table in (self._records, self._logs, self._applied, self._outbox, self._expires,
                          self._prepared):
                table.pop(rental_id, None)  # type: ignore[attr-defined]

    def was_applied(self, rental_id: str, event_id: str) -> bool:
        with self._lock:
            self._expire(rental_id)
            return event_id in self._applied.get(rental_id, ())

    def expires_in(self, rental_id: str) -> timedelta | None:
        with self._lock:
            self._load(rental_id)
            deadline = self._expires.get(rental_id)
            return None if deadline is None else deadline - self._clock.now()

    # -- prepared timers -----------------------------------------------------------------

    def upcoming_timers(self, start: datetime, until: datetime, limit: int,
                        now: datetime) -> tuple[list[DueTimer], datetime]:
        out: list[DueTimer] = []
        with self._lock:
            found = self.timers.queued_between(to_ms(start), to_ms(until))
            if len(found) <= limit:
                reached = until  # the whole window is scanned
            else:
                found = found[:limit]
                reached = scan_reached(start, found[-1][0])
            for due_ms, text in found:
                due = parse_member(text, due_ms)
                held = self._prepared.get(due.rental_id)
                if isinstance(held, PreparedTimer) or (held is not None and held > now):
                    continue
                self._prepared[due.rental_id] = now + PREPARE_LEASE
                out.append(due)
        return out, reached

    def prepare_timers(self, prepared: Sequence[PreparedTimer]) -> int:
        kept = 0
        with self._lock:
            for item in prepared:
                due, commit = item.due, item.commit
                if commit.rental.rental_id != due.rental_id:
                    raise InvalidInput("prepared.commit", "is not the timer's rental")
                try:
                    stored = self._load(due.rental_id)
                except RentalNotFound:
                    continue
                if stored.version != commit.expected_version or not is_current(stored, due) \
                        or isinstance(self._prepared.get(due.rental_id), PreparedTimer):
                    continue
                self._prepared[due.rental_id] = item
                kept += 1
        return kept

    def fire_due(self, now: datetime, limit: int, tolerance: timedelta,
                 owner: str | None = None) -> TimerRound:
        fired: list[FiredTimer] = []
        claimed: list[DueTimer] = []
        with self._lock:
            for due in self.timers.claim_due(now, limit):
                item = self._prepared.get(due.rental_id)
                if isinstance(item, PreparedTimer) and item.due.timer is due.timer \
                        and item.due.token == due.token \
                        and owner in (None, item.owner) \
                        and timedelta(0) <= now - item.due.due_at <= tolerance:
                    try:
                        if self.commit(item.commit) is CommitOutcome.APPLIED:
                            fired.append(FiredTimer(
                                item.due, jsonfast.dumps(dict(item.summary)),
                                member(due.rental_id, due.timer, due.token)))
                            continue
                    except RentalFSMError:
                        pass  # the ordinary path decides it again and reports
                claimed.append(due)
        return TimerRound(fired, claimed)

    # -- the rental log ------------------------------------------------------------------

    def _append(self, rental_id: str, entries: Sequence[Mapping[str, Any]]) -> list[str]:
        lines = self._logs.setdefault(rental_id, [])
        added = []
        for entry in entries:
            line = complete_log_line(len(lines) + 1, log_entry_tail(rental_id, entry))
            lines.append(line)
            added.append(line)
        return added

    def append_log(
        self,
        rental_id: str,
        entries: Sequence[Mapping[str, Any]],
        *,
        expected_version: int | None = None,
    ) -> list[dict[str, Any]]:
        for entry in entries:
            check_log_entry(entry)
        with self._lock:
            stored = self._load(rental_id)
            if expected_version is not None and stored.version != expected_version:
                raise VersionConflict(rental_id, expected_version)
            return [jsonfast.loads(line) for line in self._append(rental_id, entries)]

    def log(self, rental_id: str) -> list[dict[str, Any]]:
        with self._lock:
            self._expire(rental_id)
            lines = list(self._logs.get(rental_id, ()))
        return [jsonfast.loads(line) for line in lines]

    def export_jsonl(self, rental_ids: Iterable[str], stream: TextIO) -> int:
        return sum(write_jsonl(self.log(rid), stream) for rid in rental_ids)

    def rental_ids(self) -> list[str]:
        with self._lock:
            for rid in list(self._records):
                self._expire(rid)
            return sorted(self._records)

    # -- the outbox ----------------------------------------------------------------------

    def pending_effects(self, rental_id: str) -> list[OutboxEntry]:
        with self._lock:
            self._expire(rental_id)
            entries = list(self._outbox.get(rental_id, {}).values())
        return sorted(entries, key=lambda e: (e.version, e.index))

    def complete_effect(self, rental_id: str, effect_id: str) -> bool:
        with self._lock:
            outbox = self._outbox.get(rental_id, {})
            removed = outbox.pop(effect_id, None) is not None
            if not outbox:
                self._outbox.pop(rental_id, None)
            claims = self._claims.get(rental_id, {})
            claims.pop(effect_id, None)
            if not claims:
                self._claims.pop(rental_id, None)
            return removed

    def claim_effect(self, rental_id: str, effect_id: str, owner: str, now: datetime) -> bool:
        with self._lock:
            if effect_id not in self._outbox.get(rental_id, {}):
                return False
            claims = self._claims.setdefault(rental_id, {})
            if effect_id in claims:
                return False
            claims[effect_id] = encode_claim(owner, now)
            return True

    def effect_claim(self, rental_id: str, effect_id: str) -> tuple[str, datetime] | None:
        with self._lock:
            text = self._claims.get(rental_id, {}).get(effect_id)
        return None if text is None else decode_claim(text)

    def rentals_with_pending_effects(self) -> set[str]:
        with self._lock:
            return {rid for rid, outbox in self._outbox.items() if outbox}

    # -- vehicles ------------------------------------------------------------------------

    def merge_vehicle_state(
        self, vehicle_id: str, properties: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        stamped = {n: (timestamp_us(n, prop), dict(prop)) for n, prop in properties.items()}
        with self._lock:
            state = self._vstate.setdefault(vehicle_id, {})
            for name, (us, prop) in stamped.items():
                if name not in state or us > state[name][0]:
                    state[name] = (us, jsonfast.loads(jsonfast.dumps(prop)))
            return self._state_copy(vehicle_id)

    def vehicle_state(self, vehicle_id: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return self._state_copy(vehicle_id)

    def _state_copy(self, vehicle_id: str) -> dict[str, dict[str, Any]]:
        state = self._vstate.get(vehicle_id, {})
        return {name: jsonfast.loads(jsonfast.dumps(prop)) for name, (_, prop) in state.items()}

    def set_capabilities(self, vehicle_id: str, capabilities: Mapping[str, Any]) -> None:
        with self._lock:
            self._caps[vehicle_id] = jsonfast.dumps(dict(capabilities))

    def capabilities(self, vehicle_id: str) -> dict[str, Any] | None:
        with self._lock:
            text = self._caps.get(vehicle_id)
        return None if text is None else dict(jsonfast.loads(text))

    def remember_abort(self, vehicle_id: str, rental_id: str, ttl: timedelta) -> None:
        with self._lock:
            self._aborted[vehicle_id] = (rental_id, self._clock.now() + ttl)

    def aborted_rental(self, vehicle_id: str) -> str | None:
        with self._lock:
            found = self._aborted.get(vehicle_id)
            if found is None or found[1] <= self._clock.now():
                self._aborted.pop(vehicle_id, None)
                return None
            return found[0]

    def active_rental(self, vehicle_id: str) -> str | None:
        with self._lock:
            return self._vehicle_active.get(vehicle_id)
