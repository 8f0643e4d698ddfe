"""Schemas of /api/assignments."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from web.schemas import ASSIGNMENT_STATUSES, timestamp


class AssignmentListQuery(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    contractor_id = fields.UUID(data_key="contractorId")
    job_id = fields.UUID(data_key="jobId")
    status = fields.String(validate=validate.OneOf(ASSIGNMENT_STATUSES))


class AssignmentSchema(ma.Schema):
    id = fields.UUID(required=True)
    jobId = fields.UUID(required=True)
    contractorId = fields.UUID(required=True)
    startUtc = timestamp(required=True)
    endUtc = timestamp(required=True)
    status = fields.String(required=True, validate=validate.OneOf(ASSIGNMENT_STATUSES))
