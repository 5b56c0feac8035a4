"""Control-plane API benchmark: placements per second through HTTP, and failover time.

    python bench/control_api.py                     # 2,000 jobs, 5 failovers (~1 min)
    python bench/control_api.py --jobs 500 --repeats 2
    python bench/control_api.py --profile           # + cProfile of both placement paths
    python bench/control_api.py --skip-failover     # placements only

The two performance goals of ``cloudhedge up``:

1. **1,000 placements/s with SQLite through the API** (this 2-core machine). A server
   process runs :class:`~cloudhedge.control.server.ControlPlane` over
   ``examples/frontier-lab.yaml`` with simulated instances (``run_processes=False``),
   served by :meth:`ControlPlane.serve` (uvicorn, as ``cloudhedge up``) on loopback, with
   ``cloudhedge up``'s default reconciler interval. This process submits ``--jobs`` small
   batch jobs with aiohttp (``--concurrency`` requests in flight) and reads the store
   (SQLite in WAL: a reader does not block the server) every 20 ms until every job has a
   ``running`` attempt. Figures: submissions/s (HTTP 201s / submission time) and
   placements/s (jobs / time from the first submission until all run). The reconciler
   alone is measured too, in-process: the same jobs stored first, then the time of the
   step(s) that place and launch them all, so the slower side shows.

2. **From an injected outage to the replacement running in at most 5 s** (default
   timeouts). ControlPlane with real processes (``run_processes=True``) and its default
   interval, in-process (its lifespan: reconciler and replica router); the example service
   (3 replicas of ``cloudhedge mock-upstream`` spread across providers) and the example
   training job (made long). Once all run, ``cloud.outage(Scope.of_provider(P))`` for the
   provider P of the job (and of a replica when one shares it); the store is polled every
   20 ms until each lost attempt has a ``running`` replacement on another provider, and
   until the replacement's process has started. The outage lands at evenly spread
   offsets into the reconciler's interval (an outage waits for the next step). Fresh
   state directory per repeat; median and max against the goal.

The machine is shared and noisy: compare the figures of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import inspect
import io
import json
import multiprocessing
import os
import platform
import pstats
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from rich.console import Console
from rich.table import Table

from cloudhedge.control.client import read_state
from cloudhedge.control.placement import Placer
from cloudhedge.control.providers import EmulatedCloud, InstanceState, Scope, SystemClock
from cloudhedge.control.reconciler import Reconciler
from cloudhedge.control.server import ControlPlane
from cloudhedge.control.specs import load_job_text, load_service_text
from cloudhedge.control.store import LIVE_STATES, ControlStore
from cloudhedge.spec import load_fleet

ROOT = Path(__file__).resolve().parents[1]
FLEET = ROOT / "examples" / "frontier-lab.yaml"
GOAL_PLACEMENTS_PER_S = 1_000
GOAL_FAILOVER_S = 5.0
TOKEN = "bench-token"
POLL_S = 0.02
DEFAULT_INTERVAL_S: float = inspect.signature(ControlPlane).parameters["interval_s"].default

JOB = """\
name: {name}
kind: batch
command: [sleep, "3600"]
accelerators:
  - {{accelerator: h100, chips: 8}}
  - {{accelerator: h200, chips: 8}}
  - {{accelerator: mi300x, chips: 8}}
  - {{accelerator: tpu-v6e, chips: 8}}
  - {{accelerator: trn2, chips: 8}}
"""


def job_text(i: int) -> str:
    return JOB.format(name=f"bench-{i:05d}")


# --- 1. placements through the API --------------------------------------------------------


def _serve(state_dir: str, interval_s: float, profile_to: str | None) -> None:
    """The server process: ControlPlane.serve (as `cloudhedge up`), simulated instances."""
    # a reconciler that never steps (the API alone) is one with a long interval that
    # submissions do not wake
    control = ControlPlane(load_fleet(FLEET), state_dir=Path(state_dir), token=TOKEN,
                           run_processes=False, interval_s=interval_s,
                           wake_gap_s=None if interval_s >= 3_600 else 0.2)
    profiler = cProfile.Profile() if profile_to else None
    if profiler is not None:
        profiler.enable()
    try:
        control.serve(port=0, gateway_port=0, token=TOKEN)
    finally:
        if profiler is not None and profile_to:
            profiler.disable()
            profiler.dump_stats(profile_to)


@dataclass
class ApiRun:
    jobs: int
    submit_s: float
    all_running_s: float  # from the first submission
    created: int
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)


def job_json(i: int) -> str:
    """The same job as :func:`job_text`, as JSON (what a program sends)."""
    return json.dumps({"name": f"bench-{i:05d}", "kind": "batch", "command": ["sleep", "3600"],
                       "accelerators": [{"accelerator": a, "chips": 8} for a in (
                           "h100", "h200", "mi300x", "tpu-v6e", "trn2")]})


async def _submit(url: str, n: int, concurrency: int, batch: int = 1
                  ) -> tuple[float, dict[int, int], list[float]]:
    """POST ``n`` jobs: one YAML file per request, or ``batch`` JSON files per request to
    ``/v1/jobs/batch`` (a status is counted once per job)."""
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    if batch > 1:
        return await _submit_batches(url, n, concurrency, batch)
    todo = iter(range(n))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector) as session:

        async def worker() -> None:
            for i in todo:
                start = time.perf_counter()
                async with session.post("/v1/jobs", json={
                        "yaml": job_text(i), "filename": f"bench-{i}.yaml"}) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, statuses, latencies


async def _submit_batches(url: str, n: int, concurrency: int, batch: int
                          ) -> tuple[float, dict[int, int], list[float]]:
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    todo = iter(range(0, n, batch))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector) as session:

        async def worker() -> None:
            for first in todo:
                items = [{"yaml": job_json(i), "filename": f"bench-{i}.json"}
                         for i in range(first, min(first + batch, n))]
                start = time.perf_counter()
                async with session.post("/v1/jobs/batch", json={"jobs": items}) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + len(items)
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, statuses, latencies


def _running_jobs(db: Path) -> int:
    """Workloads with a running attempt, read straight from the server's SQLite file."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute("SELECT COUNT(DISTINCT workload_id) FROM attempts "
                           "WHERE state = 'running'").fetchone()
    return int(row[0])


async def _wait_running(db: Path, n: int, timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while _running_jobs(db) < n:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"only {_running_jobs(db)} of {n} jobs running after "
                               f"{timeout_s:.0f} s")
        await asyncio.sleep(POLL_S)


def run_api(n: int, concurrency: int, interval_s: float, profile_to: str | None, *,
            wait: bool = True, batch: int = 1) -> ApiRun:
    """Submit ``n`` jobs to a fresh server; ``wait``: until all run (else until stored)."""
    with tempfile.TemporaryDirectory(prefix="bench-api-") as d:
        state = Path(d)
        server = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(d, interval_s, profile_to), daemon=True)
        server.start()
        try:
            deadline = time.monotonic() + 60
            while not (state / "server.json").exists():
                if not server.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the control plane did not start")
                time.sleep(0.05)
            url = read_state(state).url

            async def measure() -> ApiRun:
                first = time.perf_counter()
                submit_s, statuses, latencies = await _submit(url, n, concurrency, batch)
                if wait:
                    await _wait_running(state / "control.db", n, timeout_s=180)
                return ApiRun(n, submit_s, time.perf_counter() - first,
                              statuses.get(201, 0), statuses, latencies)

            return asyncio.run(measure())
        finally:
            assert server.pid is not None
            os.kill(server.pid, signal.SIGTERM)
            server.join(30)
            if server.is_alive():
                server.kill()


# --- 1b. the reconciler alone ---------------------------------------------------------------


@dataclass
class ReconcilerRun:
    jobs: int
    store_submit_s: float
    steps_s: list[float]
    placed: int
    launched: int
    idle_step_s: float  # a step once all run: nothing to do but look


async def _reconcile(n: int, profiler: cProfile.Profile | None) -> ReconcilerRun:
    fleet = load_fleet(FLEET)
    clock = SystemClock()
    with tempfile.TemporaryDirectory(prefix="bench-reconciler-") as d:
        store = ControlStore(f"sqlite:///{Path(d) / 'control.db'}", clock=clock.now)
        cloud = EmulatedCloud(fleet, clock=clock, run_processes=False)
        reconciler = Reconciler(store, cloud.providers(), Placer(fleet), fleet, clock=clock)
        specs = [load_job_text(job_text(i), f"bench-{i}.yaml", fleet) for i in range(n)]
        start = time.perf_counter()
        for spec in specs:
            reconciler.submit_job(spec)
        store_submit_s = time.perf_counter() - start
        steps: list[float] = []
        placed = launched = 0
        while len({a.workload_id for a in store.list_attempts(states=["running"])}) < n:
            if len(steps) >= 20:
                raise RuntimeError(f"not all {n} jobs run after 20 steps")
            start = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            report = await reconciler.step()
            if profiler is not None:
                profiler.disable()
            steps.append(time.perf_counter() - start)
            placed += len(report.placed)
            launched += len(report.launched)
        start = time.perf_counter()
        await reconciler.step()
        idle_step_s = time.perf_counter() - start
        await cloud.close()
        store.close()
    return ReconcilerRun(n, store_submit_s, steps, placed, launched, idle_step_s)


# --- 2. failover --------------------------------------------------------------------------


@dataclass
class Failover:
    provider: str
    hit: list[str]  # workloads that lost an attempt
    detected_s: float  # outage -> every lost attempt marked ended in the store
    replaced_s: dict[str, float]  # workload -> outage -> replacement `running` elsewhere
    started_s: dict[str, float]  # workload -> outage -> its replacement's process started

    @property
    def worst_s(self) -> float:
        return max(self.replaced_s.values())

    @property
    def worst_started_s(self) -> float:
        return max(self.started_s.values())


def _service_text() -> str:
    return (ROOT / "examples" / "control" / "service.yaml").read_text(encoding="utf-8")


def _job_text() -> str:
    text = (ROOT / "examples" / "control" / "job.yaml").read_text(encoding="utf-8")
    train = ROOT / "examples" / "control" / "train.py"
    return text.replace("python examples/control/train.py --steps 200",
                        f"{sys.executable} {train} --steps 1000000")


async def _failover_once(state_dir: Path, offset_s: float) -> Failover:
    fleet = load_fleet(FLEET)
    control = ControlPlane(fleet, state_dir=state_dir, token=TOKEN, run_processes=True)
    store = control.store
    service = load_service_text(_service_text(), "service.yaml", fleet)
    job = load_job_text(_job_text().replace("/tmp/cloudhedge/checkpoints/pretrain-small",
                                            str(state_dir / "checkpoints")), "job.yaml", fleet)
    async with control.app.router.lifespan_context(control.app):
        control.reconciler.submit_service(service)
        control.reconciler.submit_job(job)
        wanted = {service.name: service.replicas, job.name: 1}
        names = {w.id: w.name for w in store.list_workloads()}

        def running() -> dict[str, list[tuple[int, str]]]:
            out: dict[str, list[tuple[int, str]]] = {n: [] for n in wanted}
            for a in store.list_attempts(states=["running"]):
                out[names[a.workload_id]].append((a.id, a.provider))
            return out

        async def started(attempt_ids: list[int]) -> bool:
            """Whether the instances of these attempts run their process (not pending)."""
            for attempt_id in attempt_ids:
                a = store.get_attempt(attempt_id)
                if a is None or a.instance_id is None:
                    return False
                inst = await control.cloud.provider(a.provider).get(a.instance_id)
                if inst.state is not InstanceState.RUNNING:
                    return False
            return True

        deadline = time.monotonic() + 60
        while any(len(v) < wanted[k] for k, v in running().items()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"not running after 60 s: {running()}")
            await asyncio.sleep(0.1)
        # let the processes start; then an offset into the reconciler's interval (the
        # time to the next step is what an outage waits for, so it is sampled)
        await asyncio.sleep(0.5 + offset_s)
        before = running()
        by_provider: dict[str, set[str]] = {}
        for name, live in before.items():
            for _, provider in live:
                by_provider.setdefault(provider, set()).add(name)
        job_provider = before[job.name][0][1]
        # the job's provider; one that also holds a replica when there is one
        provider = max(by_provider, key=lambda p: (job.name in by_provider[p],
                                                   len(by_provider[p])))
        lost = {a for live in before.values() for a, p in live if p == provider}
        hit = sorted(by_provider[provider])
        assert job_provider == provider or job.name not in hit
        start = time.perf_counter()
        control.cloud.outage(Scope.of_provider(provider))
        detected_s: float | None = None
        replaced: dict[str, float] = {}
        up: dict[str, float] = {}
        while len(up) < len(hit):
            now = time.perf_counter() - start
            if now > 60:
                raise RuntimeError(f"no replacement after 60 s: {running()}")
            if detected_s is None and not any(
                    a.id in lost for a in store.list_attempts(states=LIVE_STATES)):
                detected_s = now
            for name, live in running().items():
                elsewhere = [a for a, p in live if p != provider]
                if name not in hit or len(elsewhere) < wanted[name]:
                    continue
                replaced.setdefault(name, now)
                if name not in up and await started(elsewhere):
                    up[name] = now
            await asyncio.sleep(POLL_S)
    return Failover(provider, hit, detected_s or 0.0, replaced, up)


def run_failover(offset_s: float) -> Failover:
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as d:
        return asyncio.run(_failover_once(Path(d), offset_s))


# --- report -------------------------------------------------------------------------------


def _top(profile: pstats.Stats, n: int = 18) -> str:
    """The project's functions by cumulative time (where a request or a step goes)."""
    out = io.StringIO()
    profile.stream = out  # type: ignore[attr-defined]
    profile.sort_stats("cumulative").print_stats(r"cloudhedge/(control|spec)/", n)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return "\n".join(line.replace(str(ROOT) + "/", "").replace(sys.prefix + "/", "")
                     for line in lines[start:start + n + 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2_000, help="jobs submitted (goal 1)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--batch", type=int, default=100,
                        help="jobs per POST /v1/jobs/batch in the batched run")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S,
                        help="reconciler interval of the API server (goal 1)")
    parser.add_argument("--repeats", type=int, default=5, help="failovers measured (goal 2)")
    parser.add_argument("--profile", action="store_true",
                        help="then cProfile the API server alone and the reconciler steps")
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--skip-placements", action="store_true")
    args = parser.parse_args()
    console = Console(width=150)
    console.print(f"control plane API: {FLEET.name}; python {platform.python_version()}, "
                  f"{os.cpu_count()} cores; ControlPlane interval_s default "
                  f"{DEFAULT_INTERVAL_S:g} s")

    if not args.skip_placements:
        # the API alone: a reconciler that never steps while the jobs are submitted
        api_alone = run_api(args.jobs, args.concurrency, 3_600.0, None, wait=False)
        api = run_api(args.jobs, args.concurrency, args.interval, None)
        batched = run_api(args.jobs, min(args.concurrency, 4), args.interval, None,
                          batch=args.batch)
        alone = asyncio.run(_reconcile(args.jobs, None))
        table = Table(title=f"Placements per second, SQLite (goal: "
                            f"{GOAL_PLACEMENTS_PER_S:,}/s through the API)")
        for header in ("path", "jobs", "time s", "per s", "goal", "note"):
            table.add_column(header, justify="left" if header in ("path", "note") else "right")
        for label, run in (("API alone: POST /v1/jobs (201s)", api_alone),
                           ("API + reconciler: POST /v1/jobs", api)):
            ordered = sorted(run.latencies_s)
            table.add_row(label, f"{run.created:,}", f"{run.submit_s:.2f}",
                          f"{run.created / run.submit_s:,.0f}", "",
                          f"concurrency {args.concurrency}; latency p50 "
                          f"{1e3 * ordered[len(ordered) // 2]:.0f} ms, p99 "
                          f"{1e3 * ordered[int(len(ordered) * 0.99)]:.0f} ms; "
                          f"statuses {run.statuses}")
        rate = api.jobs / api.all_running_s
        table.add_row("API + reconciler: first POST -> all running", f"{api.jobs:,}",
                      f"{api.all_running_s:.2f}", f"{rate:,.0f}",
                      "met" if rate >= GOAL_PLACEMENTS_PER_S else "MISSED",
                      f"reconciler interval {args.interval:g} s")
        rate = batched.jobs / batched.all_running_s
        table.add_row(f"API + reconciler, {args.batch} JSON jobs per POST /v1/jobs/batch: "
                      "first POST -> all running", f"{batched.jobs:,}",
                      f"{batched.all_running_s:.2f}", f"{rate:,.0f}",
                      "met" if rate >= GOAL_PLACEMENTS_PER_S else "MISSED",
                      f"{len(batched.latencies_s)} requests, concurrency "
                      f"{min(args.concurrency, 4)}; statuses {batched.statuses}")
        table.add_row("store only: submit_job", f"{alone.jobs:,}", f"{alone.store_submit_s:.2f}",
                      f"{alone.jobs / alone.store_submit_s:,.0f}", "", "in-process, no HTTP")
        steps = sum(alone.steps_s)
        table.add_row("reconciler only: step(s)", f"{alone.jobs:,}", f"{steps:.2f}",
                      f"{alone.jobs / steps:,.0f}",
                      "met" if alone.jobs / steps >= GOAL_PLACEMENTS_PER_S else "MISSED",
                      f"{len(alone.steps_s)} step(s): " + ", ".join(
                          f"{s:.2f}" for s in alone.steps_s) + f" s; placed {alone.placed}, "
                      f"launched {alone.launched}")
        table.add_row("reconciler only: idle step", f"{alone.jobs:,}",
                      f"{alone.idle_step_s:.2f}", "", "", "all running, nothing to do: the "
                      "least a failover waits beyond the interval at this size")
        console.print(table)
        if args.profile:  # again, under cProfile (which slows them down about twice)
            profile_to = Path(tempfile.gettempdir()) / f"bench-api-{os.getpid()}.prof"
            run_api(args.jobs, args.concurrency, 3_600.0, str(profile_to), wait=False)
            console.print("\n[bold]server process, API alone (reconciler paused), top by "
                          "cumulative time[/]")
            if profile_to.exists():
                console.print(_top(pstats.Stats(str(profile_to))), highlight=False,
                              markup=False)
                profile_to.unlink()
            else:
                console.print("missing: the server ended before writing its profile")
            profiler = cProfile.Profile()
            asyncio.run(_reconcile(args.jobs, profiler))
            console.print("\n[bold]reconciler steps alone, top by cumulative time[/]")
            console.print(_top(pstats.Stats(profiler)), highlight=False, markup=False)

    if not args.skip_failover:
        # outages injected at evenly spread offsets into the reconciler's interval
        offsets = [DEFAULT_INTERVAL_S * (i + 0.5) / args.repeats for i in range(args.repeats)]
        runs = [run_failover(offset) for offset in offsets]
        table = Table(title=f"Outage -> replacement running (goal: <= {GOAL_FAILOVER_S:g} s; "
                            f"interval {DEFAULT_INTERVAL_S:g} s, real processes)")
        for header in ("run", "provider down", "workloads hit", "lost in store s",
                       "running elsewhere s", "process started s", "worst s"):
            table.add_column(header, justify="left" if header in (
                "provider down", "workloads hit") else "right")

        def per(d: dict[str, float]) -> str:
            return ", ".join(f"{v:.2f}" for _, v in sorted(d.items()))

        for i, r in enumerate(runs, 1):
            table.add_row(str(i), r.provider, ", ".join(r.hit), f"{r.detected_s:.2f}",
                          per(r.replaced_s), per(r.started_s), f"{r.worst_started_s:.2f}")
        worst = [r.worst_started_s for r in runs]
        median, top = statistics.median(worst), max(worst)
        table.add_row("median", "", "", f"{statistics.median(r.detected_s for r in runs):.2f}",
                      f"{statistics.median(r.worst_s for r in runs):.2f}", "", f"{median:.2f}")
        table.add_row("max", "", "", f"{max(r.detected_s for r in runs):.2f}",
                      f"{max(r.worst_s for r in runs):.2f}", "",
                      f"{top:.2f} ({'met' if top <= GOAL_FAILOVER_S else 'MISSED'})")
        console.print(table)
        share = statistics.median(r.detected_s for r in runs) / median if median else 0.0
        verdict = ("dominated by the reconciler interval: an outage waits for the next step, "
                   "which places and launches the replacement at once" if share >= 0.8 else
                   "not dominated by the interval")
        console.print(f"waiting for the step that sees the outage is {share:.0%} of the "
                      f"median ({verdict}); worst case = interval ({DEFAULT_INTERVAL_S:g} s) "
                      "+ one step, and a step grows with the workloads stored (see the idle "
                      "step above)")


if __name__ == "__main__":
    main()
