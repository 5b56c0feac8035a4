"""Real backends for the tests: the gateway's accounting, limits and breaker, the control store.

Every test gets its own namespace on the shared servers and leaves nothing behind:
:func:`redis_namespace` yields a unique key prefix and deletes its keys afterwards;
:func:`postgres_schema` creates a unique schema, yields a URL whose ``search_path``
points at it, and drops it afterwards. Both skip the test, saying why, when the
server is unreachable. :class:`FakeClock` is the injected clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = 1_000_000.5) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def redis_namespace() -> Iterator[str]:
    """A fresh key prefix on the local Redis; its keys are deleted at the end."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.ConnectionError as e:
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {e}")
    prefix = f"cloudhedge-test:{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A SQLAlchemy URL on a fresh schema of the local PostgreSQL; dropped at the end."""
    import psycopg

    schema = f"cloudhedge_test_{uuid.uuid4().hex[:12]}"
    try:
        conn = psycopg.connect(POSTGRES_DSN, autocommit=True)
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432/test is unreachable: {e}")
    with conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        finally:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
