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
`smartscheduler relay reset-stream`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid5

import redis
from eventsourcing.persistence import IntegrityError, Notification, Tracking

from projections.following.entries import Entry
from projections.following.follower import FailureRecord, LogFollower
from projections.following.reader import LogReader
from projections.following.status import HALTED, Failure
from projections.log import EventLog
from projections.realtime import stream
from projections.realtime.envelopes import envelope, groups_of
from projections.realtime.identity import (
    TRACKING_NAME,
    StoreIdentity,
    ensure_identity,
    read_identity,
)
from projections.realtime.stream import STREAM, StreamMismatch, StreamProblem, StreamReset

__all__ = ["CHANNEL_PREFIX", "STREAM", "TRACKING_NAME", "Relay", "channel"]

log = logging.getLogger("projections.relay")

CHANNEL_PREFIX = "smartscheduler:"


def channel(group: str) -> str:
    return f"{CHANNEL_PREFIX}{group}"


def event_id(notification: Notification) -> str:
    """The envelope's id of a stored event (projections.realtime.envelopes)."""
    return str(uuid5(UUID(str(notification.originator_id)),
                     str(notification.originator_version)))


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
            _refuse(owner, identity)
        self._top_is_ours()
        if not owner:
            owner = _text(stream.claim(self.redis, identity.owner))
            if owner != identity.owner:
                _refuse(owner, identity)

    def _top_is_ours(self) -> None:
        """Raises StreamMismatch unless the stream's last entry is this store's
        event at that position (or the stream is empty). Looked at before each
        batch too: a store restored under a running relay is found at its next
        batch, before anything of the new history lands above the old one."""
        found = stream.top(self.redis)
        if found is None:
            return
        position, payload = found
        theirs = _id_in(payload)
        ours = self.app.recorder.select_notifications(start=position, limit=1)
        if ours and ours[0].id == position and event_id(ours[0]) == theirs:
            return
        has = (f"event {event_id(ours[0])} there" if ours and ours[0].id == position
               else "no event there (the stream is ahead of the store)")
        raise StreamMismatch(
            f"the stream's last entry {position}-0 is event {theirs or '(unreadable)'}, and "
            f"this store has {has}: the stream is from another history (a fresh or "
            "restored store, or another store sharing the Redis)")

    def handle(self, entries: Sequence[Entry]) -> bool:
        self._publish([(entry.envelope, entry.payload) for entry in entries])
        return True

    def publish(self, pairs: list[tuple[Any, int]]) -> None:
        """Publish (event, position) pairs in order, then record the last position."""
        envelopes = [envelope(event, position) for event, position in pairs]
        self._publish([(item, json.dumps(item)) for item in envelopes])

    def _publish(self, items: list[tuple[dict[str, Any], str]]) -> None:
        """Publish (envelope, its JSON) pairs in order, then record the last position;
        raises StreamProblem at an entry the stream cannot take, after publishing
        and recording those before it."""
        identity = self._current()
        self._top_is_ours()
        done, problem, detail = stream.append(
            self.redis, identity.owner, self.stream_maxlen,
            [(item["position"], item["id"], payload) for item, payload in items])
        if done:
            published = items[:done]
            pipe = self.redis.pipeline(transaction=False)
            for item, payload in published:
                for group in groups_of(item):
                    pipe.publish(channel(group), payload)
            pipe.execute()
            # IntegrityError: another relay recorded this far already (no duplicate entry).
            with contextlib.suppress(IntegrityError):
                self.tracking.insert_tracking(
                    Tracking(identity.tracking_name, published[-1][0]["position"]))
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


def _refuse(owner: str, identity: StoreIdentity) -> None:
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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _id_in(payload: bytes | None) -> str:
    try:
        found = json.loads(payload or b"")
    except ValueError:
        return ""
    return str(found.get("id", "")) if isinstance(found, dict) else ""
