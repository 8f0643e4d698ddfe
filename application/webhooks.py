"""The Admins' webhook operations: register, list, show, delete, rotate the
secret, list deliveries, retry one (the HTTP face is web/webhooks/).

Who created, rotated or deleted an endpoint, and when, is recorded with it (a
deleted endpoint is kept, marked). A URL is checked by
`projections.webhooks.addresses` (https and public addresses only in
production); a secret is made here, shown once, and stored sealed
(`projections.webhooks.secrets`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from uuid import UUID

from domain.errors import DomainError, Forbidden, InvalidJob
from domain.values import Actor, Role
from projections.query import Page
from projections.webhooks import addresses, tables
from projections.webhooks.secrets import SecretBox, new_secret
from projections.webhooks.store import WebhookStore
from projections.webhooks.tables import Delivery, Endpoint

ROTATION_OVERLAP = 24 * 3600.0
"""Seconds the secret before a rotation still signs (a second signature)."""


class WebhookNotFound(DomainError):
    """No (live) webhook endpoint has the given id."""

    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"No webhook endpoint {endpoint_id}.")


class DeliveryNotRetryable(DomainError):
    """Only a Failed or Dead delivery of an Active endpoint can be retried."""

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryNotRetryable:
        return cls(f"Delivery {delivery.id} is {delivery.status}: only a Failed or "
                   "Dead delivery can be retried.", current_status=delivery.status)

    @classmethod
    def disabled(cls, endpoint: Endpoint) -> DeliveryNotRetryable:
        return cls(f"Webhook endpoint {endpoint.id} is disabled (it answered 410 Gone): "
                   "nothing is sent to it, so none of its deliveries can be retried. "
                   "Register the URL again to receive events.",
                   current_status=endpoint.status)


class DeliveryNotFound(WebhookNotFound):
    def __init__(self, delivery_id: str) -> None:
        DomainError.__init__(self, f"No delivery {delivery_id} of this endpoint.")


class WebhooksUnavailable(DomainError):
    """No endpoint can be registered: webhooks are off (SMARTSCHEDULER_WEBHOOKS=false),
    or there is no key to seal secrets with (production without
    SMARTSCHEDULER_WEBHOOK_KEY)."""

    NO_KEY = ("Webhooks cannot be registered: the server has no "
              "SMARTSCHEDULER_WEBHOOK_KEY to store their secrets with.")
    OFF = ("Webhooks cannot be registered: this deployment delivers none "
           "(SMARTSCHEDULER_WEBHOOKS=false).")


def require_admin(actor: Actor) -> None:
    if Role.ADMIN not in actor.roles:
        raise Forbidden("Only an Admin may manage webhooks.")


class Webhooks:
    """The webhook endpoints and their deliveries, for Admins."""

    def __init__(self, store: WebhookStore, box: SecretBox | None, *, production: bool,
                 head: Callable[[], int], enabled: bool = True) -> None:
        self.store = store
        self.box = box
        self.production = production
        self.head = head
        self.enabled = enabled
        """Whether this deployment delivers webhooks: when not, none is registered."""

    def register(self, actor: Actor, url: str, event_types: Sequence[str] = (),
                 regions: Sequence[str] = (), description: str | None = None,
                 ) -> tuple[Endpoint, str]:
        """A new endpoint, which receives the events after now; its secret."""
        require_admin(actor)
        if not self.enabled:
            raise WebhooksUnavailable(WebhooksUnavailable.OFF)
        try:
            addresses.check(url, production=self.production)
        except addresses.Refused as refused:
            raise InvalidJob(str(refused), field="url") from None
        secret = new_secret()
        sealed = self._seal(secret)
        endpoint = Endpoint(
            id=str(uuid.uuid4()), url=url, event_types=tuple(dict.fromkeys(event_types)),
            regions=tuple(dict.fromkeys(regions)), description=description,
            status=tables.ACTIVE, after_position=self.head(), secret=sealed,
            previous_secret=None, previous_until=None, created_at=time.time(),
            created_by=actor.sub)
        self.store.insert_endpoint(endpoint)
        return endpoint, secret

    def endpoints(self, actor: Actor) -> list[Endpoint]:
        require_admin(actor)
        return self.store.endpoints()

    def endpoint(self, actor: Actor, endpoint_id: str) -> Endpoint:
        require_admin(actor)
        found = self.store.endpoint(_id(endpoint_id))
        if found is None:
            raise WebhookNotFound(endpoint_id)
        return found

    def delete(self, actor: Actor, endpoint_id: str) -> None:
        require_admin(actor)
        if not self.store.delete_endpoint(_id(endpoint_id), actor.sub, time.time()):
            raise WebhookNotFound(endpoint_id)

    def rotate_secret(self, actor: Actor, endpoint_id: str) -> tuple[Endpoint, str]:
        """A new secret; the one before still signs for ROTATION_OVERLAP."""
        require_admin(actor)
        secret, now = new_secret(), time.time()
        if not self.store.rotate_secret(_id(endpoint_id), self._seal(secret),
                                        now + ROTATION_OVERLAP, actor.sub, now):
            raise WebhookNotFound(endpoint_id)
        return self.endpoint(actor, endpoint_id), secret

    def deliveries(self, actor: Actor, endpoint_id: str, *, status: str | None = None,
                   page: int = 1, page_size: int = 20) -> Page[Delivery]:
        endpoint = self.endpoint(actor, endpoint_id)
        return self.store.deliveries(endpoint.id, status=status, page=page,
                                     page_size=page_size)

    def retry(self, actor: Actor, endpoint_id: str, delivery_id: str) -> Delivery:
        """Make a Failed or Dead delivery due now (its sender sends it within a second);
        never one of a Disabled endpoint, to which nothing is sent."""
        endpoint = self.endpoint(actor, endpoint_id)
        if endpoint.status != tables.ACTIVE:
            raise DeliveryNotRetryable.disabled(endpoint)
        delivery = self.store.retry(endpoint.id, _id(delivery_id), time.time())
        if delivery is None:
            raise DeliveryNotFound(delivery_id)
        if delivery.status != tables.FAILED or delivery.next_attempt_at is None:
            raise DeliveryNotRetryable.of(delivery)
        return delivery

    def _seal(self, secret: str) -> str:
        if self.box is None:
            raise WebhooksUnavailable(WebhooksUnavailable.NO_KEY)
        return self.box.seal(secret)


def _id(text: str) -> str:
    """An id from a path; a malformed one names nothing."""
    try:
        return str(UUID(text))
    except ValueError:
        return "-"
