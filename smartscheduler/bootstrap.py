"""The composition root: builds the service's parts from Settings, the one place
that wires them (the HTTP app included: `create_app`). No layer imports it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from application.dispatch import Dispatch
from application.persistence import eventsourcing_env, size_pool, storage_lock
from application.settings import Settings
from application.sqlite import SQLiteApplicationRecorder
from application.wakeup import ADVANCED, APPENDED, Wakeup, wakeup_for
from application.webhooks import Webhooks
from projections.backends import views_for
from projections.following.runner import ViewsRunner
from projections.following.status import Watch
from projections.realtime.hub import Hub
from projections.realtime.identity import relay_tracking_name
from projections.realtime.relay import Relay
from projections.store import DispatchViews
from projections.webhooks.follower import WebhookFollower
from projections.webhooks.store import WebhookStore
from smartscheduler.webhooks import build_webhooks, delivery_follower

if TYPE_CHECKING:
    from flask import Flask


def build_dispatch(settings: Settings, *, role: str = "worker") -> Dispatch:
    """The Dispatch application; `role` ("web" or "worker") sizes its pool."""
    with storage_lock(settings.database_url):
        app = Dispatch(env=eventsourcing_env(settings.database_url, role=role))
    size_pool(app, role)
    return app


def redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5,
                                health_check_interval=10)


@dataclass
class Services:
    settings: Settings
    app: Dispatch
    views: DispatchViews
    runner: ViewsRunner | None = None
    relay: Relay | None = None
    hub: Hub | None = None
    watch: Watch = field(default_factory=Watch)
    wakeup: Wakeup | None = None
    webhooks: Webhooks | None = None
    webhook_store: WebhookStore | None = None
    webhook_follower: WebhookFollower | None = None

    def followers(self, head: int) -> list[dict[str, Any]]:
        """Every follower of the log this deployment runs, wherever it runs: its
        position, lag, recorded failure and status (ok, retrying or stuck)."""
        failures = self.views.failures()
        positions = {ViewsRunner.name: self.views.position()}
        if self.settings.redis_url:
            positions[Relay.name] = self.views.position_of(relay_tracking_name(self.views))
        if self.settings.webhooks and self.webhook_store is not None:
            positions[WebhookFollower.name] = self.webhook_store.position()
        return [self.watch.report(name, position, head, failures.get(name))
                for name, position in positions.items()]

    def close(self) -> None:
        for part in (self.hub, self.webhook_follower, self.relay, self.runner):
            if part is not None:
                part.stop()
        if self.relay is not None:
            self.relay.redis.close()
        if self.wakeup is not None:
            self.wakeup.close()
        self.app.close()


def build_services(settings: Settings, *, run_projections: bool | None = None,
                   run_relay: bool | None = None, realtime: bool = False,
                   run_webhooks: bool = False) -> Services:
    """The application and its read models, plus the workers this process runs:
    the read-model runner, the relay to Redis, the realtime hub, and the webhooks'
    delivery follower (`run_webhooks`)."""
    role = "web" if realtime else "worker"
    relay = settings.embedded_relay if run_relay is None else run_relay
    with storage_lock(settings.database_url):  # every table this process uses
        app = Dispatch(env=eventsourcing_env(settings.database_url, role=role))
        size_pool(app, role)
        services = Services(settings, app, views_for(app.factory),
                            watch=Watch(settings.stuck_after))
        if relay and settings.redis_url:
            services.relay = Relay(app, redis_client(settings.redis_url),
                                   status=services.views)
        services.webhooks, services.webhook_store = build_webhooks(settings, app)
        if run_webhooks:
            services.webhook_follower = delivery_follower(
                settings, app, services.webhook_store, services.views)
    try:
        services.wakeup = _wakeups(services, run_projections, realtime)
        if settings.embedded_projections if run_projections is None else run_projections:
            services.runner = ViewsRunner(app, services.views).start()
        if services.relay is not None:
            services.relay.start()
        if services.webhook_follower is not None:
            services.webhook_follower.start()
        if realtime:
            services.hub = Hub(app, settings.redis_url).start()
    except BaseException:  # e.g. the store went away meanwhile: leave no thread behind
        services.close()
        raise
    return services


def _wakeups(services: Services, run_projections: bool | None,
             realtime: bool) -> Wakeup | None:
    """On an SQLite file, the wake-ups between the processes that share it
    (`application.wakeup`): this process tells the others of its appends and of
    its read models' batches, and listens for theirs when it follows the log (its
    subscriptions) or serves (its hub, its read-your-writes waits). Elsewhere None."""
    recorder = services.app.recorder
    if not isinstance(recorder, SQLiteApplicationRecorder):
        return None
    wakeup = wakeup_for(services.settings.database_url)
    if wakeup is None:
        return None
    recorder.on_appended = functools.partial(wakeup.notify, APPENDED)
    services.views.on_advanced = functools.partial(wakeup.notify, ADVANCED)
    projections = (services.settings.embedded_projections if run_projections is None
                   else run_projections)
    callbacks: dict[str, Callable[[], None]] = {}
    if realtime or projections or services.relay is not None or (
            services.webhook_follower is not None):
        callbacks[APPENDED] = recorder.wake_subscriptions
    if realtime:
        callbacks[ADVANCED] = services.views.notify_advanced
    if callbacks:
        wakeup.listen(callbacks)
    return wakeup


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    """The HTTP app with its services: the application, the read models, the hub,
    and the followers this process runs. Nothing is built at import.

    `config` is a Settings, a mapping of Settings fields overriding the
    environment, or None for the environment alone.
    """
    from web.app import create_app as web_app

    settings = settings_from(config)
    if settings.is_production and settings.problems():
        raise RuntimeError("Refusing to start in production: "
                           + "; ".join(settings.problems()))
    services = build_services(settings, realtime=True,
                              run_webhooks=settings.webhooks and settings.embedded_webhooks)
    try:
        return web_app(settings, services)
    except BaseException:
        services.close()
        raise


def settings_from(config: Settings | Mapping[str, Any] | None) -> Settings:
    if isinstance(config, Settings):
        return config
    settings = Settings.from_env()
    return settings.with_(**config) if config else settings
