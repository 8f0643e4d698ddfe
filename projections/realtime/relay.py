"""The relay: publishes every committed event to Redis, at least once.

The event store is the outbox. The relay follows the notification log from
the position it recorded last, appends each envelope to the Redis stream
`smartscheduler:events` with entry id `<position>-0` (Redis refuses an id that
is not above the top, so a re-publish after a crash never duplicates an entry),
publishes it on the pub/sub channels of its groups, and only then records the
new position. A crash or a Redis outage delays delivery; it loses nothing.

The stream belongs to one store (projections.realtime.stream): a taken id
counts as published only when the entry there is the same event. When the
stream holds another history (a fresh or restored store, another store
sharing the Redis), the relay stops publishing, logs it at ERROR and records
it as halted, which every `/readyz` and `projections status` report as stuck
at once; it looks again every few seconds, and goes on by itself after
`smartscheduler relay reset-stream`; an idle relay looks at the stream's owner
on each of its polls, so it notices a reset (or a flushed Redis) at once.

A stream that ends below the relay's position lost entries in Redis (flushed,
the stream deleted, Redis restored from an older snapshot): the position is the
store's record of what was published, so the relay says so at ERROR and
publishes again, in order, from the stream's last entry (from the first event
when the stream is empty); consumers de-duplicate on `id` or `position`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
from eventsourcing.persistence import IntegrityError, Notification, Tracking

from projections.following.entries import Decoder, Entry
from projections.following.follower import FailureRecord, LogFollower
from projections.following.reader import LogReader
from projections.following.status import HALTED, Failure
from projections.log import EventLog
from projections.realtime import stream
from projections.realtime.envelopes import groups_of
from projections.realtime.identity import (
    TRACKING_NAME,
    StoreIdentity,
    ensure_identity,
    read_identity,
)
from projections.realtime.stream import (
    STREAM,
    StreamMismatch,
    StreamProblem,
    StreamReset,
    event_key,
    refuse,
)

__all__ = ["CHANNEL_PREFIX", "STREAM", "TRACKING_NAME", "Relay", "channel"]

log = logging.getLogger("projections.relay")

CHANNEL_PREFIX = "smartscheduler:"


def channel(group: str) -> str:
    return f"{CHANNEL_PREFIX}{group}"


class Relay(LogFollower):
    """Follows the log and publishes each event to the Redis stream and channels."""

    name = "relay"
    infrastructure_errors = (*LogFollower.infrastructure_errors, redis.ConnectionError,
                             redis.TimeoutError, StreamProblem)

    def __init__(self, app: EventLog, redis_client: redis.Redis, *, batch_size: int = 200,
                 stream_maxlen: int | None = 1_000_000, max_backoff: float = 10.0,
                 status: FailureRecord | None = None, reader: LogReader | None = None) -> None:
        super().__init__(app, batch_size=batch_size, max_backoff=max_backoff,
                         status=status, reader=reader)
        self.redis = redis_client
        self.tracking = app.factory.tracking_recorder()
        self.stream_maxlen = stream_maxlen
        self.identity = ensure_identity(self.tracking)
        self._checks = Decoder(app.mapper)  # the top-entry checks' own, not the reader's
        self._appended: tuple[int, str] | None = None
        """(position, event key) of the last entry this relay appended: a stream
        whose top is still that entry needs no look at the store."""
        self._local = threading.local()  # the identity a thread's position() read

    def position(self) -> int:
        """The position recorded for the store's current stream."""
        identity = read_identity(self.tracking) or ensure_identity(self.tracking)
        self._local.identity = identity
        return self.tracking.max_tracking_id(identity.tracking_name) or 0

    def _current(self) -> StoreIdentity:
        identity = getattr(self._local, "identity", None)
        if identity is None:
            self.position()
            identity = self._local.identity
        return identity  # type: ignore[no-any-return]

    def check(self) -> None:
        """Redis answers, and its stream is this store's (or becomes it, when it
        records no owner and its last entry is this store's event there)."""
        identity = self._current()
        owner = _text(self.redis.get(stream.OWNER))
        if owner and owner != identity.owner:
            refuse(owner, identity)
        self._top_is_ours()
        if not owner:
            owner = _text(stream.claim(self.redis, identity.owner))
            if owner != identity.owner:
                refuse(owner, identity)

    def start_after(self, after: int) -> int:
        """Where to publish from: the recorded position, or the stream's top when
        the stream ends below it (entries lost in Redis: see the module)."""
        found = stream.top(self.redis)
        top = 0 if found is None else found[0]
        if top >= after:
            return after
        log.error("Relay: the stream %s %s, below the relay's position %s: entries were "
                  "lost in Redis (flushed, the stream deleted, or Redis restored from an "
                  "older snapshot). Publishing positions %s to %s again, in order.",
                  STREAM, "is empty" if found is None else f"ends at {top}-0", after,
                  top + 1, after)
        return top

    def idle(self, after: int) -> bool:
        """Found nothing new: False when the stream's owner is no longer the
        identity this pass follows for (a reset-stream, a flushed Redis), or the
        stream ends below `after` (entries lost), so that it follows again."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(stream.OWNER)
        pipe.xrevrange(STREAM, "+", "-", count=1)
        owner, last = pipe.execute()
        top = int(_text(last[0][0]).partition("-")[0]) if last else 0
        return _text(owner) == self._current().owner and top >= after

    def _top_is_ours(self) -> None:
        """Raises StreamMismatch unless the stream's last entry is this store's
        event at that position (or the stream is empty). Looked at before each
        batch too: a store restored under a running relay is found at its next
        batch, before anything of the new history lands above the old one."""
        found = stream.top(self.redis)
        if found is None:
            return
        position, payload = found
        theirs = _decoded(payload)
        if self._appended == (position, event_key(theirs)):
            return
        found_ours = self.app.recorder.select_notifications(start=position, limit=1)
        ours = (Entry(found_ours[0], self._checks).envelope
                if found_ours and found_ours[0].id == position else None)
        if ours is not None and event_key(ours) == event_key(theirs):
            return
        has = (f"event {ours['id']} ({ours['type']} at {ours['time']}) there"
               if ours is not None else "no event there (the stream is ahead of the store)")
        described = (f"{theirs.get('id')} ({theirs.get('type')} at {theirs.get('time')})"
                     if theirs else "(unreadable)")
        raise StreamMismatch(
            f"the stream's last entry {position}-0 is event {described}, and "
            f"this store has {has}: the stream is from another history (a fresh or "
            "restored store, or another store sharing the Redis)")

    def handle(self, entries: Sequence[Entry]) -> bool:
        try:
            self._publish([(entry.envelope, entry.payload) for entry in entries])
        except StreamReset as reset:  # published those before it; follow again
            log.info("Relay: %s", reset)
            return False
        return True

    def _publish(self, items: list[tuple[dict[str, Any], str]]) -> None:
        """Publish (envelope, its JSON) pairs in order, then record the last position;
        raises StreamProblem at an entry the stream cannot take, after publishing
        and recording those before it."""
        identity = self._current()
        self._top_is_ours()
        done, problem, detail = stream.append(
            self.redis, identity.owner, self.stream_maxlen,
            [(item["position"], event_key(item), payload) for item, payload in items])
        if done:
            published = items[:done]
            self._appended = (published[-1][0]["position"], event_key(published[-1][0]))
            pipe = self.redis.pipeline(transaction=False)
            for item, payload in published:
                for group in groups_of(item):
                    pipe.publish(channel(group), payload)
            pipe.execute()
            # IntegrityError: another relay recorded this far already (no duplicate entry).
            with contextlib.suppress(IntegrityError):
                self.tracking.insert_tracking(
                    Tracking(identity.tracking_name, published[-1][0]["position"]))
        if problem == "owner":
            refuse(detail, identity)
        if problem:
            item = items[done][0]
            failed = stream.problem_at(problem, detail, item["position"], item["id"])
            if failed.position is not None:
                failed.event_type = item["type"]
            raise failed

    def _failed(self, error: BaseException, notification: Notification | None,
                backoff: float) -> None:
        """A stream of another history halts the relay, loudly and at once (see
        the module); anything else is a failure like any follower's."""
        if not isinstance(error, StreamMismatch):
            super()._failed(error, notification, backoff)
            return
        self.last_error = error
        failure = Failure(f"{HALTED}{error}"[:1000], error.position, error.event_type,
                          since=time.time())
        if failure.same_as(self.failure):
            assert self.failure is not None
            self.failure = self.failure.again()
            self._record(self.failure)
            return
        self._record(failure)
        self.failure = failure
        log.error("Relay stopped publishing to %s: %s. Nothing is skipped: it looks "
                  "again every few seconds, and goes on by itself once the stream is "
                  "reset.", STREAM, error)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _decoded(payload: bytes | None) -> dict[str, Any]:
    try:
        found = json.loads(payload or b"")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
