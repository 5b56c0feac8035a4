"""The engine shared by the emulated and local adapters: pools, instances, processes.

A :class:`World` holds pools (with capacity in chips), the instances launched on them,
active outages and a queue of signals per provider. :class:`WorldProvider` is the
:class:`~cloudhedge.control.providers.base.Provider` view of one provider of a world.

State that depends on time (launch latency, outage expiry) is brought up to date
lazily, from the injected clock, at the start of every call (:meth:`World.tick`), so
virtual time needs no background task. With ``run_processes``, each instance is a
local process started after the launch latency by one asyncio task (the only place
that awaits the clock); its exit code decides ``succeeded`` or ``failed``.
Processes run in their own session and are killed (SIGKILL, whole group) on
terminate, preemption and outage; their output goes to ``<workdir>/logs/<id>.log``.

**Persistence** (with ``run_processes`` only): the world outlives its process, as a
cloud outlives its control plane. Every instance is a row of ``<workdir>/world.db``
(:mod:`~cloudhedge.control.providers._persist`), written before anything runs and on
every change. Each command runs under a shim (:mod:`~cloudhedge.control.providers._shim`)
that writes its exit code to ``<workdir>/run/<id>.exit``, and that runs the command
only once its pid and start time are recorded (a go byte on its stdin; a pipe closed
without it means the world died in between, and the command never runs). A world
opened on an existing ``world.db`` takes the records back:

- ended: stays ended (a process still alive, left by a crash between the record and
  the kill, is killed now);
- no process recorded (the world died between the launch and the spawn, or during the
  launch latency): ``failed``, the command never ran;
- its process alive (pid and start time match): ``pending``/``running`` as recorded,
  adopted; a watcher polls it every :attr:`World.poll_interval_s` on the clock and
  ends it from its exit file once gone;
- its process gone: ended from its exit file (``succeeded``/``failed``), else
  ``failed`` (lost while the cloud was down).

Idempotency keys, the id counter and the chips in use come back with the records.
Faults (outages, injected errors, capacity changes) are not persisted. Simulated
worlds keep everything in memory.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from cloudhedge.control.providers._persist import WorldDB, alive, process_start, read_exit
from cloudhedge.control.providers.base import (
    Capabilities,
    CapacityUnavailable,
    HealthSignal,
    Instance,
    InstanceState,
    InvalidRequest,
    LaunchRequest,
    NotFound,
    Offer,
    ProviderError,
    Scope,
    SignalKind,
)
from cloudhedge.control.providers.clock import Clock
from cloudhedge.core.models import Tier

log = logging.getLogger(__name__)

SHIM = Path(__file__).with_name("_shim.py")


@dataclass
class Slot:
    """One pool of a world, with its capacity now (chips)."""

    pool: str
    provider: str
    region: str
    accelerator: str
    tier: Tier
    price_usd_per_chip_hour: float
    capacity_chips: int
    zone: str | None = None


@dataclass
class _Outage:
    scope: Scope
    until: float | None  # clock time; None until restored


@dataclass
class _InjectedError:
    error: type[ProviderError]
    scope: Scope
    remaining: int


@dataclass
class _Record:
    request: LaunchRequest
    instance: Instance  # the current snapshot, replaced on every change
    process: asyncio.subprocess.Process | None = None  # a child of this process
    task: asyncio.Task[None] | None = None
    pid: int | None = None  # the shim's (the process group's leader), once spawned
    start_ticks: int | None = None  # its start time, against pid reuse
    sleeping: bool = False  # its task waits out the launch latency (safe to cancel)


@dataclass
class World:
    """Pools, instances, outages and signals; see the module docstring."""

    slots: Sequence[Slot]
    clock: Clock
    launch_latency_s: float = 0.0
    run_processes: bool = True
    workdir: Path | None = None
    _slots: dict[str, Slot] = field(init=False)
    _records: dict[str, _Record] = field(init=False, default_factory=dict)
    _by_key: dict[tuple[str, str], _Record] = field(init=False, default_factory=dict)
    _outages: list[_Outage] = field(init=False, default_factory=list)
    _injected: list[_InjectedError] = field(init=False, default_factory=list)
    _signals: dict[str, list[HealthSignal]] = field(init=False)
    _used: dict[str, int] = field(init=False)  # chips held by live instances, per pool
    _pending: dict[str, _Record] = field(init=False, default_factory=dict)  # simulated
    _next_id: int = field(init=False, default=0)
    _db: WorldDB | None = field(init=False, default=None)  # with processes only
    _watched: dict[str, _Record] = field(init=False, default_factory=dict)  # adopted, live
    _watcher: asyncio.Task[None] | None = field(init=False, default=None)
    poll_interval_s: float = field(init=False, default=0.2)  # adopted processes, on the clock

    def __post_init__(self) -> None:
        if self.launch_latency_s < 0:
            raise ValueError("launch_latency_s must be >= 0")
        self._slots = {s.pool: s for s in self.slots}
        self._signals = {s.provider: [] for s in self.slots}
        self._used = dict.fromkeys(self._slots, 0)
        if self.run_processes:
            if self.workdir is None:
                self.workdir = Path(tempfile.mkdtemp(prefix="cloudhedge-"))
            self._db = WorldDB(self.workdir / "world.db")
            self._reload()

    @property
    def provider_names(self) -> list[str]:
        return list(self._signals)

    # -- time ------------------------------------------------------------------------

    def tick(self) -> None:
        """Bring time-dependent state up to the clock: outage expiry, simulated starts."""
        now = self.clock.now()
        if self._watched and (self._watcher is None or self._watcher.done()):
            self._watch_adopted()
        for outage in list(self._outages):
            if outage.until is not None and outage.until <= now:
                self._outages.remove(outage)
                self._emit(SignalKind.RESTORED, outage.scope, "outage ended", at=outage.until)
        if self.run_processes:
            return
        for record in list(self._pending.values()):
            inst = record.instance
            due = inst.created_at + self.launch_latency_s
            if inst.state is not InstanceState.PENDING:
                del self._pending[inst.id]
            elif due <= now:
                record.instance = replace(inst, state=InstanceState.RUNNING, started_at=due)
                del self._pending[inst.id]

    # -- queries ---------------------------------------------------------------------

    def blocking_outage(self, slot: Slot) -> _Outage | None:
        return next((o for o in self._outages if o.scope.covers(slot)), None)

    def offers(self, provider: str) -> list[Offer]:
        self.tick()
        out = []
        for s in self._slots.values():
            if s.provider != provider:
                continue
            free = max(0, s.capacity_chips - self._used[s.pool])
            if self.blocking_outage(s):
                free = 0
            out.append(Offer(s.pool, s.provider, s.region, s.zone, s.accelerator, s.tier,
                             s.capacity_chips, free, s.price_usd_per_chip_hour))
        return out

    def get(self, provider: str, instance_id: str) -> Instance:
        self.tick()
        record = self._records.get(instance_id)
        if record is None or record.instance.provider != provider:
            raise NotFound(f"no instance {instance_id!r}", scope=Scope.of_provider(provider))
        return record.instance

    def logs(self, provider: str, instance_id: str, tail_lines: int) -> str:
        """The tail of an instance's output (stdout and stderr), "" when it has none."""
        self.get(provider, instance_id)  # NotFound for a stranger
        if self.workdir is None:
            return ""
        try:
            with open(self.workdir / "logs" / f"{instance_id}.log", "rb") as f:
                lines = collections.deque(f, maxlen=tail_lines)
        except FileNotFoundError:
            return ""
        return b"".join(lines).decode("utf-8", "replace")

    def list_instances(self, provider: str) -> list[Instance]:
        self.tick()
        return [r.instance for r in self._records.values() if r.instance.provider == provider]

    def take_signals(self, provider: str) -> list[HealthSignal]:
        self.tick()
        out, self._signals[provider] = self._signals[provider], []
        return out

    # -- launch ----------------------------------------------------------------------

    def launch(self, provider: str, request: LaunchRequest) -> Instance:
        self.tick()
        existing = self._by_key.get((provider, request.idempotency_key))
        if existing is not None:
            if existing.request != request:
                raise InvalidRequest(
                    f"idempotency key {request.idempotency_key!r} was used for another request",
                    scope=Scope.of_pool(existing.request.pool))
            return existing.instance
        slot = self._check(provider, request)
        seq = self._next_id
        instance_id = f"{provider}-{seq:06d}"
        instance = Instance(instance_id, request.idempotency_key, request.workload, slot.pool,
                            slot.provider, slot.region, slot.zone, slot.accelerator,
                            request.chips, InstanceState.PENDING, self.clock.now(),
                            address="127.0.0.1" if self.run_processes else None)
        if self._db is not None:
            self._db.insert(seq, request, instance)  # durable before anything runs
        self._next_id += 1
        record = _Record(request, instance)
        self._records[instance_id] = record
        self._by_key[(provider, request.idempotency_key)] = record
        self._used[slot.pool] += request.chips
        if self.run_processes:
            record.task = asyncio.get_running_loop().create_task(self._run(record))
        else:
            self._pending[instance_id] = record
            self.tick()  # with no latency, it runs at once
        log.info("launched %s: %s chips of %s for %s", instance_id, request.chips, slot.pool,
                 request.workload)
        return record.instance

    def _check(self, provider: str, request: LaunchRequest) -> Slot:
        """The slot the request fits in now, or the typed reason it does not."""
        slot = self._slots.get(request.pool)
        if slot is None or slot.provider != provider:
            raise InvalidRequest(f"no pool {request.pool!r}", scope=Scope.of_provider(provider))
        if request.chips <= 0:
            raise InvalidRequest("chips must be > 0", scope=Scope.of_pool(slot.pool))
        if self.run_processes and not request.command:
            raise InvalidRequest("empty command", scope=Scope.of_pool(slot.pool))
        injected = next((i for i in self._injected if i.scope.covers(slot)), None)
        if injected is not None:
            injected.remaining -= 1
            if injected.remaining == 0:
                self._injected.remove(injected)
            raise injected.error("injected failure", scope=injected.scope)
        outage = self.blocking_outage(slot)
        if outage is not None:
            raise CapacityUnavailable(f"outage of {outage.scope}", scope=outage.scope)
        free = slot.capacity_chips - self._used[slot.pool]
        if request.chips > free:
            raise CapacityUnavailable(f"{request.chips} chips asked, {max(free, 0)} free",
                                      scope=Scope.of_pool(slot.pool))
        return slot

    # -- processes -------------------------------------------------------------------

    def _environment(self, record: _Record) -> dict[str, str]:
        assert self.workdir is not None
        inst, req = record.instance, record.request
        checkpoints = self.workdir / "checkpoints" / req.workload
        checkpoints.mkdir(parents=True, exist_ok=True)
        # like a machine image with the toolchain: the interpreter running cloudhedge (and
        # its scripts, e.g. `cloudhedge mock-upstream`) comes first on PATH
        path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
        env = {**os.environ, "PATH": path, **req.env,
               "CLOUDHEDGE_PROVIDER": inst.provider, "CLOUDHEDGE_REGION": inst.region,
               "CLOUDHEDGE_ACCELERATOR": inst.accelerator, "CLOUDHEDGE_POOL": inst.pool,
               "CLOUDHEDGE_INSTANCE": inst.id, "CLOUDHEDGE_CHECKPOINT_DIR": str(checkpoints)}
        if req.replica_port is not None:
            env["CLOUDHEDGE_REPLICA_PORT"] = str(req.replica_port)
        return env

    def _exit_file(self, instance_id: str) -> Path:
        assert self.workdir is not None
        return self.workdir / "run" / f"{instance_id}.exit"

    async def _run(self, record: _Record) -> None:
        """Wait the launch latency, run the command under the shim, record how it ended."""
        if self.launch_latency_s > 0 and record.instance.state is InstanceState.PENDING:
            record.sleeping = True
            try:
                await self.clock.sleep(self.launch_latency_s)
            finally:
                record.sleeping = False
        if record.instance.state is not InstanceState.PENDING:
            return  # ended while pending
        assert self.workdir is not None
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        exit_file = self._exit_file(record.instance.id)
        exit_file.parent.mkdir(parents=True, exist_ok=True)
        go_read, go_write = os.pipe()  # the shim runs the command once it reads b"1"
        try:
            try:
                with open(logs / f"{record.instance.id}.log", "ab") as out:
                    record.process = await asyncio.create_subprocess_exec(
                        sys.executable, "-I", "-S", str(SHIM), str(exit_file), "--",
                        *record.request.command, env=self._environment(record),
                        stdin=go_read, stdout=out, stderr=asyncio.subprocess.STDOUT,
                        start_new_session=True)
            finally:
                os.close(go_read)
            record.pid = record.process.pid
            record.start_ticks = process_start(record.pid)
            if record.instance.state.ended:  # ended while the process was starting
                self._kill(record)
            else:
                record.instance = replace(record.instance, state=InstanceState.RUNNING,
                                          started_at=self.clock.now())
                self._save(record)  # the pid is durable: only now may the command run
                os.write(go_write, b"1")
        except (OSError, sqlite3.Error) as exc:
            self._kill(record)
            self.end(record, InstanceState.FAILED, f"cannot start: {exc}")
            return
        finally:
            os.close(go_write)
        code = await record.process.wait()
        if not record.instance.state.ended:
            self._finished(record, code)

    def _finished(self, record: _Record, code: int | None) -> None:
        """End a live record whose process is gone: by its exit file, else by ``code``."""
        written = read_exit(self._exit_file(record.instance.id))
        if written is not None:
            code, detail = written
            detail = detail or f"exit code {code}"
        elif code is None:
            self.end(record, InstanceState.FAILED,
                     "lost: its process ended leaving no exit code (killed?)")
            return
        else:
            detail = f"exit code {code}"
        state = InstanceState.SUCCEEDED if code == 0 else InstanceState.FAILED
        self.end(record, state, detail, exit_code=code)

    @staticmethod
    def _kill(record: _Record) -> None:
        """SIGKILL the instance's process group, if it is still the recorded process."""
        proc = record.process
        if proc is not None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        elif record.pid is not None and alive(record.pid, record.start_ticks):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(record.pid, signal.SIGKILL)

    def _save(self, record: _Record) -> None:
        if self._db is not None:
            self._db.update(record.instance, record.pid, record.start_ticks)

    # -- persistence -----------------------------------------------------------------

    def _reload(self) -> None:
        """Take back the records of ``world.db``; see the module docstring."""
        assert self._db is not None
        for row in self._db.rows():
            record = _Record(row.request, row.instance, pid=row.pid,
                             start_ticks=row.start_ticks)
            inst = row.instance
            self._records[inst.id] = record
            self._by_key[(inst.provider, inst.idempotency_key)] = record
            self._next_id = max(self._next_id, row.seq + 1)
            if inst.state.ended:
                self._kill(record)  # a crash between the record and the kill
            elif record.pid is None:
                self._close_record(record, InstanceState.FAILED,
                                   "lost: the cloud went down before its process started "
                                   "(the command never ran)")
            elif (written := read_exit(self._exit_file(inst.id))) is not None:
                # the command ended (its shim may still be exiting): its exit code decides
                code, detail = written
                self._close_record(
                    record, InstanceState.SUCCEEDED if code == 0 else InstanceState.FAILED,
                    detail or f"exit code {code}", exit_code=code)
            elif alive(record.pid, record.start_ticks):
                self._watched[inst.id] = record
                if inst.pool in self._used:
                    self._used[inst.pool] += inst.chips
            else:
                self._close_record(record, InstanceState.FAILED,
                                   "lost while the cloud was down (no exit code)")
        if self._watched:
            log.info("adopted %d live instances from %s", len(self._watched), self._db.path)

    def _close_record(self, record: _Record, state: InstanceState, detail: str, *,
                      exit_code: int | None = None) -> None:
        """End a record found not running on reload (it held no chips)."""
        record.instance = replace(record.instance, state=state, ended_at=self.clock.now(),
                                  exit_code=exit_code, detail=detail)
        self._save(record)
        log.info("%s %s: %s", record.instance.id, state, detail)

    def _watch_adopted(self) -> None:
        """Start the watcher of adopted processes, if an event loop runs."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._watcher = loop.create_task(self._watch())

    async def _watch(self) -> None:
        """Poll the adopted processes on the clock; end each from its exit file once gone."""
        while self._watched:
            await self.clock.sleep(self.poll_interval_s)
            for record in list(self._watched.values()):
                if record.instance.state.ended:
                    del self._watched[record.instance.id]
                elif (not alive(record.pid, record.start_ticks)
                      or self._exit_file(record.instance.id).exists()):
                    del self._watched[record.instance.id]
                    self._finished(record, None)

    # -- endings ---------------------------------------------------------------------

    def record(self, instance_id: str) -> _Record | None:
        return self._records.get(instance_id)

    def live(self, scope: Scope) -> list[_Record]:
        """Records of instances not ended, inside ``scope``."""
        return [r for r in self._records.values()
                if not r.instance.state.ended and scope.covers(r.instance)]

    def end(self, record: _Record, state: InstanceState, detail: str, *,
            exit_code: int | None = None) -> None:
        """End an instance (no-op if already ended): free its chips, kill its process."""
        if record.instance.state.ended:
            return
        record.instance = replace(record.instance, state=state, ended_at=self.clock.now(),
                                  exit_code=exit_code, detail=detail)
        if record.instance.pool in self._used:
            self._used[record.instance.pool] -= record.instance.chips
        self._save(record)  # first the record, then the kill: a crash between the two
        self._kill(record)  # leaves a process that the next world kills on reload
        self._watched.pop(record.instance.id, None)
        log.info("%s %s: %s", record.instance.id, state, detail)

    def terminate(self, provider: str, instance_id: str) -> None:
        self.tick()
        record = self._records.get(instance_id)
        if record is not None and record.instance.provider == provider:
            self.end(record, InstanceState.TERMINATED, "terminated")

    # -- faults ----------------------------------------------------------------------

    def slots_in(self, scope: Scope) -> list[Slot]:
        return [s for s in self._slots.values() if scope.covers(s)]

    def inject(self, error: type[ProviderError], scope: Scope, times: int) -> None:
        self._injected.append(_InjectedError(error, scope, times))

    def add_outage(self, scope: Scope, until: float | None) -> None:
        self._outages.append(_Outage(scope, until))
        self._emit(SignalKind.OUTAGE, scope, "outage", at=self.clock.now())

    def remove_outages(self, scope: Scope) -> bool:
        before = len(self._outages)
        self._outages = [o for o in self._outages if o.scope != scope]
        removed = len(self._outages) < before
        if removed:
            self._emit(SignalKind.RESTORED, scope, "restored", at=self.clock.now())
        return removed

    def _emit(self, kind: SignalKind, scope: Scope, reason: str, *, at: float,
              instance_id: str | None = None) -> None:
        """Queue a signal for every provider with a pool in ``scope``."""
        healthy = kind is SignalKind.RESTORED
        for provider in {s.provider for s in self.slots_in(scope)}:
            self._signals[provider].append(
                HealthSignal(kind, scope, healthy, reason, at, instance_id))

    def preempt(self, record: _Record) -> None:
        if record.instance.state.ended:
            return
        self.end(record, InstanceState.PREEMPTED, "preempted")
        self._emit(SignalKind.PREEMPTED, Scope.of_pool(record.instance.pool), "preempted",
                   at=self.clock.now(), instance_id=record.instance.id)

    # -- shutdown --------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Terminate every live instance and reap its process (adopted ones included)."""
        for record in self._records.values():
            self.end(record, InstanceState.TERMINATED, "cloud shut down")
        tasks = [r.task for r in self._records.values() if r.task is not None]
        for record in self._records.values():
            if record.task is not None and record.sleeping:
                record.task.cancel()  # still waiting out the launch latency
        # (a task past it spawns, sees its instance ended, kills and reaps the process:
        # cancelling asyncio's subprocess creation midway can wait forever)
        if self._watcher is not None:
            self._watcher.cancel()
            tasks.append(self._watcher)
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._db is not None:
            self._db.close()
            self._db = None


class WorldProvider:
    """The :class:`~cloudhedge.control.providers.base.Provider` view of one provider."""

    def __init__(self, world: World, name: str, capabilities: Capabilities) -> None:
        self._world = world
        self._name = name
        self._capabilities = capabilities

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    async def offers(self) -> list[Offer]:
        return self._world.offers(self._name)

    async def launch(self, request: LaunchRequest) -> Instance:
        return self._world.launch(self._name, request)

    async def get(self, instance_id: str) -> Instance:
        return self._world.get(self._name, instance_id)

    async def list_instances(self) -> list[Instance]:
        return self._world.list_instances(self._name)

    async def terminate(self, instance_id: str) -> None:
        self._world.terminate(self._name, instance_id)

    async def signals(self) -> list[HealthSignal]:
        return self._world.take_signals(self._name)

    async def logs(self, instance_id: str, *, tail_lines: int = 200) -> str:
        return self._world.logs(self._name, instance_id, tail_lines)

    async def close(self) -> None:
        """Nothing to release: the world owns the instances, which keep running."""
