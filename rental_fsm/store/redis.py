"""``RedisRentalStore``: the RentalStore contract on Redis, one Lua script per commit.

**Lua, not WATCH/MULTI.** Measured with tests/store/bench_commit.py against the local
Redis 7.0 on a 2-CPU machine, 2,000 commits of a real rental (each loop also decides and
encodes, identically for both), two runs:

* sequential, one client: Lua 0.40-0.43 ms/commit, WATCH/MULTI 0.78-1.42 ms/commit;
* 8 threads racing on one rental: Lua 1.7-2.6 ms/commit with 4.0-4.9k version-conflict
  retries, WATCH/MULTI 7.4-8.4 ms/commit with 11.4-11.6k WatchError retries.

The script is one round trip and checks and writes with no gap in between; WATCH spends
several round trips between its check and EXEC, so it loses more races and each lost race
costs more. The script also answers *why* it refused (duplicate, conflict, busy vehicle or
customer, corrupt record) before writing anything, so all-or-nothing needs no rollback.

Everything a commit touches shares the ``{namespace}`` hash tag (``Keys``), so the script
is valid on Redis Cluster. Records are JSON (``Rental.to_dict``), never pickle; a record
that does not decode raises ``CorruptRecord`` and is never overwritten (the script refuses
to commit over it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TextIO, cast

import redis
from redis.cluster import RedisCluster

from .. import jsonfast
from ..config import DEFAULT_RETENTION_DAYS
from ..errors import (
    CorruptRecord,
    CustomerBusy,
    InvalidInput,
    RentalExists,
    RentalFSMError,
    RentalNotFound,
    StoreError,
    VehicleBusy,
    VersionConflict,
)
from ..model import Rental, RentalState
from ..timers.base import DueTimer, member, parse_member, to_ms
from ..timers.redis import (
    MEMBER_LUA,
    SYNC_TIMERS_LUA,
    RedisTimerQueue,
    redis_errors,
    timer_args,
)
from .base import (
    PREPARE_LEASE,
    PREPARED_TTL,
    Commit,
    CommitOutcome,
    FiredTimer,
    Keys,
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
    retention_ms,
    scan_reached,
    timestamp_us,
    write_jsonl,
)

#: Lua fragment: append the log-entry tails A[i .. i + n - 1] to ``log`` as lines
#: ``{"v":1,"seq":N,`` + tail, the log expiring in ``ttl`` ms (the rental's PTTL; false
#: or negative: as it is); returns the first seq.
APPEND_ENTRIES_LUA = """
local function append_entries(A, ttl, log, i, n)
  if n < 1 then return redis.call('LLEN', log) + 1 end
  local first = redis.call('LLEN', log) + 1
  local lines = {}
  for j = 0, n - 1 do
    lines[j + 1] = '{"v":1,"seq":' .. (first + j) .. ',' .. A[i + j]
  end
  redis.call('RPUSH', log, unpack(lines))
  -- a commit passes none: its SET cleared the record's expiry
  if ttl and ttl > 0 then redis.call('PEXPIRE', log, ttl) end
  return first
end
"""

#: Lua fragment: merge the (name, timestamp µs, property JSON) triples starting at
#: ARGV[i] into a vehicle's state, a property only if its timestamp is newer. The names
#: are distinct (an event's properties are a JSON object's keys). Three calls whatever
#: the number of properties (one HMGET, two HSETs): a call costs more than the work, and
#: a VehicleStateRecorded carries a dozen properties.
MERGE_STATE_LUA = """
local function merge_state(state, stamps, i, n)
  if n < 1 then return end
  local names = {}
  for j = 1, n do names[j] = ARGV[i + 3 * (j - 1)] end
  local current = redis.call('HMGET', stamps, unpack(names))
  local newer_stamps, newer_values = {}, {}
  for j = 1, n do
    local k = i + 3 * (j - 1)
    local cur = current[j]
    if not cur or tonumber(ARGV[k + 1]) > tonumber(cur) then
      newer_stamps[#newer_stamps + 1] = ARGV[k]
      newer_stamps[#newer_stamps + 1] = ARGV[k + 1]
      newer_values[#newer_values + 1] = ARGV[k]
      newer_values[#newer_values + 1] = ARGV[k + 2]
    end
  end
  if #newer_stamps > 0 then
    redis.call('HSET', stamps, unpack(newer_stamps))
    redis.call('HSET', state, unpack(newer_values))
  end
end
"""

#: Lua fragment: ``commit_rental(K, A)``, one commit. K: Keys.commit_keys(rental). A:
#: mode ('create'|'commit'), expected version, record JSON, event id ('' = none), rental
#: id, active ('1'|'0'), ttl ms ('0' = none), n timers, n effects, n log entries, abort
#: watch ms ('0' = none), then the timer triples, the (effect id, JSON) pairs and the
#: log-entry tails. The commit script calls it with KEYS and ARGV; the timer script with
#: a prepared commit's keys and arguments (``_FIRE_DUE_LUA``). Every commit drops
#: the rental's prepared timer commits: they were decided on the record it replaces.
COMMIT_RENTAL_LUA = SYNC_TIMERS_LUA + APPEND_ENTRIES_LUA + """
local function commit_rental(K, A)
  local rid = A[5]
  if A[4] ~= '' and redis.call('SISMEMBER', K[3], A[4]) == 1 then
    return {'duplicate'}
  end
  local old = redis.call('GET', K[1])
  if A[1] == 'create' then
    if old then return {'exists'} end
  else
    if not old then return {'not_found'} end
    local ok, rec = pcall(cjson.decode, old)
    if not ok or type(rec) ~= 'table' or type(rec['version']) ~= 'number' then
      return {'corrupt'}
    end
    if rec['version'] ~= tonumber(A[2]) then return {'conflict'} end
  end
  if A[6] == '1' then
    local vehicle = redis.call('GET', K[8])
    if vehicle and vehicle ~= rid then return {'vehicle_busy', vehicle} end
    local customer = redis.call('GET', K[9])
    if customer and customer ~= rid then return {'customer_busy', customer} end
    if not vehicle then redis.call('SET', K[8], rid) end
    if not customer then redis.call('SET', K[9], rid) end
  else
    if redis.call('GET', K[8]) == rid then redis.call('DEL', K[8]) end
    if redis.call('GET', K[9]) == rid then redis.call('DEL', K[9]) end
  end
  redis.call('SET', K[1], A[3])
  redis.call('DEL', K[10])
  if A[4] ~= '' then redis.call('SADD', K[3], A[4]) end
  local n_timers, n_effects, n_log = tonumber(A[8]), tonumber(A[9]), tonumber(A[10])
  if tonumber(A[11]) > 0 then redis.call('SET', K[11], rid, 'PX', A[11]) end
  sync_timers(A, K[6], K[7], 12, n_timers)
  local i = 12 + 3 * n_timers
  if n_effects > 0 then
    redis.call('HSET', K[4], unpack(A, i, i + 2 * n_effects - 1))
    redis.call('SADD', K[5], rid)
  end
  i = i + 2 * n_effects
  append_entries(A, false, K[2], i, n_log)
  local ttl = tonumber(A[7])
  if ttl > 0 then
    for _, k in ipairs({K[1], K[2], K[3], K[4], K[7]}) do
      redis.call('PEXPIRE', k, ttl)
    end
  end
  return {'ok'}
end
"""

#: One commit: KEYS and ARGV as ``commit_rental`` takes them.
_COMMIT_LUA = COMMIT_RENTAL_LUA + "\nreturn commit_rental(KEYS, ARGV)\n"

#: KEYS: rental, log. ARGV: expected version ('' = any), then the log-entry tails.
_APPEND_LOG_LUA = APPEND_ENTRIES_LUA + """
local old = redis.call('GET', KEYS[1])
if not old then return {'not_found'} end
if ARGV[1] ~= '' then
  local ok, rec = pcall(cjson.decode, old)
  if not ok or type(rec) ~= 'table' then return {'corrupt'} end
  if rec['version'] ~= tonumber(ARGV[1]) then return {'conflict'} end
end
return {'ok', append_entries(ARGV, redis.call('PTTL', KEYS[1]), KEYS[2], 2, #ARGV - 1)}
"""

#: Several appends in one call. KEYS: (rental, log) per append. ARGV: per append the
#: number of entries, then their tails. Returns per append what _APPEND_LOG_LUA returns.
_APPEND_LOGS_LUA = APPEND_ENTRIES_LUA + """
local out = {}
local i = 1
for a = 1, #KEYS / 2 do
  local rental, log = KEYS[2 * a - 1], KEYS[2 * a]
  local n = tonumber(ARGV[i])
  local ttl = redis.call('PTTL', rental)  -- -2: no such key, one call for both
  if ttl == -2 then
    out[a] = {'not_found'}
  else
    out[a] = {'ok', append_entries(ARGV, ttl, log, i + 1, n)}
  end
  i = i + 1 + n
end
return out
"""

#: KEYS: outbox, outbox-pending, effect-claims. ARGV: effect id, rental id.
_COMPLETE_LUA = """
local n = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
return n
"""

#: KEYS: outbox, effect-claims, rental. ARGV: effect id, claim. Claims a pending effect
#: once; the claims hash lives as long as the rental record.
_CLAIM_EFFECT_LUA = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
local ttl = redis.call('PTTL', KEYS[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
"""

#: KEYS: outbox, outbox-pending. ARGV: rental id. Drops an expired/empty outbox's id.
_PRUNE_LUA = """
if redis.call('HLEN', KEYS[1]) == 0 then return redis.call('SREM', KEYS[2], ARGV[1]) end
return 0
"""

#: KEYS: vstate, vstate-ts. ARGV: (name, timestamp µs, property JSON) triples.
_MERGE_STATE_LUA = MERGE_STATE_LUA + """
merge_state(KEYS[1], KEYS[2], 1, #ARGV / 3)
return redis.call('HGETALL', KEYS[1])
"""


#: The event path's reads for a round of events, in one call. KEYS: the first event's
#: vehicle state key (it names the slot). ARGV: the key prefixes of rental, applied,
#: vstate, vstate-ts, caps, vehicle-active and vehicle-aborted, n events, then per event:
#: vehicle id, event id, n properties, (name, timestamp µs, property JSON) triples.
#: Merges with merge_state, then returns per event {state, caps, rental id, record,
#: applied (0|1)}, the state as one JSON object spliced from the stored property JSON
#: (one decode instead of one per property). Every key is built from a prefix and
#: an id: they share the namespace's hash tag, so they live in the slot of the declared
#: key, and the call carries one argument per event instead of five keys.
_READ_VEHICLES_LUA = MERGE_STATE_LUA + """
local rental_prefix, applied_prefix = ARGV[1], ARGV[2]
local state_prefix, stamps_prefix, caps_prefix = ARGV[3], ARGV[4], ARGV[5]
local active_prefix, aborted_prefix = ARGV[6], ARGV[7]
local out = {}
local i = 9
for e = 1, tonumber(ARGV[8]) do
  local vid, event_id, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local state = state_prefix .. vid
  merge_state(state, stamps_prefix .. vid, i + 3, n)
  i = i + 3 + 3 * n
  local rid = redis.call('GET', active_prefix .. vid)
  if not rid then rid = redis.call('GET', aborted_prefix .. vid) end
  local record, applied = false, 0
  if rid then
    record = redis.call('GET', rental_prefix .. rid)
    applied = redis.call('SISMEMBER', applied_prefix .. rid, event_id)
  end
  local flat, fields = redis.call('HGETALL', state), {}
  for j = 1, #flat, 2 do fields[#fields + 1] = cjson.encode(flat[j]) .. ':' .. flat[j + 1] end
  out[e] = {'{' .. table.concat(fields, ',') .. '}', redis.call('GET', caps_prefix .. vid),
            rid, record, applied}
end
return out
"""

#: Prepared timers (``upcoming_timers``, ``prepare_timers``, ``fire_due``). A rental's
#: prepared commit is the list ``{ns}:prepared:<rental_id>``: member, due ms, owner,
#: summary JSON, vehicle id, customer id, then the commit script's ARGV, decided ahead
#: (its KEYS are built from the ids: ``COMMIT_KEYS_LUA``; a list, so the firing script
#: reads it with no decoding, and short, as every element costs). One per rental, its
#: next timer's: the first of its timers to fire drops the others anyway. While a timer is
#: being decided the list holds one mark, ``lease:<until ms>``. Keys are built from
#: prefixes, as in the claim script: they share the namespace's hash tag.

#: KEYS: zset. ARGV: start ms, until ms, limit, rental-timers prefix, prepared prefix, now
#: ms, lease ms, ttl ms. Returns {member, score, ...}, the last score scanned and how
#: many members were scanned.
_UPCOMING_LUA = MEMBER_LUA + """
local now = tonumber(ARGV[6])
local found = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2], 'WITHSCORES',
                         'LIMIT', 0, tonumber(ARGV[3]))
local out, last = {}, false
for i = 1, #found, 2 do
  local m = found[i]
  last = found[i + 1]
  local parts = armed(m, ARGV[4])
  if parts then
    local key = ARGV[5] .. parts[1]
    local head = redis.call('LINDEX', key, 0)
    local free = not head or (string.sub(head, 1, 6) == 'lease:'
                              and tonumber(string.sub(head, 7)) <= now)
    if free then
      redis.call('DEL', key)
      redis.call('RPUSH', key, 'lease:' .. (now + tonumber(ARGV[7])))
      redis.call('PEXPIRE', key, ARGV[8])
      out[#out + 1] = m
      out[#out + 1] = found[i + 1]
    end
  end
end
return {out, last, #found / 2}
"""

#: ARGV: rental prefix, rental-timers prefix, prepared prefix, ttl ms, then per prepared
#: timer: rental id, timer name, member, expected version, n fields, the list's fields.
#: Returns how many were kept: the rental still holds the timer and is at the expected
#: version, and no other timer of it is prepared.
_PREPARE_LUA = """
local kept = 0
local i = 5
while i <= #ARGV do
  local rid, name, m, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 4])
  local first = i + 5
  i = first + n
  local raw = redis.call('GET', ARGV[1] .. rid)
  local key = ARGV[3] .. rid
  local head = redis.call('LINDEX', key, 0)
  if raw and redis.call('HGET', ARGV[2] .. rid, name) == m
      and (not head or string.sub(head, 1, 6) == 'lease:') then
    local ok, rec = pcall(cjson.decode, raw)
    if ok and type(rec) == 'table' and rec['version'] == tonumber(ARGV[first - 2]) then
      redis.call('DEL', key)
      redis.call('RPUSH', key, unpack(ARGV, first, i - 1))
      redis.call('PEXPIRE', key, ARGV[4])
      kept = kept + 1
    end
  end
end
return kept
"""

#: Lua fragment: ``Keys.commit_keys`` of a rental, built from the namespace's key prefix
#: (``{ns}:``) as Keys builds them (tests/store/test_redis_store.py checks they agree).
COMMIT_KEYS_LUA = """
local function commit_keys(p, rid, vid, cid)
  return {p .. 'rental:' .. rid, p .. 'log:' .. rid, p .. 'applied:' .. rid,
          p .. 'outbox:' .. rid, p .. 'outbox-pending', p .. 'timers',
          p .. 'rental-timers:' .. rid, p .. 'vehicle-active:' .. vid,
          p .. 'customer-active:' .. cid, p .. 'prepared:' .. rid,
          p .. 'vehicle-aborted:' .. vid}
end
"""

#: KEYS: zset. ARGV: now ms, limit, lease ms, rental-timers prefix, prepared prefix,
#: tolerance ms, owner ('' = any), key prefix. ``claim_due``'s script, except that a
#: claimed timer with a prepared commit (the owner's) due at most the tolerance ago is
#: committed here (``commit_rental``). Returns {fired: member, due ms, summary, ...} and
#: {claimed: member, score, ...}.
_FIRE_DUE_LUA = COMMIT_RENTAL_LUA + COMMIT_KEYS_LUA + MEMBER_LUA + """
local now, lease, tolerance = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[6])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES',
                       'LIMIT', 0, tonumber(ARGV[2]))
local fired, claimed = {}, {}
for i = 1, #due, 2 do
  local m = due[i]
  local parts = member_parts(m)
  local done = false
  if parts then
    -- A prepared commit for this very member: its compare-and-set also proves the
    -- rental still holds the timer (the record it was decided on holds it).
    local p = redis.call('LRANGE', ARGV[5] .. parts[1], 0, -1)
    if p[1] == m and (ARGV[7] == '' or p[3] == ARGV[7]) then
      local at = tonumber(p[2])
      if at and at <= now and now - at <= tolerance then
        local A = {}
        for j = 7, #p do A[j - 6] = p[j] end
        if commit_rental(commit_keys(ARGV[8], parts[1], p[5], p[6]), A)[1] == 'ok' then
          fired[#fired + 1] = m
          fired[#fired + 1] = p[2]
          fired[#fired + 1] = p[4]
          done = true
        end
      end
    end
  end
  if not done then lease_or_drop(KEYS[1], m, due[i + 1], now, lease, ARGV[4], claimed) end
end
return {fired, claimed}
"""

_MS = timedelta(milliseconds=1)

#: How many decoded rental records the event path keeps (a few MB at most).
DECODED_RENTALS = 2_000

#: Client timeouts: fail fast into StoreUnavailable rather than hang a worker.
SOCKET_TIMEOUT_S = 5.0


def connect(url: str) -> redis.Redis:
    """A Redis client for ``url`` with the timeouts and health checks a worker needs."""
    return redis.Redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=30,
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_dumps = jsonfast.dumps


class RedisRentalStore:
    """The RentalStore contract over an injected ``redis.Redis`` client.

    ``timers`` is the ``RedisTimerQueue`` on the same keys: workers claim from it, and
    every commit arms and cancels timers in it atomically with the record.
    """

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        keys: Keys | None = None,
        *,
        retention: timedelta = timedelta(days=DEFAULT_RETENTION_DAYS),
    ) -> None:
        self._client = client
        self.keys = keys or Keys()
        self._retention_ms = retention_ms(retention)
        self.timers = RedisTimerQueue(client, self.keys)
        self._commit = client.register_script(_COMMIT_LUA)
        self._append_log = client.register_script(_APPEND_LOG_LUA)
        self._append_logs = client.register_script(_APPEND_LOGS_LUA)
        self._complete = client.register_script(_COMPLETE_LUA)
        self._claim_effect = client.register_script(_CLAIM_EFFECT_LUA)
        self._merge_state = client.register_script(_MERGE_STATE_LUA)
        self._read_vehicles = client.register_script(_READ_VEHICLES_LUA)
        k = self.keys
        self._read_prefixes = [k.rental(""), k.applied(""), k.vehicle_state(""),
                               k.vehicle_state_ts(""), k.capabilities(""),
                               k.vehicle_active(""), k.vehicle_aborted("")]
        self._decoded: dict[bytes, Rental] = {}
        self._prune = client.register_script(_PRUNE_LUA)
        self._upcoming = client.register_script(_UPCOMING_LUA)
        self._prepare = client.register_script(_PREPARE_LUA)
        self._fire_due = client.register_script(_FIRE_DUE_LUA)

    # -- rentals -------------------------------------------------------------------------

    def create(self, rental: Rental, log_entries: Sequence[Mapping[str, Any]] = ()) -> None:
        # Commit checks the log entries; the script ignores the version when creating.
        self._run_commit("create", Commit(rental, rental.version - 1, None, (),
                                          tuple(log_entries)))

    def get(self, rental_id: str) -> Rental:
        key = self.keys.rental(rental_id)
        with redis_errors("get rental"):
            raw = cast("bytes | None", self._client.get(key))
        if raw is None:
            raise RentalNotFound(rental_id)
        return self._decode_rental(rental_id, raw)

    def get_many(self, rental_ids: Sequence[str]) -> list[Rental | None]:
        if not rental_ids:
            return []
        with redis_errors("get rentals"):  # one slot (the namespace tag): MGET is fine
            raws = cast(list["bytes | None"],
                        self._client.mget([self.keys.rental(rid) for rid in rental_ids]))
        return [None if raw is None else self._recent_rental(rid, raw)
                for rid, raw in zip(rental_ids, raws, strict=True)]

    def _recent_rental(self, rental_id: str, raw: bytes) -> Rental:
        """``_decode_rental`` for the event path, remembering the last records decoded:
        most events only add a log line, so the next event of a rental reads the very same
        record again. Keyed by the record's bytes, so a changed record is never served
        stale; ``Rental`` is immutable, so sharing one is safe."""
        rental = self._decoded.get(raw)
        if rental is None:
            rental = self._decode_rental(rental_id, raw)
            if len(self._decoded) >= DECODED_RENTALS:
                del self._decoded[next(iter(self._decoded))]  # the oldest
            self._decoded[raw] = rental
        return rental

    def _decode_rental(self, rental_id: str, raw: bytes) -> Rental:
        try:
            return Rental.from_dict(jsonfast.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptRecord(self.keys.rental(rental_id), repr(exc)) from exc

    def commit(self, commit: Commit) -> CommitOutcome:
        return self._run_commit("commit", commit)

    def _run_commit(self, mode: str, commit: Commit) -> CommitOutcome:
        with redis_errors("commit rental"):
            reply = cast(list[Any], self._commit(self.keys.commit_keys(commit.rental),
                                                 self._commit_args(mode, commit)))
        return _commit_outcome(reply, commit.rental, commit.expected_version, self.keys)

    def _commit_args(self, mode: str, commit: Commit) -> list[str | int]:
        rental = commit.rental
        rid = rental.rental_id
        ended = rental.state is RentalState.ENDED
        entries = outbox_entries(rental, commit.effects)
        args: list[str | int] = [
            mode,
            commit.expected_version,
            _dumps(rental.to_dict()),
            commit.event_id or "",
            rid,
            "1" if rental.active else "0",
            self._retention_ms if ended else 0,
            len(rental.timers),
            len(entries),
            len(commit.log_entries),
            0 if commit.abort_watch is None else max(1, commit.abort_watch // _MS),
            *timer_args(rid, rental.timers),
        ]
        for entry in entries:
            args += [entry.effect_id, _dumps(entry.to_dict())]
        args += [log_entry_tail(rid, e) for e in commit.log_entries]
        return args

    def write_batch(self, writes: Sequence[Commit | LogAppend]) -> list[WriteResult]:
        # One script call per commit; each run of consecutive log appends is one call.
        calls: list[tuple[Any, list[str], list[str | int]]] = []
        spans: list[tuple[int, int]] = []  # (first write, how many) of each call
        i = 0
        while i < len(writes):
            write = writes[i]
            if isinstance(write, Commit):
                calls.append((self._commit, self.keys.commit_keys(write.rental),
                              self._commit_args("commit", write)))
                spans.append((i, 1))
                i += 1
                continue
            j = i
            keys: list[str] = []
            args: list[str | int] = []
            while j < len(writes) and isinstance(writes[j], LogAppend):
                append = cast(LogAppend, writes[j])
                rid = append.rental_id
                keys += [self.keys.rental(rid), self.keys.log(rid)]
                args += [len(append.log_entries),
                         *(log_entry_tail(rid, e) for e in append.log_entries)]
                j += 1
            calls.append((self._append_logs, keys, args))
            spans.append((i, j - i))
            i = j
        with redis_errors("write batch"):
            replies = self._pipelined(calls)
        results: list[WriteResult] = []
        for (first, count), reply in zip(spans, replies, strict=True):
            if isinstance(reply, Exception):
                error = StoreError(f"write batch: Redis error: {reply}")
                results += [error] * count
                continue
            parts = [reply] if isinstance(writes[first], Commit) else reply
            for write, part in zip(writes[first:first + count], parts, strict=True):
                try:
                    if isinstance(write, Commit):
                        results.append(_commit_outcome(part, write.rental,
                                                       write.expected_version, self.keys))
                    else:
                        _append_status(part, write.rental_id, None, self.keys)
                        results.append(None)
                except RentalFSMError as exc:
                    results.append(exc)
        return results

    def _pipelined(self, calls: Sequence[tuple[Any, list[str], list[str | int]]]) -> list[Any]:
        """Run script calls in one pipeline with EVALSHA (no SCRIPT EXISTS round trip);
        calls that met NOSCRIPT (a flushed script cache) are loaded and run again."""
        if isinstance(self._client, RedisCluster):
            return self._one_by_one(calls)
        pending = list(range(len(calls)))
        replies: list[Any] = [None] * len(calls)
        for _ in range(2):
            pipe = self._client.pipeline(transaction=False)
            for i in pending:
                script, keys, args = calls[i]
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            out = pipe.execute(raise_on_error=False)
            missing = []
            for i, reply in zip(pending, out, strict=True):
                if isinstance(reply, redis.exceptions.NoScriptError):
                    missing.append(i)
                replies[i] = reply
            if not missing:
                break
            for script in {id(calls[i][0]): calls[i][0] for i in missing}.values():
                script.sha = self._client.script_load(script.script)
            pending = missing
        return replies

    def _one_by_one(self, calls: Sequence[tuple[Any, list[str], list[str | int]]]) -> list[Any]:
        """``_pipelined`` on Redis Cluster, whose client refuses EVALSHA in a pipeline:
        each call alone (``Script`` loads a missing script itself), errors as replies."""
        replies: list[Any] = []
        for script, keys, args in calls:
            try:
                replies.append(script(keys=keys, args=args))
            except redis.exceptions.ResponseError as exc:
                replies.append(exc)
        return replies

    # -- prepared timers -----------------------------------------------------------------

    def upcoming_timers(self, start: datetime, until: datetime, limit: int,
                        now: datetime) -> tuple[list[DueTimer], datetime]:
        keys = self.keys
        with redis_errors("list upcoming timers"):
            found, last, scanned = cast(list[Any], self._upcoming(
                [keys.timers],
                [to_ms(start), to_ms(until), limit, keys.rental_timers(""), keys.prepared(""),
                 to_ms(now), PREPARE_LEASE // _MS, PREPARED_TTL // _MS]))
        if int(scanned) < limit or last is None:  # the whole window was scanned
            return _due_timers(found), until
        return _due_timers(found), scan_reached(start, int(float(last)))

    def prepare_timers(self, prepared: Sequence[PreparedTimer]) -> int:
        if not prepared:
            return 0
        keys = self.keys
        args: list[str | int] = [keys.rental(""), keys.rental_timers(""), keys.prepared(""),
                                 PREPARED_TTL // _MS]
        for item in prepared:
            due, commit = item.due, item.commit
            rid = commit.rental.rental_id
            if rid != due.rental_id:
                raise InvalidInput("prepared.commit", "is not the timer's rental")
            text = member(rid, due.timer, due.token)
            rental = commit.rental
            fields = [text, to_ms(due.due_at), item.owner, _dumps(dict(item.summary)),
                      rental.vehicle_id, rental.customer_id,
                      *self._commit_args("commit", commit)]
            args += [rid, due.timer.value, text, commit.expected_version, len(fields),
                     *fields]
        with redis_errors("prepare timers"):
            return int(cast(int, self._prepare([], args)))

    def fire_due(self, now: datetime, limit: int, tolerance: timedelta,
                 owner: str | None = None) -> TimerRound:
        keys = self.keys
        with redis_errors("fire due timers"):
            fired, claimed = cast(list[Any], self._fire_due(
                [keys.timers],
                [to_ms(now), limit, self.timers.lease // _MS, keys.rental_timers(""),
                 keys.prepared(""), tolerance // _MS, owner or "", keys.prefix]))
        done = []
        for i in range(0, len(fired), 3):
            text = _text(fired[i])
            done.append(FiredTimer(parse_member(text, int(fired[i + 1])),
                                   _text(fired[i + 2]), text))
        return TimerRound(done, _due_timers(claimed))

    def read_vehicles(self, reads: Sequence[VehicleRead]) -> list[VehicleView]:
        if not reads:
            return []
        keys = self.keys
        args: list[str | int] = [*self._read_prefixes, len(reads)]
        for read in reads:
            args += [read.vehicle_id, read.event_id, len(read.properties)]
            for name, prop in read.properties.items():
                args += [name, timestamp_us(name, prop), _dumps(dict(prop))]
        script_keys = [keys.vehicle_state(reads[0].vehicle_id)]
        with redis_errors("read vehicles"):
            [reply] = self._pipelined([(self._read_vehicles, script_keys, args)])
        if isinstance(reply, Exception):
            raise StoreError(f"read vehicles: Redis error: {reply}")
        views = []
        for read, (whole, caps, rid, raw, applied) in zip(reads, reply, strict=True):
            state = _decode_whole_state(keys, read.vehicle_id, whole)
            caps_view = self._decode_caps(read.vehicle_id, caps)
            if rid is None:
                views.append(VehicleView(state, caps_view, None))
                continue
            rid = _text(rid)
            views.append(VehicleView(state, caps_view, rid,
                                     None if raw is None else self._recent_rental(rid, raw),
                                     bool(applied)))
        return views

    def was_applied(self, rental_id: str, event_id: str) -> bool:
        with redis_errors("was_applied"):
            return bool(self._client.sismember(self.keys.applied(rental_id), event_id))

    def expires_in(self, rental_id: str) -> timedelta | None:
        with redis_errors("expires_in"):
            ms = int(self._client.pttl(self.keys.rental(rental_id)))
        if ms == -2:
            raise RentalNotFound(rental_id)
        return None if ms < 0 else timedelta(milliseconds=ms)

    # -- the rental log ------------------------------------------------------------------

    def append_log(
        self,
        rental_id: str,
        entries: Sequence[Mapping[str, Any]],
        *,
        expected_version: int | None = None,
    ) -> list[dict[str, Any]]:
        for entry in entries:
            check_log_entry(entry)
        tails = [log_entry_tail(rental_id, e) for e in entries]
        keys = [self.keys.rental(rental_id), self.keys.log(rental_id)]
        version = "" if expected_version is None else expected_version
        with redis_errors("append log"):
            reply = cast(list[Any], self._append_log(keys, [version, *tails]))
        first = _append_status(reply, rental_id, expected_version, self.keys)
        return [
            jsonfast.loads(complete_log_line(first + i, tail)) for i, tail in enumerate(tails)
        ]

    def log(self, rental_id: str) -> list[dict[str, Any]]:
        key = self.keys.log(rental_id)
        with redis_errors("read log"):
            lines = cast(list[bytes], self._client.lrange(key, 0, -1))
        try:
            return [dict(jsonfast.loads(line)) for line in lines]
        except ValueError as exc:
            raise CorruptRecord(key, repr(exc)) from exc

    def export_jsonl(self, rental_ids: Iterable[str], stream: TextIO) -> int:
        return sum(write_jsonl(self.log(rid), stream) for rid in rental_ids)

    def rental_ids(self) -> list[str]:
        prefix = self.keys.rental("")
        with redis_errors("list rentals"):
            keys = self._client.scan_iter(match=prefix + "*", count=1000)
            return sorted({_text(key)[len(prefix):] for key in keys})

    # -- the outbox ----------------------------------------------------------------------

    def pending_effects(self, rental_id: str) -> list[OutboxEntry]:
        key = self.keys.outbox(rental_id)
        with redis_errors("read outbox"):
            raw = cast(dict[bytes, bytes], self._client.hgetall(key))
        try:
            entries = [OutboxEntry.from_dict(jsonfast.loads(v)) for v in raw.values()]
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptRecord(key, repr(exc)) from exc
        if not entries:  # e.g. the outbox expired with its ended rental: stop listing it
            with redis_errors("prune outbox"):
                self._prune([key, self.keys.outbox_pending], [rental_id])
        return sorted(entries, key=lambda e: (e.version, e.index))

    def complete_effect(self, rental_id: str, effect_id: str) -> bool:
        keys = [self.keys.outbox(rental_id), self.keys.outbox_pending,
                self.keys.effect_claims(rental_id)]
        with redis_errors("complete effect"):
            return bool(self._complete(keys, [effect_id, rental_id]))

    def claim_effect(self, rental_id: str, effect_id: str, owner: str, now: datetime) -> bool:
        keys = [self.keys.outbox(rental_id), self.keys.effect_claims(rental_id),
                self.keys.rental(rental_id)]
        with redis_errors("claim effect"):
            return bool(self._claim_effect(keys, [effect_id, encode_claim(owner, now)]))

    def effect_claim(self, rental_id: str, effect_id: str) -> tuple[str, datetime] | None:
        with redis_errors("read effect claim"):
            raw = cast("bytes | None",
                       self._client.hget(self.keys.effect_claims(rental_id), effect_id))
        return None if raw is None else decode_claim(_text(raw))

    def rentals_with_pending_effects(self) -> set[str]:
        with redis_errors("list pending outboxes"):
            members = cast(set[bytes], self._client.smembers(self.keys.outbox_pending))
        return {_text(m) for m in members}

    # -- vehicles ------------------------------------------------------------------------

    def merge_vehicle_state(
        self, vehicle_id: str, properties: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        args: list[str | int] = []
        for name, prop in properties.items():
            args += [name, timestamp_us(name, prop), _dumps(dict(prop))]
        keys = [self.keys.vehicle_state(vehicle_id), self.keys.vehicle_state_ts(vehicle_id)]
        with redis_errors("merge vehicle state"):
            flat = cast(list[bytes], self._merge_state(keys, args))
        return self._decode_state(keys[0], dict(zip(flat[::2], flat[1::2], strict=True)))

    def vehicle_state(self, vehicle_id: str) -> dict[str, dict[str, Any]]:
        key = self.keys.vehicle_state(vehicle_id)
        with redis_errors("read vehicle state"):
            raw = cast(dict[bytes, bytes], self._client.hgetall(key))
        return self._decode_state(key, raw)

    @staticmethod
    def _decode_state(key: str, raw: Mapping[bytes, bytes]) -> dict[str, dict[str, Any]]:
        try:
            return {_text(k): dict(jsonfast.loads(v)) for k, v in raw.items()}
        except ValueError as exc:
            raise CorruptRecord(key, repr(exc)) from exc

    def set_capabilities(self, vehicle_id: str, capabilities: Mapping[str, Any]) -> None:
        with redis_errors("set capabilities"):
            self._client.set(self.keys.capabilities(vehicle_id), _dumps(dict(capabilities)))

    def remember_abort(self, vehicle_id: str, rental_id: str, ttl: timedelta) -> None:
        with redis_errors("remember aborted start"):
            self._client.set(self.keys.vehicle_aborted(vehicle_id), rental_id,
                             px=max(1, ttl // timedelta(milliseconds=1)))

    def aborted_rental(self, vehicle_id: str) -> str | None:
        with redis_errors("read aborted start"):
            raw = cast("bytes | None", self._client.get(self.keys.vehicle_aborted(vehicle_id)))
        return None if raw is None else _text(raw)

    def active_rental(self, vehicle_id: str) -> str | None:
        with redis_errors("read vehicle index"):
            raw = cast("bytes | None", self._client.get(self.keys.vehicle_active(vehicle_id)))
        return None if raw is None else _text(raw)

    def capabilities(self, vehicle_id: str) -> dict[str, Any] | None:
        with redis_errors("read capabilities"):
            raw = cast("bytes | None", self._client.get(self.keys.capabilities(vehicle_id)))
        return self._decode_caps(vehicle_id, raw)

    def _decode_caps(self, vehicle_id: str, raw: bytes | None) -> dict[str, Any] | None:
        if raw is None:
            return None
        try:
            return dict(jsonfast.loads(raw))
        except ValueError as exc:
            raise CorruptRecord(self.keys.capabilities(vehicle_id), repr(exc)) from exc


def _due_timers(flat: Sequence[Any]) -> list[DueTimer]:
    """(member, score) pairs of a timer script's reply."""
    return [parse_member(_text(flat[i]), int(float(flat[i + 1])))
            for i in range(0, len(flat), 2)]


def _decode_whole_state(keys: Keys, vehicle_id: str, whole: bytes) -> dict[str, dict[str, Any]]:
    """A vehicle state the read script returned as one JSON object (the key is only
    built for the error)."""
    try:
        state = jsonfast.loads(whole)
    except ValueError as exc:
        raise CorruptRecord(keys.vehicle_state(vehicle_id), repr(exc)) from exc
    if not all(isinstance(v, dict) for v in state.values()):
        raise CorruptRecord(keys.vehicle_state(vehicle_id), "a property is not a JSON object")
    return cast(dict[str, dict[str, Any]], state)


def _commit_outcome(reply: list[Any], rental: Rental, expected_version: int,
                    keys: Keys) -> CommitOutcome:
    """The commit script's reply as an outcome, or the error it stands for."""
    rid = rental.rental_id
    status = _text(reply[0])
    if status == "ok":
        return CommitOutcome.APPLIED
    if status == "duplicate":
        return CommitOutcome.DUPLICATE
    if status == "exists":
        raise RentalExists(rid)
    if status == "not_found":
        raise RentalNotFound(rid)
    if status == "conflict":
        raise VersionConflict(rid, expected_version)
    if status == "corrupt":
        raise CorruptRecord(keys.rental(rid), "stored record is not a JSON object")
    if status == "vehicle_busy":
        raise VehicleBusy(rental.vehicle_id, _text(reply[1]))
    if status == "customer_busy":
        raise CustomerBusy(rental.customer_id, _text(reply[1]))
    raise StoreError(f"unexpected commit reply {reply!r}")


def _append_status(reply: list[Any], rental_id: str, expected_version: int | None,
                   keys: Keys) -> int:
    """The seq of the first appended entry, or the error the append script reported."""
    status = _text(reply[0])
    if status == "not_found":
        raise RentalNotFound(rental_id)
    if status == "conflict":
        raise VersionConflict(rental_id, expected_version)
    if status == "corrupt":
        raise CorruptRecord(keys.rental(rental_id), "stored record is not JSON")
    return int(reply[1])
