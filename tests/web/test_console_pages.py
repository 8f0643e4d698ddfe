"""The console's server side, through the real Flask app (no browser): the page
shell and its headers, the static modules, and the development sign-in that
exists only in development."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from application.settings import Settings
from smartscheduler.bootstrap import create_app
from web.auth import TokenVerifier

SECRET = "console-secret-" + "c" * 32


def _app(tmp_path: Path, **settings: object) -> Iterator[Flask]:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/console.db", **settings))
    app.config["TESTING"] = True
    try:
        yield app
    finally:
        app.extensions["smartscheduler"].close()


@pytest.fixture
def development(tmp_path: Path) -> Iterator[FlaskClient]:
    """The service with a real secret, in the development environment."""
    for app in _app(tmp_path, jwt_secret=SECRET, environment="development"):
        yield app.test_client()


@pytest.fixture
def production(tmp_path: Path) -> Iterator[FlaskClient]:
    """The service in production, signing in through an OIDC issuer."""
    for app in _app(tmp_path, jwt_secret=SECRET, environment="production",
                    oidc_issuer="https://issuer.example/pool", oidc_client_id="console"):
        yield app.test_client()


def _config(html: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="console-config">(.*?)</script>',
                      html, re.S)
    assert found, html[:500]
    config: dict[str, object] = json.loads(found.group(1))
    return config


def test_the_root_sends_a_browser_to_the_console(development: FlaskClient) -> None:
    response = development.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/console/")


@pytest.mark.parametrize("path", ["/console/", "/console/jobs/any-id", "/console/callback"])
def test_every_console_route_serves_the_shell_with_a_strict_policy(
        development: FlaskClient, path: str) -> None:
    response = development.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["Referrer-Policy"] == "no-referrer"
    html = response.get_data(as_text=True)
    assert 'aria-labelledby="cancel-title"' in html and ">Confirm cancellation<" in html
    # No script runs inline: the only <script> with content is a JSON data block.
    for script in re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S):
        attributes, body = script
        assert not body.strip() or 'type="application/json"' in attributes


def test_the_reason_codes_are_the_contracts(development: FlaskClient) -> None:
    html = development.get("/console/").get_data(as_text=True)
    select = re.search(r'<select id="cancel-code".*?</select>', html, re.S)
    assert select
    assert re.findall(r'value="(\w+)"', select.group(0)) == [
        "CustomerRequest", "ContractorUnavailable", "Weather", "Duplicate", "Other"]


def test_static_modules_are_served_as_javascript(development: FlaskClient) -> None:
    for name in ("app", "api", "auth", "live", "board", "job", "contractor", "ui"):
        response = development.get(f"/console/static/js/{name}.js")
        assert response.status_code == 200, name
        assert response.mimetype in ("text/javascript", "application/javascript"), name
        response.close()
    css = development.get("/console/static/console.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    css.close()


def test_development_sign_in_mints_a_token_the_api_accepts(development: FlaskClient) -> None:
    assert _config(development.get("/console/").get_data(as_text=True))["devSignIn"] is True
    response = development.post("/console/dev-token", json={"role": "Dispatcher"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    actor = TokenVerifier(Settings(jwt_secret=SECRET)).actor(f"Bearer {body['token']}")
    assert actor.roles == ("Dispatcher",) and actor.sub == "dispatcher"
    jobs = development.get("/api/jobs", headers={"Authorization": f"Bearer {body['token']}"})
    assert jobs.status_code == 200
    # No cookie is set: the API stays free of CSRF.
    assert "Set-Cookie" not in response.headers


def test_a_contractors_user_id_must_be_a_uuid(development: FlaskClient) -> None:
    refused = development.post("/console/dev-token",
                               json={"role": "Contractor", "sub": "not-a-uuid"})
    assert refused.status_code == 422
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["code"] == "validation_failed"
    sub = "6f1c1f0e-7a0b-4c39-9b55-3d1f3c1f1a11"
    minted = development.post("/console/dev-token", json={"role": "Contractor", "sub": sub})
    token = minted.get_json()["token"]
    actor = TokenVerifier(Settings(jwt_secret=SECRET)).actor(f"Bearer {token}")
    assert actor.sub == sub and actor.roles == ("Contractor",)


@pytest.mark.parametrize("body", [{}, {"role": "Root"}, {"role": ["Admin"]}, []])
def test_a_bad_sign_in_request_is_a_problem(development: FlaskClient, body: object) -> None:
    response = development.post("/console/dev-token", json=body)
    assert response.status_code == 422
    assert response.get_json()["title"] and response.get_json()["detail"]


def test_production_offers_sso_and_refuses_to_mint(production: FlaskClient) -> None:
    page = production.get("/console/")
    config = _config(page.get_data(as_text=True))
    assert config["devSignIn"] is False
    assert config["oidc"] == {"issuer": "https://issuer.example/pool", "clientId": "console"}
    assert "connect-src 'self' https://issuer.example" in page.headers["Content-Security-Policy"]
    response = production.post("/console/dev-token", json={"role": "Admin"})
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert "token" not in response.get_json()


def test_development_sign_in_follows_the_settings() -> None:
    assert Settings().development_sign_in  # the development secret
    assert Settings(jwt_secret=SECRET).development_sign_in  # development by default
    assert not Settings(jwt_secret=SECRET, environment="production").development_sign_in
    assert not Settings(jwt_secret=SECRET, environment="staging").development_sign_in
    assert not Settings(jwks_url="https://issuer.example/jwks").development_sign_in
    env = Settings.from_env({"SMARTSCHEDULER_OIDC_ISSUER": "https://i.example",
                             "SMARTSCHEDULER_OIDC_CLIENT_ID": "abc"})
    assert (env.oidc_issuer, env.oidc_client_id) == ("https://i.example", "abc")
