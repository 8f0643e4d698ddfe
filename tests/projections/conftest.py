"""Fixtures shared by the relay's tests (the root conftest's `redis_server`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.redis_server import RedisServer


@pytest.fixture
def redis_db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the private Redis, closed after the test."""
    client = redis_server.client()
    try:
        yield client
    finally:
        client.close()
