"""The control store against a real SQLite file and a real PostgreSQL schema."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from backends import FakeClock, postgres_schema
from cloudhedge.control.store import (
    LIVE_STATES,
    VERSION_TABLE,
    AttemptPlan,
    ControlStore,
    IdempotencyConflict,
    NewEvent,
    WorkloadExists,
    metadata,
)

CRASH_WRITER = Path(__file__).with_name("crash_writer.py")
T = TypeVar("T")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'control.db'}"
    else:
        with postgres_schema() as pg_url:
            yield pg_url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(url: str, clock: FakeClock) -> Iterator[ControlStore]:
    s = ControlStore(url, clock=clock)
    yield s
    s.close()


def plan(workload_id: int, key: str, *, pool: str = "aws/us-east-1/h100/spot", chips: int = 8,
         replica: int = 0, reason: str | None = "cheapest") -> AttemptPlan:
    return AttemptPlan(workload_id=workload_id, idempotency_key=key, pool=pool,
                       provider=pool.split("/")[0], region=pool.split("/")[1],
                       accelerator="h100", chips=chips, replica=replica, reason=reason)


def race(n: int, fn: Callable[[int], T]) -> list[T]:
    """Run ``fn(i)`` in n threads released together; their results in thread order."""
    barrier = threading.Barrier(n)
    results: list[T | None] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except BaseException as e:  # reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [r for r in results if r is not None]


# -- schema ---------------------------------------------------------------------------------

def test_migrations_create_the_schema_from_empty_and_are_idempotent(url: str) -> None:
    store = ControlStore(url)
    store.migrate()
    again = ControlStore(url)  # opening migrates again: a no-op
    names = set(inspect(store.engine).get_table_names())
    assert {"workloads", "attempts", "events", "blocklist", "checkpoints",
            VERSION_TABLE} <= names
    with store.engine.connect() as conn:
        assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all() \
            == ["0002"]
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, metadata) == []  # the migration matches the tables
    again.close()


def test_upgrading_from_0001_keeps_the_attempts(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from cloudhedge.control.store import _MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    old = ControlStore(url, migrate=False)
    with old.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(text(
            "INSERT INTO workloads (id, name, kind, spec, desired, priority, version, "
            "created_unix_s, updated_unix_s) VALUES (1, 'w', 'batch', '{}', 'running', 0, 1, "
            "0, 0)"))
        conn.execute(text(
            "INSERT INTO attempts (workload_id, idempotency_key, pool, provider, region, "
            "accelerator, chips, replica, state, created_unix_s, updated_unix_s) VALUES "
            "(1, 'w/0/0', 'p', 'aws', 'us-east-1', 'h100', 8, 0, 'running', 0, 0)"))
    old.close()
    store = ControlStore(url)  # migrates to the newest revision
    (a,) = store.list_attempts()
    assert (a.idempotency_key, a.state, a.port, a.heartbeat_unix_s) == ("w/0/0", "running",
                                                                        None, None)
    assert store.heartbeat(a.id, step=5) is not None
    store.close()


def test_heartbeats_touch_running_attempts_only_and_progress_never_goes_back(
        store: ControlStore, clock: FakeClock) -> None:
    w = store.create_workload("train", "training", {})
    (planned,) = store.plan_attempts([plan(w.id, "train/0/0")])
    assert store.heartbeat(planned.attempt.id, step=1) is None  # not running yet
    store.advance(planned.attempt.id, ["planned"], "running", instance_id="i-1")
    clock.advance(3)
    beat = store.heartbeat(planned.attempt.id, step=40)
    assert beat is not None and beat.progress_step == 40
    assert beat.heartbeat_unix_s == clock()
    clock.advance(3)
    later = store.heartbeat(planned.attempt.id, step=20)  # a late, out-of-order report
    assert later is not None and later.progress_step == 40
    assert later.heartbeat_unix_s == clock()
    kept = store.heartbeat(planned.attempt.id)
    assert kept is not None and kept.progress_step == 40
    store.advance(planned.attempt.id, ["running"], "lost")
    assert store.heartbeat(planned.attempt.id, step=60) is None
    store.close()


def test_opening_migrates_concurrently(url: str) -> None:
    stores = race(4, lambda _: ControlStore(url))
    assert stores[0].list_workloads() == []
    for s in stores:
        s.close()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = ControlStore(f"sqlite:///{tmp_path / 'c.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    store.close()


def test_memory_sqlite_and_other_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="SQLite file"):
        ControlStore("sqlite://")
    with pytest.raises(ValueError, match="unsupported"):
        ControlStore("mysql://localhost/x")


# -- workloads ------------------------------------------------------------------------------

def test_workloads_have_unique_names_and_optimistic_versions(
        store: ControlStore, clock: FakeClock) -> None:
    w = store.create_workload("llama-pretrain", "training", {"chips": 512}, priority=5)
    assert (w.version, w.desired, w.spec, w.created_unix_s) == (1, "running", {"chips": 512},
                                                                clock.now)
    with pytest.raises(WorkloadExists):
        store.create_workload("llama-pretrain", "batch", {})
    with pytest.raises(ValueError, match="kind"):
        store.create_workload("x", "inference", {})  # type: ignore[arg-type]
    clock.advance(3)
    assert store.update_workload(w.id, expected_version=1, spec={"chips": 256})
    assert not store.set_desired(w.id, "cancelled", expected_version=1)  # stale version
    assert store.set_desired(w.id, "cancelled", expected_version=2)
    got = store.get_workload(w.id)
    assert got is not None
    assert (got.version, got.desired, got.spec, got.priority) == (3, "cancelled",
                                                                  {"chips": 256}, 5)
    assert got.updated_unix_s == clock.now
    other = store.create_workload("batch-eval", "batch", {})
    assert [x.name for x in store.list_workloads()] == ["llama-pretrain", "batch-eval"]
    assert store.list_workloads(desired="running") == [other]
    assert store.get_workload_by_name("batch-eval") == other
    assert store.get_workload(999) is None


def test_concurrent_updates_with_one_version_let_one_win(store: ControlStore) -> None:
    w = store.create_workload("svc", "service", {})
    won = race(8, lambda i: store.update_workload(w.id, expected_version=1, priority=i))
    assert won.count(True) == 1
    got = store.get_workload(w.id)
    assert got is not None and got.version == 2


# -- attempts -------------------------------------------------------------------------------

def test_plan_attempt_is_idempotent_under_concurrency(store: ControlStore) -> None:
    w = store.create_workload("train", "training", {})
    results = race(8, lambda i: store.plan_attempt(
        w.id, idempotency_key="train/gen1/replica0", pool=f"aws/us-east-1/h100/p{i}",
        provider="aws", region="us-east-1", accelerator="h100", chips=8, reason="cheapest"))
    assert sum(r.created for r in results) == 1
    assert len({r.attempt for r in results}) == 1  # every caller sees the one stored row
    assert len(store.list_attempts()) == 1
    assert len(store.list_events(workload_id=w.id)) == 1  # one placement event, not eight


def test_plan_attempts_in_bulk_mixes_new_and_known_keys(store: ControlStore) -> None:
    w = store.create_workload("b", "batch", {})
    first = store.plan_attempts([plan(w.id, "k1"), plan(w.id, "k2", replica=1)])
    assert [p.created for p in first] == [True, True]
    assert [p.attempt.state for p in first] == ["planned", "planned"]
    mixed = store.plan_attempts([plan(w.id, "k3", pool="gcp/us-central1/h100/spot"),
                                 plan(w.id, "k1", pool="ignored/x")])
    assert [p.created for p in mixed] == [True, False]
    assert mixed[1].attempt == first[0].attempt  # the stored row wins
    assert [e.attempt_id for e in store.list_events()] == [first[0].attempt.id,
                                                          first[1].attempt.id,
                                                          mixed[0].attempt.id]
    with pytest.raises(ValueError, match="twice"):
        store.plan_attempts([plan(w.id, "k9"), plan(w.id, "k9")])
    assert store.plan_attempts([]) == []


def test_a_key_of_another_workload_conflicts_and_writes_nothing(store: ControlStore) -> None:
    a = store.create_workload("a", "batch", {})
    b = store.create_workload("b", "batch", {})
    store.plan_attempt(a.id, idempotency_key="k", pool="aws/r/h100/spot", provider="aws",
                       region="r", accelerator="h100", chips=1)
    with pytest.raises(IdempotencyConflict):
        store.plan_attempts([plan(b.id, "new"), plan(b.id, "k")])
    assert store.get_attempt_by_key("new") is None
    assert store.list_events(workload_id=b.id) == []


def test_advance_is_compare_and_set(store: ControlStore, clock: FakeClock) -> None:
    w = store.create_workload("t", "training", {})
    a = store.plan_attempt(w.id, idempotency_key="k", pool="aws/r/h100/spot", provider="aws",
                           region="r", accelerator="h100", chips=8).attempt
    clock.advance(1)
    assert store.advance(a.id, ["planned"], "launching")
    assert not store.advance(a.id, ["planned"], "launching")  # already moved
    wins = race(8, lambda i: store.advance(a.id, ["launching"], "running",
                                           instance_id=f"i-{i}"))
    assert wins.count(True) == 1
    running = store.get_attempt(a.id)
    assert running is not None and running.state == "running"
    assert running.instance_id is not None and running.updated_unix_s == clock.now
    failed = NewEvent("failover", "capacity gone in us-east-1", workload_id=w.id,
                      attempt_id=a.id, data={"scope": "region"})
    assert store.advance(a.id, ["running"], "failed", error_kind="CapacityUnavailable",
                         error_scope="region:aws/us-east-1", event=failed)
    assert not store.advance(a.id, ["running"], "lost", event=failed)  # no event when stale
    done = store.get_attempt(a.id)
    assert done is not None
    assert (done.state, done.instance_id, done.error_kind, done.error_scope) == (
        "failed", running.instance_id, "CapacityUnavailable", "region:aws/us-east-1")
    assert [e.kind for e in store.list_events(attempt_id=a.id)] == ["failover"]
    with pytest.raises(ValueError, match="to_state"):
        store.advance(a.id, ["failed"], "exploded")  # type: ignore[arg-type]


def test_live_attempts_are_listed_for_adoption_after_a_restart(
        url: str, store: ControlStore) -> None:
    w = store.create_workload("svc", "service", {})
    planned = [p.attempt for p in store.plan_attempts(
        [plan(w.id, f"r{i}", replica=i) for i in range(5)])]
    store.advance(planned[1].id, ["planned"], "launching")
    store.advance(planned[2].id, ["planned"], "launching")
    store.advance(planned[2].id, ["launching"], "running", instance_id="i-2")
    store.advance(planned[3].id, ["planned"], "terminated")
    store.advance(planned[4].id, ["planned"], "failed", error_kind="QuotaExceeded")
    store.close()
    reopened = ControlStore(url)
    live = reopened.list_attempts(states=LIVE_STATES)
    assert [(a.idempotency_key, a.state) for a in live] == [
        ("r0", "planned"), ("r1", "launching"), ("r2", "running")]
    assert [a.instance_id for a in reopened.list_attempts(states=["running"])] == ["i-2"]
    assert len(reopened.list_attempts(workload_id=w.id)) == 5
    assert reopened.list_attempts(workload_id=w.id + 1) == []
    reopened.close()


def test_usage_by_pool_counts_chips_of_live_attempts(store: ControlStore) -> None:
    w = store.create_workload("b", "batch", {})
    ps = store.plan_attempts([plan(w.id, "a", pool="aws/r/h100/spot", chips=8),
                              plan(w.id, "b", pool="aws/r/h100/spot", chips=16),
                              plan(w.id, "c", pool="gcp/r/tpu/spot", chips=4),
                              plan(w.id, "d", pool="oci/r/h100/spot", chips=2)])
    store.advance(ps[1].attempt.id, ["planned"], "running")
    store.advance(ps[3].attempt.id, ["planned"], "succeeded")
    assert store.usage_by_pool() == {"aws/r/h100/spot": 24, "gcp/r/tpu/spot": 4}


# -- events, blocklist, checkpoints ---------------------------------------------------------

def test_events_keep_their_append_order(store: ControlStore, clock: FakeClock) -> None:
    w = store.create_workload("t", "training", {})
    store.append_events([NewEvent("rejection", f"pool {i} full", workload_id=w.id,
                                  data={"i": i}) for i in range(5)])
    clock.advance(1)
    store.append_event("blocklist", "region aws/us-east-1", data={"until": 60})
    kinds = [(e.kind, e.reason) for e in store.list_events()]
    assert kinds == [("rejection", f"pool {i} full") for i in range(5)] + [
        ("blocklist", "region aws/us-east-1")]
    mine = store.list_events(workload_id=w.id)
    assert [e.data for e in mine] == [{"i": i} for i in range(5)]
    page = store.list_events(after_id=mine[1].id, limit=2)
    assert [e.id for e in page] == [mine[2].id, mine[3].id]
    assert store.list_events()[-1].at_unix_s == clock.now


def test_blocks_expire_by_the_injected_clock(store: ControlStore, clock: FakeClock) -> None:
    store.block("region", "aws/us-east-1", "capacity", until_unix_s=clock.now + 60)
    store.block("provider", "oci", "auth", until_unix_s=None)
    store.block("region", "aws/us-east-1", "capacity again", until_unix_s=clock.now + 30)
    active = store.active_blocks()
    assert [(b.scope_kind, b.scope_name, b.reason) for b in active] == [
        ("provider", "oci", "auth"), ("region", "aws/us-east-1", "capacity again")]
    assert active[1].until_unix_s == clock.now + 60  # the later end is kept
    clock.advance(60)
    assert [b.scope_name for b in store.active_blocks()] == ["oci"]
    store.block("region", "aws/us-east-1", "back", until_unix_s=clock.now + 10)
    assert [b.scope_name for b in store.active_blocks()] == ["oci", "aws/us-east-1"]
    assert store.unblock("provider", "oci")
    assert not store.unblock("provider", "oci")
    clock.advance(11)
    assert store.active_blocks() == []
    with pytest.raises(ValueError, match="scope_kind"):
        store.block("planet", "earth", "x", until_unix_s=None)  # type: ignore[arg-type]


def test_latest_checkpoint_is_the_highest_step(store: ControlStore, clock: FakeClock) -> None:
    w = store.create_workload("t", "training", {})
    assert store.latest_checkpoint(w.id) is None
    store.record_checkpoint(w.id, 1000, "s3://ckpt/1000")
    store.record_checkpoint(w.id, 3000, "s3://ckpt/3000")
    store.record_checkpoint(w.id, 2000, "s3://ckpt/2000")  # a late writer of an older step
    clock.advance(5)
    store.record_checkpoint(w.id, 3000, "gs://ckpt/3000")  # the same step, saved again
    latest = store.latest_checkpoint(w.id)
    assert latest is not None
    assert (latest.step, latest.location, latest.at_unix_s) == (3000, "gs://ckpt/3000",
                                                                clock.now)


# -- crash consistency ----------------------------------------------------------------------

def test_sigkill_during_a_burst_of_writes_loses_no_committed_write(url: str) -> None:
    """Kill the writer at random points, many times: all it reported is there, whole."""
    rng = random.Random(7)
    reported: set[str] = set()
    launched: set[str] = set()
    for run in range(6):
        child = subprocess.Popen([sys.executable, str(CRASH_WRITER), url, f"run{run}"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout is not None
        for _ in range(rng.randint(5, 120)):
            line = child.stdout.readline()
            assert line, child.stderr.read() if child.stderr else ""
            verb, *keys = line.split()
            (reported if verb == "planned" else launched).update(keys)
        child.send_signal(signal.SIGKILL)
        child.communicate()
        assert child.returncode == -signal.SIGKILL

    store = ControlStore(url)
    attempts = {a.idempotency_key: a for a in store.list_attempts()}
    assert reported <= attempts.keys()  # nothing committed is lost
    assert len(attempts) % 4 == 0  # batches land whole: no half batch
    placed = [e.attempt_id for e in store.list_events() if e.kind == "placement"]
    assert sorted(placed) == sorted(a.id for a in attempts.values())  # one event each
    for key in launched:
        assert attempts[key].state == "launching"
        assert attempts[key].instance_id is not None
    for a in attempts.values():
        assert a.state in ("planned", "launching")
        assert (a.state == "launching") == (a.instance_id is not None)
    if url.startswith("sqlite"):
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    store.close()
