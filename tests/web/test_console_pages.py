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


def test_a_contractors_user_id_is_their_contractor_id(development: FlaskClient) -> None:
    sub = "6f1c1f0e-7a0b-4c39-9b55-3d1f3c1f1a11"
    minted = development.post("/console/dev-token",
                              json={"role": "Contractor", "sub": f"  {sub.upper()} "})
    assert minted.status_code == 200, minted.get_json()
    token = minted.get_json()["token"]
    actor = TokenVerifier(Settings(jwt_secret=SECRET)).actor(f"Bearer {token}")
    assert actor.sub == sub and actor.roles == ("Contractor",)  # trimmed, canonical


@pytest.mark.parametrize("body, sub", [
    ({"role": "Admin"}, "admin"),
    ({"role": "Admin", "sub": ""}, "admin"),
    ({"role": "Admin", "sub": None}, "admin"),
    ({"role": "Contractor"}, "00000000-0000-4000-8000-000000000001"),
    ({"role": "Dispatcher", "sub": "  dana@example.com  "}, "dana@example.com"),
    ({"role": "Dispatcher", "sub": "d" * 200}, "d" * 200),
])
def test_the_user_id_is_optional_and_trimmed(development: FlaskClient, body: object,
                                             sub: str) -> None:
    response = development.post("/console/dev-token", json=body)
    assert response.status_code == 200, response.get_json()
    actor = TokenVerifier(Settings(jwt_secret=SECRET)).actor(
        f"Bearer {response.get_json()['token']}")
    assert actor.sub == sub


REFUSED_SIGN_INS = {
    "no body": (None, "role"),
    "an empty object": ({}, "role"),
    "an unknown role": ({"role": "Root"}, "role"),
    "a role in the wrong case": ({"role": "admin"}, "role"),
    "a role that is a list": ({"role": ["Admin"]}, "role"),
    "a list": ([], "_schema"),
    "a string": ("Admin", "_schema"),
    "an unknown field": ({"role": "Admin", "admin": True}, "admin"),
    "a user id of spaces": ({"role": "Dispatcher", "sub": "   "}, "sub"),
    "a user id of 201 characters": ({"role": "Dispatcher", "sub": "d" * 201}, "sub"),
    "a user id with a NUL": ({"role": "Dispatcher", "sub": "a\x00b"}, "sub"),
    "a user id that is a number": ({"role": "Dispatcher", "sub": 42}, "sub"),
    "a contractor id that is not a UUID": ({"role": "Contractor", "sub": "not-a-uuid"},
                                           "sub"),
}


@pytest.mark.parametrize("body, field", list(REFUSED_SIGN_INS.values()),
                         ids=list(REFUSED_SIGN_INS))
def test_a_bad_sign_in_request_is_a_validation_problem(development: FlaskClient,
                                                       body: object, field: str) -> None:
    if body is None:
        response = development.post("/console/dev-token", data="role=Admin",
                                    content_type="application/x-www-form-urlencoded")
    else:
        response = development.post("/console/dev-token", json=body)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == "validation_failed" and problem["title"] == "Validation failed"
    assert problem["detail"] and problem["instance"] == "/console/dev-token"
    assert list(problem["errors"]) == [field], problem["errors"]
    assert all(isinstance(message, str) for message in problem["errors"][field])
    assert "token" not in problem


def test_production_offers_sso_and_refuses_to_mint(production: FlaskClient) -> None:
    page = production.get("/console/")
    config = _config(page.get_data(as_text=True))
    assert config["devSignIn"] is False
    assert config["oidc"] == {"issuer": "https://issuer.example/pool", "clientId": "console"}
    assert "connect-src 'self' https://issuer.example" in page.headers["Content-Security-Policy"]
    for body in ({"role": "Admin"}, {"role": "Root"}, None):  # refused before it is read
        response = production.post("/console/dev-token", json=body)
        assert response.status_code == 404
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["code"] == "not_found"
        assert "token" not in response.get_json()


def test_development_sign_in_follows_the_settings() -> None:
    assert Settings().development_sign_in  # the development secret
    assert Settings(jwt_secret=SECRET).development_sign_in  # development by default
    assert not Settings(jwt_secret=SECRET, environment="production").development_sign_in
    assert not Settings(jwt_secret=SECRET, environment="staging").development_sign_in
    assert not Settings(jwks_url="https://issuer.example/jwks").development_sign_in
    # The OIDC issuer alone is a token source too (its JWKS through discovery).
    assert not Settings(jwt_secret=SECRET, oidc_issuer="https://i.example").development_sign_in
    env = Settings.from_env({"SMARTSCHEDULER_OIDC_ISSUER": "https://i.example",
                             "SMARTSCHEDULER_OIDC_CLIENT_ID": "abc"})
    assert (env.oidc_issuer, env.oidc_client_id) == ("https://i.example", "abc")
