"""Signing in to the console with OpenID Connect (authorization code + PKCE)
against a real provider the test runs (oidc-provider-mock), with the API
verifying the returned token through the provider's JWKS: named by
SMARTSCHEDULER_JWKS_URL, or found through the issuer's discovery document when
only SMARTSCHEDULER_OIDC_ISSUER and SMARTSCHEDULER_OIDC_CLIENT_ID are set."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import werkzeug.serving
from playwright.sync_api import expect

from tests.e2e.console.support import Console, assert_accessible, chromium_or_skip, screenshot
from tests.e2e.servers import Server, start_server, stop

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

CLIENT_ID = "smartscheduler-console"


class Recorder:
    """WSGI middleware in front of the provider: lets the console's origin read
    its answers (CORS, as Cognito's endpoints do) and records what it was sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.authorize: list[dict[str, list[str]]] = []
        self.token: list[dict[str, list[str]]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == "/oauth2/authorize" and environ["REQUEST_METHOD"] == "GET":
            self.authorize.append(parse_qs(environ.get("QUERY_STRING", "")))
        if path == "/oauth2/token":
            size = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(size)
            self.token.append(parse_qs(body.decode()))
            import io
            environ["wsgi.input"] = io.BytesIO(body)
        if environ["REQUEST_METHOD"] == "OPTIONS":
            start_response("204 No Content", self._cors([]))
            return [b""]

        def cors_start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            return start_response(status, self._cors(headers), *rest)

        return self.app(environ, cors_start)

    @staticmethod
    def _cors(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [*headers, ("Access-Control-Allow-Origin", "*"),
                ("Access-Control-Allow-Headers", "Content-Type, Accept")]


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Recorder]]:
    chromium_or_skip()
    import oidc_provider_mock
    from oidc_provider_mock import _app

    # The console is a public client (no secret, PKCE), as a Cognito app client
    # without a secret is: let the provider take client authentication "none".
    monkeypatch.setattr(_app.AuthorizationCodeGrant, "TOKEN_ENDPOINT_AUTH_METHODS",
                        ["none", "client_secret_basic", "client_secret_post"])

    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")  # http on loopback
    app = oidc_provider_mock.app(user_claims=[
        oidc_provider_mock.User(sub="dana", claims={"roles": ["Dispatcher"], "name": "Dana"}),
    ])
    recorder = Recorder(app)
    server = werkzeug.serving.make_server("localhost", 0, recorder, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_port}", recorder
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


@pytest.fixture
def sso_server(provider: tuple[str, Recorder], tmp_path: Path) -> Iterator[Server]:
    issuer, _ = provider
    server = start_server(f"sqlite:///{tmp_path}/sso.db", tmp_path, name="sso", env={
        "SMARTSCHEDULER_ENV": "production",
        "SMARTSCHEDULER_JWKS_URL": f"{issuer}/jwks",
        "SMARTSCHEDULER_JWT_ISSUER": issuer,
        "SMARTSCHEDULER_JWT_AUDIENCE": CLIENT_ID,
        "SMARTSCHEDULER_OIDC_ISSUER": issuer,
        "SMARTSCHEDULER_OIDC_CLIENT_ID": CLIENT_ID,
    }, args=["--workers", "1", "--threads", "4"])
    try:
        yield server
    finally:
        stop(server.process)


def test_sign_in_with_sso(browser: Any, provider: tuple[str, Recorder],
                          sso_server: Server) -> None:
    _, recorder = provider
    context = browser.new_context(base_url=sso_server.base_url)
    context.set_default_timeout(10_000)
    watched = Console(context, sso_server)
    try:
        page = watched.page()
        page.goto("/")
        # No development form in production: the SSO button only.
        expect(page.get_by_label("Role")).to_have_count(0)
        assert_accessible(page)
        screenshot(page, "sign-in-sso", shows=["Sign in with SSO"])
        refused = page.request.post("/console/dev-token", data={"role": "Admin"})
        assert refused.status == 404

        page.get_by_role("button", name="Sign in with SSO").click()
        page.get_by_role("button", name="dana").click()  # the provider's own page

        expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/console/$"))  # the code left the URL
        expect(page.get_by_text("Dana · Dispatcher")).to_be_visible()
        expect(page.locator("#live[data-state=live]")).to_be_visible()
        assert context.cookies(sso_server.base_url) == []

        # PKCE: an S256 challenge went out, and the verifier that matches it came back.
        (asked,) = recorder.authorize
        assert asked["code_challenge_method"] == ["S256"]
        assert asked["client_id"] == [CLIENT_ID]
        (exchanged,) = recorder.token
        verifier = exchanged["code_verifier"][0]
        digest = hashlib.sha256(verifier.encode()).digest()
        assert asked["code_challenge"] == [base64.urlsafe_b64encode(digest).rstrip(b"=").decode()]
        assert exchanged["grant_type"] == ["authorization_code"]
        assert watched.errors == [] and watched.problems == []
    finally:
        context.close()


@pytest.fixture
def issuer_only_server(provider: tuple[str, Recorder], tmp_path: Path) -> Iterator[Server]:
    """The service told the issuer and the client id only: no JWKS URL, issuer or
    audience of its own, and the development environment (the default)."""
    issuer, _ = provider
    server = start_server(f"sqlite:///{tmp_path}/issuer.db", tmp_path, name="issuer", env={
        "SMARTSCHEDULER_OIDC_ISSUER": issuer,
        "SMARTSCHEDULER_OIDC_CLIENT_ID": CLIENT_ID,
    }, args=["--workers", "1", "--threads", "4"])
    try:
        yield server
    finally:
        stop(server.process)


def test_sign_in_with_sso_configured_by_the_issuer_alone(
        browser: Any, provider: tuple[str, Recorder], issuer_only_server: Server) -> None:
    context = browser.new_context(base_url=issuer_only_server.base_url)
    context.set_default_timeout(10_000)
    watched = Console(context, issuer_only_server)
    try:
        page = watched.page()
        page.goto("/")
        # The issuer is the only source of tokens: no development form, even in
        # development, and no token minted for a chosen role.
        expect(page.get_by_role("button", name="Sign in with SSO")).to_be_visible()
        expect(page.get_by_label("Role")).to_have_count(0)
        assert page.request.post("/console/dev-token", data={"role": "Admin"}).status == 404
        # Nor does a token signed with the service's HS256 secret open the API.
        minted = page.request.get("/api/jobs", headers={
            "Authorization": f"Bearer {issuer_only_server.token('Admin')}"})
        assert minted.status == 401

        page.get_by_role("button", name="Sign in with SSO").click()
        page.get_by_role("button", name="dana").click()  # the provider's own page
        expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
        expect(page.get_by_text("Dana · Dispatcher")).to_be_visible()
        expect(page.locator("#live[data-state=live]")).to_be_visible()

        # The API takes the provider's token for a write too, recorded as dana's.
        page.get_by_role("button", name="New job").click()
        dialog = page.get_by_role("dialog", name="New job")
        dialog.get_by_label("Type").fill("Heat pump survey")
        dialog.get_by_label("Window start").fill("2031-05-06T09:00")
        dialog.get_by_label("Window end").fill("2031-05-06T11:00")
        dialog.get_by_role("button", name="Create job").click()
        expect(page.get_by_role("heading", name="Heat pump survey")).to_be_visible()
        history = page.get_by_role("region", name="History")
        expect(history).to_contain_text("JobCreated")
        expect(history).to_contain_text("by dana (Dispatcher)")
        assert watched.errors == [] and watched.problems == []
    finally:
        context.close()
