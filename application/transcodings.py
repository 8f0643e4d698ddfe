"""How the domain's own value types are stored inside events and snapshots."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Transcoding

from domain.values import Assignment


class AssignmentAsDict(Transcoding):
    """An Assignment (in a Job snapshot) as the dict of its attributes."""

    type = Assignment
    name = "smartscheduler.Assignment"

    def encode(self, obj: Assignment) -> dict[str, Any]:
        return dict(vars(obj))

    def decode(self, data: dict[str, Any]) -> Assignment:
        return Assignment(**data)
