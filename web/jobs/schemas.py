"""Request and response schemas of /api/jobs."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from domain.values import (
    DEFAULT_PRIORITY,
    DEFAULT_REASON_CODE,
    DEFAULT_REGION,
    EARLIEST,
    INSTANT_RANGE,
    LATEST,
)
from web.schemas import (
    JOB_STATUSES,
    PRIORITIES,
    REASON_CODES,
    Strict,
    Timestamp,
    Trimmed,
)

MAX_MINUTES = 60 * 24 * 31
MAX_LENGTH = {"type": 200, "description": 4000, "region": 100, "reason": 500}
"""The longest text each field takes (also the console's form limits)."""


def aware_datetime(**kwargs: Any) -> fields.Field:
    """Any ISO 8601 date-time with an offset whose UTC value every reader can hold;
    a naive one, or one outside 1970-01-01T00:00:00Z..9999-12-30T23:59:59Z, is a
    validation error."""
    return fields.AwareDateTime(
        format="iso", default_timezone=None,
        validate=validate.Range(min=EARLIEST, max=LATEST, error=(
            f"Must fall between {INSTANT_RANGE}.")),
        **kwargs)


class LocationInput(Strict):
    address = Trimmed(required=True, validate=validate.Length(min=1, max=500))
    latitude = fields.Float(required=True, allow_nan=False,
                            validate=validate.Range(min=-90, max=90))
    longitude = fields.Float(required=True, allow_nan=False,
                             validate=validate.Range(min=-180, max=180))


class ServiceWindowInput(Strict):
    start = aware_datetime(required=True)
    end = aware_datetime(required=True)

    @ma.validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if "start" in data and "end" in data and data["end"] <= data["start"]:
            raise ma.ValidationError("end must be after start.", field_name="end")


class JobCreateSchema(Strict):
    type = Trimmed(required=True, validate=validate.Length(min=1, max=MAX_LENGTH["type"]))
    description = fields.String(load_default=None, allow_none=True,
                                validate=validate.Length(max=MAX_LENGTH["description"]))
    duration_minutes = fields.Integer(data_key="durationMinutes", required=True,
                                      strict=True,
                                      validate=validate.Range(min=1, max=MAX_MINUTES))
    priority = fields.String(load_default=DEFAULT_PRIORITY.value,
                             validate=validate.OneOf(PRIORITIES))
    region = Trimmed(load_default=DEFAULT_REGION,
                     validate=validate.Length(min=1, max=MAX_LENGTH["region"]))
    required_skills = fields.List(Trimmed(validate=validate.Length(min=1, max=100)),
                                  data_key="requiredSkills", load_default=list,
                                  validate=validate.Length(max=50))
    location = fields.Nested(LocationInput, load_default=None, allow_none=True)
    service_window = fields.Nested(ServiceWindowInput, data_key="serviceWindow",
                                   required=True)

    @ma.post_load
    def _to_command(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        window = data.pop("service_window")
        return {**data, "window_start": window["start"], "window_end": window["end"]}


class AssignSchema(Strict):
    contractor_id = fields.UUID(data_key="contractorId", required=True)
    start_utc = aware_datetime(data_key="startUtc", required=True)
    end_utc = aware_datetime(data_key="endUtc", required=True)

    @ma.validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if "start_utc" in data and "end_utc" in data and data["end_utc"] <= data["start_utc"]:
            raise ma.ValidationError("endUtc must be after startUtc.", field_name="endUtc")


def reason_field() -> fields.Field:
    return Trimmed(load_default=None, allow_none=True,
                   validate=validate.Length(min=1, max=MAX_LENGTH["reason"]),
                   metadata={"description": f"1 to {MAX_LENGTH['reason']} characters "
                             "after trimming"})


class OptionalBody(Strict):
    """A body that may be left out; a JSON null counts as left out."""

    @ma.pre_load
    def _null_is_empty(self, data: Any, **_: Any) -> Any:
        return {} if data is None else data


class CancelSchema(OptionalBody):
    reason = reason_field()
    reason_code = fields.String(data_key="reasonCode", load_default=DEFAULT_REASON_CODE.value,
                                validate=validate.OneOf(REASON_CODES))


class CancelAssignmentSchema(OptionalBody):
    reason = reason_field()


class JobListQuery(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    status = fields.String(validate=validate.OneOf(JOB_STATUSES))
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    region = fields.String(validate=validate.Length(min=1, max=100))


class VersionQuery(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    version = fields.Integer(strict=False,
                             metadata={"description": "Return the job as it was then"})


class AuditActorSchema(ma.Schema):
    sub = fields.String()
    roles = fields.List(fields.String())


class AuditEventSchema(ma.Schema):
    version = fields.Integer(required=True)
    type = fields.String(required=True)
    occurredAt = Timestamp(required=True)
    actor = fields.Nested(AuditActorSchema, allow_none=True)
    requestId = fields.String(allow_none=True)
    data = fields.Dict(required=True)


class HistorySchema(ma.Schema):
    jobId = fields.UUID(required=True)
    events = fields.List(fields.Nested(AuditEventSchema), required=True)
