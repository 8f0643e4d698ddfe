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
import logging
import threading
from typing import Any

import redis
from eventsourcing.persistence import IntegrityError, Tracking

from projections.envelopes import envelope, groups_of
from projections.runner import batches

log = logging.getLogger(__name__)

STREAM = "smartscheduler:events"
CHANNEL_PREFIX = "smartscheduler:"
TRACKING_NAME = "Relay"


def channel(group: str) -> str:
    return f"{CHANNEL_PREFIX}{group}"


class Relay:
    """Follows the log and publishes each event to the Redis stream and channels."""

    def __init__(self, app: Any, redis_client: redis.Redis, *, batch_size: int = 200,
                 stream_maxlen: int | None = 1_000_000, max_backoff: float = 10.0) -> None:
        self.app = app
        self.redis = redis_client
        self.tracking = app.factory.tracking_recorder()
        self.batch_size = batch_size
        self.stream_maxlen = stream_maxlen
        self.max_backoff = max_backoff
        self.last_error: BaseException | None = None
        self._stopping = threading.Event()
        self._subscription: Any = None
        self._thread: threading.Thread | None = None

    def position(self) -> int:
        return self.tracking.max_tracking_id(TRACKING_NAME) or 0

    def start(self) -> Relay:
        self._thread = threading.Thread(target=self.run, name="relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._subscription is not None:
            self._subscription.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                self._follow()
                backoff = 0.1
            except (redis.RedisError, OSError) as error:
                self._failed(error, backoff, "Redis is unavailable")
            except Exception as error:  # keep the position honest and try again
                self._failed(error, backoff, "Publishing failed")
            else:
                continue
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    def publish(self, pairs: list[tuple[Any, int]]) -> None:
        """Publish (event, position) pairs in order, then record the last position."""
        envelopes = [envelope(event, position) for event, position in pairs]
        for item in envelopes:
            self._append(item)
        pipe = self.redis.pipeline(transaction=False)
        for item in envelopes:
            payload = json.dumps(item)
            for group in groups_of(item):
                pipe.publish(channel(group), payload)
        pipe.execute()
        # IntegrityError: another relay recorded this far already (no duplicate entry).
        with contextlib.suppress(IntegrityError):
            self.tracking.insert_tracking(Tracking(TRACKING_NAME, pairs[-1][1]))

    def _append(self, item: dict[str, Any]) -> None:
        try:
            self.redis.xadd(STREAM, {"event": json.dumps(item)}, id=f"{item['position']}-0",
                            maxlen=self.stream_maxlen, approximate=True)
        except redis.ResponseError as error:
            if "equal or smaller" not in str(error):
                raise
            # Already in the stream: published before a crash or by another relay.

    def _follow(self) -> None:
        subscription = self.app.recorder.subscribe(gt=self.position())
        self._subscription = subscription
        with subscription:
            if self._stopping.is_set():
                return
            for notifications in batches(subscription, self.batch_size):
                to_event = self.app.mapper.to_domain_event
                self.publish([(to_event(n), n.id) for n in notifications])
                if self.last_error is not None:
                    log.info("Publishing again from position %s.", notifications[0].id)
                    self.last_error = None

    def _failed(self, error: BaseException, backoff: float, what: str) -> None:
        self.last_error, previous = error, self.last_error
        if previous is None or type(previous) is not type(error):
            try:
                position: int | str = self.position()
            except Exception:  # the store is failing too: the thread must live on
                position = "the recorded one"
            log.warning("%s (%s); retrying from position %s in %.1fs", what, error,
                        position, backoff)
