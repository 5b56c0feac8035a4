"""The control plane's durable truth: workloads, launch attempts, decisions, blocklist.

:class:`ControlStore` is a typed repository over SQLAlchemy Core. Backends:
``sqlite:///path`` (the default for ``cloudhedge up``: WAL journal, ``synchronous=NORMAL``,
foreign keys on, write transactions taken with ``BEGIN IMMEDIATE`` so concurrent
writers queue on the driver's busy timeout instead of failing) and
``postgresql://...`` (mapped to psycopg 3). The schema is created and upgraded by the
Alembic migrations shipped in ``control/migrations`` when the store opens (or by
:meth:`ControlStore.migrate`); no ``alembic.ini`` is needed.

Contract for the reconciler:

- every public write is one transaction: it lands whole or not at all. A killed process
  loses no committed write; a power loss may lose the last commits (SQLite
  ``synchronous=NORMAL``), never half of one;
- the desired state and every launch attempt, with its idempotency key, are written
  *before* the provider is called: :meth:`ControlStore.plan_attempt` inserts the attempt
  in state ``planned``; a second call with the same key returns the stored row
  (``created=False``) and writes nothing, also when callers race;
- attempt states move only by compare-and-set (:meth:`ControlStore.advance`): the update
  happens only if the attempt is still in one of the expected states;
- events are append-only and ordered by their id (:meth:`ControlStore.list_events`);
- time comes from the injected clock (unix seconds); columns ending ``_unix_s`` hold it.

Attempt states (the store does not enforce the graph; ``from_states`` in each
:meth:`ControlStore.advance` does)::

    planned -> launching -> running -> succeeded | failed | terminated | lost
    planned | launching -> failed | terminated | lost      (never ran)

Chips of ``planned``, ``launching`` and ``running`` attempts count as in use
(:data:`LIVE_STATES`, :meth:`ControlStore.usage_by_pool`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    case,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Insert

from cloudhedge.control.records import (  # re-exported: the store's values
    ATTEMPT_STATES,
    DESIRED_STATES,
    LIVE_STATES,
    SCOPE_KINDS,
    WORKLOAD_KINDS,
    Attempt,
    AttemptPlan,
    AttemptState,
    Block,
    Checkpoint,
    DesiredState,
    Event,
    EventKind,
    JsonDict,
    Move,
    NewEvent,
    NewWorkload,
    Planned,
    ScopeKind,
    Workload,
    WorkloadKind,
)
from cloudhedge.core.errors import CloudhedgeError
from cloudhedge.db import make_engine

__all__ = [
    "ATTEMPT_STATES",
    "DESIRED_STATES",
    "LIVE_STATES",
    "SCOPE_KINDS",
    "VERSION_TABLE",
    "WORKLOAD_KINDS",
    "Attempt",
    "AttemptPlan",
    "AttemptState",
    "Block",
    "Checkpoint",
    "ControlStore",
    "DesiredState",
    "Event",
    "EventKind",
    "IdempotencyConflict",
    "JsonDict",
    "Move",
    "NewEvent",
    "NewWorkload",
    "Planned",
    "ScopeKind",
    "StoreError",
    "Workload",
    "WorkloadExists",
    "WorkloadKind",
    "metadata",
]

VERSION_TABLE: Final = "control_alembic_version"
_MIGRATIONS = Path(__file__).with_name("migrations")
_PG_MIGRATION_LOCK: Final = 0x636C6F7564  # pg_advisory_xact_lock key: one migrator at a time
_WAL_SWITCH_S: Final = 5.0
_WRITE: Final = "cloudhedge_write"  # execution option: this transaction writes


class StoreError(CloudhedgeError):
    """A control-store request that cannot be honoured as asked."""


class WorkloadExists(StoreError):
    """A workload with this name is already stored."""


class IdempotencyConflict(StoreError):
    """An idempotency key already names an attempt of another workload."""


# -- tables: the migrations in control/migrations/versions must create exactly these --------

def _big_id() -> BigInteger:
    """A 64-bit id that is still SQLite's auto-incrementing rowid."""
    return BigInteger().with_variant(Integer(), "sqlite")


_json = JSON().with_variant(JSONB(), "postgresql")
_STATE_LIST = ", ".join(f"'{s}'" for s in ATTEMPT_STATES)

metadata = MetaData()

workloads = Table(
    "workloads", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("spec", _json, nullable=False),
    Column("desired", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_unix_s", Double, nullable=False),
    Column("updated_unix_s", Double, nullable=False),
    CheckConstraint("kind IN ('training', 'batch', 'service')", name="ck_workloads_kind"),
    CheckConstraint("desired IN ('running', 'cancelled')", name="ck_workloads_desired"),
)

attempts = Table(
    "attempts", metadata,
    Column("id", _big_id(), primary_key=True),
    Column("workload_id", Integer, ForeignKey("workloads.id"), nullable=False),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column("pool", String(255), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("region", String(64), nullable=False),
    Column("zone", String(64)),
    Column("accelerator", String(64), nullable=False),
    Column("chips", Integer, nullable=False),
    Column("replica", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("instance_id", String(255)),
    Column("error_kind", String(64)),
    Column("error_scope", String(255)),
    Column("created_unix_s", Double, nullable=False),
    Column("updated_unix_s", Double, nullable=False),
    Column("address", String(255)),  # where the instance is reached (0002)
    Column("port", Integer),  # the replica port of a service replica (0002)
    Column("heartbeat_unix_s", Double),  # the last heartbeat of the workload (0002)
    Column("progress_step", BigInteger),  # the step it reported (0002)
    CheckConstraint(f"state IN ({_STATE_LIST})", name="ck_attempts_state"),
    CheckConstraint("chips > 0", name="ck_attempts_chips"),
    Index("ix_attempts_state", "state"),
    Index("ix_attempts_workload_id", "workload_id"),
)

events = Table(
    "events", metadata,
    Column("id", _big_id(), primary_key=True),
    Column("workload_id", Integer, ForeignKey("workloads.id")),
    Column("attempt_id", _big_id(), ForeignKey("attempts.id")),
    Column("kind", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("data", _json),
    Column("at_unix_s", Double, nullable=False),
    Index("ix_events_workload_id", "workload_id", "id"),
    Index("ix_events_attempt_id", "attempt_id"),
)

blocklist = Table(
    "blocklist", metadata,
    Column("scope_kind", String(16), primary_key=True),
    Column("scope_name", String(255), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("until_unix_s", Double),
    Column("created_unix_s", Double, nullable=False),
    CheckConstraint("scope_kind IN ('pool', 'zone', 'region', 'provider', 'accelerator')",
                    name="ck_blocklist_scope_kind"),
)

checkpoints = Table(
    "checkpoints", metadata,
    Column("id", _big_id(), primary_key=True),
    Column("workload_id", Integer, ForeignKey("workloads.id"), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("location", Text, nullable=False),
    Column("at_unix_s", Double, nullable=False),
    Index("ix_checkpoints_workload_id_step", "workload_id", "step"),
)


def _workload(row: Row[Any]) -> Workload:
    return Workload(**row._mapping)


def _attempt(row: Row[Any]) -> Attempt:
    return Attempt(**row._mapping)


def _choice(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


# -- engine ------------------------------------------------------------------------------

def _make_engine(url: str) -> Engine:
    return make_engine(url, what="the control store",
                       why_a_file="it is shared by threads and by processes that restart",
                       sqlite_connect=_sqlite_connect, sqlite_begin=_sqlite_begin)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the driver leaves BEGIN to _sqlite_begin
    cursor = dbapi_connection.cursor()
    _sqlite_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL fsyncs at checkpoints, not per commit
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_wal(cursor: Any) -> None:
    """Switch the file to WAL (persistent: once per file), which readers never block.

    Switching needs the file to itself, without busy waiting; so connections racing
    to open a new file retry for up to :data:`_WAL_SWITCH_S`.
    """
    deadline = time.monotonic() + _WAL_SWITCH_S
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_begin(conn: Connection) -> None:
    # A writer takes the write lock at BEGIN: it then waits on the busy timeout instead
    # of failing at once when it would upgrade a read lock on a stale snapshot.
    write = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _insert_ignoring_duplicates(dialect: str, table: Table, key: str) -> Insert:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=[key])
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])


# -- the repository ----------------------------------------------------------------------

class ControlStore:
    """Workloads, attempts, events, blocklist and checkpoints in one SQL database.

    Thread-safe (one connection per call from the engine's pool). Opening migrates the
    schema to the newest revision unless ``migrate=False``.
    """

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time,
                 migrate: bool = True) -> None:
        self._engine = _make_engine(url)
        self._writer = self._engine.execution_options(**{_WRITE: True})
        self._clock = clock
        dialect = self._engine.dialect.name
        self._plan = _insert_ignoring_duplicates(
            dialect, attempts, "idempotency_key").returning(*attempts.c)
        self._add_events = insert(events)
        self._advance_where = (attempts.c.id == bindparam("attempt_id")) & attempts.c.state.in_(
            bindparam("from_states", expanding=True))
        if migrate:
            self.migrate()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tests and tools; the API needs none of it)."""
        return self._engine

    def close(self) -> None:
        """Close the pooled connections; the store is unusable afterwards."""
        self._engine.dispose()

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest revision; safe to call concurrently."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self._write() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                             {"key": _PG_MIGRATION_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._writer.begin() as conn:
            yield conn

    # -- workloads ------------------------------------------------------------------

    def create_workload(self, name: str, kind: WorkloadKind, spec: JsonDict, *,
                        priority: int = 0, desired: DesiredState = "running") -> Workload:
        """Store a new workload at version 1; raises :class:`WorkloadExists` on its name."""
        _choice(kind, WORKLOAD_KINDS, "kind")
        _choice(desired, DESIRED_STATES, "desired")
        now = self._clock()
        try:
            with self._write() as conn:
                row = conn.execute(insert(workloads).returning(*workloads.c), {
                    "name": name, "kind": kind, "spec": spec, "desired": desired,
                    "priority": priority, "version": 1, "created_unix_s": now,
                    "updated_unix_s": now}).one()
        except IntegrityError as e:
            if self.get_workload_by_name(name) is not None:
                raise WorkloadExists(f"workload {name!r} already exists") from e
            raise
        return _workload(row)

    def create_workloads(self, new: Sequence[NewWorkload]) -> list[Workload]:
        """Store new workloads at version 1, each with a ``desired`` event saying it was
        submitted, in one transaction (all or none); raises :class:`WorkloadExists`
        naming the names already stored."""
        for w in new:
            _choice(w.kind, WORKLOAD_KINDS, "kind")
        if len({w.name for w in new}) != len(new):
            raise ValueError("create_workloads: a name is given twice")
        if not new:
            return []
        now = self._clock()
        rows = [{"name": w.name, "kind": w.kind, "spec": w.spec, "desired": "running",
                 "priority": w.priority, "version": 1, "created_unix_s": now,
                 "updated_unix_s": now} for w in new]
        try:
            with self._write() as conn:
                stored = [_workload(r) for r in conn.execute(
                    insert(workloads).returning(*workloads.c), rows)]
                conn.execute(self._add_events, [
                    {"workload_id": w.id, "attempt_id": None, "kind": "desired",
                     "reason": f"{w.kind} {w.name} submitted", "data": None, "at_unix_s": now}
                    for w in stored])
        except IntegrityError as e:
            taken = [w.name for w in self.get_workloads_by_name([w.name for w in new])]
            if taken:
                raise WorkloadExists(f"workloads already exist: {', '.join(taken)}") from e
            raise
        by_name = {w.name: w for w in stored}
        return [by_name[w.name] for w in new]

    def get_workloads_by_name(self, names: Sequence[str]) -> list[Workload]:
        """The stored workloads among ``names``, in id order."""
        query = select(workloads).where(workloads.c.name.in_(list(names))).order_by(
            workloads.c.id)
        with self._engine.connect() as conn:
            return [_workload(r) for r in conn.execute(query)]

    def get_workload(self, workload_id: int) -> Workload | None:
        """The workload with this id, if any."""
        return self._one_workload(workloads.c.id == workload_id)

    def get_workload_by_name(self, name: str) -> Workload | None:
        """The workload with this name, if any."""
        return self._one_workload(workloads.c.name == name)

    def _one_workload(self, where: Any) -> Workload | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(workloads).where(where)).one_or_none()
        return None if row is None else _workload(row)

    def list_workloads(self, *, desired: DesiredState | None = None,
                       kind: WorkloadKind | None = None) -> list[Workload]:
        """Workloads in id order, optionally only those with this desired state and kind."""
        query = select(workloads).order_by(workloads.c.id)
        if desired is not None:
            query = query.where(workloads.c.desired == desired)
        if kind is not None:
            query = query.where(workloads.c.kind == kind)
        with self._engine.connect() as conn:
            return [_workload(r) for r in conn.execute(query)]

    def update_workload(self, workload_id: int, *, expected_version: int | None = None,
                        desired: DesiredState | None = None, spec: JsonDict | None = None,
                        priority: int | None = None) -> bool:
        """Change the given fields and bump the version, in one compare-and-set.

        With ``expected_version``, the update happens only if the stored version is that
        one (optimistic concurrency). Returns whether the workload was updated.
        """
        values: dict[str, Any] = {"version": workloads.c.version + 1,
                                  "updated_unix_s": self._clock()}
        if desired is not None:
            _choice(desired, DESIRED_STATES, "desired")
            values["desired"] = desired
        if spec is not None:
            values["spec"] = spec
        if priority is not None:
            values["priority"] = priority
        where = workloads.c.id == workload_id
        if expected_version is not None:
            where &= workloads.c.version == expected_version
        with self._write() as conn:
            return conn.execute(update(workloads).where(where).values(values)).rowcount == 1

    def set_desired(self, workload_id: int, desired: DesiredState, *,
                    expected_version: int | None = None) -> bool:
        """Set the desired state (see :meth:`update_workload`)."""
        return self.update_workload(workload_id, expected_version=expected_version,
                                    desired=desired)

    # -- attempts -------------------------------------------------------------------

    def plan_attempt(self, workload_id: int, *, idempotency_key: str, pool: str,
                     provider: str, region: str, accelerator: str, chips: int,
                     replica: int = 0, zone: str | None = None, reason: str | None = None,
                     data: JsonDict | None = None, port: int | None = None) -> Planned:
        """Insert one attempt in state ``planned`` (see :meth:`plan_attempts`)."""
        return self.plan_attempts([AttemptPlan(
            workload_id=workload_id, idempotency_key=idempotency_key, pool=pool,
            provider=provider, region=region, accelerator=accelerator, chips=chips,
            replica=replica, zone=zone, reason=reason, data=data, port=port)])[0]

    def plan_attempts(self, plans: Sequence[AttemptPlan]) -> list[Planned]:
        """Insert attempts in state ``planned`` and their placement events, in one transaction.

        Idempotent per key: a key already stored (also by a concurrent caller) is not
        written again; its stored attempt is returned with ``created=False`` and no
        event is appended for it. Raises :class:`IdempotencyConflict` (writing nothing)
        if a stored key belongs to another workload, ``ValueError`` on a key given twice.
        Results are in the order of ``plans``.
        """
        if not plans:
            return []
        keys = [p.idempotency_key for p in plans]
        if len(set(keys)) != len(keys):
            raise ValueError("plan_attempts: an idempotency key is given twice")
        for p in plans:
            if p.chips <= 0:
                raise ValueError(f"attempt {p.idempotency_key!r}: chips must be > 0")
        now = self._clock()
        rows = [{"workload_id": p.workload_id, "idempotency_key": p.idempotency_key,
                 "pool": p.pool, "provider": p.provider, "region": p.region, "zone": p.zone,
                 "accelerator": p.accelerator, "chips": p.chips, "replica": p.replica,
                 "state": "planned", "instance_id": None, "error_kind": None,
                 "error_scope": None, "created_unix_s": now, "updated_unix_s": now,
                 "address": None, "port": p.port, "heartbeat_unix_s": None,
                 "progress_step": None}
                for p in plans]
        with self._write() as conn:
            created = {r.idempotency_key: _attempt(r) for r in conn.execute(self._plan, rows)}
            missing = [k for k in keys if k not in created]
            stored: dict[str, Attempt] = {}
            if missing:
                query = select(attempts).where(attempts.c.idempotency_key.in_(missing))
                stored = {r.idempotency_key: _attempt(r) for r in conn.execute(query)}
            for p in plans:
                old = stored.get(p.idempotency_key)
                if old is not None and old.workload_id != p.workload_id:
                    raise IdempotencyConflict(
                        f"idempotency key {p.idempotency_key!r} is attempt {old.id} of "
                        f"workload {old.workload_id}, not of workload {p.workload_id}")
            placed = [{"workload_id": p.workload_id,
                       "attempt_id": created[p.idempotency_key].id, "kind": "placement",
                       "reason": p.reason, "data": p.data, "at_unix_s": now}
                      for p in plans if p.reason is not None and p.idempotency_key in created]
            if placed:
                conn.execute(self._add_events, placed)
        return [Planned(created[k], True) if k in created else Planned(stored[k], False)
                for k in keys]

    def advance(self, attempt_id: int, from_states: Sequence[AttemptState],
                to_state: AttemptState, *, instance_id: str | None = None,
                error_kind: str | None = None, error_scope: str | None = None,
                address: str | None = None, event: NewEvent | None = None) -> bool:
        """Move an attempt to ``to_state`` if it is in one of ``from_states`` (compare-and-set).

        The given fields are set with the state (None leaves a field as it is);
        ``event`` is appended in the same transaction, only if the attempt moved.
        Returns whether it moved.
        """
        return self.advance_many([Move(attempt_id, tuple(from_states), to_state,
                                       instance_id=instance_id, error_kind=error_kind,
                                       error_scope=error_scope, address=address,
                                       event=event)])[0]

    def advance_many(self, moves: Sequence[Move]) -> list[bool]:
        """:meth:`advance` for each move, all in one transaction; whether each moved.

        Each move is its own compare-and-set: one that finds its attempt in another
        state does not move and appends no event, the others still do.
        """
        now = self._clock()
        for m in moves:
            _choice(m.to_state, ATTEMPT_STATES, "to_state")
            for s in m.from_states:
                _choice(s, ATTEMPT_STATES, "from_states")
        moved: list[bool] = []
        added: list[dict[str, Any]] = []
        with self._write() as conn:
            for m in moves:
                values: dict[str, Any] = {"state": m.to_state, "updated_unix_s": now}
                for name, value in (("instance_id", m.instance_id), ("error_kind", m.error_kind),
                                    ("error_scope", m.error_scope), ("address", m.address)):
                    if value is not None:
                        values[name] = value
                done = conn.execute(
                    update(attempts).where(self._advance_where).values(values),
                    {"attempt_id": m.attempt_id, "from_states": list(m.from_states)}
                ).rowcount == 1
                moved.append(done)
                if done and m.event is not None:
                    added.append(self._event_row(m.event))
            if added:
                conn.execute(self._add_events, added)
        return moved

    def get_attempt(self, attempt_id: int) -> Attempt | None:
        """The attempt with this id, if any."""
        return self._one_attempt(attempts.c.id == attempt_id)

    def get_attempt_by_key(self, idempotency_key: str) -> Attempt | None:
        """The attempt with this idempotency key, if any."""
        return self._one_attempt(attempts.c.idempotency_key == idempotency_key)

    def _one_attempt(self, where: Any) -> Attempt | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(attempts).where(where)).one_or_none()
        return None if row is None else _attempt(row)

    def list_attempts(self, *, states: Sequence[AttemptState] | None = None,
                      workload_id: int | None = None) -> list[Attempt]:
        """Attempts in id order, filtered by state and workload.

        After a restart, ``list_attempts(states=LIVE_STATES)`` is what to adopt: each
        has an idempotency key to look the instance up by at its provider.
        """
        query = select(attempts).order_by(attempts.c.id)
        if states is not None:
            query = query.where(attempts.c.state.in_(list(states)))
        if workload_id is not None:
            query = query.where(attempts.c.workload_id == workload_id)
        with self._engine.connect() as conn:
            return [_attempt(r) for r in conn.execute(query)]

    def usage_by_pool(self) -> dict[str, int]:
        """Chips of live attempts (:data:`LIVE_STATES`) per pool; pools without any are absent."""
        query = (select(attempts.c.pool, func.sum(attempts.c.chips))
                 .where(attempts.c.state.in_(LIVE_STATES)).group_by(attempts.c.pool))
        with self._engine.connect() as conn:
            return {pool: int(chips) for pool, chips in conn.execute(query)}

    def heartbeat(self, attempt_id: int, *, step: int | None = None) -> Attempt | None:
        """Record that a live attempt's workload is alive (and its progress, if given).

        Only a ``running`` attempt takes a heartbeat; returns it as updated, or None if
        it is not running (ended, or not yet launched): the caller tells the workload.
        Progress never goes back: a lower ``step`` than the stored one is ignored.
        """
        values: dict[str, Any] = {"heartbeat_unix_s": self._clock()}
        if step is not None:
            stored = attempts.c.progress_step
            values["progress_step"] = case((stored.is_(None), step), (stored < step, step),
                                           else_=stored)
        with self._write() as conn:
            row = conn.execute(
                update(attempts).where((attempts.c.id == attempt_id)
                                       & (attempts.c.state == "running"))
                .values(values).returning(*attempts.c)).one_or_none()
        return None if row is None else _attempt(row)

    # -- events ---------------------------------------------------------------------

    def _event_row(self, e: NewEvent) -> dict[str, Any]:
        return {"workload_id": e.workload_id, "attempt_id": e.attempt_id, "kind": e.kind,
                "reason": e.reason, "data": e.data, "at_unix_s": self._clock()}

    def append_events(self, new: Sequence[NewEvent]) -> None:
        """Append events, in this order, in one transaction."""
        if new:
            with self._write() as conn:
                conn.execute(self._add_events, [self._event_row(e) for e in new])

    def append_event(self, kind: EventKind, reason: str, *, workload_id: int | None = None,
                     attempt_id: int | None = None, data: JsonDict | None = None) -> None:
        """Append one event."""
        self.append_events([NewEvent(kind, reason, workload_id, attempt_id, data)])

    def list_events(self, *, workload_id: int | None = None, attempt_id: int | None = None,
                    after_id: int = 0, limit: int | None = None) -> list[Event]:
        """Events in append order with an id above ``after_id`` (for paging and tailing).

        On SQLite writers are serialised, so ids are also commit order. On PostgreSQL
        ids come from a sequence when inserted: a concurrent transaction may commit a
        lower id later, so a tailer by ``after_id`` should re-read a short window back.
        """
        query = select(events).where(events.c.id > after_id).order_by(events.c.id)
        if workload_id is not None:
            query = query.where(events.c.workload_id == workload_id)
        if attempt_id is not None:
            query = query.where(events.c.attempt_id == attempt_id)
        if limit is not None:
            query = query.limit(limit)
        with self._engine.connect() as conn:
            return [Event(**r._mapping) for r in conn.execute(query)]

    # -- blocklist ------------------------------------------------------------------

    def block(self, scope_kind: ScopeKind, scope_name: str, reason: str, *,
              until_unix_s: float | None) -> None:
        """Block a failure scope until a time (None: until :meth:`unblock`).

        Blocking a scope again keeps the later end and takes the new reason.
        """
        _choice(scope_kind, SCOPE_KINDS, "scope_kind")
        now = self._clock()
        row = {"scope_kind": scope_kind, "scope_name": scope_name, "reason": reason,
               "until_unix_s": until_unix_s, "created_unix_s": now}
        ins = (postgresql.insert(blocklist) if self._engine.dialect.name == "postgresql"
               else sqlite.insert(blocklist))
        old, new = blocklist.c.until_unix_s, ins.excluded.until_unix_s
        stmt = ins.on_conflict_do_update(
            index_elements=["scope_kind", "scope_name"],
            set_={"reason": ins.excluded.reason, "created_unix_s": now,
                  "until_unix_s": case((old.is_(None) | new.is_(None), None),
                                       (old > new, old), else_=new)})
        with self._write() as conn:
            conn.execute(stmt, row)

    def unblock(self, scope_kind: ScopeKind, scope_name: str) -> bool:
        """Remove a block; returns whether there was one."""
        with self._write() as conn:
            return conn.execute(blocklist.delete().where(
                (blocklist.c.scope_kind == scope_kind)
                & (blocklist.c.scope_name == scope_name))).rowcount == 1

    def active_blocks(self) -> list[Block]:
        """Blocks in force now (by the store's clock), by scope kind and name."""
        now = self._clock()
        query = (select(blocklist)
                 .where(blocklist.c.until_unix_s.is_(None) | (blocklist.c.until_unix_s > now))
                 .order_by(blocklist.c.scope_kind, blocklist.c.scope_name))
        with self._engine.connect() as conn:
            return [Block(**r._mapping) for r in conn.execute(query)]

    # -- checkpoints ----------------------------------------------------------------

    def record_checkpoint(self, workload_id: int, step: int, location: str) -> Checkpoint:
        """Store a checkpoint of a workload at a training step."""
        row = {"workload_id": workload_id, "step": step, "location": location,
               "at_unix_s": self._clock()}
        with self._write() as conn:
            stored = conn.execute(insert(checkpoints).returning(*checkpoints.c), row).one()
        return Checkpoint(**stored._mapping)

    def latest_checkpoint(self, workload_id: int) -> Checkpoint | None:
        """The checkpoint with the highest step (the newest among equal steps), if any."""
        query = (select(checkpoints).where(checkpoints.c.workload_id == workload_id)
                 .order_by(checkpoints.c.step.desc(), checkpoints.c.id.desc()).limit(1))
        with self._engine.connect() as conn:
            row = conn.execute(query).one_or_none()
        return None if row is None else Checkpoint(**row._mapping)
