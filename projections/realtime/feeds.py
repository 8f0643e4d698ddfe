"""Where the realtime hub's envelopes come from: the event store, or Redis.

Part of the realtime fan-out (`projections.realtime.hub`): a `Hub` has one feed. In the
embedded mode, `StoreFeed` follows the event store through the process's shared
reader of the log (projections.following.reader), as one more follower beside the read
models and the relay. Between processes, `RedisFeed` follows the relay's Redis
pub/sub, and fills in from the event store after a jump in positions or a quiet
spell, so a dropped pub/sub message delays an event but never loses it.
`read_log` reads envelopes straight from the store, for those fills and for a
stream that resumes after its Last-Event-ID.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import redis

from projections.following.backoff import Backoff
from projections.following.entries import Entry
from projections.following.follower import LogFollower
from projections.following.reader import LogReader
from projections.log import EventLog
from projections.realtime.envelopes import envelope
from projections.realtime.relay import CHANNEL_PREFIX

if TYPE_CHECKING:
    from projections.realtime.hub import Envelope, Hub

log = logging.getLogger("projections.hub")  # the hub's, as it always was

SOURCE_BACKOFF = 10.0
"""Longest wait between tries of a failing realtime source (Redis pub/sub)."""


def read_log(app: EventLog, after: int, *, until: int | None = None,
             page: int = 500) -> Iterator[Envelope]:
    """Envelopes of the events after `after` (up to `until`), read from the store."""
    to_event = app.mapper.to_domain_event
    while True:
        notifications = app.recorder.select_notifications(
            start=after, limit=page, stop=until, inclusive_of_start=False)
        for n in notifications:
            yield envelope(to_event(n), n.id)
        if len(notifications) < page:
            return
        after = notifications[-1].id


class StoreFeed(LogFollower):
    """The hub's source in the embedded mode: a follower of the log that delivers
    what comes after the hub's position (kept in memory, not recorded)."""

    name = "hub"

    def __init__(self, hub: Hub, *, reader: LogReader | None = None) -> None:
        super().__init__(hub.app, batch_size=500, max_backoff=10.0, reader=reader)
        self.hub = hub

    def position(self) -> int:
        return self.hub.position

    def handle(self, entries: Sequence[Entry]) -> bool:
        self.hub.deliver_entries(entries)
        return True


class RedisFeed:
    """The hub's source between processes: Redis pub/sub, and the store when
    Redis is quiet (a dropped message, an outage), each on a thread of its own
    that retries with back-off."""

    def __init__(self, hub: Hub, redis_url: str, *, fill_interval: float) -> None:
        self.hub = hub
        self.redis_url = redis_url
        self.fill_interval = fill_interval
        self._stopping = threading.Event()
        self._source: Any = None
        self._closing = threading.Lock()  # stop() and the thread may both close it
        self._threads: list[threading.Thread] = []

    def start(self) -> RedisFeed:
        for target in [self._follow_redis, self._fill_gaps]:
            thread = threading.Thread(target=self._forever, args=(target,), daemon=True,
                                      name=f"hub-{target.__name__.strip('_')}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        source = self._source
        if hasattr(source, "stop"):
            source.stop()
        elif source is not None:
            self._close(source)
        for thread in self._threads:
            thread.join(timeout)

    def _forever(self, target: Callable[[], None]) -> None:
        backoff = Backoff(SOURCE_BACKOFF)
        while not self._stopping.is_set():
            try:
                target()
                backoff.succeeded()
            except Exception as error:  # keep serving; the store fills any gap
                if self._stopping.is_set():
                    return
                wait = backoff.failed()
                log.warning("Realtime source %s failed (%s); retrying in %.1fs",
                            target.__name__, error, wait)
                self._stopping.wait(wait)

    def _follow_redis(self) -> None:
        client = redis.Redis.from_url(self.redis_url, socket_timeout=None,
                                      health_check_interval=10)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._source = pubsub
        try:
            # Every event goes to its region's dispatch group: one channel pattern
            # carries each event exactly once.
            pubsub.psubscribe(f"{CHANNEL_PREFIX}dispatch/*")
            self._fill_to_head()
            while not self._stopping.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message and message.get("type") == "pmessage":
                    self.hub.deliver(json.loads(message["data"]))
        finally:
            self._close(pubsub)
            client.close()

    def _close(self, pubsub: Any) -> None:
        """Close the pub/sub once at a time: redis-py's close is not thread-safe (a
        second one meanwhile fails on the connection the first one dropped)."""
        with self._closing:
            pubsub.close()

    def _fill_gaps(self) -> None:
        """Catch up from the store when Redis is quiet (a dropped message, an outage)."""
        hub = self.hub
        last_seen, quiet_since = hub.position, time.monotonic()
        while not self._stopping.wait(self.fill_interval / 2):
            if hub.position != last_seen:
                last_seen, quiet_since = hub.position, time.monotonic()
            elif time.monotonic() - quiet_since >= self.fill_interval:
                self._fill_to_head()
                last_seen, quiet_since = hub.position, time.monotonic()

    def _fill_to_head(self) -> None:
        hub = self.hub
        head = hub.app.head_position()
        if head > hub.position:
            for missed in read_log(hub.app, hub.position, until=head):
                hub.deliver(missed)
