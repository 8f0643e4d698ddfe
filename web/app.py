"""The HTTP face assembled: `create_app` builds the Flask app over built services.

The services (the application, its read models, the realtime hub) are built by
the composition root, `smartscheduler.bootstrap.create_app`, and handed in.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask, g, request

from application.settings import Settings
from web import console, health, inputs, metrics, problems, telemetry
from web.auth import TokenVerifier
from web.docs import ProblemApi, add_offline_docs
from web.http import request_id
from web.services import EXTENSION, Services

log = logging.getLogger(__name__)

API_INFO = {
    "description": (
        "Field-service dispatch: create jobs, assign contractors, follow the lifecycle, "
        "and cancel. Every change is an event; every job's history can be replayed.\n\n"
        "Authenticate with `Authorization: Bearer <JWT>` (get one locally with "
        "`smartscheduler token --role Dispatcher`). Errors are RFC 9457 problem details "
        "with a stable `code`."
    ),
}


def create_app(settings: Settings, services: Services) -> Flask:
    """The Flask app over `services` (a `smartscheduler.bootstrap.Services`: the
    Dispatch application, its read models and the realtime hub)."""
    if settings.uses_development_secret:
        log.warning("SMARTSCHEDULER_JWT_SECRET is not set: tokens are signed with a "
                    "public development secret. Never do this in production.")

    app = Flask("smartscheduler")
    app.config.update(
        API_TITLE="SmartScheduler",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="/docs/assets/",
        OPENAPI_SWAGGER_UI_CONFIG={"persistAuthorization": True},
        API_SPEC_OPTIONS={"info": API_INFO, "security": [{"bearerAuth": []}]},
        MAX_CONTENT_LENGTH=inputs.MAX_BODY,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = services
    app.extensions["smartscheduler.streams"] = threading.BoundedSemaphore(
        settings.max_streams)
    verifier = TokenVerifier(settings)
    telemetry.register(app)  # first: a request's time runs from here

    @app.before_request
    def _identify() -> None:
        g.request_id = request_id()
        if request.path.startswith("/api/"):
            g.actor = verifier.actor(request.headers.get("Authorization"))
            inputs.check_request()

    @app.after_request
    def _stamp(response: Any) -> Any:
        response.headers["X-Request-Id"] = getattr(g, "request_id", None) or request_id()
        if request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    api = ProblemApi(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    from web.assignments.resources import blp as assignments
    from web.events.resources import blp as events
    from web.jobs.resources import blp as jobs
    from web.webhooks.resources import blp as webhooks

    api.register_blueprint(jobs)
    api.register_blueprint(assignments)
    api.register_blueprint(events)
    api.register_blueprint(webhooks)
    app.register_blueprint(health.blp)
    app.register_blueprint(metrics.blp)
    console.register(app, settings)
    add_offline_docs(app)
    problems.register(app)
    return app
