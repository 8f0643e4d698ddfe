"""Settings read from SMARTSCHEDULER_* environment variables, in one place.

A value no deployment could run with is refused when the settings are made
(SettingsError, naming the variable): the command line then exits with the
message (status 2) before it starts anything. The webhooks' retry schedule is
finite waits of more than 0 s and at most MAX_RETRY_WAIT each, and their send
timeout is between 1 and 60 s.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

DEFAULT_DATABASE_URL = "sqlite:///var/smartscheduler.db"
DEVELOPMENT_SECRET = "smartscheduler-development-secret-do-not-use-in-production"

MAX_RETRY_WAIT = 7 * 24 * 3600.0
"""Seconds one wait of SMARTSCHEDULER_WEBHOOK_RETRY_SCHEDULE may be at most."""

WEBHOOK_TIMEOUTS = (1.0, 60.0)
"""Seconds SMARTSCHEDULER_WEBHOOK_TIMEOUT may be, at least and at most."""


class SettingsError(ValueError):
    """A setting no deployment could run with; the message names its variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    jwt_secret: str | None = None
    jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    environment: str = "development"
    embedded_projections: bool = True
    embedded_relay: bool = True
    read_your_writes_timeout: float = 5.0
    sse_heartbeat: float = 15.0
    max_streams: int = 100
    stuck_after: float = 30.0
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    webhooks: bool = False
    """Whether this deployment delivers webhooks (on from the environment, unless
    SMARTSCHEDULER_WEBHOOKS=false; off in a Settings built in code)."""
    embedded_webhooks: bool = True
    webhook_key: str | None = None
    webhook_retry_schedule: str | None = None
    webhook_timeout: float = 15.0
    log_format: str = "text"
    metrics_token: str | None = None

    def __post_init__(self) -> None:
        retry_waits(self.webhook_retry_schedule)
        low, high = WEBHOOK_TIMEOUTS
        if not low <= self.webhook_timeout <= high:  # NaN too
            raise SettingsError(f"SMARTSCHEDULER_WEBHOOK_TIMEOUT must be between {low:g} "
                                f"and {high:g} seconds, not {self.webhook_timeout!r}.")

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def discovers_jwks(self) -> bool:
        """Whether the API finds its JWKS through the OIDC issuer's discovery
        document (`SMARTSCHEDULER_OIDC_ISSUER` set, `SMARTSCHEDULER_JWKS_URL` not)."""
        return bool(self.oidc_issuer) and not self.jwks_url

    @property
    def tokens_from_issuer(self) -> bool:
        """Whether API tokens are verified with an issuer's public keys (a JWKS,
        named or discovered) rather than the HS256 secret."""
        return bool(self.jwks_url) or self.discovers_jwks

    @property
    def uses_development_secret(self) -> bool:
        return not self.jwt_secret and not self.tokens_from_issuer

    @property
    def development_sign_in(self) -> bool:
        """Whether the console may mint tokens for a chosen role (its development
        sign-in): with the development secret, or in the development environment
        with an HS256 secret; never when tokens come from an issuer (its JWKS,
        named or discovered), since only the issuer can sign them."""
        return not self.tokens_from_issuer and (
            self.uses_development_secret or self.environment == "development")

    @property
    def signing_secret(self) -> str:
        return self.jwt_secret or DEVELOPMENT_SECRET

    def problems(self) -> list[str]:
        """What stops this configuration from running in production."""
        found = []
        if self.uses_development_secret:
            found.append("set SMARTSCHEDULER_JWT_SECRET, SMARTSCHEDULER_JWKS_URL or "
                         "SMARTSCHEDULER_OIDC_ISSUER")
        elif self.jwt_secret and len(self.jwt_secret) < 32:
            found.append("SMARTSCHEDULER_JWT_SECRET must be at least 32 characters")
        return found

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(f"SMARTSCHEDULER_{name}", "").strip()
            return value or None

        def flag(name: str, default: bool = True) -> bool:
            value = get(name)
            return default if value is None else value.lower() not in (
                "0", "false", "no", "off")

        return cls(
            database_url=get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            redis_url=get("REDIS_URL"),
            jwt_secret=get("JWT_SECRET"),
            jwks_url=get("JWKS_URL"),
            jwt_issuer=get("JWT_ISSUER"),
            jwt_audience=get("JWT_AUDIENCE"),
            environment=(get("ENV") or "development").lower(),
            embedded_projections=flag("EMBEDDED_PROJECTIONS"),
            embedded_relay=flag("EMBEDDED_RELAY"),
            read_your_writes_timeout=float(get("READ_YOUR_WRITES_TIMEOUT") or 5.0),
            sse_heartbeat=float(get("SSE_HEARTBEAT") or 15.0),
            max_streams=int(get("MAX_STREAMS") or 100),
            stuck_after=float(get("STUCK_AFTER") or 30.0),
            oidc_issuer=get("OIDC_ISSUER"),
            oidc_client_id=get("OIDC_CLIENT_ID"),
            webhooks=flag("WEBHOOKS"),
            embedded_webhooks=flag("EMBEDDED_WEBHOOKS"),
            webhook_key=get("WEBHOOK_KEY"),
            webhook_retry_schedule=get("WEBHOOK_RETRY_SCHEDULE"),
            webhook_timeout=_seconds("SMARTSCHEDULER_WEBHOOK_TIMEOUT", get("WEBHOOK_TIMEOUT"),
                                     15.0),
            log_format=(get("LOG_FORMAT") or "text").lower(),
            metrics_token=get("METRICS_TOKEN"),
        )


def retry_waits(text: str | None) -> tuple[float, ...] | None:
    """The waits of SMARTSCHEDULER_WEBHOOK_RETRY_SCHEDULE (None: the default);
    SettingsError unless each is finite, more than 0 and at most MAX_RETRY_WAIT."""
    if not text:
        return None
    name = "SMARTSCHEDULER_WEBHOOK_RETRY_SCHEDULE"
    waits = tuple(_seconds(name, part, 0.0) for part in text.split(",") if part.strip())
    if not waits:
        raise SettingsError(f"{name} must name at least one wait, in seconds.")
    for wait in waits:
        if not 0 < wait <= MAX_RETRY_WAIT:  # inf and NaN too
            raise SettingsError(f"{name}: each wait must be more than 0 and at most "
                                f"{MAX_RETRY_WAIT:g} seconds (7 days), not {wait!r}.")
    return waits


def _seconds(name: str, text: str | None, default: float) -> float:
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, not "
                            f"{text.strip()!r}.") from None
