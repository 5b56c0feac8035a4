"""Alembic environment of the control store: online only, on the caller's connection.

:meth:`cloudhedge.control.store.ControlStore.migrate` passes an open connection, already
inside its (write-locked) transaction, as ``config.attributes["connection"]``; the
migrations run in that transaction, so a schema change lands whole or not at all.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from cloudhedge.control.store import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("the control store migrations run through ControlStore.migrate(), "
                       "which passes a connection; offline mode is not supported")
context.configure(connection=connection, target_metadata=metadata,
                  version_table=VERSION_TABLE, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
