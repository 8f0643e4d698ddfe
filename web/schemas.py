"""Schemas shared by every resource family: problems and the Job resource."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from domain.job import AssignmentStatus, JobStatus, Priority, ReasonCode

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


def timestamp(**kwargs: Any) -> fields.Field:
    """A date-time on output (already formatted, UTC, Z suffix)."""
    return fields.String(metadata={"format": "date-time", "example": "2030-01-15T09:00:00Z"},
                         **kwargs)


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


class ServiceWindowSchema(ma.Schema):
    start = timestamp(required=True)
    end = timestamp(required=True)


class JobAssignmentSchema(ma.Schema):
    id = fields.UUID(required=True)
    contractorId = fields.UUID(required=True)
    startUtc = timestamp(required=True)
    endUtc = timestamp(required=True)
    status = fields.String(required=True, validate=validate.OneOf(ASSIGNMENT_STATUSES))


class CancellationSchema(ma.Schema):
    reason = fields.String(allow_none=True)
    reasonCode = fields.String(validate=validate.OneOf(REASON_CODES))
    cancelledBy = fields.String()
    cancelledAt = timestamp()


class JobSchema(ma.Schema):
    """The Job resource."""

    id = fields.UUID(required=True)
    version = fields.Integer(required=True)
    type = fields.String(required=True)
    description = fields.String(allow_none=True)
    durationMinutes = fields.Integer(required=True)
    priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES))
    region = fields.String(required=True)
    requiredSkills = fields.List(fields.String(), required=True)
    location = fields.Nested(LocationSchema, allow_none=True)
    serviceWindow = fields.Nested(ServiceWindowSchema, required=True)
    status = fields.String(required=True, validate=validate.OneOf(JOB_STATUSES))
    assignments = fields.List(fields.Nested(JobAssignmentSchema), required=True)
    cancellation = fields.Nested(CancellationSchema, allow_none=True)
    createdAt = timestamp(required=True)
    updatedAt = timestamp(required=True)
