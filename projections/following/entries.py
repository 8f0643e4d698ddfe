"""Entries of the log: a notification with its event, envelope and JSON, each
made once, whoever asks first.

The followers of a process (the read models, the relay, the realtime hub) share
one reader of the log (`projections.following.reader`), which hands each of them the same
`Entry` objects: the domain event is decoded by the shared `Decoder` at most
once per entry, and the envelope the relay publishes and the hub delivers is
made once for both. `batches` groups what a subscription has already fetched,
as the reader and the followers read it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification

from projections.realtime.envelopes import envelope

_UNSET: Any = object()


def batches(subscription: Any, max_size: int) -> Iterator[list[Notification]]:
    """Group what a subscription has already fetched, without waiting for more."""
    for notification in subscription:
        batch = [notification]
        # ListenNotifySubscription fetches pages; take the rest of the page at once.
        while (len(batch) < max_size
               and subscription._notifications_index < len(subscription._notifications)):
            batch.append(next(subscription))
        yield batch


class Decoder:
    """Decodes entries for every consumer of a process, each entry once."""

    def __init__(self, mapper: Mapper[UUID]) -> None:
        self.mapper = mapper
        self.lock = threading.Lock()
        self.decoded = 0
        """Domain events decoded so far (for tests and figures)."""

    def to_event(self, notification: Notification) -> Any:
        event = self.mapper.to_domain_event(notification)
        self.decoded += 1
        return event


class Entry:
    """A notification of the log, with its domain event, envelope and JSON made
    when first asked for, once, whoever asks. A failure to decode is not kept:
    the next ask tries again (a fix may have been deployed meanwhile)."""

    __slots__ = ("_decoder", "_envelope", "_event", "_payload", "id", "notification")

    def __init__(self, notification: Notification, decoder: Decoder) -> None:
        self.notification = notification
        self.id: int = notification.id
        self._decoder = decoder
        self._event: Any = _UNSET
        self._envelope: Any = _UNSET
        self._payload: Any = _UNSET

    @property
    def event(self) -> Any:
        """The domain event."""
        return self._once("_event", lambda: self._decoder.to_event(self.notification))

    @property
    def envelope(self) -> dict[str, Any]:
        """The published envelope (projections.realtime.envelopes)."""
        event = self.event  # outside `_once`: its lock is not re-entrant
        return self._once("_envelope",  # type: ignore[no-any-return]
                          lambda: envelope(event, self.id))

    @property
    def payload(self) -> str:
        """The envelope as JSON, as the relay publishes it."""
        item = self.envelope
        return self._once("_payload", lambda: json.dumps(item))  # type: ignore[no-any-return]

    def _once(self, name: str, make: Callable[[], Any]) -> Any:
        """The attribute `name`, made by `make` the first time anyone asks."""
        found = getattr(self, name)
        if found is _UNSET:
            with self._decoder.lock:
                found = getattr(self, name)
                if found is _UNSET:
                    found = make()
                    setattr(self, name, found)
        return found

    def __repr__(self) -> str:
        return f"Entry({self.id}, {self.notification.topic})"
