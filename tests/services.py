"""The servers the tests talk to: their addresses, and what a missing one means.

A missing server skips with the reason, unless SMARTSCHEDULER_REQUIRE_SERVICES=1
(as in CI), which makes it a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_URL = os.environ.get("SMARTSCHEDULER_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SMARTSCHEDULER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("SMARTSCHEDULER_REQUIRE_SERVICES", "") not in ("", "0")


def service_missing(what: str, reason: str) -> None:
    """Skip (locally) or fail (in CI) when a server the test needs is not there."""
    message = f"{what} is not reachable ({reason})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; SMARTSCHEDULER_REQUIRE_SERVICES is set")
    pytest.skip(message)


def postgres_schema_url() -> Iterator[str]:
    """A fresh schema of the PostgreSQL server (dropped afterwards), or a skip."""
    try:
        import psycopg

        connection = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except Exception as error:  # any failure to connect means: no server here
        service_missing(f"PostgreSQL at {POSTGRES_URL}", str(error).strip())
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}schema={schema}"
    finally:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        connection.close()
