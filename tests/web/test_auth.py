"""Bearer tokens: 401 for no or bad token, 403 for a role that may not, JWKS mode."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from smartscheduler.bootstrap import create_app
from tests.web.support import assert_problem, job_body
from web.auth import mint_token

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
