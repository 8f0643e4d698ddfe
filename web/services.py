"""What the web layer uses of the services the composition root builds
(`smartscheduler.bootstrap.Services`), named as a protocol so that the layer's
dependency is visible and checked, and the one way a view reaches them."""

from __future__ import annotations

from typing import Any, Protocol

from flask import current_app

from application.dispatch import Dispatch
from application.settings import Settings
from application.webhooks import Webhooks
from projections.following.runner import ViewsRunner
from projections.realtime.hub import Hub
from projections.store import DispatchViews

EXTENSION = "smartscheduler"
"""The Flask extension name the services hang on."""


class Services(Protocol):
    settings: Settings
    app: Dispatch
    """The Dispatch application (commands and the write side's queries)."""
    views: DispatchViews
    runner: ViewsRunner | None
    hub: Hub | None
    webhooks: Webhooks | None
    """The Admins' webhook operations (application.webhooks)."""

    def followers(self, head: int) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def services() -> Services:
    """The services of the app handling the current request."""
    found: Services = current_app.extensions[EXTENSION]
    return found
