"""Keeps the read models up to date by following the event store's log."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import IntegrityError, Tracking

from projections.follower import LogFollower
from projections.reader import Entry, LogReader
from projections.views import DispatchViews, decode


class ViewsRunner(LogFollower):
    """Keeps the read models current: applies each new batch of events to them."""

    name = "read_models"

    def __init__(self, app: Any, views: DispatchViews, *, batch_size: int = 500,
                 max_backoff: float = 30.0, reader: LogReader | None = None) -> None:
        super().__init__(app, batch_size=batch_size, max_backoff=max_backoff, status=views,
                         reader=reader)
        self.views = views

    def position(self) -> int:
        return self.views.position()

    def handle(self, entries: Sequence[Entry]) -> bool:
        name = self.views.tracking_name
        try:
            self.views.process([(entry.event, Tracking(name, entry.id)) for entry in entries])
        except IntegrityError:
            if self.views.position() < entries[0].id:
                raise
            # Another runner, or a rebuild's switch, got there first.
            return False
        return True


@dataclass(frozen=True)
class RebuildResult:
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def rebuild(app: Any, views: DispatchViews, *, batch_size: int = 1000,
            progress: Callable[[int, int], None] | None = None) -> RebuildResult:
    """Replay the whole log into new tables, then switch them in for the live ones.

    The live read models keep serving (and being kept) meanwhile; the switch is
    one transaction. `progress(done, head)` is called after every batch.
    """
    began = time.perf_counter()
    shadow = views.shadow()
    shadow.create_empty()
    position, done = 0, 0
    while True:
        head = app.recorder.max_notification_id() or 0
        notifications = app.recorder.select_notifications(
            start=position, limit=batch_size, inclusive_of_start=False)
        if not notifications:
            break
        shadow.process(decode(app, notifications, shadow.tracking_name))
        position = notifications[-1].id
        done += len(notifications)
        if progress:
            progress(done, max(head, position))
    views.switch_to(shadow, app)
    return RebuildResult(done, time.perf_counter() - began)
