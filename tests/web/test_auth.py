"""Bearer tokens: 401 for no or bad token, 403 for a role that may not, JWKS mode,
and the OIDC issuer alone (its JWKS found through discovery)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from application.settings import Settings
from smartscheduler.bootstrap import create_app
from tests.web.support import assert_problem, job_body
from web.auth import TokenVerifier, mint_token
from web.problems import Problem

UNKNOWN_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
SECRET = "test-secret-" + "x" * 32  # the root conftest's test_settings secret


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "dispatcher-1", "roles": ["Dispatcher"], "iat": now,
                            "exp": now + 600}
    for name, value in overrides.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def hs256(payload: dict[str, Any], secret: str = SECRET, **kwargs: Any) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", **kwargs)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """A token with `alg: none` and an empty signature."""
    head = header or {"alg": "none", "typ": "JWT"}
    return (f"{b64url(json.dumps(head).encode())}."
            f"{b64url(json.dumps(payload).encode())}.")


def hmac_signed(payload: dict[str, Any], key: bytes, header: dict[str, Any],
                digest: str = "sha256") -> str:
    """A token HMAC-signed by hand (for keys PyJWT rightly refuses to use)."""
    signing_input = (f"{b64url(json.dumps(header).encode())}."
                     f"{b64url(json.dumps(payload).encode())}")
    signature = hmac.new(key, signing_input.encode(), getattr(hashlib, digest)).digest()
    return f"{signing_input}.{b64url(signature)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# 401: no token or a bad one -------------------------------------------------


ROUTES = [
    ("GET", "/api/jobs"),
    ("POST", "/api/jobs"),
    ("GET", f"/api/jobs/{UNKNOWN_ID}"),
    ("GET", f"/api/jobs/{UNKNOWN_ID}/history"),
    ("POST", f"/api/jobs/{UNKNOWN_ID}/assignments"),
    ("POST", f"/api/jobs/{UNKNOWN_ID}/assignments/{UNKNOWN_ID}/confirm"),
    ("POST", f"/api/jobs/{UNKNOWN_ID}/assignments/{UNKNOWN_ID}/cancel"),
    ("POST", f"/api/jobs/{UNKNOWN_ID}/start"),
    ("POST", f"/api/jobs/{UNKNOWN_ID}/complete"),
    ("POST", f"/api/jobs/{UNKNOWN_ID}/cancel"),
    ("GET", "/api/assignments"),
    ("GET", "/api/events"),
]


@pytest.mark.parametrize("method, path", ROUTES)
def test_every_api_route_without_a_token_is_a_401_with_www_authenticate_bearer(
        client, method, path):
    response = client.open(path, method=method)

    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("authorization", [
    "", "Bearer", "Bearer ", "Token abc", "Basic dXNlcjpwYXNz", "abc.def.ghi",
    "Bearer not-a-jwt", "Bearer abc.def.ghi", "Bearer a.b", "Bearer ....",
])
def test_a_malformed_authorization_header_is_a_401(client, authorization):
    response = client.get("/api/jobs", headers={"Authorization": authorization})

    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_the_bearer_scheme_is_case_insensitive(client):
    token = hs256(claims())

    response = client.get("/api/jobs", headers={"Authorization": f"bearer {token}"})

    assert response.status_code == 200


def test_a_token_minted_with_the_configured_secret_is_accepted(client, test_settings):
    token = mint_token(test_settings, roles=["Dispatcher"], sub="d-1")

    response = client.get("/api/jobs", headers=bearer(token))

    assert response.status_code == 200


BAD_TOKENS = {
    "alg none": lambda: unsigned(claims()),
    "alg None spelled otherwise": lambda: unsigned(claims(), {"alg": "None"}),
    "alg none with a signature of the right secret": lambda: hmac_signed(
        claims(), SECRET.encode(), {"alg": "none", "typ": "JWT"}),
    "expired": lambda: hs256(claims(exp=int(time.time()) - 120)),
    "not yet valid (nbf in the future)": lambda: hs256(claims(nbf=int(time.time()) + 600)),
    "signed with another secret": lambda: hs256(claims(), "another-secret-" + "y" * 32),
    "signed with HS512 and the right secret": lambda: hmac_signed(
        claims(), SECRET.encode(), {"alg": "HS512", "typ": "JWT"}, "sha512"),
    "missing exp": lambda: hs256(claims(exp=None)),
    "exp not a number": lambda: hs256(claims(exp="tomorrow")),
    "missing sub": lambda: hs256(claims(sub=None)),
    "tampered payload": lambda: _tampered(hs256(claims(roles=["Contractor"]))),
    "roles not a list of strings": lambda: hs256(claims(roles=[1, 2])),
}


def _tampered(token: str) -> str:
    header, _, signature = token.split(".")
    payload = b64url(json.dumps(claims(roles=["Admin"])).encode())
    return f"{header}.{payload}.{signature}"


@pytest.mark.parametrize("make", list(BAD_TOKENS.values()), ids=list(BAD_TOKENS))
def test_a_bad_token_is_a_401_unauthorized(client, make):
    token = make()

    response = client.get("/api/jobs", headers=bearer(token))

    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("make", [BAD_TOKENS["alg none"], BAD_TOKENS["expired"]],
                         ids=["alg none", "expired"])
def test_a_bad_token_changes_nothing(client, dispatcher, create_job, current_version,
                                     make):
    job = create_job()

    response = client.post(f"/api/jobs/{job['id']}/cancel", headers=bearer(make()))

    assert response.status_code == 401
    assert current_version(job["id"]) == 1


def test_a_401_problem_does_not_leak_the_token(client):
    token = hs256(claims(), "another-secret-" + "y" * 32)

    response = client.get("/api/jobs", headers=bearer(token))

    assert token not in response.get_data(as_text=True)


# 403: a valid token with a role that may not --------------------------------


@pytest.mark.parametrize("roles", [[], ["Viewer"], ["dispatcher"], ["Contractor"]])
def test_a_valid_token_without_a_staff_role_is_a_403_forbidden(client, roles):
    token = hs256(claims(sub=str(uuid.uuid4()), roles=roles))

    response = client.get("/api/jobs", headers=bearer(token))

    assert_problem(response, 403, "forbidden")
    assert "WWW-Authenticate" not in response.headers


def test_a_valid_token_without_any_roles_claim_is_a_403(client):
    token = hs256(claims(roles=None))

    response = client.post("/api/jobs", json=job_body(), headers=bearer(token))

    assert_problem(response, 403, "forbidden")


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/jobs"),
    ("POST", "/api/jobs"),
    ("GET", f"/api/jobs/{UNKNOWN_ID}/history"),
    ("POST", f"/api/jobs/{UNKNOWN_ID}/assignments"),
    ("POST", f"/api/jobs/{UNKNOWN_ID}/assignments/{UNKNOWN_ID}/cancel"),
    ("POST", f"/api/jobs/{UNKNOWN_ID}/start"),
    ("POST", f"/api/jobs/{UNKNOWN_ID}/complete"),
    ("POST", f"/api/jobs/{UNKNOWN_ID}/cancel"),
])
def test_a_contractor_is_forbidden_every_staff_only_route(client, contractor, method,
                                                          path):
    response = client.open(path, method=method, json={}, headers=contractor)

    assert_problem(response, 403, "forbidden")


@pytest.mark.parametrize("group", ["Dispatcher", "Admin"])
def test_roles_are_read_from_cognito_groups(client, group):
    token = hs256(claims(roles=None, **{"cognito:groups": [group]}))

    response = client.post("/api/jobs", json=job_body(), headers=bearer(token))

    assert response.status_code == 201


def test_a_contractor_role_from_cognito_groups_is_still_a_contractor(client):
    token = hs256(claims(sub=str(uuid.uuid4()), roles=None,
                         **{"cognito:groups": ["Contractor"]}))

    response = client.get("/api/jobs", headers=bearer(token))

    assert_problem(response, 403, "forbidden")


def test_the_sub_of_the_token_is_the_actor_recorded(client, create_job, history):
    token = hs256(claims(sub="cognito-user-77", roles=None,
                         **{"cognito:groups": ["Admin", "Ops"]}))
    job = create_job()

    client.post(f"/api/jobs/{job['id']}/cancel", headers=bearer(token))

    assert history(job["id"])[-1]["actor"] == {"sub": "cognito-user-77",
                                               "roles": ["Admin", "Ops"]}


# Issuer and audience --------------------------------------------------------


@pytest.fixture
def checked_settings(test_settings):
    return test_settings.with_(jwt_issuer="https://issuer.example/",
                               jwt_audience="smartscheduler-api")


@pytest.fixture
def checked_client(checked_settings) -> Iterator[Any]:
    app = create_app(checked_settings)
    try:
        yield app.test_client()
    finally:
        app.extensions["smartscheduler"].close()


def test_a_token_with_the_configured_issuer_and_audience_is_accepted(checked_client):
    token = hs256(claims(iss="https://issuer.example/", aud="smartscheduler-api"))

    response = checked_client.get("/api/jobs", headers=bearer(token))

    assert response.status_code == 200


def test_mint_token_carries_the_configured_issuer_and_audience(checked_client,
                                                               checked_settings):
    token = mint_token(checked_settings, roles=["Admin"])

    response = checked_client.get("/api/jobs", headers=bearer(token))

    assert response.status_code == 200


def test_an_audience_list_naming_this_service_is_accepted(checked_client):
    token = hs256(claims(iss="https://issuer.example/",
                         aud=["other-api", "smartscheduler-api"]))

    response = checked_client.get("/api/jobs", headers=bearer(token))

    assert response.status_code == 200


def test_a_cognito_access_token_for_this_client_id_is_accepted(checked_client):
    token = hs256(claims(iss="https://issuer.example/", token_use="access",
                         client_id="smartscheduler-api"))

    response = checked_client.get("/api/jobs", headers=bearer(token))

    assert response.status_code == 200


WRONG_ISSUER_OR_AUDIENCE = {
    "wrong issuer": claims(iss="https://evil.example/", aud="smartscheduler-api"),
    "no issuer": claims(aud="smartscheduler-api"),
    "wrong audience": claims(iss="https://issuer.example/", aud="other-api"),
    "no audience": claims(iss="https://issuer.example/"),
    "audience list without this service": claims(iss="https://issuer.example/",
                                                 aud=["a", "b"]),
    "id token with this client id": claims(iss="https://issuer.example/",
                                           token_use="id",
                                           client_id="smartscheduler-api"),
}


@pytest.mark.parametrize("payload", list(WRONG_ISSUER_OR_AUDIENCE.values()),
                         ids=list(WRONG_ISSUER_OR_AUDIENCE))
def test_a_token_for_another_issuer_or_audience_is_a_401(checked_client, payload):
    token = hs256(payload)

    response = checked_client.get("/api/jobs", headers=bearer(token))

    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_issuer_and_audience_are_not_required_when_not_configured(client):
    token = hs256(claims(iss="https://anyone.example/", aud="anything"))

    response = client.get("/api/jobs", headers=bearer(token))

    assert response.status_code == 200


# JWKS mode ------------------------------------------------------------------


class Keys:
    """An RSA and an EC P-256 key pair published in a JWKS, plus an unpublished one."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec.public_key()))
        return {"keys": [
            {**rsa_jwk, "kid": "rsa-1", "alg": "RS256", "use": "sig"},
            {**ec_jwk, "kid": "ec-1", "alg": "ES256", "use": "sig"},
        ]}

    def rsa_public_pem(self) -> bytes:
        return self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture
def jwks_url(keys: Keys) -> Iterator[str]:
    """A JWKS served over HTTP by a local server on a free port."""
    document = json.dumps(keys.jwks()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/.well-known/jwks.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def jwks_settings(test_settings, jwks_url):
    return test_settings.with_(jwt_secret=None, jwks_url=jwks_url)


@pytest.fixture
def jwks_client(jwks_settings) -> Iterator[Any]:
    app = create_app(jwks_settings)
    try:
        yield app.test_client()
    finally:
        app.extensions["smartscheduler"].close()


@pytest.mark.parametrize("algorithm, kid", [("RS256", "rsa-1"), ("ES256", "ec-1")])
def test_a_token_signed_by_a_jwks_key_is_accepted(jwks_client, keys, algorithm, kid):
    key = keys.rsa if algorithm == "RS256" else keys.ec
    token = jwt.encode(claims(), key, algorithm=algorithm, headers={"kid": kid})

    response = jwks_client.post("/api/jobs", json=job_body(), headers=bearer(token))

    assert response.status_code == 201


def test_a_jwks_token_with_cognito_groups_gets_those_roles(jwks_client, keys):
    payload = claims(sub=str(uuid.uuid4()), roles=None,
                     **{"cognito:groups": ["Contractor"]})
    token = jwt.encode(payload, keys.rsa, algorithm="RS256", headers={"kid": "rsa-1"})

    response = jwks_client.get("/api/jobs", headers=bearer(token))

    assert_problem(response, 403, "forbidden")


JWKS_BAD_TOKENS = {
    "unknown kid": lambda k: jwt.encode(claims(), k.rsa, algorithm="RS256",
                                        headers={"kid": "rsa-2"}),
    "no kid": lambda k: jwt.encode(claims(), k.rsa, algorithm="RS256"),
    "signed by another key with a known kid": lambda k: jwt.encode(
        claims(), k.stranger, algorithm="RS256", headers={"kid": "rsa-1"}),
    "EC key's kid on an RSA signature": lambda k: jwt.encode(
        claims(), k.rsa, algorithm="RS256", headers={"kid": "ec-1"}),
    "expired": lambda k: jwt.encode(claims(exp=int(time.time()) - 120), k.rsa,
                                    algorithm="RS256", headers={"kid": "rsa-1"}),
    "missing exp": lambda k: jwt.encode(claims(exp=None), k.ec, algorithm="ES256",
                                        headers={"kid": "ec-1"}),
    "HS256 with a secret": lambda k: hs256(claims(), SECRET, headers={"kid": "rsa-1"}),
    "HS256 without a kid": lambda k: hs256(claims(), SECRET),
    "HS256 keyed with the RSA public key": lambda k: hmac_signed(
        claims(), k.rsa_public_pem(), {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}),
    "alg none with a known kid": lambda k: unsigned(
        claims(), {"alg": "none", "typ": "JWT", "kid": "rsa-1"}),
}


@pytest.mark.parametrize("make", list(JWKS_BAD_TOKENS.values()), ids=list(JWKS_BAD_TOKENS))
def test_a_token_not_signed_by_a_jwks_key_is_a_401(jwks_client, keys, make):
    token = make(keys)

    response = jwks_client.get("/api/jobs", headers=bearer(token))

    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_token_minted_with_the_hs256_secret_is_refused_in_jwks_mode(
        jwks_client, jwks_settings):
    token = mint_token(jwks_settings.with_(jwt_secret=SECRET), roles=["Admin"])

    response = jwks_client.get("/api/jobs", headers=bearer(token))

    assert_problem(response, 401, "unauthorized")


@pytest.fixture
def jwks_checked_client(jwks_settings) -> Iterator[Any]:
    app = create_app(jwks_settings.with_(jwt_issuer="https://cognito.example/pool",
                                         jwt_audience="client-123"))
    try:
        yield app.test_client()
    finally:
        app.extensions["smartscheduler"].close()


@pytest.mark.parametrize("iss, aud, status", [
    ("https://cognito.example/pool", "client-123", 200),
    ("https://cognito.example/other", "client-123", 401),
    ("https://cognito.example/pool", "client-999", 401),
])
def test_jwks_tokens_have_their_issuer_and_audience_checked(
        jwks_checked_client, keys, iss, aud, status):
    token = jwt.encode(claims(iss=iss, aud=aud), keys.ec, algorithm="ES256",
                       headers={"kid": "ec-1"})

    response = jwks_checked_client.get("/api/jobs", headers=bearer(token))

    assert response.status_code == status


# The OIDC issuer alone: its JWKS found through discovery ----------------------
#
# SMARTSCHEDULER_OIDC_ISSUER and SMARTSCHEDULER_OIDC_CLIENT_ID set, no JWKS URL:
# the keys come from <issuer>/.well-known/openid-configuration -> jwks_uri, `iss`
# must be the issuer and the client id the audience where the token names one.
# Against real local providers: oidc-provider-mock (its ID tokens, from the
# authorization-code flow over HTTP) and a small issuer of our own (tokens shaped
# as Cognito's access tokens, which the mock does not make).

CLIENT_ID = "smartscheduler-console"
oidc = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # authlib's own


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """oidc-provider-mock on a free port; its issuer URL."""
    import oidc_provider_mock

    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # http on loopback
    users = [oidc_provider_mock.User(sub="dana", claims={"roles": ["Dispatcher"]}),
             oidc_provider_mock.User(sub="carl", claims={"roles": ["Contractor"]})]
    with oidc_provider_mock.run_server_in_thread(user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


def provider_tokens(issuer: str, sub: str, client_id: str = CLIENT_ID) -> dict[str, Any]:
    """The provider's token response for `sub`, through the authorization-code flow."""
    parts = urlsplit(issuer)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    redirect_uri = "http://127.0.0.1:9/console/callback"
    try:
        query = urlencode({"client_id": client_id, "response_type": "code", "scope": "openid",
                           "redirect_uri": redirect_uri, "state": "s1", "nonce": "n1"})
        connection.request("POST", f"/oauth2/authorize?{query}", body=urlencode({"sub": sub}),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 302, answer.status
        code = parse_qs(urlsplit(answer.getheader("Location", "")).query)["code"][0]
        connection.request("POST", "/oauth2/token", body=urlencode({
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": client_id, "client_secret": "any"}),
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        answer = connection.getresponse()
        body: dict[str, Any] = json.loads(answer.read())
        assert answer.status == 200, body
        return body
    finally:
        connection.close()


def issuer_settings(test_settings, issuer: str, **more: Any):
    # The HS256 secret stays set (as `smartscheduler serve` in the e2e tests has
    # it): the issuer is still the only source of tokens.
    return test_settings.with_(oidc_issuer=issuer, oidc_client_id=CLIENT_ID, **more)


@contextlib.contextmanager
def app_client(settings) -> Iterator[Any]:
    app = create_app(settings)
    try:
        yield app.test_client()
    finally:
        app.extensions["smartscheduler"].close()


@oidc
def test_an_id_token_from_the_issuer_alone_is_accepted(test_settings, provider):
    settings = issuer_settings(test_settings, provider)
    issued = provider_tokens(provider, "dana")
    claimed = jwt.decode(issued["id_token"], options={"verify_signature": False})
    assert claimed["aud"] == [CLIENT_ID] and claimed["iss"] == provider  # what it carries
    assert not settings.development_sign_in and settings.discovers_jwks

    with app_client(settings) as client:
        created = client.post("/api/jobs", json=job_body(), headers=bearer(issued["id_token"]))
        assert created.status_code == 201, created.get_json()
        assert client.get("/api/jobs", headers=bearer(issued["id_token"])).status_code == 200
        # The console offers SSO only: no token is minted for a chosen role.
        assert client.post("/console/dev-token", json={"role": "Admin"}).status_code == 404
        events = client.get(f"/api/jobs/{created.get_json()['id']}/history",
                            headers=bearer(issued["id_token"])).get_json()["events"]
        assert events[0]["actor"] == {"sub": "dana", "roles": ["Dispatcher"]}


@oidc
def test_the_issuers_roles_decide_what_a_token_may_do(test_settings, provider):
    issued = provider_tokens(provider, "carl")

    with app_client(issuer_settings(test_settings, provider)) as client:
        response = client.get("/api/jobs", headers=bearer(issued["id_token"]))

    assert_problem(response, 403, "forbidden")


@oidc
def test_tokens_the_issuer_did_not_make_for_this_client_are_a_401(test_settings, provider,
                                                                  keys):
    settings = issuer_settings(test_settings, provider)
    refused = {
        "an ID token for another client": provider_tokens(provider, "dana",
                                                          "another-client")["id_token"],
        "the access token (opaque)": provider_tokens(provider, "dana")["access_token"],
        "an HS256 token minted with the secret": mint_token(settings, roles=["Admin"]),
        "signed by a key the issuer does not publish": jwt.encode(
            claims(iss=provider, aud=CLIENT_ID), keys.rsa, algorithm="RS256"),
    }
    with app_client(settings) as client:
        for name, token in refused.items():
            response = client.get("/api/jobs", headers=bearer(token))
            assert_problem(response, 401, "unauthorized")
            assert response.headers["WWW-Authenticate"] == "Bearer", name


@oidc
@pytest.mark.parametrize("override", [{"jwt_issuer": "https://issuer.example/other"},
                                      {"jwt_audience": "another-api"}])
def test_jwt_issuer_and_audience_override_the_oidc_defaults(test_settings, provider,
                                                            override):
    token = provider_tokens(provider, "dana")["id_token"]

    with app_client(issuer_settings(test_settings, provider, **override)) as client:
        response = client.get("/api/jobs", headers=bearer(token))

    assert_problem(response, 401, "unauthorized")


class Issuer:
    """A small OpenID issuer of our own on a free port: its discovery document
    (`issuer` may be made to differ) and its JWKS (`keys`), with each path's
    hits counted."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.hits: dict[str, int] = {}
        self.named_issuer: str | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/pool"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.hits[self.path] = issuer.hits.get(self.path, 0) + 1
                documents = {
                    "/pool/.well-known/openid-configuration": {
                        "issuer": issuer.named_issuer or issuer.url,
                        "jwks_uri": f"{issuer.url}/.well-known/jwks.json"},
                    "/pool/.well-known/jwks.json": issuer.keys.jwks(),
                }
                if self.path not in documents:
                    self.send_error(404)
                    return
                body = json.dumps(documents[self.path]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def token(self, **overrides: Any) -> str:
        return jwt.encode(claims(**{"iss": self.url, **overrides}), self.keys.rsa,
                          algorithm="RS256",
                          headers={"kid": "rsa-1"})


@pytest.fixture
def issuer(keys: Keys) -> Iterator[Issuer]:
    running = Issuer(keys)
    thread = threading.Thread(target=running.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()
        thread.join()


COGNITO_SHAPES = {
    "an ID token for this client": ({"aud": CLIENT_ID, "token_use": "id"}, 200),
    "an access token for this client (client_id, no aud)": (
        {"client_id": CLIENT_ID, "token_use": "access"}, 200),
    "a token naming no audience": ({}, 200),
    "an ID token for another client": ({"aud": "other-client", "token_use": "id"}, 401),
    "an access token for another client": (
        {"client_id": "other-client", "token_use": "access"}, 401),
    "another issuer": ({"iss": "https://cognito.example/other", "aud": CLIENT_ID}, 401),
    "no issuer": ({"iss": None, "aud": CLIENT_ID}, 401),
}


@pytest.mark.parametrize("overrides, status", list(COGNITO_SHAPES.values()),
                         ids=list(COGNITO_SHAPES))
def test_cognito_shaped_tokens_of_a_discovered_issuer(test_settings, issuer, overrides,
                                                      status):
    with app_client(issuer_settings(test_settings, issuer.url)) as client:
        response = client.get("/api/jobs", headers=bearer(issuer.token(**overrides)))

    assert response.status_code == status, response.get_json()


def test_discovery_happens_once_on_first_use(test_settings, issuer):
    with app_client(issuer_settings(test_settings, issuer.url)) as client:
        assert issuer.hits == {}  # lazily: nothing is fetched at start
        for sub in ("a", "b", "c"):  # three tokens, each verified
            response = client.get("/api/jobs", headers=bearer(issuer.token(sub=sub)))
            assert response.status_code == 200

    assert issuer.hits == {"/pool/.well-known/openid-configuration": 1,
                           "/pool/.well-known/jwks.json": 1}


def test_a_discovery_document_naming_another_issuer_is_a_503(test_settings, issuer):
    issuer.named_issuer = "https://impostor.example/pool"

    with app_client(issuer_settings(test_settings, issuer.url)) as client:
        response = client.get("/api/jobs", headers=bearer(issuer.token()))

    problem = assert_problem(response, 503, "service_unavailable")
    assert "impostor.example" in problem["detail"]


def test_an_issuer_that_cannot_be_reached_is_a_503_not_a_401(test_settings):
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with app_client(issuer_settings(test_settings, url)) as client:
        token = jwt.encode(claims(iss=url, aud=CLIENT_ID), "x" * 32, algorithm="HS256")
        response = client.get("/api/jobs", headers=bearer(token))
        problem = assert_problem(response, 503, "service_unavailable")
        assert f"{url}/.well-known/openid-configuration" in problem["detail"]
        assert int(response.headers["Retry-After"]) >= 1
        # A malformed token is still a 401: it is refused before the issuer is asked.
        assert_problem(client.get("/api/jobs", headers=bearer("not-a-jwt")), 401,
                       "unauthorized")


@pytest.fixture
def silent_issuer() -> Iterator[tuple[str, list[socket.socket]]]:
    """An issuer that accepts connections and never answers; the connections."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def hold() -> None:
        listener.settimeout(0.05)
        while not done.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        done.set()
        thread.join()
        for connection in accepted:
            connection.close()
        listener.close()


def test_an_issuer_that_never_answers_holds_no_request_for_long(test_settings,
                                                                silent_issuer):
    url, accepted = silent_issuer
    verifier = TokenVerifier(issuer_settings(test_settings, url), timeout=0.5)
    token = jwt.encode(claims(iss=url, aud=CLIENT_ID), "x" * 32, algorithm="HS256")

    with pytest.raises(Problem) as first:
        verifier.actor(f"Bearer {token}")
    assert first.value.kind.status == 503 and "timed out" in first.value.detail
    for _ in range(100):  # the listener's thread records the connection it took
        if accepted:
            break
        time.sleep(0.05)
    assert len(accepted) == 1
    # Meanwhile the next request is answered at once, without asking again.
    with pytest.raises(Problem) as second:
        verifier.actor(f"Bearer {token}")
    assert second.value.kind.status == 503
    assert second.value.headers["Retry-After"]
    assert len(accepted) == 1


def test_development_sign_in_is_off_when_the_issuer_is_the_token_source():
    issuer = {"oidc_issuer": "https://issuer.example", "oidc_client_id": CLIENT_ID}
    assert not Settings(**issuer).development_sign_in
    assert not Settings(jwt_secret=SECRET, **issuer).development_sign_in
    assert not Settings(**issuer).uses_development_secret
    assert Settings(**issuer).problems() == []  # may run in production
    assert Settings(jwks_url="https://issuer.example/jwks", **issuer).discovers_jwks is False
    assert Settings(jwt_secret=SECRET).development_sign_in  # no issuer: as before
    env = Settings.from_env({"SMARTSCHEDULER_OIDC_ISSUER": "https://issuer.example",
                             "SMARTSCHEDULER_OIDC_CLIENT_ID": CLIENT_ID})
    assert env.discovers_jwks and not env.development_sign_in
