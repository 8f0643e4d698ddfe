"""Shared fixtures: every scenario runs against each storage backend.

`database_url` is parametrized over the backends: an SQLite file in the test's
own directory, and a fresh schema in the PostgreSQL server named by
SMARTSCHEDULER_TEST_POSTGRES_URL. A missing server skips with the reason,
unless SMARTSCHEDULER_REQUIRE_SERVICES=1 (as in CI), which makes it a failure.
`second_url` is another fresh database on the same backend, and `redis_server`
a private redis-server (tests/redis_server.py) stopped after the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from application.settings import Settings
from smartscheduler.bootstrap import Services, build_services
from tests.projections.stores import other_store
from tests.redis_server import RedisServer, start_private_redis
from tests.services import postgres_schema_url

settings.register_profile("default", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=250, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'smartscheduler.db'}"
    else:
        yield from postgres_schema_url()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A fresh SQLite file, for tests about the embedded mode only."""
    return f"sqlite:///{tmp_path / 'smartscheduler.db'}"


@pytest.fixture
def second_url(database_url: str, tmp_path) -> Iterator[str]:
    """Another fresh, empty database on the backend of `database_url`."""
    yield from other_store(database_url, tmp_path)


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    """A private redis-server: the relay writes to a fixed stream name."""
    server = start_private_redis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def test_settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, jwt_secret="test-secret-" + "x" * 32)


@pytest.fixture
def services(test_settings: Settings) -> Iterator[Services]:
    """The Dispatch application with its read models kept current in-process."""
    built = build_services(test_settings, run_projections=True)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def app(services: Services):
    return services.app


UNKNOWN_TOPIC = "smartscheduler.AssignmentReconfirmedForTest"


@pytest.fixture
def unknown_topic() -> Iterator[str]:
    """A topic this build does not know; forgotten again if a test registers it."""
    from eventsourcing import utils

    yield UNKNOWN_TOPIC
    with utils._topic_cache_lock:
        utils._topic_cache.pop(UNKNOWN_TOPIC, None)
