"""The dispatcher console: a page shell, its static ES modules and stylesheet.

Everything the console does, it does in the browser through the public API
(`/api/...`) with a bearer token it keeps in session storage; this blueprint
only serves the files, tells the page how sign-in is configured, and, in
development only, mints a short-lived token for a chosen role.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request

from application.settings import Settings
from domain.values import DEFAULT_PRIORITY, DEFAULT_REASON_CODE, DEFAULT_REGION
from web.auth import DEFAULT_SUBS, mint_token
from web.console.schemas import CONTRACTOR, load_sign_in
from web.jobs.schemas import MAX_LENGTH, MAX_MINUTES
from web.problems import Problem
from web.schemas import JOB_STATUSES, PRIORITIES, REASON_CODES

DEV_TOKEN_TTL = 8 * 3600
"""Seconds a development sign-in lasts: a working day, then sign in again."""


REASON_LABELS = {
    "CustomerRequest": "Customer request",
    "ContractorUnavailable": "Contractor unavailable",
    "Weather": "Weather",
    "Duplicate": "Duplicate job",
    "Other": "Other",
}

blp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
                static_folder="static", static_url_path="/static")


def _settings() -> Settings:
    settings: Settings = current_app.extensions["smartscheduler.console"]
    return settings


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: Settings) -> str:
    """Scripts, styles and fonts from this service only; fetches to this service
    and, with OIDC, to the issuer (discovery, token endpoint)."""
    connect = ["'self'"]
    if settings.oidc_issuer:
        connect.append(_origin(settings.oidc_issuer))
        if urlsplit(settings.oidc_issuer).hostname and str(
                urlsplit(settings.oidc_issuer).hostname).endswith(".amazonaws.com"):
            connect.append("https://*.amazoncognito.com")  # Cognito's hosted-UI domain
    return "; ".join([
        "default-src 'self'", "script-src 'self'", "style-src 'self'",
        "img-src 'self' data:", "font-src 'self'", f"connect-src {' '.join(connect)}",
        "object-src 'none'", "base-uri 'none'", "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def _page() -> Response:
    settings = _settings()
    oidc = bool(settings.oidc_issuer and settings.oidc_client_id)
    config = {
        "devSignIn": settings.development_sign_in,
        "oidc": {"issuer": settings.oidc_issuer, "clientId": settings.oidc_client_id}
        if oidc and not settings.development_sign_in else None,
        "statuses": JOB_STATUSES, "priorities": PRIORITIES,
    }
    html = render_template(
        "console/index.html",
        config=json.dumps(config).replace("<", "\\u003c"),
        priorities=PRIORITIES,
        reason_codes=[(code, REASON_LABELS.get(code, code)) for code in REASON_CODES],
        contractor_hint=DEFAULT_SUBS[CONTRACTOR] if settings.development_sign_in else None,
        max_length=MAX_LENGTH, max_minutes=MAX_MINUTES, default_region=DEFAULT_REGION,
        default_priority=DEFAULT_PRIORITY, default_reason_code=DEFAULT_REASON_CODE,
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = content_security_policy(settings)
    response.headers["Referrer-Policy"] = "no-referrer"  # the OIDC code stays in this page
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.get("/")
def home() -> Response:
    return _page()


@blp.get("/jobs/<job_id>")
def job_page(job_id: str) -> Response:
    return _page()


@blp.get("/callback")
def oidc_callback() -> Response:
    return _page()


@blp.post("/dev-token")
def dev_token() -> Any:
    """Development sign-in: a token for the role asked for (`SignInRequest`), only
    while the service runs with its development secret or in development."""
    settings = _settings()
    if not settings.development_sign_in:
        raise Problem(404, "not_found", "Not found",
                      "Development sign-in is off: sign in with SSO.")
    asked = load_sign_in(request.get_json(silent=True))
    token = mint_token(settings, roles=[asked["role"]], sub=asked["sub"], ttl=DEV_TOKEN_TTL)
    response = current_app.json.response({"token": token, "expiresIn": DEV_TOKEN_TTL})
    response.headers["Cache-Control"] = "no-store"
    return response


def register(app: Flask, settings: Settings) -> None:
    """The console under /console, and / sending a browser there."""
    app.extensions["smartscheduler.console"] = settings
    app.register_blueprint(blp)

    def root() -> Any:
        return redirect("/console/", code=302)

    app.add_url_rule("/", "console_root", root)
    app.add_url_rule("/console", "console_bare", root)
