"""Accounting: one row per request (tokens, cost, latency), persisted through SQLAlchemy.

The hot path only enqueues: :meth:`UsageStore.record` puts a frozen
:class:`RequestRecord` on an in-memory queue and returns (no I/O, no lock, never
raises). One writer thread drains the queue and inserts batches (one executemany
per batch, one transaction per batch, so a crash leaves whole batches or nothing).

Backends: ``sqlite:///path`` (WAL journal, so readers never block the writer;
``synchronous=NORMAL``; a locked database is waited for up to the driver's timeout,
5 s unless the URL says ``?timeout=...``) and ``postgresql+psycopg://...``
(``postgresql://`` and ``postgres://`` are mapped to psycopg). The table
``gateway_requests`` and its indexes are created when missing; no migrations yet.

Costs are stored as integer nano-USD (``cost_nusd``), so sums are exact and do not
depend on the order rows are added; the API speaks float USD.

Failed writes. A transient error (connection lost, database locked or down) keeps
the batch at the head of the queue and retries it with exponential backoff
(0.05 s doubling to 5 s), indefinitely: nothing is lost while the process lives.
From the fifth consecutive failure on, each retry logs at ERROR. Meanwhile records
keep queueing in memory up to ``max_pending``; beyond that :meth:`record` drops new
records (counted in :attr:`UsageStore.dropped`, logged). Any other error (a row the
database refuses) is isolated by writing the batch's rows one by one; the refused
rows are logged with their request id and dropped, the others are written.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from cloudhedge.db import make_engine

log = logging.getLogger(__name__)

NUSD_PER_USD = 1_000_000_000  # costs are stored as integer nano-USD
_ERROR_AFTER_FAILURES = 5  # consecutive failed writes before logging at ERROR
_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 5.0
_NAME_CHARS = 256  # longest key/tenant/model/deployment/provider name kept
_ERROR_CHARS = 2000  # longest error text kept


@dataclass(frozen=True)
class RequestRecord:
    """What the gateway did for one client request."""

    request_id: str
    ts: float  # unix seconds, when the request arrived
    key_name: str
    tenant: str
    model: str
    endpoint: str  # "chat" | "completions" | "embeddings"
    deployment: str | None  # None: no deployment was tried (refused, rate limited, ...)
    provider: str | None
    status: int  # HTTP status returned to the client
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: float  # arrival to last byte
    overhead_ms: float  # time spent in the gateway itself
    attempts: int  # deployments tried
    stream: bool
    error: str | None = None


@dataclass(frozen=True)
class Totals:
    """Sums over a group of requests."""

    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


_metadata = MetaData()
_requests = Table(
    "gateway_requests",
    _metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("request_id", String(128), nullable=False),
    Column("ts", Double, nullable=False),
    Column("key_name", String(_NAME_CHARS), nullable=False),
    Column("tenant", String(_NAME_CHARS), nullable=False),
    Column("model", String(_NAME_CHARS), nullable=False),
    Column("endpoint", String(32), nullable=False),
    Column("deployment", String(_NAME_CHARS)),
    Column("provider", String(_NAME_CHARS)),
    Column("status", Integer, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cost_nusd", BigInteger, nullable=False),
    Column("latency_ms", Double, nullable=False),
    Column("overhead_ms", Double, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("error", Text),
)
_c = _requests.c
# Covering indexes: each totals()/spent_usd() query is answered from its index alone.
for _name, _col in (("key", _c.key_name), ("tenant", _c.tenant),
                    ("deployment", _c.deployment), ("model", _c.model)):
    Index(f"ix_gateway_requests_{_name}", _col, _c.cost_nusd, _c.input_tokens,
          _c.output_tokens)
_GROUP_COLUMNS = {"key": _c.key_name, "tenant": _c.tenant, "deployment": _c.deployment,
                  "model": _c.model}

_Item = RequestRecord | threading.Event | None  # a record, a flush marker, or stop


def nusd(usd: float) -> int:
    """USD as integer nano-USD (non-finite amounts count as 0)."""
    return round(usd * NUSD_PER_USD) if math.isfinite(usd) else 0


def _text(s: str, limit: int) -> str:
    """A string PostgreSQL and SQLite both accept: no NUL, at most ``limit`` characters."""
    if "\x00" in s:
        s = s.replace("\x00", "\ufffd")
    return s[:limit]


def _finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0


def _row(r: RequestRecord) -> dict[str, Any]:
    return {
        "request_id": _text(r.request_id, 128),
        "ts": _finite(r.ts),
        "key_name": _text(r.key_name, _NAME_CHARS),
        "tenant": _text(r.tenant, _NAME_CHARS),
        "model": _text(r.model, _NAME_CHARS),
        "endpoint": _text(r.endpoint, 32),
        "deployment": None if r.deployment is None else _text(r.deployment, _NAME_CHARS),
        "provider": None if r.provider is None else _text(r.provider, _NAME_CHARS),
        "status": r.status,
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "cost_nusd": nusd(r.cost_usd),
        "latency_ms": _finite(r.latency_ms),
        "overhead_ms": _finite(r.overhead_ms),
        "attempts": r.attempts,
        "stream": r.stream,
        "error": None if r.error is None else _text(r.error, _ERROR_CHARS),
    }


def _transient(e: Exception) -> bool:
    """Whether a failed write may succeed if retried unchanged."""
    if isinstance(e, DBAPIError):
        return e.connection_invalidated or isinstance(e, OperationalError | InterfaceError)
    return isinstance(e, PoolTimeoutError | DisconnectionError | OSError)


def _make_engine(url: str) -> Engine:
    return make_engine(url, what="the accounting store",
                       why_a_file="the writer thread and the readers use separate connections",
                       sqlite_connect=_sqlite_pragmas)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; a crash loses no committed batch
    cursor.close()


class UsageStore:
    """Usage and cost per request, written in batches by one background thread.

    ``record`` is for the hot path; ``flush``, ``close``, ``totals`` and ``spent_usd``
    block (call them from a thread, e.g. ``asyncio.to_thread``, inside an event loop).
    """

    def __init__(self, url: str, *, flush_interval_s: float = 0.2, batch_size: int = 500,
                 max_pending: int = 200_000) -> None:
        if batch_size < 1 or flush_interval_s < 0 or max_pending < 1:
            raise ValueError("batch_size and max_pending must be >= 1, flush_interval_s >= 0")
        self._engine = _make_engine(url)
        self._create_tables()
        self._flush_interval_s = flush_interval_s
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._stop = threading.Event()  # set when close() gives up waiting
        self._closed = False
        self._dropped = 0
        self._drop_lock = threading.Lock()
        self._writer = threading.Thread(target=self._run, name="cloudhedge-usage-writer",
                                        daemon=True)
        self._writer.start()

    # -- hot path -------------------------------------------------------------------

    def record(self, r: RequestRecord) -> None:
        """Queue one record for writing; returns at once, from any thread, never raises."""
        if self._closed or self._queue.qsize() >= self._max_pending:
            self._drop(r, "store closed" if self._closed else "too many records pending")
            return
        self._queue.put(r)

    # -- control --------------------------------------------------------------------

    def flush(self, timeout_s: float = 10.0) -> None:
        """Block until every record recorded before this call is written (or dropped as
        refused by the database). Raises ``TimeoutError`` if that takes longer than
        ``timeout_s`` (e.g. while the database is unreachable)."""
        if not self._writer.is_alive():
            return
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout_s):
            raise TimeoutError(f"accounting records not written after {timeout_s:g} s "
                               f"({self.pending} pending)")

    def close(self) -> None:
        """Flush (waiting up to 10 s), stop the writer and release connections.

        Records still unwritten after 10 s are lost and logged; ``record`` after
        ``close`` drops its record."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        except TimeoutError as e:
            log.error("closing the accounting store: %s; they are lost", e)
            self._stop.set()
        self._queue.put(None)
        self._writer.join(timeout=_BACKOFF_MAX_S + 1.0)
        self._engine.dispose()

    @property
    def pending(self) -> int:
        """Records queued and not yet taken by the writer."""
        return self._queue.qsize()

    @property
    def dropped(self) -> int:
        """Records given up on: queue full, store closed, or refused by the database."""
        return self._dropped

    # -- queries --------------------------------------------------------------------

    def totals(self, by: Literal["key", "tenant", "deployment", "model"]) -> dict[str, Totals]:
        """Sums per key name, tenant, deployment or model over everything written.

        Requests that reached no deployment are grouped under ``""`` for ``by="deployment"``.
        """
        col = _GROUP_COLUMNS[by]
        query = select(col, func.count(), func.sum(_c.input_tokens),
                       func.sum(_c.output_tokens), func.sum(_c.cost_nusd)).group_by(col)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return {
            (name or ""): Totals(requests=int(n), input_tokens=int(tin or 0),
                                 output_tokens=int(tout or 0),
                                 cost_usd=int(cost or 0) / NUSD_PER_USD)
            for name, n, tin, tout, cost in rows
        }

    def spent_usd(self, *, key_name: str | None = None, tenant: str | None = None) -> float:
        """Total cost written so far, for one key and/or one tenant (all if neither)."""
        query = select(func.sum(_c.cost_nusd))
        if key_name is not None:
            query = query.where(_c.key_name == key_name)
        if tenant is not None:
            query = query.where(_c.tenant == tenant)
        with self._engine.connect() as conn:
            total = conn.execute(query).scalar()
        return int(total or 0) / NUSD_PER_USD

    # -- writer thread --------------------------------------------------------------

    def _create_tables(self) -> None:
        try:
            _metadata.create_all(self._engine)
        except DBAPIError:
            # Another process created them between the existence check and CREATE.
            _metadata.create_all(self._engine)

    def _drop(self, r: RequestRecord, why: str) -> None:
        with self._drop_lock:
            self._dropped += 1
            n = self._dropped
        if n & (n - 1) == 0:  # the 1st, 2nd, 4th, 8th, ... drop: loud but bounded
            log.error("accounting record %s dropped (%s); %d dropped so far",
                      r.request_id, why, n)

    def _run(self) -> None:
        """Writer loop: gather up to batch_size records or flush_interval_s, write, repeat."""
        batch: list[RequestRecord] = []
        markers: list[threading.Event] = []
        stopping = False
        while not stopping:
            item = self._queue.get()
            deadline = time.monotonic() + self._flush_interval_s
            while True:
                if isinstance(item, RequestRecord):
                    batch.append(item)
                    if len(batch) >= self._batch_size:
                        break
                elif item is None:
                    stopping = True
                    break
                else:  # a flush marker: write what came before it now
                    markers.append(item)
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if batch and not self._write(batch):
                return  # close() gave up: leave flush markers unset
            batch = []
            for marker in markers:
                marker.set()
            markers.clear()

    def _write(self, batch: list[RequestRecord]) -> bool:
        """Insert ``batch`` in one transaction, retrying transient errors; False if stopped."""
        failures = 0
        while True:
            try:
                with self._engine.begin() as conn:
                    conn.execute(_requests.insert(), [_row(r) for r in batch])
                return True
            except Exception as e:
                if not _transient(e):
                    if len(batch) == 1:
                        self._drop(batch[0], f"refused by the database: {e}")
                        return True
                    return all(self._write([r]) for r in batch)
                failures += 1
                level = logging.ERROR if failures >= _ERROR_AFTER_FAILURES else logging.WARNING
                log.log(level, "writing %d accounting records failed (%d in a row, %d more "
                        "pending), retrying: %s", len(batch), failures, self.pending, e)
                backoff = min(_BACKOFF_MAX_S, _BACKOFF_FIRST_S * 2 ** (failures - 1))
                if self._stop.wait(backoff):
                    return False
