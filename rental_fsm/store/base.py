"""The rental store seam: the ``RentalStore`` protocol, its value types and the Redis keys.

A store keeps, per rental, the record, its append-only rental log (rental-log.md v1), the
ids of events already applied, the outbox of effects still to run and the timers it holds.
``commit`` changes all of them in one atomic step, so a crash can never leave a state
without its log entry, its effects or its timers. Two implementations pass one contract
suite (tests/store): ``InMemoryRentalStore`` and ``RedisRentalStore``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol, TextIO

from .. import jsonfast
from ..config import DEFAULT_NAMESPACE
from ..errors import InvalidInput, RentalFSMError, RentalNotFound, StoreUnavailable
from ..model import Effect, Rental, parse_time
from ..timers.base import DueTimer, from_ms, to_ms

#: rental-log.md: the format version the store stamps on every entry.
LOG_FORMAT_VERSION = 1
#: rental-log.md: the kinds a log entry may have.
LOG_KINDS = frozenset({"request", "event", "call", "clock", "timer", "transition"})
#: Fields the store owns on every log entry; a caller's values for them are replaced.
STORE_LOG_FIELDS = ("v", "seq", "rental_id")

_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class CommitOutcome(str, Enum):
    """What ``commit`` did: wrote everything, or nothing because the event was seen."""

    APPLIED = "applied"
    #: The commit's event id was already applied to this rental; nothing was written.
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Commit:
    """Everything one transition writes, checked and applied as a unit.

    Timers are not listed separately: ``rental.timers`` is the truth, and the store makes
    the timer queue match it (arming new tokens, removing cancelled or superseded ones).
    That is exactly ``Decision.armed``/``cancelled`` after ``Decision.apply``, and it can
    never disagree with the record.
    """

    #: The rental as it is after the transition; its version is ``expected_version + 1``.
    rental: Rental
    #: The version the caller loaded; the commit fails with VersionConflict otherwise.
    expected_version: int
    #: Id of the event (bus message, timer, request) that caused it; None = no dedupe.
    event_id: str | None = None
    effects: tuple[Effect, ...] = ()
    #: rental-log.md entries without ``v``/``seq``/``rental_id`` (the store sets those).
    log_entries: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    #: Remember for this long that the rental's start on its vehicle gave up (see
    #: ``RentalStore.remember_abort``), in the same atomic step as the transition.
    abort_watch: timedelta | None = None

    def __post_init__(self) -> None:
        if self.abort_watch is not None and self.abort_watch <= timedelta(0):
            raise InvalidInput("abort_watch", "must be positive")
        if self.rental.version != self.expected_version + 1:
            raise InvalidInput(
                "rental.version",
                f"must be expected_version + 1 = {self.expected_version + 1}, "
                f"got {self.rental.version}",
            )
        if self.event_id == "":
            raise InvalidInput("event_id", "must be None or a non-empty string")
        for entry in self.log_entries:
            check_log_entry(entry)


@dataclass(frozen=True)
class LogAppend:
    """Log entries appended without a state change, as one item of ``write_batch``."""

    rental_id: str
    log_entries: tuple[Mapping[str, Any], ...]

    def __post_init__(self) -> None:
        for entry in self.log_entries:
            check_log_entry(entry)


class VehicleRead(NamedTuple):
    """One event's read of ``read_vehicles``: merge its properties, then look up.

    A NamedTuple, like ``VehicleView``: immutable, and built for every event at a
    third of a frozen dataclass's cost."""

    vehicle_id: str
    #: The event id to check against the found rental's applied ids.
    event_id: str
    #: OneAPI state properties to merge first (may be empty).
    properties: Mapping[str, Mapping[str, Any]] = MappingProxyType({})


class VehicleView(NamedTuple):
    """What the event path needs to know about a vehicle, read in one go."""

    #: The vehicle's merged state after this read's properties.
    state: dict[str, dict[str, Any]]
    capabilities: dict[str, Any] | None
    #: The active rental, else the rental whose start on it recently gave up, else None.
    rental_id: str | None
    #: The found rental as stored (None when there is none, or its record is gone).
    rental: Rental | None = None
    #: The event id was already applied to the found rental.
    duplicate: bool = False


#: How long a prepared commit is kept at most (any commit of its rental drops it sooner).
PREPARED_TTL = timedelta(minutes=5)
#: How long a timer ``upcoming_timers`` handed out stays marked as being prepared.
PREPARE_LEASE = timedelta(seconds=10)


@dataclass(frozen=True)
class PreparedTimer:
    """A timer's commit decided ahead of time: what firing it exactly at its due time
    on the rental as it now is would write (``Engine.plan`` at ``due.due_at``)."""

    due: DueTimer
    commit: Commit
    #: What the firing is logged as (``engine.transition_fields``).
    summary: Mapping[str, Any]
    #: The runner that decided it (``fire_due`` may be asked to fire only its own).
    owner: str = ""


@dataclass(frozen=True)
class FiredTimer:
    """A timer the store fired from its prepared commit (``fire_due``)."""

    due: DueTimer
    #: What the firing is logged as (``PreparedTimer.summary``), as JSON text.
    summary: str
    #: The timer's queue member (``timers.base.member``).
    member: str


@dataclass(frozen=True)
class TimerRound:
    """What one ``fire_due`` did: timers fired in the store, and the rest claimed."""

    fired: list[FiredTimer]
    #: Due timers leased to the caller (as ``claim_due``) to fire the ordinary way.
    claimed: list[DueTimer]


#: One result of ``write_batch``: a commit's outcome, None for a log append that was
#: written, or the error that item raised on its own (nothing of that item written).
WriteResult = CommitOutcome | None | Exception


@dataclass(frozen=True)
class OutboxEntry:
    """One effect waiting to run. ``effect_id`` is stable across redeliveries, so the
    effect runner can use it as the idempotency key of the outgoing call."""

    effect_id: str
    rental_id: str
    version: int
    index: int
    effect: Effect

    def to_dict(self) -> dict[str, Any]:
        return {
            "effect_id": self.effect_id,
            "rental_id": self.rental_id,
            "version": self.version,
            "index": self.index,
            "effect": self.effect.value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutboxEntry:
        return cls(
            effect_id=str(data["effect_id"]),
            rental_id=str(data["rental_id"]),
            version=int(data["version"]),
            index=int(data["index"]),
            effect=Effect(data["effect"]),
        )


def effect_id(rental_id: str, version: int, index: int) -> str:
    """The outbox id of the ``index``-th effect of the commit that made ``version``."""
    return f"{rental_id}:{version}:{index}"


def outbox_entries(rental: Rental, effects: Sequence[Effect]) -> list[OutboxEntry]:
    """The outbox entries one commit of ``rental`` adds."""
    return [
        OutboxEntry(effect_id(rental.rental_id, rental.version, i), rental.rental_id,
                    rental.version, i, effect)
        for i, effect in enumerate(effects)
    ]


def check_log_entry(entry: Mapping[str, Any]) -> None:
    """Reject an entry replay could not read: unknown ``kind`` or a bad ``at``."""
    kind = entry.get("kind")
    if not isinstance(kind, str) or kind not in LOG_KINDS:
        raise InvalidInput("log_entries.kind", f"unknown kind {kind!r}")
    try:
        parse_time(entry.get("at"))  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidInput("log_entries.at", str(exc)) from None


def log_entry_tail(rental_id: str, entry: Mapping[str, Any]) -> str:
    """The entry as JSON without ``v`` and ``seq`` and without the opening brace.

    The store completes it as ``{"v":1,"seq":N,`` + tail once it knows ``N``; that keeps
    the Redis script free of JSON re-encoding (cjson would reorder keys and escape ``/``).
    """
    body = {"rental_id": rental_id}
    body.update((k, v) for k, v in entry.items() if k not in STORE_LOG_FIELDS)
    return jsonfast.dumps(body)[1:]


def complete_log_line(seq: int, tail: str) -> str:
    """The stored JSON line of a log entry (see ``log_entry_tail``)."""
    return f'{{"v":{LOG_FORMAT_VERSION},"seq":{seq},{tail}'


def write_jsonl(lines: Iterable[Mapping[str, Any]], stream: TextIO) -> int:
    """Write entries as JSON Lines; return how many were written."""
    count = 0
    for entry in lines:
        stream.write(jsonfast.dumps(entry) + "\n")
        count += 1
    return count


class Keys:
    """Every Redis key rental_fsm uses, built under one namespace (the only place).

    Layout (``{ns}`` is the namespace in braces, which is the Redis Cluster hash tag)::

        {ns}:rental:<rental_id>            string  the record, JSON of Rental.to_dict()
        {ns}:log:<rental_id>               list    rental-log.md v1 lines, seq = index + 1
        {ns}:applied:<rental_id>           set     event ids already committed
        {ns}:outbox:<rental_id>            hash    effect_id -> OutboxEntry JSON
        {ns}:rental-timers:<rental_id>     hash    timer name -> timer-queue member
        {ns}:outbox-pending                set     rental ids with a non-empty outbox
        {ns}:timers                        zset    member -> due epoch ms
        {ns}:vehicle-active:<vehicle_id>   string  the vehicle's active rental id
        {ns}:customer-active:<customer_id> string  the customer's active rental id
        {ns}:vstate:<vehicle_id>           hash    property -> {"timestamp","value"} JSON
        {ns}:vstate-ts:<vehicle_id>        hash    property -> timestamp, epoch µs
        {ns}:caps:<vehicle_id>             string  capabilities JSON
        {ns}:effect-claims:<rental_id>     hash    effect_id -> "owner|claimed epoch ms"
        {ns}:dead-letters                  stream  malformed messages with the reason
        {ns}:vehicle-aborted:<vehicle_id>  string  rental whose start gave up (expires)
        {ns}:prepared:<rental_id>          list    its next timer's commit, decided ahead
                                                   (or a "lease:<ms>" mark while deciding)

    **Slots.** One commit must touch the rental's keys *and* the vehicle and customer
    indexes *and* the timer queue, so in Redis Cluster they must hash to one slot. A
    per-rental tag cannot give that (the vehicle index is shared by many rentals), so the
    tag is the whole namespace: every key of a namespace lives in one slot, on one node.
    That is a deliberate trade: a single Redis primary handles ~100k simple commands/s,
    far more than rental transitions need, and exactly-once needs no cross-slot
    protocol. To spread load over a cluster, run several namespaces (per city or tenant);
    each is its own slot and its own worker fleet.
    """

    def __init__(self, namespace: str = DEFAULT_NAMESPACE) -> None:
        if not _NAMESPACE_RE.match(namespace):
            raise InvalidInput("namespace", f"must match {_NAMESPACE_RE.pattern}")
        self.namespace = namespace
        #: The Redis Cluster hash tag shared by every key below.
        self.tag = "{" + namespace + "}"

    @property
    def prefix(self) -> str:
        """What every key starts with (``{ns}:``)."""
        return f"{self.tag}:"

    def _key(self, kind: str, ident: str | None = None) -> str:
        return f"{self.tag}:{kind}" if ident is None else f"{self.tag}:{kind}:{ident}"

    def rental(self, rental_id: str) -> str:
        return self._key("rental", rental_id)

    def log(self, rental_id: str) -> str:
        return self._key("log", rental_id)

    def applied(self, rental_id: str) -> str:
        return self._key("applied", rental_id)

    def outbox(self, rental_id: str) -> str:
        return self._key("outbox", rental_id)

    def rental_timers(self, rental_id: str) -> str:
        return self._key("rental-timers", rental_id)

    @property
    def outbox_pending(self) -> str:
        return self._key("outbox-pending")

    @property
    def timers(self) -> str:
        return self._key("timers")

    def vehicle_active(self, vehicle_id: str) -> str:
        return self._key("vehicle-active", vehicle_id)

    def customer_active(self, customer_id: str) -> str:
        return self._key("customer-active", customer_id)

    def vehicle_state(self, vehicle_id: str) -> str:
        return self._key("vstate", vehicle_id)

    def vehicle_state_ts(self, vehicle_id: str) -> str:
        return self._key("vstate-ts", vehicle_id)

    def capabilities(self, vehicle_id: str) -> str:
        return self._key("caps", vehicle_id)

    def effect_claims(self, rental_id: str) -> str:
        return self._key("effect-claims", rental_id)

    def vehicle_aborted(self, vehicle_id: str) -> str:
        return self._key("vehicle-aborted", vehicle_id)

    def prepared(self, rental_id: str) -> str:
        return self._key("prepared", rental_id)

    @property
    def dead_letters(self) -> str:
        return self._key("dead-letters")

    def commit_keys(self, rental: Rental) -> list[str]:
        """The keys one commit touches, in the order the commit script takes them."""
        rid = rental.rental_id
        return [
            self.rental(rid),
            self.log(rid),
            self.applied(rid),
            self.outbox(rid),
            self.outbox_pending,
            self.timers,
            self.rental_timers(rid),
            self.vehicle_active(rental.vehicle_id),
            self.customer_active(rental.customer_id),
            self.prepared(rid),
            self.vehicle_aborted(rental.vehicle_id),
        ]

    def retained_keys(self, rental_id: str) -> list[str]:
        """The keys that expire with an ended rental."""
        return [
            self.rental(rental_id),
            self.log(rental_id),
            self.applied(rental_id),
            self.outbox(rental_id),
            self.rental_timers(rental_id),
        ]


class RentalStore(Protocol):
    """Persistence of rentals; every method is safe to call from many threads/processes."""

    def create(self, rental: Rental, log_entries: Sequence[Mapping[str, Any]] = ()) -> None:
        """Store a new rental (and its first log entries). Raises RentalExists, and
        VehicleBusy/CustomerBusy if it is created active on a busy vehicle/customer."""
        ...

    def get(self, rental_id: str) -> Rental:
        """The stored rental. Raises RentalNotFound, or CorruptRecord (record untouched)."""
        ...

    def get_many(self, rental_ids: Sequence[str]) -> list[Rental | None]:
        """The stored rentals in order, None for one that does not exist; one round trip
        where the store can (the timer loop loads a batch of due timers' rentals)."""
        ...

    def commit(self, commit: Commit) -> CommitOutcome:
        """Atomically: dedupe the event id, compare-and-set the version, write the record,
        update the vehicle/customer indexes, sync the timers, append effects to the outbox
        and entries to the log. All or nothing.

        Returns DUPLICATE (nothing written) when ``event_id`` was already applied.
        Raises VersionConflict, RentalNotFound, CorruptRecord, VehicleBusy, CustomerBusy.
        """
        ...

    def was_applied(self, rental_id: str, event_id: str) -> bool:
        """Cheap pre-check for redelivered events; ``commit`` re-checks atomically."""
        ...

    def append_log(
        self,
        rental_id: str,
        entries: Sequence[Mapping[str, Any]],
        *,
        expected_version: int | None = None,
    ) -> list[dict[str, Any]]:
        """Append entries without a state change (e.g. a rejected request), atomically,
        optionally only if the rental is still at ``expected_version``. Returns the
        entries as stored (with ``v``, ``seq``, ``rental_id``)."""
        ...

    def log(self, rental_id: str) -> list[dict[str, Any]]:
        """The rental's log entries in ``seq`` order (empty if none)."""
        ...

    def export_jsonl(self, rental_ids: Iterable[str], stream: TextIO) -> int:
        """Write the logs of ``rental_ids`` as JSON Lines; return the number of lines."""
        ...

    def rental_ids(self) -> list[str]:
        """Every stored rental's id, sorted (for ``rental-fsm export --all``). Not a hot
        path: Redis answers it with SCAN, which walks the whole keyspace."""
        ...

    def pending_effects(self, rental_id: str) -> list[OutboxEntry]:
        """Effects committed but not completed, in commit order."""
        ...

    def complete_effect(self, rental_id: str, effect_id: str) -> bool:
        """Remove an effect from the outbox; False if it was not there (harmless)."""
        ...

    def rentals_with_pending_effects(self) -> set[str]:
        """Rental ids whose outbox is not empty, for the sweeper. May name a rental whose
        outbox expired with it; ``pending_effects`` then returns [] and drops the id."""
        ...

    def expires_in(self, rental_id: str) -> timedelta | None:
        """Time left before an ended rental is deleted; None while it never expires."""
        ...

    def merge_vehicle_state(
        self, vehicle_id: str, properties: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """Merge OneAPI state properties one by one, keeping each property's newest
        ``timestamp`` (an equal or older one never replaces it). Returns the merged state.
        Raises InvalidInput on a property without a valid RFC 3339 ``timestamp``."""
        ...

    def vehicle_state(self, vehicle_id: str) -> dict[str, dict[str, Any]]:
        """The latest merged state (empty if none)."""
        ...

    def set_capabilities(self, vehicle_id: str, capabilities: Mapping[str, Any]) -> None:
        """Store the vehicle's capabilities (``commands`` and ``vehicle_state`` lists)."""
        ...

    def capabilities(self, vehicle_id: str) -> dict[str, Any] | None:
        """The stored capabilities, or None if never set."""
        ...

    def active_rental(self, vehicle_id: str) -> str | None:
        """The id of the vehicle's active rental (STARTING to ENDING), or None."""
        ...

    def claim_effect(self, rental_id: str, effect_id: str, owner: str, now: datetime) -> bool:
        """Take a pending effect for sending. True for exactly one caller; False when it
        is not pending or already claimed. A claim is never taken over: an effect whose
        sender died mid-call may have run, so it must not be sent again (at most once)."""
        ...

    def effect_claim(self, rental_id: str, effect_id: str) -> tuple[str, datetime] | None:
        """Who claimed an effect and when, or None."""
        ...

    def remember_abort(self, vehicle_id: str, rental_id: str, ttl: timedelta) -> None:
        """Remember for ``ttl`` that ``rental_id``'s start on the vehicle gave up, so an
        unlock that still happens later can be recognised and secured (seed 000)."""
        ...

    def aborted_rental(self, vehicle_id: str) -> str | None:
        """The rental whose start on this vehicle recently gave up, or None."""
        ...


    def read_vehicles(self, reads: Sequence[VehicleRead]) -> list[VehicleView]:
        """For each read in order: merge its properties as ``merge_vehicle_state`` does,
        then return the vehicle's state, capabilities, rental (active, else aborted) and
        whether the event id was applied to it. The event path's reads for a batch of
        events in as few round trips as the store can (Redis: two). Reads must name
        distinct vehicles. Raises what the single methods raise."""
        ...

    def write_batch(self, writes: Sequence[Commit | LogAppend]) -> list[WriteResult]:
        """Each write as ``commit`` / ``append_log`` would do it, each atomic on its own,
        in one round trip where the store can. An error of one item (a lost
        compare-and-set, say) is returned in its place and does not stop the others; an
        unreachable store raises for the whole batch (some items may be written)."""
        ...

    # -- prepared timers (TimerRunner: timers decided ahead, fired inside the store) ------

    def upcoming_timers(self, start: datetime, until: datetime, limit: int,
                        now: datetime) -> tuple[list[DueTimer], datetime]:
        """Timers due in [start, until] that have no prepared commit and that no other
        caller is preparing, earliest first, at most ``limit``; each is marked as being
        prepared for ``PREPARE_LEASE``. Also returns the due time the scan reached, where
        the caller's next scan may start."""
        ...

    def prepare_timers(self, prepared: Sequence[PreparedTimer]) -> int:
        """Keep each commit beside its timer, only while the rental still holds the timer
        and is still at ``commit.expected_version``; return how many were kept. Any later
        commit of the rental drops its prepared commits (they are decided on the record it
        replaces), and none outlives ``PREPARED_TTL``."""
        ...

    def fire_due(self, now: datetime, limit: int, tolerance: timedelta,
                 owner: str | None = None) -> TimerRound:
        """Claim up to ``limit`` due timers as ``claim_due`` does, in one atomic step
        committing those with a prepared commit whose due time is at most ``tolerance``
        before ``now`` (each as ``commit`` would), only ``owner``'s unless it is None.
        The others are leased to the caller."""
        ...


def read_vehicles_one_by_one(store: RentalStore, reads: Sequence[VehicleRead]) \
        -> list[VehicleView]:
    """``read_vehicles`` through the single-item methods (the in-memory store)."""
    views = []
    for read in reads:
        if read.properties:
            state = store.merge_vehicle_state(read.vehicle_id, read.properties)
        else:
            state = store.vehicle_state(read.vehicle_id)
        caps = store.capabilities(read.vehicle_id)
        rid = store.active_rental(read.vehicle_id) or store.aborted_rental(read.vehicle_id)
        if rid is None:
            views.append(VehicleView(state, caps, None))
            continue
        try:
            rental: Rental | None = store.get(rid)
        except RentalNotFound:
            rental = None
        views.append(VehicleView(state, caps, rid, rental,
                                 store.was_applied(rid, read.event_id)))
    return views


def write_one_by_one(store: RentalStore, writes: Sequence[Commit | LogAppend]) \
        -> list[WriteResult]:
    """``write_batch`` through ``commit`` and ``append_log`` (the in-memory store)."""
    results: list[WriteResult] = []
    for write in writes:
        try:
            if isinstance(write, Commit):
                results.append(store.commit(write))
            else:
                store.append_log(write.rental_id, write.log_entries)
                results.append(None)
        except StoreUnavailable:
            raise
        except RentalFSMError as exc:
            results.append(exc)
    return results


def scan_reached(start: datetime, last_ms: int) -> datetime:
    """Where the next scan of upcoming timers starts after a full one that ended at
    ``last_ms``: there again (members of that ms may be left), unless the scan made no
    progress (a full batch of one ms): then past it, leaving the rest of that ms to the
    ordinary path rather than scanning the same batch for ever."""
    if last_ms <= to_ms(start):
        return from_ms(last_ms + 1)
    return max(start, from_ms(last_ms))


def encode_claim(owner: str, now: datetime) -> str:
    return f"{owner}|{(now - _EPOCH) // timedelta(milliseconds=1)}"


def decode_claim(text: str) -> tuple[str, datetime]:
    owner, _, ms = text.rpartition("|")
    return owner, _EPOCH + timedelta(milliseconds=int(ms))


def timestamp_us(name: str, prop: Mapping[str, Any]) -> int:
    """A vehicle-state property's timestamp in epoch microseconds (exact in a double)."""
    if not isinstance(prop, (dict, Mapping)) or "timestamp" not in prop:
        raise InvalidInput(f"properties.{name}", "must be {timestamp, value}")
    try:
        when = parse_time(prop["timestamp"])
    except ValueError as exc:
        raise InvalidInput(f"properties.{name}.timestamp", str(exc)) from None
    return (when - _EPOCH) // timedelta(microseconds=1)


def retention_ms(retention: timedelta) -> int:
    ms = retention // timedelta(milliseconds=1)
    if ms <= 0:
        raise InvalidInput("retention", "must be positive")
    return ms

