"""Builds the service's parts from Settings: the one place that wires them."""

from __future__ import annotations

from dataclasses import dataclass

from application.dispatch import Dispatch
from application.persistence import eventsourcing_env, prepare_database
from application.settings import Settings
from projections.runner import ViewsRunner
from projections.views import DispatchViews, views_for


def build_dispatch(settings: Settings) -> Dispatch:
    prepare_database(settings.database_url)
    return Dispatch(env=eventsourcing_env(settings.database_url))


@dataclass
class Services:
    settings: Settings
    app: Dispatch
    views: DispatchViews
    runner: ViewsRunner | None = None

    def close(self) -> None:
        if self.runner is not None:
            self.runner.stop()
        self.app.close()


def build_services(settings: Settings, *, run_projections: bool | None = None) -> Services:
    """The application and its read models; the runner too when projecting in-process."""
    app = build_dispatch(settings)
    views = views_for(app.factory)
    if run_projections is None:
        run_projections = settings.embedded_projections
    runner = ViewsRunner(app, views).start() if run_projections else None
    return Services(settings, app, views, runner)
