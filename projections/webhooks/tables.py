"""The webhooks' tables: registered endpoints and their deliveries, and the
records a row is read into.

They live in the read models' database, beside the tracking row of the delivery
follower (`projections.webhooks.follower`), so that the deliveries of a batch of
events and the follower's position commit together. Instants are Unix seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ENDPOINTS = "webhook_endpoints"
DELIVERIES = "webhook_deliveries"

ACTIVE, DISABLED = "Active", "Disabled"
PENDING, SUCCEEDED, FAILED, DEAD = "Pending", "Succeeded", "Failed", "Dead"
DELIVERY_STATUSES = (PENDING, SUCCEEDED, FAILED, DEAD)
RETRYABLE = (FAILED, DEAD)
TO_SEND = (PENDING, FAILED)

CREATE = [
    f"CREATE TABLE IF NOT EXISTS {ENDPOINTS} ("
    "id TEXT PRIMARY KEY, url TEXT NOT NULL, event_types TEXT NOT NULL, "
    "regions TEXT NOT NULL, description TEXT, status TEXT NOT NULL, "
    "after_position BIGINT NOT NULL, secret TEXT NOT NULL, previous_secret TEXT, "
    "previous_until DOUBLE PRECISION, created_at DOUBLE PRECISION NOT NULL, "
    "created_by TEXT NOT NULL, rotated_at DOUBLE PRECISION, rotated_by TEXT, "
    "deleted_at DOUBLE PRECISION, deleted_by TEXT, disabled_at DOUBLE PRECISION, "
    "disabled_reason TEXT)",
    f"CREATE TABLE IF NOT EXISTS {DELIVERIES} ("
    "id TEXT PRIMARY KEY, endpoint_id TEXT NOT NULL, event_id TEXT NOT NULL, "
    "position BIGINT NOT NULL, type TEXT NOT NULL, payload TEXT NOT NULL, "
    "status TEXT NOT NULL, attempts INTEGER NOT NULL, last_status_code INTEGER, "
    "last_error TEXT, next_attempt_at DOUBLE PRECISION, "
    "created_at DOUBLE PRECISION NOT NULL, UNIQUE (endpoint_id, position))",
    f"CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON {DELIVERIES} "
    "(next_attempt_at) WHERE next_attempt_at IS NOT NULL",
    f"CREATE INDEX IF NOT EXISTS webhook_deliveries_listed ON {DELIVERIES} "
    "(endpoint_id, created_at)",
]

ENDPOINT_COLUMNS = ("id, url, event_types, regions, description, status, after_position, "
                    "secret, previous_secret, previous_until, created_at, created_by, "
                    "rotated_at, rotated_by, disabled_at, disabled_reason")
DELIVERY_COLUMNS = ("id, endpoint_id, event_id, position, type, payload, status, attempts, "
                    "last_status_code, last_error, next_attempt_at, created_at")

INSERT_ENDPOINT = (
    f"INSERT INTO {ENDPOINTS} (id, url, event_types, regions, description, status, "
    "after_position, secret, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
INSERT_DELIVERY = (
    f"INSERT INTO {DELIVERIES} ({DELIVERY_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
LIVE = "deleted_at IS NULL"


@dataclass(frozen=True)
class Endpoint:
    """A registered endpoint; its secrets as stored (encrypted)."""

    id: str
    url: str
    event_types: tuple[str, ...]
    regions: tuple[str, ...]
    description: str | None
    status: str
    after_position: int
    secret: str
    previous_secret: str | None
    previous_until: float | None
    created_at: float
    created_by: str
    rotated_at: float | None = None
    rotated_by: str | None = None
    disabled_at: float | None = None
    disabled_reason: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Endpoint:
        values = {key: row[key] for key in ENDPOINT_COLUMNS.split(", ")}
        values["event_types"] = tuple(json.loads(values["event_types"]))
        values["regions"] = tuple(json.loads(values["regions"]))
        return cls(**values)

    def wants(self, position: int, event_type: str, region: str) -> bool:
        """Whether the event at `position` goes to this endpoint: one after its
        registration, of a type and region it asked for (none named: all)."""
        return (position > self.after_position
                and (not self.event_types or event_type in self.event_types)
                and (not self.regions or region in self.regions))

    def signing_secrets(self, now: float) -> list[str]:
        """The stored secrets that sign now: the current one, and the one before
        during a rotation's overlap."""
        if self.previous_secret and self.previous_until and now < self.previous_until:
            return [self.secret, self.previous_secret]
        return [self.secret]


@dataclass(frozen=True)
class Delivery:
    """One event for one endpoint, and how sending it went."""

    id: str
    endpoint_id: str
    event_id: str
    position: int
    type: str
    payload: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: float | None
    created_at: float

    @classmethod
    def from_row(cls, row: Any) -> Delivery:
        return cls(**{key: row[key] for key in DELIVERY_COLUMNS.split(", ")})

    def row(self) -> tuple[Any, ...]:
        return (self.id, self.endpoint_id, self.event_id, self.position, self.type,
                self.payload, self.status, self.attempts, self.last_status_code,
                self.last_error, self.next_attempt_at, self.created_at)
