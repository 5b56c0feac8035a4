"""The reliability proof: no work runs twice and nothing is left behind, whatever dies.

1. ``cloudhedge up`` is SIGKILLed again and again during a burst of submissions and
   restarted on the same state directory: the emulated cloud outlives it (world.db and
   the shim), the restarted reconciler adopts what runs, and in the end every job runs
   exactly once, every process is accounted for, and ``cloudhedge down`` leaves none.
2. A provider outage in the middle of a burst (in-process, virtual time): every job
   ends with exactly one live attempt, none on the failed provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "planning"))

from fleets import fleet, pool

from cloudhedge.control.client import ApiError, ControlClient, ServerState, read_state
from cloudhedge.control.placement import Placer
from cloudhedge.control.providers import EmulatedCloud, ManualClock, Scope
from cloudhedge.control.reconciler import Reconciler
from cloudhedge.control.specs import AcceleratorOption, JobSpec, RetryPolicy
from cloudhedge.control.store import LIVE_STATES, ControlStore

CLI = Path(sys.executable).parent / "cloudhedge"
JOBS = 36  # one chip each; the fleet has 2 x 64
ROUNDS = 6  # SIGKILLs during the burst

FLEET_YAML = """\
name: reliability
horizon: {start: 2026-01, periods: 36}
pools:
  - {name: aws-h100, provider: aws, region: us-east-1, accelerator: h100, tier: on_demand,
     capacity_chips: 64}
  - {name: gcp-h100, provider: gcp, region: us-central1, accelerator: h100,
     tier: on_demand, capacity_chips: 64}
workloads:
  - {kind: batch, name: nightly, chip_hours: 100, accelerators: [h100],
     window: {start: 2026-01, end: 2028-12}}
"""

# appends "<workload> <attempt key> <pid>" to the ledger (one write, O_APPEND), then
# becomes `sleep 60` (same pid): a long job that cost one python start-up
JOB_CODE = """\
import os
e = os.environ
line = f"{{e['CLOUDHEDGE_WORKLOAD']}} {{e['CLOUDHEDGE_ATTEMPT']}} {{os.getpid()}}\\n"
fd = os.open({ledger!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, line.encode())
os.close(fd)
os.execvp("sleep", ["sleep", "60"])
"""


def job_yaml(name: str, ledger: Path) -> str:
    """A batch job (JSON is YAML) that fits anywhere and retries at once."""
    return json.dumps({
        "name": name, "kind": "batch",
        "command": [sys.executable, "-c", JOB_CODE.format(ledger=str(ledger))],
        "accelerators": [{"accelerator": "h100", "chips": 1}],
        "retry": {"max_attempts": 50, "backoff_s": 0}})


# --- processes -----------------------------------------------------------------------------


def world_processes(instances_dir: Path) -> dict[int, str]:
    """pid -> instance id of every live (non-zombie) process the emulated cloud under
    ``instances_dir`` started (shims and commands: their environment names the dir)."""
    marker = f"CLOUDHEDGE_CHECKPOINT_DIR={instances_dir}/".encode()
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as f:
                zombie = f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
        except OSError:
            continue
        if zombie or not any(v.startswith(marker) for v in env):
            continue
        instance = next(v for v in env if v.startswith(b"CLOUDHEDGE_INSTANCE="))
        found[int(entry)] = instance.split(b"=", 1)[1].decode()
    return found


def kill_all(pids: Iterator[int] | list[int]) -> None:
    """SIGKILL processes this test caused (cleanup after a failure)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Burst:
    """Jobs submitted from a thread; which were acknowledged (201) and which were cut."""

    ledger: Path
    acked: set[str] = field(default_factory=set)
    cut: set[str] = field(default_factory=set)
    next_job: int = 0
    errors: list[BaseException] = field(default_factory=list)  # raised in the thread

    def submit_until_cut(self, client: ControlClient, rng: random.Random,
                         stop: threading.Event) -> None:
        try:
            self._submit(client, rng, stop)
        except BaseException as e:  # reported in the test's thread
            self.errors.append(e)

    def _submit(self, client: ControlClient, rng: random.Random,
                stop: threading.Event) -> None:
        while self.next_job < JOBS and not stop.is_set():
            name = f"job-{self.next_job:02d}"
            self.next_job += 1
            try:
                client.request("POST", "/v1/jobs", {"yaml": job_yaml(name, self.ledger),
                                                    "filename": f"{name}.yaml"})
            except ApiError as e:
                assert e.status == 0, e  # only the kill may cut a submission
                self.cut.add(name)
                return
            except (OSError, http.client.HTTPException):  # reset or cut short by the kill
                self.cut.add(name)
                return
            self.acked.add(name)
            time.sleep(rng.uniform(0.01, 0.08))


class Server:
    """``cloudhedge up`` in a subprocess on ``state``; ``start`` waits for its state file."""

    def __init__(self, fleet_file: Path, state: Path) -> None:
        self.fleet_file, self.state = fleet_file, state
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerState:
        with open(self.state.parent / "up.log", "ab") as log:
            self.proc = subprocess.Popen(
                [str(CLI), "up", str(self.fleet_file), "--port", "0", "--gateway-port", "0",
                 "--host", "127.0.0.1", "--state-dir", str(self.state), "--interval", "0.2"],
                stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, (self.state.parent / "up.log").read_text()
            assert time.monotonic() < deadline, "cloudhedge up did not start"
            try:
                found = read_state(self.state)
                if found.pid == self.proc.pid:
                    return found
            except (FileNotFoundError, ValueError, KeyError):
                pass
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=10) == -signal.SIGKILL

    def down(self) -> None:
        done = subprocess.run([str(CLI), "down", "--state-dir", str(self.state)],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert self.proc is not None
        self.proc.wait(timeout=30)


def settle(client: ControlClient, names: set[str], timeout_s: float = 40.0) -> list[Any]:
    """The workloads, once every one has exactly one running attempt (and none planned)."""
    deadline = time.monotonic() + timeout_s
    while True:
        listed = client.workloads()
        found = {w["name"] for w in listed}
        if names <= found and all(w["attempts"].get("running") == 1 and
                                  sum(w["attempts"].get(s, 0) for s in LIVE_STATES) == 1
                                  for w in listed):
            return list(listed)
        assert time.monotonic() < deadline, [
            (w["name"], w["attempts"]) for w in listed if w["attempts"].get("running") != 1]
        time.sleep(0.2)


def test_sigkill_during_a_burst_runs_every_job_once_and_leaves_nothing(
        tmp_path: Path) -> None:
    rng = random.Random(20261129)
    fleet_file, state, ledger = tmp_path / "fleet.yaml", tmp_path / "state", tmp_path / "ledger"
    fleet_file.write_text(FLEET_YAML, encoding="utf-8")
    instances = (state / "instances").resolve()
    server = Server(fleet_file, state)
    burst = Burst(ledger)
    started = time.monotonic()
    try:
        for _ in range(ROUNDS):
            found = server.start()
            client = ControlClient(found.url, found.token, timeout_s=5)
            stop = threading.Event()
            thread = threading.Thread(target=burst.submit_until_cut, args=(client, rng, stop))
            thread.start()
            time.sleep(rng.uniform(0.2, 1.2))  # a random point in the burst
            server.kill()
            stop.set()
            thread.join(timeout=10)
            assert not thread.is_alive() and not burst.errors, burst.errors
        # the instances outlived every kill (none was a child of the server)
        assert world_processes(instances)
        found = server.start()
        client = ControlClient(found.url, found.token, timeout_s=10)
        burst.submit_until_cut(client, rng, threading.Event())  # the rest of the burst
        assert not burst.errors, burst.errors
        assert burst.next_job == JOBS and len(burst.acked) + len(burst.cut) == JOBS
        listed = settle(client, burst.acked)
        names = {w["name"] for w in listed}
        assert burst.acked <= names <= burst.acked | burst.cut

        # exactly one running attempt per job, and each job started exactly once
        running: dict[str, dict[str, Any]] = {}
        for name in names:
            attempts = client.workload(name)["attempt_list"]
            [live] = [a for a in attempts if a["state"] in LIVE_STATES]
            assert live["state"] == "running" and live["instance_id"]
            running[name] = live
        lines = [line.split() for line in ledger.read_text().splitlines()]
        starts = Counter(workload for workload, _, _ in lines)
        assert starts == Counter(names), "a job started twice, or never"
        # every instance accounted for: live processes <-> running attempts
        procs = world_processes(instances)
        assert set(procs.values()) == {a["instance_id"] for a in running.values()}
        for workload, key, pid in lines:
            assert key == running[workload]["key"]
            assert procs.get(int(pid)) == running[workload]["instance_id"]
        assert time.monotonic() - started < 90

        server.down()
        deadline = time.monotonic() + 10
        while world_processes(instances):
            assert time.monotonic() < deadline, world_processes(instances)
            time.sleep(0.05)
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        kill_all(list(world_processes(instances)))


# --- an outage in the middle of a burst (in-process, virtual time) --------------------------


def test_an_outage_during_a_burst_leaves_one_live_attempt_per_job_elsewhere(
        tmp_path: Path) -> None:
    clock = ManualClock(1_780_000_000.0)
    f = fleet([pool(f"{p}-h100", p, "h100", 80, price, region="r1")
               for p, price in (("aws", 2.0), ("gcp", 2.5), ("azure", 3.0), ("lambda", 3.5))])
    cloud = EmulatedCloud(f, clock=clock, run_processes=False)
    store = ControlStore(f"sqlite:///{tmp_path / 'control.db'}", clock=clock.now)
    providers = cloud.providers()
    rec = Reconciler(store, providers, Placer(f), f, clock=clock)

    def job(i: int) -> JobSpec:
        return JobSpec(name=f"job-{i:03d}", kind="batch", command=("run",),
                       accelerators=(AcceleratorOption("h100", 1),), gang_size=1,
                       checkpoint=None, retry=RetryPolicy(), priority=1, tenant_class=None,
                       jurisdiction=None, spot_allowed=False, source="job.yaml")

    async def body() -> None:
        failed: list[str] = []
        for i in range(200):
            rec.submit_job(job(i))
            if i % 40 == 39:
                clock.advance(1)
                await rec.step()
            if i == 99:  # mid-burst: aws (cheapest, so full of jobs) goes down
                failed = cloud.outage(Scope.of_provider("aws"))
        for _ in range(4):
            clock.advance(1)
            await rec.step()
        assert len(failed) == 80  # the outage hit live work

        workloads = {w.id: w.name for w in store.list_workloads()}
        assert len(workloads) == 200
        live = store.list_attempts(states=LIVE_STATES)
        assert sorted(workloads[a.workload_id] for a in live) == sorted(workloads.values())
        assert all(a.state == "running" and a.provider != "aws" for a in live)
        lost = [a for a in store.list_attempts() if a.state not in LIVE_STATES]
        assert len(lost) == 80 and {a.provider for a in lost} == {"aws"}
        assert all(a.error_scope == "provider:aws" for a in lost)
        owners = {(a.provider, a.idempotency_key): a for a in live}
        for name, provider in providers.items():
            instances = await provider.list_instances()
            keys = Counter(i.idempotency_key for i in instances)
            assert max(keys.values(), default=1) == 1  # no key launched twice
            for inst in instances:
                owner = owners.get((name, inst.idempotency_key))
                assert inst.state.ended or (owner is not None and owner.instance_id == inst.id)
            if name == "aws":
                assert instances and all(i.state.ended for i in instances)

    async def main() -> None:
        try:
            await body()
        finally:
            await cloud.close()
            store.close()

    asyncio.run(main())

