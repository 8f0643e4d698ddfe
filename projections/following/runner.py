"""Keeps the read models up to date by following the event store's log."""

from __future__ import annotations

from collections.abc import Sequence

from eventsourcing.persistence import IntegrityError, Tracking

from projections.following.entries import Entry
from projections.following.follower import LogFollower
from projections.following.reader import LogReader
from projections.log import EventLog
from projections.store import DispatchViews


class ViewsRunner(LogFollower):
    """Keeps the read models current: applies each new batch of events to them."""

    name = "read_models"

    def __init__(self, app: EventLog, views: DispatchViews, *, batch_size: int = 500,
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
