"""Bearer tokens: verified with PyJWT (HS256 secret, or RS256/ES256 from a JWKS,
named by SMARTSCHEDULER_JWKS_URL or found through SMARTSCHEDULER_OIDC_ISSUER's
discovery document)."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable
from typing import Any, cast

import jwt

from application.settings import Settings
from domain.values import Actor, Role
from web.problems import Problem

VERIFIED_CACHE_SIZE = 4096
"""Tokens whose verification is remembered, per process (a client sends the
same token with each request: PyJWT's decode, about 80 us, is done once)."""

VERIFIED_FOR = 60.0
"""Seconds a verification is remembered at most, even when the token lives
longer: a key dropped from the JWKS stops being honoured within this."""

ISSUER_TIMEOUT = 5.0
"""Seconds the service waits on each step of a request to the issuer (its
discovery document, its JWKS) before it gives up with a 503."""

RETRY_DISCOVERY_AFTER = 10.0
"""After a failed discovery, seconds during which requests are answered 503 at
once instead of each waiting on the issuer again."""

MAX_DISCOVERY_BYTES = 1 << 20

HS_ALGORITHMS = ["HS256"]
JWKS_ALGORITHMS = ["RS256", "ES256"]
DEFAULT_SUBS = {
    Role.ADMIN: "admin",
    Role.DISPATCHER: "dispatcher",
    # A contractor's sub is their contractor id, so it must be a UUID.
    Role.CONTRACTOR: "00000000-0000-4000-8000-000000000001",
}


def unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", "Unauthorized", detail,
                   headers={"WWW-Authenticate": "Bearer"})


def issuer_unavailable(detail: str, retry_after: float = 1) -> Problem:
    """The token cannot be checked because its issuer does not answer: not the
    client's fault (a 401 would sign a good session out), so a 503."""
    return Problem(503, "service_unavailable", "Service unavailable", detail,
                   headers={"Retry-After": str(max(1, round(retry_after)))})


def _jwks_client(url: str, timeout: float) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=timeout)


class IssuerKeys:
    """An OpenID Connect issuer's JWKS, found through its discovery document
    (`<issuer>/.well-known/openid-configuration`, its `jwks_uri`) on first use
    and kept for the life of the process. Each step waits `timeout` seconds at
    most; a failed discovery is answered 503 and tried again at most every
    RETRY_DISCOVERY_AFTER seconds, so an issuer that never answers holds no
    request thread longer than one wait."""

    def __init__(self, issuer: str, timeout: float = ISSUER_TIMEOUT) -> None:
        self.url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
        self.configured = issuer
        self.timeout = timeout
        self._found: tuple[jwt.PyJWKClient, str] | None = None
        self._failed: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def found(self) -> tuple[jwt.PyJWKClient, str]:
        """The JWKS client and the issuer as its discovery document names it."""
        found = self._found
        if found is not None:
            return found
        with self._lock:
            if self._found is None:
                self._found = self._discover_once()
            return self._found

    def _discover_once(self) -> tuple[jwt.PyJWKClient, str]:
        failed, now = self._failed, time.monotonic()
        if failed is not None and now < failed[0] + RETRY_DISCOVERY_AFTER:
            raise issuer_unavailable(failed[1], failed[0] + RETRY_DISCOVERY_AFTER - now)
        try:
            jwks_uri, issuer = self._discover()
        except (OSError, http.client.HTTPException, ValueError) as error:
            detail = (f"The token cannot be checked: the OIDC issuer's discovery document "
                      f"{self.url} could not be read ({error}). Try again shortly.")
            self._failed = (time.monotonic(), detail)
            raise issuer_unavailable(detail, RETRY_DISCOVERY_AFTER) from None
        self._failed = None
        return _jwks_client(jwks_uri, self.timeout), issuer

    def _discover(self) -> tuple[str, str]:
        if not self.url.startswith(("https://", "http://")):
            raise ValueError("the issuer must be an http(s) URL")
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})
        deadline = time.monotonic() + self.timeout
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            body = b""
            while chunk := response.read(65536):
                body += chunk
                if len(body) > MAX_DISCOVERY_BYTES or time.monotonic() > deadline:
                    raise ValueError("the answer is too large or too slow")
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        jwks_uri, issuer = document.get("jwks_uri"), document.get("issuer")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise ValueError("it names no jwks_uri")
        if not isinstance(issuer, str) or issuer.rstrip("/") != self.configured.rstrip("/"):
            raise ValueError(f"it names another issuer, {issuer!r}")
        return jwks_uri, issuer


class TokenVerifier:
    """Turns an Authorization header into an Actor, or raises a 401 problem (a
    503 when the issuer whose keys it needs does not answer)."""

    def __init__(self, settings: Settings, *, timeout: float = ISSUER_TIMEOUT) -> None:
        self.settings = settings
        self._jwks = _jwks_client(settings.jwks_url, timeout) if settings.jwks_url else None
        self._discovery = (IssuerKeys(settings.oidc_issuer, timeout)
                           if settings.discovers_jwks and settings.oidc_issuer else None)
        # token -> (actor, until when it may be reused): only tokens that passed
        # every check, keyed by the whole token (signature included), reused while
        # they are unexpired. Read and written without a lock: dict operations are
        # atomic, and at worst a token is verified twice.
        self._verified: dict[str, tuple[Actor, float]] = {}

    def actor(self, authorization: str | None) -> Actor:
        if not authorization:
            raise unauthorized("An Authorization: Bearer token is required.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("The Authorization header must be 'Bearer <token>'.")
        token = token.strip()
        known = self._verified.get(token)
        now = time.time()
        if known is not None and now < known[1]:
            return known[0]
        actor, expires = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()  # crude, but bounded; the busy tokens come back at once
        self._verified[token] = (actor, min(expires, now + VERIFIED_FOR))
        return actor

    def _verify(self, token: str) -> tuple[Actor, float]:
        """Every check of the token: its Actor, and when it expires (PyJWT takes
        a token as expired from `exp` on)."""
        claims = self._claims(token)
        roles = claims.get("roles", claims.get("cognito:groups", []))
        if isinstance(roles, str):
            roles = [roles]
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise unauthorized("The token's roles claim must be a list of strings.")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise unauthorized("The token has no subject (sub).")
        return Actor(sub=sub, roles=tuple(roles)), int(claims["exp"])  # as PyJWT reads it

    def _claims(self, token: str) -> dict[str, Any]:
        options: dict[str, Any] = {"require": ["exp", "sub"]}
        try:
            jwt.get_unverified_header(token)  # a malformed token is a 401 before any fetch
            jwks, issuer = self._key_source()
            if issuer:
                options["require"].append("iss")
            if jwks is not None:
                # The key's own algorithm, not the token's header, decides how the
                # signature is checked: an RS256 header naming an EC key is a 401.
                key: Any = self._jwks_key(jwks, token)
                algorithms = [a for a in JWKS_ALGORITHMS if a == key.algorithm_name]
            else:
                key, algorithms = self.settings.signing_secret, HS_ALGORITHMS
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=algorithms, issuer=issuer,
                options=cast(Any, {**options, "verify_aud": False}),
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("The token has expired.") from None
        except jwt.PyJWKClientConnectionError as error:
            raise issuer_unavailable(f"The token cannot be checked: the issuer's keys "
                                     f"could not be fetched ({error}). Try again shortly."
                                     ) from None
        except jwt.PyJWKClientError as error:
            raise unauthorized(f"The token's signing key is unknown: {error}") from None
        except jwt.InvalidTokenError as error:
            raise unauthorized(f"The token is not valid: {error}") from None
        self._check_audience(claims)
        return claims

    def _key_source(self) -> tuple[jwt.PyJWKClient | None, str | None]:
        """The JWKS whose keys sign tokens (None: the HS256 secret), and the `iss`
        a token must carry: SMARTSCHEDULER_JWT_ISSUER, or else the OIDC issuer
        when its discovery document is where the keys come from."""
        if self._discovery is not None:
            jwks, issuer = self._discovery.found()
            return jwks, self.settings.jwt_issuer or issuer
        return self._jwks, self.settings.jwt_issuer

    def _check_audience(self, claims: dict[str, Any]) -> None:
        """SMARTSCHEDULER_JWT_AUDIENCE must be named; without it, when the keys
        come from the OIDC issuer, its client id must be, where the token names
        an audience (an ID token's `aud`, a Cognito access token's `client_id`)."""
        audience, required = self.settings.jwt_audience, True
        if not audience and self._discovery is not None:
            audience, required = self.settings.oidc_client_id, False
        if audience and not _for_audience(claims, audience, required=required):
            raise unauthorized("The token is not meant for this service (audience).")

    @staticmethod
    def _jwks_key(jwks: jwt.PyJWKClient, token: str) -> Any:
        """The JWKS key named by the token's `kid`; a token without one (some
        OpenID providers leave it out) takes the JWKS's only signing key."""
        if jwt.get_unverified_header(token).get("kid") is None:
            keys = [key for key in jwks.get_jwk_set().keys
                    if key.public_key_use in ("sig", None)]
            if len(keys) == 1:
                return keys[0]
        return jwks.get_signing_key_from_jwt(token)


def _for_audience(claims: dict[str, Any], audience: str, *, required: bool = True) -> bool:
    """`aud` names the audience; Cognito access tokens carry `client_id` instead.
    A token naming neither passes only when the audience is not `required`."""
    aud = claims.get("aud")
    if aud is not None:
        return audience in ([aud] if isinstance(aud, str) else list(aud))
    if "client_id" in claims:
        cognito_access = claims.get("token_use") == "access" or not required
        return cognito_access and claims["client_id"] == audience
    return not required


def mint_token(settings: Settings, *, roles: Iterable[str], sub: str | None = None,
               ttl: int = 3600) -> str:
    """A token signed with the configured HS256 secret (for local use and scripts)."""
    roles = list(dict.fromkeys(roles))
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub or DEFAULT_SUBS[Role(roles[0])],
        "roles": roles,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.signing_secret, algorithm="HS256")
