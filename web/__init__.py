"""The HTTP face of the service: flask-smorest blueprints over the Dispatch application."""

from __future__ import annotations

from typing import Any


def create_app(config: Any = None) -> Any:
    """Build the Flask app (see web.app.create_app); nothing is built at import."""
    from web.app import create_app as _create_app

    return _create_app(config)
