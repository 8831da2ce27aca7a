"""``RedisTimerQueue``: timers in one sorted set scored by due epoch ms.

Keys (see ``store.base.Keys``): ``{ns}:timers`` is the zset, member = JSON
``[rental_id, timer, token]``; ``{ns}:rental-timers:<rental_id>`` maps each armed timer of
a rental to its member, so cancelling or re-arming finds the old member without a scan.
The store's commit script runs the same ``SYNC_TIMERS_LUA`` on the same keys, so timers
change atomically with the rental record.

``claim_due`` is one Lua script, so each due timer goes to exactly one caller at a time
with one round trip per batch. A claim is a lease: the member is re-scored to now + lease
rather than removed, and the commit that fires it (the timer is spent) removes it. If the
claimer dies first, the member is due again when the lease ends, unless its rental no
longer holds it, in which case the claim drops it. Re-scheduling the same token is a
no-op, and a fired token's commit is refused a second time (event id), so a token never
fires twice.

This module (with ``store/redis.py``) is the only importer of ``redis``;
``redis_errors`` translates its exceptions for both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, cast

import redis
from redis.cluster import RedisCluster

from ..errors import StoreError, StoreUnavailable
from ..model import ArmedTimer, Timer
from ..store.base import Keys
from .base import CLAIM_LEASE, DueTimer, member, parse_member, to_ms


@contextlib.contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Translate redis exceptions into ours; no ``redis.*`` error leaves the adapters."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailable(f"{what}: Redis unreachable: {exc}") from exc
    except redis.RedisError as exc:
        raise StoreError(f"{what}: Redis error: {exc}") from exc


#: Lua fragment: make the rental's timers exactly the (name, member, score) triples in
#: A[first .. first + 3*n - 1] (A is the script's ARGV, or a prepared commit's).
SYNC_TIMERS_LUA = """
local function sync_timers(A, zset, map, first, n)
  local cur = {}
  local all = redis.call('HGETALL', map)
  for j = 1, #all, 2 do cur[all[j]] = all[j + 1] end
  local adds, sets, gone, dels = {}, {}, {}, {}
  local i = first
  for _ = 1, n do
    local name, m, score = A[i], A[i + 1], A[i + 2]
    i = i + 3
    local old = cur[name]
    cur[name] = nil
    if old ~= m then
      if old then gone[#gone + 1] = old end
      adds[#adds + 1] = score
      adds[#adds + 1] = m
      sets[#sets + 1] = name
      sets[#sets + 1] = m
    end
  end
  for name, old in pairs(cur) do  -- armed before, not wanted now
    gone[#gone + 1] = old
    dels[#dels + 1] = name
  end
  if #gone > 0 then redis.call('ZREM', zset, unpack(gone)) end
  if #dels > 0 then redis.call('HDEL', map, unpack(dels)) end
  if #adds > 0 then redis.call('ZADD', zset, unpack(adds)) end
  if #sets > 0 then redis.call('HSET', map, unpack(sets)) end
end
"""

#: Lua fragment: ``member_parts(m)`` is the queue member's {rental id, timer name, token},
#: or nil for a member that does not decode; ``armed(m, prefix)`` the same, but only
#: while the rental still holds it (its ``{ns}:rental-timers:`` map, built from prefix);
#: ``lease_or_drop`` claims a due member still armed (re-scored to now + lease, appended
#: with its score to ``out``) and removes one that is not.
MEMBER_LUA = """
local function member_parts(m)
  local ok, parts = pcall(cjson.decode, m)
  if ok and type(parts) == 'table' and type(parts[1]) == 'string'
      and type(parts[2]) == 'string' then
    return parts
  end
  return nil
end

local function armed(m, prefix)
  local parts = member_parts(m)
  if parts and redis.call('HGET', prefix .. parts[1], parts[2]) == m then return parts end
  return nil
end

local function lease_or_drop(zset, m, score, now, lease, prefix, out)
  if armed(m, prefix) then
    redis.call('ZADD', zset, now + lease, m)
    out[#out + 1] = m
    out[#out + 1] = score
  else
    redis.call('ZREM', zset, m)
  end
end
"""

_SCHEDULE_LUA = """
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if cur == ARGV[2] then return 0 end
if cur then redis.call('ZREM', KEYS[1], cur) end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

_CANCEL_LUA = """
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if not cur then return 0 end
redis.call('ZREM', KEYS[1], cur)
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

_SYNC_LUA = SYNC_TIMERS_LUA + """
sync_timers(ARGV, KEYS[1], KEYS[2], 2, tonumber(ARGV[1]))
return 1
"""

#: KEYS: zset. ARGV: now ms, limit, lease ms, rental-timers key prefix. A due member
#: still armed on its rental is leased (re-scored to now + lease) and returned; one its
#: rental no longer holds (cancelled, superseded, fired) is removed. The rental-timers key
#: is built from the prefix: it shares the namespace's hash tag, so the zset's slot.
_CLAIM_LUA = MEMBER_LUA + """
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES',
                       'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for i = 1, #due, 2 do
  lease_or_drop(KEYS[1], due[i], due[i + 1], now, lease, ARGV[4], out)
end
return out
"""


def timer_args(rental_id: str, timers: Mapping[Timer, ArmedTimer]) -> list[str | int]:
    """ARGV triples for ``SYNC_TIMERS_LUA``."""
    args: list[str | int] = []
    for timer, armed in sorted(timers.items()):
        args += [timer.value, member(rental_id, timer, armed.token), to_ms(armed.due_at)]
    return args


class RedisTimerQueue:
    """The TimerQueue contract on Redis; shares ``Keys`` with ``RedisRentalStore``."""

    def __init__(self, client: redis.Redis | RedisCluster, keys: Keys | None = None, *,
                 lease: timedelta = CLAIM_LEASE) -> None:
        self._client = client
        self.keys = keys or Keys()
        #: How long a claim holds a timer (``CLAIM_LEASE``).
        self.lease = lease
        self._lease_ms = lease // timedelta(milliseconds=1)
        self._schedule = client.register_script(_SCHEDULE_LUA)
        self._cancel = client.register_script(_CANCEL_LUA)
        self._sync = client.register_script(_SYNC_LUA)
        self._claim = client.register_script(_CLAIM_LUA)

    def schedule(self, rental_id: str, timer: Timer, token: str, due_at: datetime) -> None:
        keys = [self.keys.timers, self.keys.rental_timers(rental_id)]
        with redis_errors("schedule timer"):
            self._schedule(keys, [timer.value, member(rental_id, timer, token), to_ms(due_at)])

    def cancel(self, rental_id: str, timer: Timer) -> None:
        keys = [self.keys.timers, self.keys.rental_timers(rental_id)]
        with redis_errors("cancel timer"):
            self._cancel(keys, [timer.value])

    def sync_rental(self, rental_id: str, timers: Mapping[Timer, ArmedTimer]) -> None:
        keys = [self.keys.timers, self.keys.rental_timers(rental_id)]
        with redis_errors("sync timers"):
            self._sync(keys, [len(timers), *timer_args(rental_id, timers)])

    def claim_due(self, now: datetime, limit: int = 100) -> list[DueTimer]:
        with redis_errors("claim timers"):
            flat = cast(list[Any], self._claim(
                [self.keys.timers],
                [to_ms(now), limit, self._lease_ms, self.keys.rental_timers("")]))
        return [
            parse_member(_text(flat[i]), int(float(flat[i + 1])))
            for i in range(0, len(flat), 2)
        ]

    def pending(self) -> int:
        with redis_errors("count timers"):
            return int(self._client.zcard(self.keys.timers))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
