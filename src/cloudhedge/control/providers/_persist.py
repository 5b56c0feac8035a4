"""What a world with processes keeps on disk, so that it outlives the control plane.

:class:`WorldDB` is ``<workdir>/world.db`` (SQLite, WAL): one row per instance, with
its request, its snapshot and the pid and start time of its process; ``seq`` (the
number in the instance id) is the id counter. Every write is one statement in its own
transaction. ``synchronous=NORMAL``: a commit survives the death of the process (the
case that matters: SIGKILL of the control plane), not a power loss, which the emulated
instances, being local processes, would not survive either.

:func:`process_start` reads a process's start time (``/proc/PID/stat`` field 22, in
clock ticks since boot): a pid is only taken for the recorded process if its start time
is the recorded one, so a reused pid is never adopted nor killed.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from cloudhedge.control.providers.base import Instance, InstanceState, LaunchRequest

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request TEXT NOT NULL,
    pool TEXT NOT NULL,
    region TEXT NOT NULL,
    zone TEXT,
    accelerator TEXT NOT NULL,
    chips INTEGER NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    exit_code INTEGER,
    detail TEXT NOT NULL,
    address TEXT,
    pid INTEGER,
    start_ticks INTEGER,
    UNIQUE (provider, idempotency_key)
)
"""

_NO_PROCFS = not os.path.exists("/proc/self/stat")


def process_start(pid: int) -> int | None:
    """Start time of live process ``pid`` (clock ticks since boot); None if gone.

    A zombie (exited, not yet reaped) counts as gone. Without procfs, 0 for any
    process that exists (pid reuse is then not detected).
    """
    if _NO_PROCFS:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return 0
        return 0
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of stat; fields[0] is field 3 (the state)


def alive(pid: int | None, start_ticks: int | None) -> bool:
    """Whether the process recorded as (``pid``, ``start_ticks``) still runs."""
    return pid is not None and start_ticks is not None and process_start(pid) == start_ticks


@dataclass
class Row:
    """One stored instance."""

    seq: int
    request: LaunchRequest
    instance: Instance
    pid: int | None
    start_ticks: int | None


class WorldDB:
    """``world.db``: the instances of a world, one row each; see the module docstring."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=10.0)
        conn = self._conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise RuntimeError(f"{path}: schema version {version}, expected {SCHEMA_VERSION}")
        conn.execute(_SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"{self.path} is closed")
        return self._conn

    def rows(self) -> Iterator[Row]:
        """Every stored instance, in launch order."""
        cursor = self.conn.execute(
            "SELECT seq, provider, idempotency_key, request, pool, region, zone, accelerator,"
            " chips, state, created_at, started_at, ended_at, exit_code, detail, address,"
            " pid, start_ticks, id FROM instances ORDER BY seq")
        for (seq, provider, key, request, pool, region, zone, accelerator, chips, state,
             created_at, started_at, ended_at, exit_code, detail, address, pid, ticks,
             instance_id) in cursor:
            req = LaunchRequest(**json.loads(request))
            inst = Instance(instance_id, key, req.workload, pool, provider, region, zone,
                            accelerator, chips, InstanceState(state), created_at, started_at,
                            ended_at, exit_code, detail, address)
            yield Row(seq, req, inst, pid, ticks)

    def insert(self, seq: int, request: LaunchRequest, inst: Instance) -> None:
        """Record a launch (before anything runs): one statement, one transaction."""
        self.conn.execute(
            "INSERT INTO instances (id, seq, provider, idempotency_key, request, pool, region,"
            " zone, accelerator, chips, state, created_at, started_at, ended_at, exit_code,"
            " detail, address) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (inst.id, seq, inst.provider, inst.idempotency_key, json.dumps(asdict(request)),
             inst.pool, inst.region, inst.zone, inst.accelerator, inst.chips, str(inst.state),
             inst.created_at, inst.started_at, inst.ended_at, inst.exit_code, inst.detail,
             inst.address))

    def update(self, inst: Instance, pid: int | None, start_ticks: int | None) -> None:
        """Record a change of state (and the process, once started)."""
        self.conn.execute(
            "UPDATE instances SET state = ?, started_at = ?, ended_at = ?, exit_code = ?,"
            " detail = ?, pid = ?, start_ticks = ? WHERE id = ?",
            (str(inst.state), inst.started_at, inst.ended_at, inst.exit_code, inst.detail,
             pid, start_ticks, inst.id))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def read_exit(path: Path) -> tuple[int, str] | None:
    """The return code and detail the shim wrote to ``path``, if it did."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    first, _, detail = text.partition("\n")
    try:
        return int(first), detail.strip()
    except ValueError:
        return None
