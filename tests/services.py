"""Reaching the real PostgreSQL and Redis on 127.0.0.1, or skipping with the reason.

CI sets FACEAGE_REQUIRE_SERVICES=1 so that an absent service fails instead of skipping.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "FACEAGE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
REDIS_TEST_URL = os.environ.get("FACEAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("FACEAGE_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_redis() -> str:
    """A real Redis database for this test, emptied first."""
    import redis

    try:
        client = redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=2)
        client.flushdb()
    except (redis.RedisError, OSError) as error:
        _skip_or_fail(f"no Redis at {REDIS_TEST_URL}: {error}")
    return REDIS_TEST_URL


class PostgresDatabase:
    """A throw-away database on the real server, dropped afterwards."""

    def __init__(self) -> None:
        import psycopg

        self.name = f"faceage_it_{uuid.uuid4().hex[:10]}"
        try:
            self.admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
        except psycopg.Error as error:
            _skip_or_fail(f"no PostgreSQL at {POSTGRES_ADMIN_URL}: {error}")
        self.admin.execute(f'CREATE DATABASE "{self.name}"')
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
        self.url = f"{base}/{self.name}"

    def drop(self) -> None:
        self.admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.close()
