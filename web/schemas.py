"""Schemas shared by every resource family: problems and the Job resource.

The Job resource is written here once, and dumped from typed objects: the
write side's `Job` aggregate (`Outcome.job`, `Dispatch.get_job`) and the read
model's `JobRecord`, which share their attribute names. Its fields map those
snake_case attributes to the camelCase of the contract (`data_key`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from marshmallow import fields, missing, validate

from domain.catalog import format_time
from domain.values import AssignmentStatus, JobStatus, Priority, ReasonCode

JOB_STATUSES = [s.value for s in JobStatus]
ASSIGNMENT_STATUSES = [s.value for s in AssignmentStatus]
PRIORITIES = [p.value for p in Priority]
REASON_CODES = [r.value for r in ReasonCode]


class Strict(ma.Schema):
    """Request bodies: unknown fields are an error, never silently dropped."""

    class Meta:
        unknown = ma.RAISE


class Trimmed(fields.String):
    """A string trimmed of surrounding whitespace before it is validated."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


class Resource(ma.Schema):
    """A response schema, dumped field by field: each field reads its attribute (a
    dict's key) and converts the value with its own `_serialize`.

    That is marshmallow's dump without the accessor calls around each field,
    which cost more than the conversions here. So response schemas use no
    dump_default or dotted attribute, and a nested one no dump hook (they would
    be skipped). It leans on two private names of marshmallow 4.4 (pinned to that
    minor): `Schema._serialize`, which `dump` calls, and `Field._CHECK_ATTRIBUTE`;
    tests/web/test_job_responses.py holds the resulting JSON, field by field.
    """

    def _serialize(self, obj: Any, *, many: bool = False) -> Any:
        if many and obj is not None:
            return [self._serialize(each) for each in obj]
        found = {}
        if isinstance(obj, dict):
            for key, attribute, serialize, reads in self._plan:
                value = obj.get(attribute, missing) if reads else None
                if value is not missing:
                    found[key] = serialize(value, attribute, obj)
        else:
            for key, attribute, serialize, reads in self._plan:
                value = getattr(obj, attribute, missing) if reads else None
                if value is not missing:
                    found[key] = serialize(value, attribute, obj)
        return found

    @functools.cached_property
    def _plan(self) -> list[tuple[str, str, Callable[..., Any], bool]]:
        """Each field's key in the output, the attribute it reads, its conversion,
        and whether it reads that attribute at all (see ServiceWindow)."""
        return [(field.data_key or name, field.attribute or name, field._serialize,
                 field._CHECK_ATTRIBUTE) for name, field in self.dump_fields.items()]


def _text(value: Any) -> Any:
    return value if value is None or value.__class__ is str else str(value)


class Text(fields.String):
    """A string on output: text as it is, anything else (a StrEnum) as str()."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return _text(value)


class Id(fields.UUID):
    """A UUID on output: a UUID as str(), text (a read model's) as it is."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return _text(value)


class Timestamp(fields.String):
    """A date-time on output: UTC, Z suffix, microseconds (`format_time`).

    A datetime (the aggregate's) is formatted; text (a read model's, formatted
    when it was stored) is sent as it is, never parsed back.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(metadata={"format": "date-time",
                                   "example": "2030-01-15T09:00:00Z"}, **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value if value is None or value.__class__ is str else format_time(value)


class EpochTimestamp(Timestamp):
    """A date-time on output from Unix seconds (a float, as the webhooks' rows
    keep instants), as Timestamp writes it; None stays None."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else format_time(datetime.fromtimestamp(value, UTC))


class Embedded(fields.Nested):
    """A nested Resource (or a list of them, many=True), dumped by its schema."""

    def _serialize(  # type: ignore[override]  # Nested and Field name it differently
            self, nested_obj: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if nested_obj is None:
            return None
        return self.schema._serialize(nested_obj, many=bool(self.many))


class AsStored(fields.Nested):
    """An object kept in the shape the contract shows (checked on the way in):
    documented by its schema, sent as it is."""

    def _serialize(  # type: ignore[override]  # Nested and Field name it differently
            self, nested_obj: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return nested_obj


class ProblemSchema(ma.Schema):
    type = fields.String(metadata={"description": "A URI naming the kind of problem"})
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    code = fields.String(metadata={"description": "Stable machine-readable code"})
    instance = fields.String()
    requestId = fields.String()
    jobId = fields.String()
    currentStatus = fields.String()
    currentVersion = fields.Integer()
    errors = fields.Dict(metadata={"description": "Field errors, by field"})


class LocationSchema(ma.Schema):
    address = fields.String(required=True)
    latitude = fields.Float(required=True)
    longitude = fields.Float(required=True)


class ServiceWindowSchema(Resource):
    start = Timestamp(required=True)
    end = Timestamp(required=True)


class ServiceWindow(Embedded):
    """serviceWindow: the object's window_start and window_end, as {start, end}."""

    _CHECK_ATTRIBUTE = False  # made of two attributes, not read from one

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(ServiceWindowSchema, **kwargs)

    def _serialize(  # type: ignore[override]  # Nested and Field name it differently
            self, nested_obj: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return super()._serialize({"start": obj.window_start, "end": obj.window_end},
                                  attr, obj)


class JobAssignmentSchema(Resource):
    """An assignment within its job (an `Assignment` or an `AssignmentRecord`)."""

    id = Id(required=True)
    contractor_id = Id(data_key="contractorId", required=True)
    start_utc = Timestamp(data_key="startUtc", required=True)
    end_utc = Timestamp(data_key="endUtc", required=True)
    status = Text(required=True, validate=validate.OneOf(ASSIGNMENT_STATUSES))


class CancellationSchema(Resource):
    reason = Text(allow_none=True)
    reasonCode = Text(validate=validate.OneOf(REASON_CODES))
    cancelledBy = Text()
    cancelledAt = Timestamp()


class JobSchema(Resource):
    """The Job resource, from a `Job` aggregate or a `JobRecord` of the read model."""

    id = Id(required=True)
    version = fields.Integer(required=True)
    type = Text(required=True)
    description = Text(allow_none=True)
    duration_minutes = fields.Integer(data_key="durationMinutes", required=True)
    priority = Text(required=True, validate=validate.OneOf(PRIORITIES))
    region = Text(required=True)
    required_skills = fields.List(Text(), data_key="requiredSkills", required=True)
    location = AsStored(LocationSchema, allow_none=True)
    service_window = ServiceWindow(data_key="serviceWindow", required=True)
    status = Text(required=True, validate=validate.OneOf(JOB_STATUSES))
    assignments = Embedded(JobAssignmentSchema, many=True, required=True)
    cancellation = Embedded(CancellationSchema, allow_none=True)
    created_at = Timestamp(data_key="createdAt", required=True)
    updated_at = Timestamp(data_key="updatedAt", required=True)
