"""Webhooks wired from Settings: the Admins' service and the delivery follower.

The key that seals secrets is SMARTSCHEDULER_WEBHOOK_KEY; outside production a
public development key stands in (with a warning, like the JWT secret). In
production without one the server still starts, but no endpoint can be
registered (503 webhooks_unavailable) and the error is logged; so too (503)
with SMARTSCHEDULER_WEBHOOKS=false, when no delivery would ever be made.
"""

from __future__ import annotations

import logging

from application.dispatch import Dispatch
from application.metrics import metrics
from application.settings import Settings, retry_waits
from application.webhooks import Webhooks
from projections.following.follower import FailureRecord
from projections.webhooks.backends import webhooks_for
from projections.webhooks.follower import WebhookFollower
from projections.webhooks.secrets import DEVELOPMENT_KEY, SecretBox
from projections.webhooks.sender import SCHEDULE, Sender
from projections.webhooks.store import WebhookStore

log = logging.getLogger("smartscheduler")
_warned: set[str] = set()


def secret_box(settings: Settings) -> SecretBox | None:
    if settings.webhook_key:
        return SecretBox(settings.webhook_key)
    if settings.is_production:
        _once("SMARTSCHEDULER_WEBHOOK_KEY is not set: webhooks cannot be registered "
              "(set it to a Fernet key).", logging.ERROR)
        return None
    _once("SMARTSCHEDULER_WEBHOOK_KEY is not set: webhook secrets are sealed with a "
          "public development key. Never do this in production.", logging.WARNING)
    return SecretBox(DEVELOPMENT_KEY)


def build_webhooks(settings: Settings, app: Dispatch) -> tuple[Webhooks, WebhookStore]:
    """The Admins' service over the webhooks' store (in the read models' database)."""
    store = webhooks_for(app.factory)
    return Webhooks(store, secret_box(settings), production=settings.is_production,
                    head=app.head_position, enabled=settings.webhooks), store


def delivery_follower(settings: Settings, app: Dispatch, store: WebhookStore,
                      status: FailureRecord) -> WebhookFollower:
    """The follower that makes deliveries from the log, with its sender."""
    box = secret_box(settings)
    sender = Sender(store, box or SecretBox(DEVELOPMENT_KEY),
                    schedule=retry_waits(settings.webhook_retry_schedule) or SCHEDULE,
                    timeout=settings.webhook_timeout, production=settings.is_production,
                    on_outcome=_count)
    return WebhookFollower(app, store, sender, status=status)


def _count(outcome: str) -> None:
    metrics().webhook_deliveries.labels(outcome=outcome).inc()


def _once(message: str, level: int) -> None:
    if message not in _warned:
        _warned.add(message)
        log.log(level, message)
