"""The HTTP resources of jobs and assignments, as web.schemas dumps them.

The tests compare the read models with the write model through them: a
`JobRecord` and the `Job` aggregate it was built from are the same resource.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from projections.assignments import AssignmentRecord
from web.assignments.schemas import AssignmentSchema
from web.schemas import JobSchema

JOB = JobSchema()
ASSIGNMENT = AssignmentSchema()


def resource(obj: Any) -> dict[str, Any] | None:
    """A job (aggregate or record) or an assignment record as the API sends it."""
    if obj is None:
        return None
    return ASSIGNMENT.dump(obj) if isinstance(obj, AssignmentRecord) else JOB.dump(obj)


def resources(objs: Iterable[Any]) -> list[dict[str, Any] | None]:
    return [resource(obj) for obj in objs]
