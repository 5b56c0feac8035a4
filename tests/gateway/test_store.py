"""The accounting store against real SQLite files and a real PostgreSQL schema."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from backends import postgres_schema
from cloudhedge.gateway.store import NUSD_PER_USD, RequestRecord, Totals, UsageStore


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'usage.db'}"
    else:
        with postgres_schema() as pg_url:
            yield pg_url


def rec(i: int, *, key: str = "k1", tenant: str = "t1", model: str = "m1",
        deployment: str | None = "d1", cost_usd: float = 0.001234, input_tokens: int = 10,
        output_tokens: int = 20) -> RequestRecord:
    return RequestRecord(
        request_id=f"req-{i}", ts=1_700_000_000.0 + i, key_name=key, tenant=tenant,
        model=model, endpoint="chat", deployment=deployment,
        provider=None if deployment is None else "azure", status=200,
        input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost_usd,
        latency_ms=12.5, overhead_ms=0.4, attempts=1, stream=i % 2 == 0)


def varied(n: int) -> list[RequestRecord]:
    """Records over 3 keys, 2 tenants, 2 models, 3 deployments (one: none) and odd costs."""
    return [rec(i, key=f"k{i % 3}", tenant=f"t{i % 2}", model=f"m{i % 2}",
                deployment=None if i % 5 == 0 else f"d{i % 4}",
                cost_usd=(i % 7) * 0.000_123_457, input_tokens=i, output_tokens=2 * i + 1)
            for i in range(n)]


def expected(records: list[RequestRecord], attr: str) -> dict[str, Totals]:
    """Totals computed in Python, with costs summed as nano-USD like the store."""
    groups: dict[str, list[RequestRecord]] = {}
    for r in records:
        groups.setdefault(getattr(r, attr) or "", []).append(r)
    return {name: Totals(len(rs), sum(r.input_tokens for r in rs),
                         sum(r.output_tokens for r in rs),
                         sum(round(r.cost_usd * NUSD_PER_USD) for r in rs) / NUSD_PER_USD)
            for name, rs in groups.items()}


def test_batched_writes_land_with_exact_totals(url: str) -> None:
    store = UsageStore(url, batch_size=100)
    inserts = [0]

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        inserts[0] += statement.startswith("INSERT")

    event.listen(store._engine, "before_cursor_execute", count)
    records = varied(1000)
    for r in records:
        store.record(r)
    store.flush()
    try:
        assert store.totals("key") == expected(records, "key_name")
        assert store.totals("tenant") == expected(records, "tenant")
        assert store.totals("model") == expected(records, "model")
        assert store.totals("deployment") == expected(records, "deployment")
        assert "" in store.totals("deployment")  # requests that reached no deployment
        for key in ("k0", "k1", "k2"):
            assert store.spent_usd(key_name=key) == expected(records, "key_name")[key].cost_usd
        assert store.spent_usd(tenant="t1") == expected(records, "tenant")["t1"].cost_usd
        both = [r for r in records if r.key_name == "k1" and r.tenant == "t0"]
        assert store.spent_usd(key_name="k1", tenant="t0") == expected(both, "key_name")[
            "k1"].cost_usd
        everything = sum(round(r.cost_usd * NUSD_PER_USD) for r in records) / NUSD_PER_USD
        assert store.spent_usd() == everything
        assert store.spent_usd(key_name="nobody") == 0.0
        # Written in batches of batch_size rows, not one statement per record.
        assert 10 <= inserts[0] <= 20
    finally:
        store.close()


def test_record_is_off_the_hot_path_and_flush_waits(url: str) -> None:
    store = UsageStore(url, flush_interval_s=30.0, batch_size=10_000)
    try:
        t0 = time.perf_counter()
        for i in range(2000):
            store.record(rec(i))
        per_call_us = (time.perf_counter() - t0) / 2000 * 1e6
        assert per_call_us < 50  # a queue put, no I/O
        assert store.spent_usd() == 0.0  # nothing written yet: the writer waits to batch
        t0 = time.perf_counter()
        store.flush()
        assert time.perf_counter() - t0 < 10  # flush does not wait for the interval
        assert store.totals("key")["k1"].requests == 2000
        store.flush()  # nothing pending: returns at once
    finally:
        store.close()


def test_records_from_many_threads(url: str) -> None:
    store = UsageStore(url, batch_size=250)
    threads, per_thread = 8, 1500

    def work(t: int) -> None:
        for i in range(per_thread):
            store.record(rec(t * per_thread + i, key=f"k{t}", cost_usd=0.5))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    store.flush()
    try:
        totals = store.totals("key")
        assert {k: v.requests for k, v in totals.items()} == {
            f"k{t}": per_thread for t in range(threads)}
        assert store.spent_usd() == threads * per_thread * 0.5
    finally:
        store.close()


def test_close_persists_and_later_records_are_dropped(url: str) -> None:
    store = UsageStore(url, flush_interval_s=30.0)
    for i in range(10):
        store.record(rec(i, cost_usd=0.25))
    store.close()  # flushes
    store.record(rec(99))  # after close: dropped, never raises
    assert store.dropped == 1
    store.close()  # idempotent
    reopened = UsageStore(url)  # tables exist: created only if missing
    try:
        assert reopened.spent_usd(key_name="k1") == 2.5
        assert reopened.totals("tenant") == {"t1": Totals(10, 100, 200, 2.5)}
    finally:
        reopened.close()


def test_a_row_the_database_refuses_is_dropped_alone(url: str) -> None:
    store = UsageStore(url)
    try:
        for i in range(5):
            store.record(rec(i, cost_usd=1.0))
        store.record(rec(5, input_tokens=2**70))  # too large for any integer column
        for i in range(6, 10):
            store.record(rec(i, cost_usd=1.0))
        store.flush()
        assert store.totals("key")["k1"] == Totals(9, 90, 180, 9.0)
        assert store.dropped == 1
    finally:
        store.close()


def test_full_queue_drops_new_records(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    store = UsageStore(f"sqlite:///{path}?timeout=0.05", flush_interval_s=0.0, batch_size=1,
                       max_pending=5)
    lock = sqlite3.connect(path)
    lock.execute("BEGIN IMMEDIATE")  # the writer cannot commit: records pile up
    try:
        for i in range(50):
            store.record(rec(i))
        assert store.pending <= 5
        assert store.dropped >= 40
    finally:
        lock.rollback()
        lock.close()
    store.flush()
    written = store.totals("key")["k1"].requests
    store.close()
    assert written + store.dropped == 50


def test_transient_failures_are_retried_until_written(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "usage.db"
    store = UsageStore(f"sqlite:///{path}?timeout=0.05", flush_interval_s=0.0)
    lock = sqlite3.connect(path)
    lock.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        with caplog.at_level(logging.WARNING, logger="cloudhedge.gateway.store"):
            for i in range(10):
                store.record(rec(i))
            with pytest.raises(TimeoutError):
                store.flush(timeout_s=0.5)
        assert any("retrying" in m for m in caplog.messages)
    finally:
        lock.rollback()
        lock.close()
    store.flush()  # the same batch, retried, lands once the lock is gone
    try:
        assert store.totals("key")["k1"].requests == 10
        assert store.dropped == 0
    finally:
        store.close()


def test_sqlite_uses_wal_so_readers_do_not_block(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    store = UsageStore(f"sqlite:///{path}")
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        plan = conn.execute("EXPLAIN QUERY PLAN SELECT tenant, count(*), sum(cost_nusd) "
                            "FROM gateway_requests GROUP BY tenant").fetchall()
    assert "COVERING INDEX ix_gateway_requests_tenant" in str(plan)


def test_urls(tmp_path: Path) -> None:
    with postgres_schema() as pg_url:
        assert pg_url.startswith("postgresql://")  # mapped to postgresql+psycopg
        UsageStore(pg_url).close()
    with pytest.raises(ValueError, match="SQLite file"):
        UsageStore("sqlite:///:memory:")
    with pytest.raises(ValueError, match="unsupported"):
        UsageStore("mysql://localhost/x")
