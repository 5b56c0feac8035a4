"""SQLAlchemy engines for the project's stores (gateway accounting, control plane).

One place decides what a database URL means: ``postgresql://`` runs on psycopg 3 with
connections checked before use; ``sqlite:///path`` must be a file (stores are shared by
threads and processes), with the store's own pragmas installed on every connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

ConnectHook = Callable[[Any, Any], None]
BeginHook = Callable[[Any], None]


def make_engine(url: str, *, what: str, why_a_file: str, sqlite_connect: ConnectHook,
                sqlite_begin: BeginHook | None = None) -> Engine:
    """An engine for ``url``; ``what`` names the store in errors ("the accounting store")."""
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        if u.drivername in ("postgresql", "postgres"):
            u = u.set(drivername="postgresql+psycopg")
        return create_engine(u, pool_pre_ping=True)
    if u.get_backend_name() == "sqlite":
        if u.database in (None, "", ":memory:") or u.query.get("mode") == "memory":
            raise ValueError(f"{what} needs a SQLite file, not {url!r}: {why_a_file}")
        engine = create_engine(u)
        event.listen(engine, "connect", sqlite_connect)
        if sqlite_begin is not None:
            event.listen(engine, "begin", sqlite_begin)
        return engine
    raise ValueError(f"unsupported database for {what}: {url!r}; use sqlite:///path or "
                     "postgresql://...")
