"""The delivery follower: one delivery per event per endpoint that wants it.

It follows the log from its own recorded position (`LogFollower`, with the
process's shared reader), and records the deliveries of each batch with the
batch's position in one transaction (`WebhookStore.record`): each delivery is
made exactly once. They are recorded leased to this process and handed to its
`Sender`, so the first send waits for nothing more.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.persistence import IntegrityError

from projections.following.entries import Entry
from projections.following.follower import FailureRecord, LogFollower
from projections.following.reader import LogReader
from projections.log import EventLog
from projections.realtime.envelopes import region_of
from projections.webhooks import tables
from projections.webhooks.sender import Sender
from projections.webhooks.store import WebhookStore
from projections.webhooks.tables import Delivery


class WebhookFollower(LogFollower):
    """Makes the deliveries of each new event, and has its sender send them."""

    name = "webhooks"

    def __init__(self, app: EventLog, store: WebhookStore, sender: Sender, *,
                 batch_size: int = 200, max_backoff: float = 30.0,
                 status: FailureRecord | None = None, reader: LogReader | None = None) -> None:
        super().__init__(app, batch_size=batch_size, max_backoff=max_backoff,
                         status=status, reader=reader)
        self.store = store
        self.sender = sender

    def position(self) -> int:
        return self.store.position()

    def start(self) -> Any:
        self.sender.start()
        return super().start()

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self.sender.stop(timeout)

    def handle(self, entries: Sequence[Entry]) -> bool:
        now = time.time()
        deliveries = self.deliveries(entries, now)
        try:
            self.store.record(deliveries, entries[0].id, entries[-1].id)
        except IntegrityError:
            if self.store.position() < entries[0].id:
                raise
            return False  # another process recorded these first: it sends them
        self.sender.submit(deliveries)
        return True

    def deliveries(self, entries: Sequence[Entry], now: float) -> list[Delivery]:
        endpoints = self.store.active_endpoints()
        found: list[Delivery] = []
        if not endpoints:
            return found  # nothing to decode
        leased = now + self.sender.lease
        for entry in entries:
            item = entry.envelope
            kind, region = item["type"], region_of(item)
            for endpoint in endpoints:
                if endpoint.wants(entry.id, kind, region):
                    found.append(Delivery(
                        id=str(uuid5(UUID(endpoint.id), str(entry.id))),
                        endpoint_id=endpoint.id, event_id=item["id"], position=entry.id,
                        type=kind, payload=entry.payload, status=tables.PENDING, attempts=0,
                        last_status_code=None, last_error=None, next_attempt_at=leased,
                        created_at=now))
        return found
