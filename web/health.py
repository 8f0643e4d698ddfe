"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz() -> dict[str, Any]:
    """The process is up."""
    return {"status": "ok"}


@blp.get("/readyz")
def readyz() -> Any:
    """The event store answers (and the in-process read models are being kept)."""
    services = current_app.extensions["smartscheduler"]
    checks: dict[str, Any] = {}
    ready = True
    try:
        head = services.app.head_position()
        checks["eventStore"] = {"status": "ok", "head": head}
    except Exception as error:  # any failure means: not ready
        checks["eventStore"] = {"status": "failing", "error": type(error).__name__}
        ready = False
        head = None
    if services.runner is not None:
        position = services.views.position() if ready else None
        alive = services.runner.is_running
        lag = head - position if head is not None and position is not None else None
        checks["readModels"] = {"status": "ok" if alive else "failing",
                                "position": position, "lag": lag}
        ready = ready and alive
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return body, 200 if ready else 503
