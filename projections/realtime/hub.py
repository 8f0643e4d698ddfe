"""Realtime fan-out inside one server process.

The hub hands every published envelope, in position order and once, to the
local subscribers (the open event streams). Its source is the event store
itself in the embedded mode (through the process's shared reader of the log,
projections.following.reader, as one more follower beside the read models and the relay:
the envelopes the relay publishes are made once for both), or Redis pub/sub
between processes; with Redis, a jump in positions or a quiet spell is filled
in from the event store, so a dropped pub/sub message delays an event but never
loses it. Those sources (`StoreFeed`, `RedisFeed`) and `read_log` are
`projections.realtime.feeds`; here are the subscribers and the fan-out.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from projections.following.entries import Entry
from projections.following.reader import LogReader
from projections.log import EventLog
from projections.realtime.feeds import RedisFeed, StoreFeed, read_log

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
        self._feed: StoreFeed | RedisFeed = (
            RedisFeed(self, redis_url, fill_interval=fill_interval) if redis_url
            else StoreFeed(self, reader=reader))

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

    # Feeds ----------------------------------------------------------------

    def start(self) -> Hub:
        self._feed.start()
        return self

    def stop(self) -> None:
        self._feed.stop(5)
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

    def deliver_entries(self, entries: Sequence[Entry]) -> None:
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
