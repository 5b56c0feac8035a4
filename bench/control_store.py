"""Control-store benchmark: placements per second on SQLite and PostgreSQL.

    python bench/control_store.py            # 3,000 single + 30,000 batched per run
    python bench/control_store.py --quick    # a tenth of that (smoke)
    python bench/control_store.py --pg-url postgresql://user@host/db

A placement is what the reconciler writes before it calls a provider: one attempt
(``plan_attempt``, state ``planned``, with its idempotency key) and its ``placement``
event, in one transaction. Two ways of writing them:

- ``single``: one ``plan_attempt`` call per placement (one transaction each);
- ``batched``: ``plan_attempts`` with 100 placements per call (one transaction each).

Each figure is the median of three runs, each on a fresh database (SQLite: a new file
in a temporary directory; PostgreSQL: a new schema, dropped afterwards). Goal:
1,000 placements/s with SQLite on this 2-core machine. PostgreSQL is skipped, saying
why, when it is unreachable. The machine is noisy: compare figures of one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cloudhedge.control.store import AttemptPlan, ControlStore

GOAL_PER_S = 1_000
BATCH = 100
RUNS = 3
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def sqlite_url() -> Iterator[str]:
    """A SQLite file in a fresh temporary directory."""
    with tempfile.TemporaryDirectory() as d:
        yield f"sqlite:///{Path(d) / 'control.db'}"


@contextmanager
def pg_url(base: str) -> Iterator[str]:
    """A fresh schema on the PostgreSQL at ``base``, dropped at the end."""
    import psycopg

    schema = f"cloudhedge_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield f"{base}?options=-csearch_path%3D{schema}"
        finally:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def placements(workload_id: int, n: int, prefix: str) -> list[AttemptPlan]:
    """n distinct placements over a few pools, each with its reason."""
    pools = ["aws/us-east-1/h100/spot", "gcp/us-central1/tpu-v5p/on_demand",
             "azure/eastus/h100/committed", "oci/us-ashburn-1/mi300x/spot"]
    out = []
    for i in range(n):
        pool = pools[i % len(pools)]
        provider, region, accelerator, _ = pool.split("/")
        out.append(AttemptPlan(
            workload_id=workload_id, idempotency_key=f"{prefix}/{i}", pool=pool,
            provider=provider, region=region, accelerator=accelerator, chips=8, replica=i,
            reason=f"cheapest feasible pool: {pool}",
            data={"score": 0.5 + i % 7, "rejected": 3}))
    return out


def run_once(url_cm: Callable[[], AbstractContextManager[str]], mode: str, n: int) -> float:
    """Placements per second of one run on a fresh database."""
    with url_cm() as url:
        store = ControlStore(url)
        w = store.create_workload("bench", "batch", {"chips": 8})
        todo = placements(w.id, n, mode)
        start = time.perf_counter()
        if mode == "single":
            for p in todo:
                store.plan_attempt(p.workload_id, idempotency_key=p.idempotency_key,
                                   pool=p.pool, provider=p.provider, region=p.region,
                                   accelerator=p.accelerator, chips=p.chips,
                                   replica=p.replica, reason=p.reason, data=p.data)
        else:
            for i in range(0, n, BATCH):
                store.plan_attempts(todo[i:i + BATCH])
        elapsed = time.perf_counter() - start
        assert len(store.list_attempts()) == n
        store.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the placements")
    parser.add_argument("--pg-url", default=PG_URL, help="PostgreSQL to use (a new schema)")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    sizes = {"single": 3_000 // scale, "batched": 30_000 // scale}
    console = Console()
    console.print(f"control store: placements/s (attempt + event), median of {RUNS} runs; "
                  f"{platform.python_version()}, {os.cpu_count()} cores")

    backends: list[tuple[str, Callable[[], AbstractContextManager[str]]]] = [("sqlite", sqlite_url)]
    try:
        with pg_url(args.pg_url):
            backends.append(("postgresql", lambda: pg_url(args.pg_url)))
    except Exception as e:  # any failure to connect: report it and go on with SQLite
        console.print(f"postgresql skipped: {args.pg_url} is unreachable ({e})")

    table = Table(title=f"Placements per second (goal: {GOAL_PER_S:,}/s with SQLite)")
    for header in ("backend", "mode", "placements", "runs /s", "median /s", "goal"):
        table.add_column(header, justify="right" if header != "backend" else "left")
    for name, url_cm in backends:
        for mode, n in sizes.items():
            rates = [run_once(url_cm, mode, n) for _ in range(RUNS)]
            median = statistics.median(rates)
            verdict = ("-" if name != "sqlite" else
                       "met" if median >= GOAL_PER_S else "MISSED")
            table.add_row(name, f"{mode}" + (f" x{BATCH}" if mode == "batched" else ""),
                          f"{n:,}", " / ".join(f"{r:,.0f}" for r in rates), f"{median:,.0f}",
                          verdict)
    console.print(table)


if __name__ == "__main__":
    main()
