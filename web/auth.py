"""Bearer tokens: verified with PyJWT (HS256 secret, or RS256/ES256 from a JWKS,
named by SMARTSCHEDULER_JWKS_URL or found through SMARTSCHEDULER_OIDC_ISSUER's
discovery document)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any, cast

import jwt

from application.settings import Settings
from domain.values import Actor, Role
from web.oidc import ISSUER_TIMEOUT, IssuerKeys, issuer_unavailable, jwks_client
from web.problems import Problem

VERIFIED_CACHE_SIZE = 4096
"""Tokens whose verification is remembered, per process (a client sends the
same token with each request: PyJWT's decode, about 80 us, is done once)."""

VERIFIED_FOR = 60.0
"""Seconds a verification is remembered at most, even when the token lives
longer: a key dropped from the JWKS stops being honoured within this."""

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


class TokenVerifier:
    """Turns an Authorization header into an Actor, or raises a 401 problem (a
    503 when the issuer whose keys it needs does not answer)."""

    def __init__(self, settings: Settings, *, timeout: float = ISSUER_TIMEOUT) -> None:
        self.settings = settings
        self._jwks = jwks_client(settings.jwks_url, timeout) if settings.jwks_url else None
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
