"""The Redis stream `smartscheduler:events` and the store it belongs to.

The key `smartscheduler:events:store` beside the stream holds its owner: the
store's epoch and stream generation (projections.realtime.identity). Appends
go through one Lua script, so the owner is checked and the entries appended
atomically: no relay of another store, or of an earlier generation, can slip
an entry in. An entry id that is already taken counts as published only when
the entry there is the same event: the same `id` (job and version), `type`,
`time` (to the microsecond) and `subject` (`event_key`), so that another event
of a restored store's new history at the same position and version is never
taken for it; otherwise the script stops, and the relay stops publishing
(`StreamMismatch`). The rest of the envelope is not compared: a release may add
to the envelope, and what it published before is still the same event.

The script also refuses to leave a gap: the stream's last entry must be at
least the entry before the first one appended (`StreamGap`), so that a stream
that lost entries (Redis flushed, the stream deleted, Redis restored from an
older snapshot) is published again from its top, not continued above a hole.
"""

from __future__ import annotations

import time
import weakref
from typing import Any, NoReturn

from projections.realtime.identity import StoreIdentity

STREAM = "smartscheduler:events"
OWNER = f"{STREAM}:store"
MOVED_PREFIX = f"{STREAM}:moved:"

REMEDY = ("Nothing more is published until an operator runs `smartscheduler relay "
          "reset-stream` (deployment.md, \"Restoring a store\")")


class StreamProblem(Exception):
    """The stream cannot take this store's events now."""

    def __init__(self, reason: str, position: int | None = None,
                 event_type: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.position = position
        self.event_type = event_type


class StreamMismatch(StreamProblem):
    """The stream holds another history: publishing stops until an operator acts."""

    def __str__(self) -> str:
        return f"{self.reason}. {REMEDY}"


class StreamReset(StreamProblem):
    """The stream was reset under the relay: it follows again from its new position."""


class StreamGap(StreamReset):
    """The stream ends below the entry before the first one to append: entries
    were lost in Redis, and the relay publishes again from the stream's top."""


def event_key(envelope: Any) -> str:
    """What makes an envelope the same event (see the module): id, type, time, subject."""
    if not isinstance(envelope, dict):
        return ""
    return "|".join(str(envelope.get(field, "")) for field in ("id", "type", "time", "subject"))


# KEYS: stream, owner. ARGV: owner value, maxlen ("" for none), then per entry:
# entry id, event key (event_key), envelope JSON. Returns {published count,
# problem, detail}.
APPEND = """
local owner = redis.call('GET', KEYS[2])
if owner ~= ARGV[1] then
  if owner then return {0, 'owner', owner} end
  if redis.call('XLEN', KEYS[1]) > 0 then return {0, 'unowned', ''} end
end
if #ARGV >= 3 then
  local before = tonumber(string.match(ARGV[3], '^(%d+)')) - 1
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  local top = 0
  if #last > 0 then top = tonumber(string.match(last[1][1], '^(%d+)')) end
  if top < before then return {0, 'gap', tostring(top)} end
end
if owner ~= ARGV[1] then redis.call('SET', KEYS[2], ARGV[1]) end
local done = 0
for i = 3, #ARGV, 3 do
  local added
  if ARGV[2] == '' then
    added = redis.pcall('XADD', KEYS[1], ARGV[i], 'event', ARGV[i + 2])
  else
    added = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], ARGV[i], 'event',
                        ARGV[i + 2])
  end
  if type(added) == 'table' and added.err then
    if not string.find(added.err, 'equal or smaller', 1, true) then
      return redis.error_reply(added.err)
    end
    local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
    if #found == 0 then return {done, 'gone', ''} end
    local fields, there = found[1][2], ''
    for f = 1, #fields, 2 do
      if fields[f] == 'event' then there = fields[f + 1] end
    end
    local ok, decoded = pcall(cjson.decode, there)
    local key, id = '', ''
    if ok and type(decoded) == 'table' then
      local parts = {}
      for _, field in ipairs({'id', 'type', 'time', 'subject'}) do
        local value = decoded[field]
        if type(value) ~= 'string' then value = '' end
        parts[#parts + 1] = value
      end
      key, id = table.concat(parts, '|'), parts[1]
    end
    if key ~= ARGV[i + 1] then return {done, 'other', id} end
  end
  done = done + 1
end
return {done, '', ''}
"""

# KEYS: stream, owner, the stream's new name, the owner's new name. ARGV: the new
# owner. Returns the number of entries moved aside.
RESET = """
local moved = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  moved = redis.call('XLEN', KEYS[1])
  redis.call('RENAME', KEYS[1], KEYS[3])
end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[4]) end
redis.call('SET', KEYS[2], ARGV[1])
return moved
"""


def append(client: Any, owner: str, maxlen: int | None,
           entries: list[tuple[int, str, str]]) -> tuple[int, str, str]:
    """Append (position, event key, envelope JSON) entries in order, as `owner`:
    (how many are in the stream now, the problem that stopped the rest or "",
    its detail)."""
    args: list[Any] = [owner, "" if maxlen is None else maxlen]
    for position, key, payload in entries:
        args += [f"{position}-0", key, payload]
    done, problem, detail = _append_script(client)(keys=[STREAM, OWNER], args=args)
    return int(done), _text(problem), _text(detail)


_scripts: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _append_script(client: Any) -> Any:
    """APPEND as the client's registered script: each batch sends its hash
    (EVALSHA), not its source (loaded again by redis-py if Redis lost it)."""
    script = _scripts.get(client)
    if script is None:
        script = _scripts[client] = client.register_script(APPEND)
    return script


def refuse(owner: str, identity: StoreIdentity) -> NoReturn:
    """Raise what a stream owned by `owner` means to a relay of `identity`: a
    newer generation of the same store is a reset (follow again, from position 0
    of it), anything else another history."""
    found = StoreIdentity.parse(owner)
    if found is not None and found.epoch == identity.epoch:
        if found.generation > identity.generation:
            raise StreamReset(f"the stream was reset (generation {found.generation}); "
                              "following again")
        raise StreamMismatch(f"the stream {STREAM} is this store's stream "
                             f"{found.generation}, but the store publishes its stream "
                             f"{identity.generation} (a reset-stream left unfinished)")
    raise StreamMismatch(f"the stream {STREAM} belongs to another store ({owner}); "
                         f"this store is {identity.owner}")


def problem_at(problem: str, detail: str, position: int, event_id: str) -> StreamProblem:
    """What an append's problem means, for the entry at `position`."""
    if problem == "owner":
        return StreamMismatch(f"the stream {STREAM} belongs to another store or stream "
                              f"({detail}), not to this one")
    if problem == "unowned":
        return StreamReset(f"the stream {STREAM} records no owner; following again")
    if problem == "gap":
        return StreamGap(f"the stream {STREAM} ends at {detail}-0, below {position - 1}-0: "
                         "entries were lost; publishing again from its top", position)
    if problem == "gone":
        return StreamMismatch(
            f"the stream's id {position}-0 is taken (the stream is past it) but holds no "
            f"entry to compare with event {event_id}: trimmed, or from another history",
            position)
    return StreamMismatch(
        f"the stream's entry {position}-0 is event {detail or '(unreadable)'}, not this "
        f"store's event {event_id} at position {position} (the same id, type, time and "
        "subject): the stream is from another "
        "history (a fresh or restored store, or another store sharing the Redis)", position)


def top(client: Any) -> tuple[int, bytes | None] | None:
    """(position, envelope JSON) of the stream's last entry, or None when empty."""
    found = client.xrevrange(STREAM, "+", "-", count=1)
    if not found:
        return None
    entry_id, fields = found[0]
    return int(_text(entry_id).partition("-")[0]), fields.get(b"event")


def claim(client: Any, owner: str) -> str | None:
    """Make `owner` the stream's owner unless it has one: the owner now."""
    client.set(OWNER, owner, nx=True)
    return _text(client.get(OWNER)) or None


def reset(client: Any, owner: str) -> tuple[str, int]:
    """Move the stream (and its owner key) aside, renamed, and give the empty
    stream to `owner`: (the name it was moved to, how many entries it holds)."""
    moved = MOVED_PREFIX + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if client.exists(moved):
        moved += f"-{time.time_ns()}"
    count = client.eval(RESET, 4, STREAM, OWNER, moved, f"{moved}:store", owner)
    return moved, int(count)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
