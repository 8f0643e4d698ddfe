"""Schemas of /api/assignments."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from web.schemas import ASSIGNMENT_STATUSES, Id, Resource, Text, Timestamp


class AssignmentListQuery(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    contractor_id = fields.UUID(data_key="contractorId")
    job_id = fields.UUID(data_key="jobId")
    status = fields.String(validate=validate.OneOf(ASSIGNMENT_STATUSES))


class AssignmentSchema(Resource):
    """An assignment with its job's id, from an `AssignmentRecord` of the read model."""

    id = Id(required=True)
    job_id = Id(data_key="jobId", required=True)
    contractor_id = Id(data_key="contractorId", required=True)
    start_utc = Timestamp(data_key="startUtc", required=True)
    end_utc = Timestamp(data_key="endUtc", required=True)
    status = Text(required=True, validate=validate.OneOf(ASSIGNMENT_STATUSES))
