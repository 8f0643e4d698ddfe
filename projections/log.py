"""What the read side needs of the application whose log it follows."""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, InfrastructureFactory, Mapper


class EventLog(Protocol):
    """The application (`application.dispatch.Dispatch`), as the read side sees it:
    its notification log (recorder), its mapper from stored to domain events, its
    factory (for the read models' own recorders), and where its log ends."""

    recorder: ApplicationRecorder
    mapper: Mapper[UUID]
    factory: InfrastructureFactory[Any]

    def head_position(self) -> int: ...

    def settled_position(self) -> int: ...
