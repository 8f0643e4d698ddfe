"""The relay: publishes every committed event to Redis, at least once.

The event store is the outbox. The relay follows the notification log from
the position it recorded last, appends each envelope to the Redis stream
`smartscheduler:events` with entry id `<position>-0` (Redis refuses an id that
is not above the top, so a re-publish after a crash never duplicates an entry),
publishes it on the pub/sub channels of its groups, and only then records the
new position. A crash or a Redis outage delays delivery; it loses nothing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

import redis
from eventsourcing.persistence import IntegrityError, Tracking

from projections.following.entries import Entry
from projections.following.follower import FailureRecord, LogFollower
from projections.following.reader import LogReader
from projections.log import EventLog
from projections.realtime.envelopes import envelope, groups_of

STREAM = "smartscheduler:events"
CHANNEL_PREFIX = "smartscheduler:"
TRACKING_NAME = "Relay"


def channel(group: str) -> str:
    return f"{CHANNEL_PREFIX}{group}"


class Relay(LogFollower):
    """Follows the log and publishes each event to the Redis stream and channels."""

    name = "relay"
    infrastructure_errors = (*LogFollower.infrastructure_errors, redis.ConnectionError,
                             redis.TimeoutError)

    def __init__(self, app: EventLog, redis_client: redis.Redis, *, batch_size: int = 200,
                 stream_maxlen: int | None = 1_000_000, max_backoff: float = 10.0,
                 status: FailureRecord | None = None, reader: LogReader | None = None) -> None:
        super().__init__(app, batch_size=batch_size, max_backoff=max_backoff,
                         status=status, reader=reader)
        self.redis = redis_client
        self.tracking = app.factory.tracking_recorder()
        self.stream_maxlen = stream_maxlen

    def position(self) -> int:
        return self.tracking.max_tracking_id(TRACKING_NAME) or 0

    def check(self) -> None:
        self.redis.ping()

    def handle(self, entries: Sequence[Entry]) -> bool:
        self._publish([(entry.envelope, entry.payload) for entry in entries])
        return True

    def publish(self, pairs: list[tuple[Any, int]]) -> None:
        """Publish (event, position) pairs in order, then record the last position."""
        envelopes = [envelope(event, position) for event, position in pairs]
        self._publish([(item, json.dumps(item)) for item in envelopes])

    def _publish(self, items: list[tuple[dict[str, Any], str]]) -> None:
        """Publish (envelope, its JSON) pairs in order, then record the last position."""
        for item, payload in items:
            self._append(item, payload)
        pipe = self.redis.pipeline(transaction=False)
        for item, payload in items:
            for group in groups_of(item):
                pipe.publish(channel(group), payload)
        pipe.execute()
        # IntegrityError: another relay recorded this far already (no duplicate entry).
        with contextlib.suppress(IntegrityError):
            self.tracking.insert_tracking(Tracking(TRACKING_NAME, items[-1][0]["position"]))

    def _append(self, item: dict[str, Any], payload: str) -> None:
        try:
            self.redis.xadd(STREAM, {"event": payload}, id=f"{item['position']}-0",
                            maxlen=self.stream_maxlen, approximate=True)
        except redis.ResponseError as error:
            if "equal or smaller" not in str(error):
                raise
            # Already in the stream: published before a crash or by another relay.
