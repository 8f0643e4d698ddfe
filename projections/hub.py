"""Realtime fan-out inside one server process.

The hub hands every published envelope, in position order and once, to the
local subscribers (the open event streams). Its source is the event store
itself in the embedded mode (through the process's shared reader of the log,
projections.reader, as one more follower beside the read models and the relay:
the envelopes the relay publishes are made once for both), or Redis pub/sub
between processes; with Redis, a jump in positions or a quiet spell is filled
in from the event store, so a dropped pub/sub message delays an event but never
loses it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import redis

from projections.backoff import Backoff
from projections.envelopes import envelope
from projections.follower import LogFollower
from projections.log import EventLog
from projections.reader import Entry, LogReader
from projections.relay import CHANNEL_PREFIX

log = logging.getLogger(__name__)

SOURCE_BACKOFF = 10.0
"""Longest wait between tries of a failing realtime source (Redis pub/sub)."""

Envelope = dict[str, Any]


class Subscriber:
    """One open stream: a bounded queue of envelopes that pass its filter."""

    def __init__(self, accepts: Callable[[Envelope], bool], capacity: int = 10_000) -> None:
        self.accepts = accepts
        self.queue: queue.Queue[Envelope | None] = queue.Queue(maxsize=capacity)
        self.closed = False

    def offer(self, item: Envelope) -> None:
        if self.closed or not self.accepts(item):
            return
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            # A stream that cannot keep up is closed; its client resumes with
            # Last-Event-ID and catches up from the event store.
            self.queue.queue.clear()
            self.close()

    def offer_many(self, items: Sequence[Envelope]) -> None:
        """`offer` each of `items`, in order (a stream may take them at once)."""
        for item in items:
            self.offer(item)

    def close(self) -> None:
        """End the stream: its reader gets None."""
        self.closed = True
        self.queue.put_nowait(None)

    def end(self) -> None:
        """End the stream at once, dropping what is queued."""
        with contextlib.suppress(queue.Empty):
            while True:
                self.queue.get_nowait()
        with contextlib.suppress(queue.Full):
            self.close()


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


class Hub:
    """Distributes envelopes to this process's subscribers."""

    def __init__(self, app: EventLog, redis_url: str | None = None, *,
                 fill_interval: float = 1.0, reader: LogReader | None = None) -> None:
        self.app = app
        self.redis_url = redis_url
        self.fill_interval = fill_interval
        # Not the head: below it, an append may still be committing (PostgreSQL).
        self.position = app.settled_position()
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._delivery = threading.Lock()
        self._stopping = threading.Event()
        self._source: Any = None
        self._threads: list[threading.Thread] = []
        self._feed = None if redis_url else StoreFeed(self, reader=reader)

    # Subscribers ----------------------------------------------------------

    def subscribe(self, accepts: Callable[[Envelope], bool], *,
                  subscriber: Subscriber | None = None) -> Subscriber:
        """A new subscriber (or `subscriber`, e.g. a subclass that writes to its
        socket itself) that gets every envelope `accepts` passes, from now on."""
        subscriber = subscriber or Subscriber(accepts)
        with self._lock:
            self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(subscriber)

    def end_streams(self) -> None:
        """End every open stream now, dropping what it has queued: its client
        resumes with Last-Event-ID after the last event it received."""
        with self._lock:
            subscribers = [s for s in self._subscribers if not s.closed]
        for subscriber in subscribers:
            subscriber.end()

    # Sources --------------------------------------------------------------

    def start(self) -> Hub:
        if self._feed is not None:
            self._feed.start()
        targets = [self._follow_redis, self._fill_gaps] if self.redis_url else []
        for target in targets:
            thread = threading.Thread(target=self._forever, args=(target,), daemon=True,
                                      name=f"hub-{target.__name__.strip('_')}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._feed is not None:
            self._feed.stop(5)
        source = self._source
        if hasattr(source, "stop"):
            source.stop()
        elif source is not None:
            source.close()
        for thread in self._threads:
            thread.join(5)
        with self._lock:
            for subscriber in self._subscribers:
                subscriber.close()

    def deliver(self, item: Envelope) -> None:
        """Hand an envelope to the subscribers, filling any gap before it first."""
        with self._delivery:
            position = item["position"]
            if position <= self.position:
                return
            if position > self.position + 1:
                for missed in read_log(self.app, self.position, until=position - 1):
                    self._fan_out(missed)
            self._fan_out(item)

    def _fan_out(self, item: Envelope) -> None:
        self.position = item["position"]
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.offer(item)

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

    def _deliver_entries(self, entries: Sequence[Entry]) -> None:
        """Deliver entries of the log (the embedded mode's source)."""
        if not self._subscribers:  # nobody listens: just keep the position
            with self._delivery:
                self.position = max(self.position, entries[-1].id)
            return
        with self._delivery:
            fresh = [entry for entry in entries if entry.id > self.position]
            if not fresh:
                return
            if fresh[0].id > self.position + 1:  # e.g. a position it was told of late
                for missed in read_log(self.app, self.position, until=fresh[0].id - 1):
                    self._fan_out(missed)
            # One hand-over per subscriber for the batch (the log has no gap in it).
            self._fan_out_many([entry.envelope for entry in fresh])

    def _fan_out_many(self, items: Sequence[Envelope]) -> None:
        self.position = items[-1]["position"]
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.offer_many(items)

    def _follow_redis(self) -> None:
        assert self.redis_url is not None
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
                    self.deliver(json.loads(message["data"]))
        finally:
            pubsub.close()
            client.close()

    def _fill_gaps(self) -> None:
        """Catch up from the store when Redis is quiet (a dropped message, an outage)."""
        last_seen, quiet_since = self.position, time.monotonic()
        while not self._stopping.wait(self.fill_interval / 2):
            if self.position != last_seen:
                last_seen, quiet_since = self.position, time.monotonic()
            elif time.monotonic() - quiet_since >= self.fill_interval:
                self._fill_to_head()
                last_seen, quiet_since = self.position, time.monotonic()

    def _fill_to_head(self) -> None:
        head = self.app.head_position()
        if head > self.position:
            for missed in read_log(self.app, self.position, until=head):
                self.deliver(missed)


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
        self.hub._deliver_entries(entries)
        return True
