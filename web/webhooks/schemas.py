"""Request and response schemas of /api/webhooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from domain.catalog import EVENT_TYPES
from projections.webhooks.addresses import MAX_URL
from projections.webhooks.tables import ACTIVE, DELIVERY_STATUSES, DISABLED, Endpoint
from web.jobs.schemas import MAX_LENGTH
from web.schemas import EpochTimestamp, Strict, Trimmed

EVENT_TYPE_NAMES = list(EVENT_TYPES.values())


class WebhookCreateSchema(Strict):
    url = fields.String(required=True, validate=validate.Length(min=1, max=MAX_URL))
    event_types = fields.List(fields.String(validate=validate.OneOf(EVENT_TYPE_NAMES)),
                              data_key="eventTypes", load_default=list,
                              validate=validate.Length(max=len(EVENT_TYPE_NAMES)))
    regions = fields.List(Trimmed(validate=validate.Length(min=1, max=MAX_LENGTH["region"])),
                          load_default=list, validate=validate.Length(max=100))
    description = fields.String(load_default=None, allow_none=True,
                                validate=validate.Length(max=500))


class DeliveryListQuery(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))


class WebhookSchema(ma.Schema):
    """An endpoint (never its secret), dumped from a `tables.Endpoint`."""

    id = fields.String(required=True)
    url = fields.String(required=True)
    event_types = fields.List(fields.String(), data_key="eventTypes", required=True)
    regions = fields.List(fields.String(), required=True)
    description = fields.String(allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf([ACTIVE, DISABLED]))
    created_at = EpochTimestamp(data_key="createdAt", required=True)
    created_by = fields.String(data_key="createdBy", required=True)
    secret_rotated_at = EpochTimestamp(attribute="rotated_at", data_key="secretRotatedAt",
                                       allow_none=True)
    disabled_reason = fields.String(data_key="disabledReason", allow_none=True)


@dataclass(frozen=True)
class Revealed:
    """An endpoint and its new secret (not a tuple: a view's tuple is its answer's
    parts)."""

    endpoint: Endpoint
    secret: str


class WebhookWithSecretSchema(WebhookSchema):
    """An endpoint with its secret: only when it is made (created, rotated)."""

    secret = fields.String(required=True)

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        return {**ENDPOINT.dump(obj.endpoint), "secret": obj.secret}


ENDPOINT = WebhookSchema()


class DeliverySchema(ma.Schema):
    id = fields.String(required=True)
    event_id = fields.String(data_key="eventId", required=True)
    position = fields.Integer(required=True)
    type = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(DELIVERY_STATUSES))
    attempts = fields.Integer(required=True)
    last_status_code = fields.Integer(data_key="lastStatusCode", allow_none=True)
    last_error = fields.String(data_key="lastError", allow_none=True)
    next_attempt_at = EpochTimestamp(data_key="nextAttemptAt", allow_none=True)
    created_at = EpochTimestamp(data_key="createdAt", required=True)
