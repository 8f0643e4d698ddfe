"""An OpenID Connect issuer's signing keys, found through its discovery document:
how the service verifies tokens when only SMARTSCHEDULER_OIDC_ISSUER names where
they come from (web/auth.py's TokenVerifier asks it for the keys)."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request

import jwt

from web.problems import Problem

ISSUER_TIMEOUT = 5.0
"""Seconds the service waits on each step of a request to the issuer (its
discovery document, its JWKS) before it gives up with a 503."""

RETRY_DISCOVERY_AFTER = 10.0
"""After a failed discovery, seconds during which requests are answered 503 at
once instead of each waiting on the issuer again."""

MAX_DISCOVERY_BYTES = 1 << 20


def issuer_unavailable(detail: str, retry_after: float = 1) -> Problem:
    """The token cannot be checked because its issuer does not answer: not the
    client's fault (a 401 would sign a good session out), so a 503."""
    return Problem(503, "service_unavailable", "Service unavailable", detail,
                   headers={"Retry-After": str(max(1, round(retry_after)))})


def jwks_client(url: str, timeout: float) -> jwt.PyJWKClient:
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
        return jwks_client(jwks_uri, self.timeout), issuer

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
