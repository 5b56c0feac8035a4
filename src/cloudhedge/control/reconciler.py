"""The reconciler behind ``cloudhedge up``: level-triggered, idempotent, on an injected clock.

Each :meth:`Reconciler.step` reads the whole desired state and every attempt from the
:class:`~cloudhedge.control.store.ControlStore`, looks at what the providers run, and
closes the gap. Nothing is remembered between steps that the store does not hold (the
in-memory notes only keep the event log quiet), so a restarted process simply carries on.

One step, in order:

1. **Poll** every provider: its signals and its instances. An outage signal blocks its
   scope; ``restored`` lifts the block. A provider that keeps failing to answer for
   ``heartbeat_timeout_s`` is declared lost: its live attempts are marked ``lost`` and the
   error's scope is blocked.
2. **Adopt and sweep.** An instance whose idempotency key names no live attempt of its
   provider is terminated; an attempt still ``planned``/``launching`` whose instance
   exists (the previous process died between the launch and its record) is adopted.
3. **Check** each live attempt against its instance: succeeded, failed (the failed
   scope, from the provider's signals or the blocklist, is blocked), preempted or
   vanished (``lost``), or stuck pending beyond ``launch_timeout_s``.
4. **Cancel** the attempts of cancelled workloads and of service replicas scaled away.
5. **Place** what is missing: a job without a live or succeeded attempt (application
   failures count against its retry policy, with backoff; infrastructure failures do
   not), each service replica without a live attempt (spread beside its live siblings).
   Training resumes from the latest checkpoint recorded before the attempt was planned.
6. **Launch** the planned attempts: the attempt (with key
   ``{workload}/{generation}/{replica}``) is stored before the provider is called,
   ``planned -> launching`` then ``launching -> running`` by compare-and-set. A launch
   refused for capacity, quota or permission fails the attempt and blocks the error's
   scope; the work is placed again on the next step. ``Transient`` errors are retried
   with the same key on the next steps (providers launch once per key), at most
   ``max_transient_retries`` times in a row; then the attempt fails and the error's
   scope is blocked like a capacity error.

Every decision is an event (``placement``, ``rejection``, ``launch``, ``failover``,
``blocklist``, ``adoption``, ``termination``, ``desired``), so ``cloudhedge explain``
can tell why a workload runs where it does.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from cloudhedge.control.checkpoints import CheckpointError, open_checkpoints
from cloudhedge.control.placement import (
    Outcome,
    Placement,
    Placer,
    explain,
    headline,
    period_at,
    request_for_job,
    request_for_service,
)
from cloudhedge.control.providers import (
    CapacityUnavailable,
    Clock,
    HealthSignal,
    Instance,
    InstanceState,
    InvalidRequest,
    LaunchRequest,
    PermissionDenied,
    Provider,
    ProviderError,
    QuotaExceeded,
    Scope,
    ScopeKind,
    SignalKind,
    Transient,
)
from cloudhedge.control.providers.clock import every
from cloudhedge.control.specs import (
    AcceleratorOption,
    JobSpec,
    Readiness,
    RetryPolicy,
    ServiceSpec,
)
from cloudhedge.control.store import (
    LIVE_STATES,
    Attempt,
    AttemptPlan,
    AttemptState,
    ControlStore,
    EventKind,
    JsonDict,
    Move,
    NewEvent,
    NewWorkload,
    Workload,
    WorkloadKind,
)
from cloudhedge.core.models import Criticality, DomainKind, Fleet

__all__ = ["Reconciler", "StepReport", "free_loopback_port", "job_from_json",
           "service_from_json", "spec_to_json"]

log = logging.getLogger(__name__)

_UNSTARTED: tuple[AttemptState, ...] = ("planned", "launching")
_BATCH = 256  # attempts per store transaction when placing and launching
_BLOCKING_LAUNCH_ERRORS = (CapacityUnavailable, QuotaExceeded, PermissionDenied)


@dataclass
class StepReport:
    """What one step did (attempt keys, instance ids, scopes, workload names)."""

    placed: list[str] = field(default_factory=list)  # attempt keys planned
    launched: list[str] = field(default_factory=list)  # attempt keys now running
    adopted: list[str] = field(default_factory=list)  # attempt keys found running
    failed: list[str] = field(default_factory=list)  # attempt keys failed or lost
    terminated: list[str] = field(default_factory=list)  # instance ids terminated
    blocked: list[str] = field(default_factory=list)  # scopes newly blocked
    unplaced: list[str] = field(default_factory=list)  # workloads (replicas) not placed
    completed: list[str] = field(default_factory=list)  # attempt keys succeeded


# --- specs as stored JSON ------------------------------------------------------------------


def spec_to_json(spec: JobSpec | ServiceSpec) -> JsonDict:
    """The spec as JSON data (the workload's stored desired state)."""
    data: JsonDict = json.loads(json.dumps(asdict(spec)))
    return data


def job_from_json(d: Mapping[str, Any]) -> JobSpec:
    """The :class:`JobSpec` stored by :func:`spec_to_json`."""
    return JobSpec(
        name=d["name"], kind=d["kind"], command=tuple(d["command"]),
        accelerators=tuple(AcceleratorOption(**a) for a in d["accelerators"]),
        gang_size=d["gang_size"], checkpoint=d["checkpoint"], retry=RetryPolicy(**d["retry"]),
        priority=d["priority"], tenant_class=d["tenant_class"], jurisdiction=d["jurisdiction"],
        spot_allowed=d["spot_allowed"], source=d["source"],
        heartbeat_timeout_s=d.get("heartbeat_timeout_s"))


def service_from_json(d: Mapping[str, Any]) -> ServiceSpec:
    """The :class:`ServiceSpec` stored by :func:`spec_to_json`."""
    return ServiceSpec(
        name=d["name"], model=d["model"], command=tuple(d["command"]), replicas=d["replicas"],
        accelerators=tuple(AcceleratorOption(**a) for a in d["accelerators"]),
        spread=DomainKind(d["spread"]), readiness=Readiness(**d["readiness"]),
        tenant_class=d["tenant_class"], jurisdiction=d["jurisdiction"],
        criticality=Criticality(d["criticality"]), spot_allowed=d["spot_allowed"],
        source=d["source"])


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a replica of an emulated or local cloud)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _spec(w: Workload) -> JobSpec | ServiceSpec:
    return service_from_json(w.spec) if w.kind == "service" else job_from_json(w.spec)


# --- the reconciler ------------------------------------------------------------------------


class Reconciler:
    """Drives the providers toward the store's desired state; see the module docstring."""

    def __init__(self, store: ControlStore, providers: Mapping[str, Provider], placer: Placer,
                 fleet: Fleet, *, clock: Clock, block_for_s: float = 600.0,
                 heartbeat_timeout_s: float = 60.0, launch_timeout_s: float = 900.0,
                 interval_s: float = 5.0, replica_port: Callable[[], int] = free_loopback_port,
                 attempt_secret: bytes | None = None, api_url: str | None = None,
                 max_transient_retries: int = 5, wake_gap_s: float | None = 0.0) -> None:
        self._store = store
        self._providers = dict(providers)
        self._placer = placer
        self._fleet = fleet
        self._clock = clock
        self.block_for_s = block_for_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.launch_timeout_s = launch_timeout_s
        self.interval_s = interval_s
        self._replica_port = replica_port
        self._secret = attempt_secret
        self.api_url = api_url  # where workloads send heartbeats (set once the API is bound)
        self._pools = {p.name: p for p in fleet.pools}
        start = clock.now()
        self._last_heard = dict.fromkeys(self._providers, start)
        self._known: set[int] = set()  # attempts this process has seen running
        self._transient: dict[int, int] = {}  # transient launch errors in a row, by attempt
        self._resume: dict[int, JsonDict] = {}  # checkpoint to resume from, by attempt planned
        self._wake = asyncio.Event()
        # a woken step waits this long after the last one; None: submissions wait for the
        # interval (no wake-ups)
        self.wake_gap_s = wake_gap_s
        self.max_transient_retries = max_transient_retries
        self._notes: dict[tuple[int, int], str] = {}  # last rejection per (workload, replica)

    @property
    def providers(self) -> Mapping[str, Provider]:
        """The adapters, by provider name."""
        return self._providers

    # -- desired state ----------------------------------------------------------------

    def submit_job(self, spec: JobSpec) -> int:
        """Store (or update) a job's desired state; returns its workload id."""
        return self._submit(spec.name, spec.kind, spec, spec.priority)

    def submit_jobs(self, specs: Sequence[JobSpec]) -> list[int]:
        """:meth:`submit_job` for many jobs; the new ones are stored in one transaction."""
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError("a job name is given twice")
        stored = {w.name: w for w in self._store.get_workloads_by_name(names)}
        clash = [f"{s.name!r} is a {stored[s.name].kind}" for s in specs
                 if s.name in stored and stored[s.name].kind != s.kind]
        if clash:  # refused before anything is written: all or none
            raise ValueError(f"{', '.join(clash)}, not a job: nothing was submitted")
        fresh = [s for s in specs if s.name not in stored]
        self.wake()
        created = {w.name: w.id for w in self._store.create_workloads([
            NewWorkload(s.name, s.kind, spec_to_json(s), s.priority) for s in fresh])}
        return [created[s.name] if s.name in created else self.submit_job(s) for s in specs]

    def submit_service(self, spec: ServiceSpec) -> int:
        """Store (or update) a service's desired state; returns its workload id."""
        return self._submit(spec.name, "service", spec, 0)

    def _submit(self, name: str, kind: WorkloadKind, spec: JobSpec | ServiceSpec,
                priority: int) -> int:
        data = spec_to_json(spec)
        found = self._store.get_workload_by_name(name)
        self.wake()
        if found is None:
            w = self._store.create_workload(name, kind, data, priority=priority)
            self._event("desired", f"{kind} {name} submitted", w.id)
            return w.id
        if found.kind != kind:
            raise ValueError(f"workload {name!r} is a {found.kind}, not a {kind}")
        if found.spec != data or found.desired != "running":
            self._store.update_workload(found.id, spec=data, desired="running",
                                        priority=priority)
            self._event("desired", f"{kind} {name} updated", found.id)
        return found.id

    def cancel(self, name: str) -> bool:
        """Ask for a workload to stop; its instances end on the next step."""
        found = self._store.get_workload_by_name(name)
        if found is None or found.desired == "cancelled":
            return False
        self._store.set_desired(found.id, "cancelled")
        self.wake()
        self._event("desired", f"{name} cancelled", found.id)
        return True

    # -- what workloads report -------------------------------------------------------

    def attempt_token(self, a: Attempt) -> str | None:
        """The bearer token attempt ``a`` reports with (HMAC of its key; None: no secret)."""
        if self._secret is None:
            return None
        return hmac.new(self._secret, a.idempotency_key.encode(), hashlib.sha256).hexdigest()

    def heartbeat(self, a: Attempt, *, step: int | None = None,
                  checkpoint: str | None = None) -> bool:
        """Record a heartbeat of attempt ``a`` (and its checkpoint); False if not running.

        A checkpoint is stored (with a ``checkpoint`` event) only when its step is past
        the latest one stored, so a repeated report is harmless.
        """
        beat = self._store.heartbeat(a.id, step=step)
        if beat is None:
            return False
        if checkpoint is not None and step is not None:
            latest = self._store.latest_checkpoint(a.workload_id)
            if latest is None or step > latest.step:
                self._store.record_checkpoint(a.workload_id, step, checkpoint)
                self._event("checkpoint", f"{a.idempotency_key} checkpointed step {step} at "
                            f"{checkpoint}", a.workload_id, a.id,
                            {"step": step, "location": checkpoint})
        return True

    # -- the loop ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Step every ``interval_s`` (on the injected clock) until ``stop`` is set."""
        await every(self._clock, self.interval_s, stop, self.step, "reconciler step",
                    wake=None if self.wake_gap_s is None else self._wake,
                    wake_gap_s=self.wake_gap_s or 0.0)

    def wake(self) -> None:
        """Step now rather than at the next interval (the desired state changed).

        Level-triggered all the same: the periodic step still notices everything a
        wake-up would have (a provider's outage is noticed when it is polled).
        """
        self._wake.set()

    async def step(self) -> StepReport:
        """One level-triggered pass; safe to repeat and to run after a crash."""
        report = StepReport()
        seen = await self._poll(report)
        attempts = self._store.list_attempts()
        await self._sweep(seen, attempts, report)
        workloads = {w.id: w for w in self._store.list_workloads()}
        for a in attempts:
            if a.state in LIVE_STATES:
                await self._check(a, workloads.get(a.workload_id), seen, report)
        await self._cancel(workloads, report)
        self._place(workloads, report)
        await self._launch(workloads, report)
        return report

    # -- 1. poll ----------------------------------------------------------------------

    async def _poll(self, report: StepReport) -> dict[str, dict[str, Instance]]:
        """Instances by key, for each provider that answered."""
        now = self._clock.now()
        seen: dict[str, dict[str, Instance]] = {}
        for name, provider in self._providers.items():
            try:
                signals = await provider.signals()
                instances = await provider.list_instances()
            except ProviderError as e:
                silent_s = now - self._last_heard[name]
                log.warning("provider %s did not answer (%s s): %s", name, silent_s, e)
                if silent_s >= self.heartbeat_timeout_s:
                    self._provider_lost(name, e, silent_s, report)
                continue
            self._last_heard[name] = now
            for signal in signals:
                self._on_signal(signal, report)
            seen[name] = {i.idempotency_key: i for i in instances}
        return seen

    def _on_signal(self, signal: HealthSignal, report: StepReport) -> None:
        if signal.kind is SignalKind.OUTAGE:
            self._block(signal.scope, f"outage signal: {signal.reason}", report)
        elif signal.kind is SignalKind.RESTORED:
            if self._store.unblock(signal.scope.kind.value,
                                   signal.scope.name):
                self._event("blocklist", f"unblocked {signal.scope}: {signal.reason}",
                            data={"scope": str(signal.scope)})
        elif signal.kind is SignalKind.PREEMPTED:
            self._block(signal.scope, f"preemption of {signal.instance_id}", report)

    def _provider_lost(self, name: str, error: ProviderError, silent_s: float,
                       report: StepReport) -> None:
        reason = f"no answer from {name} for {silent_s:.0f} s: {error}"
        self._block(error.scope, reason, report)
        for a in self._store.list_attempts(states=LIVE_STATES):
            if a.provider == name:
                self._fail(a, "lost", "heartbeat", error.scope, reason, report)

    # -- 2. adopt and sweep -----------------------------------------------------------

    async def _sweep(self, seen: Mapping[str, Mapping[str, Instance]],
                     attempts: Sequence[Attempt], report: StepReport) -> None:
        """Terminate live instances that no live attempt of their provider owns."""
        owners = {(a.provider, a.idempotency_key): a for a in attempts if a.state in LIVE_STATES}
        for name, instances in seen.items():
            for key, inst in instances.items():
                if inst.state.ended or (name, key) in owners:
                    continue
                await self._providers[name].terminate(inst.id)
                known = self._store.get_attempt_by_key(key)
                why = (f"attempt {key} is {known.state}" if known is not None
                       else f"no attempt has key {key!r}")
                self._event("termination", f"terminated {inst.id} on {inst.pool}: {why}",
                            None if known is None else known.workload_id,
                            None if known is None else known.id)
                report.terminated.append(inst.id)

    # -- 3. check ---------------------------------------------------------------------

    async def _check(self, a: Attempt, w: Workload | None,
                     seen: Mapping[str, Mapping[str, Instance]], report: StepReport) -> None:
        listing = seen.get(a.provider)
        if listing is None:
            return  # not heard from this step: judged by the heartbeat timeout
        inst = listing.get(a.idempotency_key)
        if inst is None:
            if a.state == "running":
                self._fail(a, "lost", "vanished", None,
                           f"instance {a.instance_id} is unknown to {a.provider}", report)
            return  # planned or launching without an instance: _launch calls the provider
        if a.state in _UNSTARTED or a.id not in self._known:
            self._adopt(a, inst, report)
        now = self._clock.now()
        match inst.state:
            case InstanceState.PENDING if now - inst.created_at > self.launch_timeout_s:
                await self._providers[a.provider].terminate(inst.id)
                pool = Scope.of_pool(a.pool)
                reason = f"{inst.id} still pending after {now - inst.created_at:.0f} s"
                self._block(pool, reason, report, a)
                self._fail(a, "failed", "launch_timeout", pool, reason, report)
            case InstanceState.SUCCEEDED:
                if self._store.advance(a.id, LIVE_STATES, "succeeded", event=NewEvent(
                        "termination", f"{a.idempotency_key} succeeded on {a.pool} ({inst.id})",
                        a.workload_id, a.id)):
                    report.completed.append(a.idempotency_key)
            case InstanceState.FAILED | InstanceState.PREEMPTED | InstanceState.TERMINATED:
                scope = self._failed_scope(inst)
                # failed by its own exit code, or with a failed scope: "failed"; failed with
                # neither (the cloud lost it: it never ran, or died unseen) is no fault of
                # the workload's: "lost", not counted against its retry policy
                state: AttemptState = "failed" if inst.state is InstanceState.FAILED and (
                    inst.exit_code is not None or scope is not None) else "lost"
                reason = f"instance {inst.id} {inst.state}" + (
                    f" ({inst.detail})" if inst.detail else "")
                self._fail(a, state, str(inst.state), scope, reason, report)
            case InstanceState.RUNNING if w is not None and (
                    silent := self._silent_for(a, w, inst, now)) is not None:
                await self._providers[a.provider].terminate(inst.id)
                self._fail(a, "failed", "heartbeat", None, f"no heartbeat for {silent:.0f} s "
                           "(past the job's heartbeat_timeout_s)", report)
            case _:
                pass

    @staticmethod
    def _silent_for(a: Attempt, w: Workload, inst: Instance, now: float) -> float | None:
        """Seconds a job with a heartbeat timeout has been silent past it, else None."""
        if w.kind == "service":
            return None
        timeout = job_from_json(w.spec).heartbeat_timeout_s
        if timeout is None:
            return None
        last = a.heartbeat_unix_s or inst.started_at or a.updated_unix_s
        return now - last if now - last > timeout else None

    def _adopt(self, a: Attempt, inst: Instance, report: StepReport) -> None:
        self._known.add(a.id)
        if a.state == "running" and a.instance_id == inst.id:
            reason = f"adopted {inst.id} ({inst.state}) on {inst.pool} for {a.idempotency_key}"
            self._event("adoption", reason, a.workload_id, a.id)
        elif not self._store.advance(a.id, (*_UNSTARTED, "running"), "running",
                                     instance_id=inst.id, address=inst.address, event=NewEvent(
                                         "adoption", f"adopted {inst.id} on {inst.pool}: "
                                         f"launched for {a.idempotency_key} before a restart",
                                         a.workload_id, a.id)):
            return
        report.adopted.append(a.idempotency_key)

    def _failed_scope(self, inst: Instance) -> Scope | None:
        """The blocked scope a failed instance lies in (outage, preemption), if any."""
        if inst.state is InstanceState.PREEMPTED:
            return Scope.of_pool(inst.pool)
        covering = [s for s in self._blocks() if s.covers(inst)]
        return max(covering, key=lambda s: list(ScopeKind).index(s.kind), default=None)

    def _fail(self, a: Attempt, state: AttemptState, kind: str, scope: Scope | None,
              reason: str, report: StepReport) -> None:
        """Mark a live attempt ended; its work is placed again (a failover event says so)."""
        then = (f"{scope} is blocked; placing again" if scope is not None
                else "placing again (counts against the retry policy)" if state == "failed"
                else "placing again")
        event = NewEvent("failover", f"{a.idempotency_key} on {a.pool}: {reason}; {then}",
                         a.workload_id, a.id, {"scope": None if scope is None else str(scope),
                                               "error": kind})
        if self._store.advance(a.id, LIVE_STATES, state, error_kind=kind,
                               error_scope=None if scope is None else str(scope), event=event):
            report.failed.append(a.idempotency_key)

    # -- 4. cancel --------------------------------------------------------------------

    async def _cancel(self, workloads: Mapping[int, Workload], report: StepReport) -> None:
        """End the attempts of cancelled workloads and of replicas scaled away."""
        for a in self._store.list_attempts(states=LIVE_STATES):
            w = workloads.get(a.workload_id)
            if w is None:
                continue
            if w.desired == "cancelled":
                why = f"{w.name} is cancelled"
            elif w.kind == "service" and a.replica >= service_from_json(w.spec).replicas:
                why = f"{w.name} was scaled below replica {a.replica}"
            else:
                continue
            if a.instance_id is not None:
                await self._providers[a.provider].terminate(a.instance_id)
                report.terminated.append(a.instance_id)
            self._store.advance(a.id, LIVE_STATES, "terminated", event=NewEvent(
                "termination", f"{a.idempotency_key} terminated: {why}", w.id, a.id))

    # -- 5. place ---------------------------------------------------------------------

    def _place(self, workloads: Mapping[int, Workload], report: StepReport) -> None:
        now = self._clock.now()
        period = period_at(self._fleet.horizon, datetime.fromtimestamp(now, tz=UTC))
        blocks = frozenset(self._blocks())
        usage = self._placer.usage(self._store.usage_by_pool())
        by_workload: dict[int, list[Attempt]] = {}
        for a in self._store.list_attempts():
            by_workload.setdefault(a.workload_id, []).append(a)
        order = sorted(workloads.values(), key=lambda w: (-w.priority, w.id))
        plans: list[AttemptPlan] = []
        for w in order:
            if w.desired != "running":
                continue
            spec = _spec(w)
            attempts = by_workload.get(w.id, [])
            wanted = self._wanted(w, spec, attempts, now)
            beside = [a.pool for a in attempts if a.state in LIVE_STATES]
            for replica in wanted:
                request = (request_for_service(spec) if isinstance(spec, ServiceSpec)
                           else request_for_job(spec))
                decision = self._placer.place(request, usage, period, blocklist=blocks,
                                              beside=beside)
                if decision.pool is None:
                    self._reject(w, replica, decision, report)
                    break  # later replicas would not fit either
                generation = sum(1 for a in attempts if a.replica == replica)
                inputs: JsonDict = {
                    "version": w.version, "period": period,
                    "usage": {self._placer.pools[i].name: float(usage.chips[i])
                              for i in np.flatnonzero(usage.chips)},
                    "blocklist": sorted(str(b) for b in blocks), "beside": list(beside)}
                plans.append(self._plan(w, spec, replica, generation, decision, inputs))
                usage = usage.with_added(self._placer.index[decision.pool], decision.chips)
                beside.append(decision.pool)
        for start in range(0, len(plans), _BATCH):
            chunk = plans[start:start + _BATCH]
            for plan, planned in zip(chunk, self._store.plan_attempts(chunk), strict=True):
                if planned.created:
                    report.placed.append(plan.idempotency_key)
                    if plan.data and "resume_from" in plan.data:
                        self._resume[planned.attempt.id] = plan.data

    def _wanted(self, w: Workload, spec: JobSpec | ServiceSpec, attempts: Sequence[Attempt],
                now: float) -> list[int]:
        """The replicas of ``w`` that need an attempt now."""
        if isinstance(spec, ServiceSpec):
            live = {a.replica for a in attempts if a.state in LIVE_STATES}
            return [r for r in range(spec.replicas) if r not in live]
        if any(a.state in (*LIVE_STATES, "succeeded") for a in attempts):
            return []
        app_failures = [a for a in attempts if a.state == "failed" and a.error_scope is None]
        if len(app_failures) >= spec.retry.max_attempts:
            self._note(w, 0, "rejection", f"{w.name} gave up after {len(app_failures)} "
                       "failed attempts (retry.max_attempts)")
            return []
        if app_failures:
            ready_at = app_failures[-1].updated_unix_s + spec.retry.delay_s(len(app_failures))
            if now < ready_at:
                return []
        return [0]

    def _plan(self, w: Workload, spec: JobSpec | ServiceSpec, replica: int, generation: int,
              decision: Placement, inputs: JsonDict) -> AttemptPlan:
        """The attempt for a decision. Its event keeps the headline and the decision's
        inputs; :meth:`explain_placement` renders the per-pool reasons from them on
        demand (placing is cheap, describing 50 pools is not)."""
        assert decision.pool is not None
        pool = self._pools[decision.pool]
        data: JsonDict = {"inputs": inputs}
        reason = headline(decision)
        if isinstance(spec, JobSpec) and spec.kind == "training":
            resume = self._latest_checkpoint(w, spec)
            if resume is not None:
                step, location = resume
                data["resume_from"] = location
                data["resume_step"] = step
                reason += f"; resuming from step {step} ({location})"
        self._notes.pop((w.id, replica), None)
        return AttemptPlan(
            workload_id=w.id, idempotency_key=f"{w.name}/{generation}/{replica}",
            pool=pool.name, provider=pool.provider, region=pool.region,
            accelerator=pool.accelerator, chips=round(decision.chips), replica=replica,
            reason=reason, data=data,
            port=self._replica_port() if isinstance(spec, ServiceSpec) else None)

    def explain_placement(self, w: Workload, data: Mapping[str, Any]) -> list[str]:
        """The per-pool reasons of a stored placement or rejection event's decision.

        A placement is decided again from the inputs it stored (usage, blocklist,
        spread, period), so the reasons are those of that decision; the workload's spec
        is today's (``version`` in the inputs says which one the decision saw).
        """
        lines = data.get("explain")
        if isinstance(lines, list):
            return [str(line) for line in lines]
        inputs = data.get("inputs")
        if not isinstance(inputs, Mapping):
            return []
        spec = _spec(w)
        request = (request_for_service(spec) if isinstance(spec, ServiceSpec)
                   else request_for_job(spec))
        blocks = frozenset(Scope(ScopeKind(kind), name) for kind, _, name in (
            str(b).partition(":") for b in inputs.get("blocklist", [])))
        decision = self._placer.place(request, self._placer.usage(inputs.get("usage", {})),
                                      int(inputs.get("period", 0)), blocklist=blocks,
                                      beside=[str(p) for p in inputs.get("beside", [])])
        out = explain(decision)
        if inputs.get("version") != w.version:
            out.append(f"  (decided on version {inputs.get('version')} of {w.name}; "
                       f"the reasons above use version {w.version})")
        return out

    def _latest_checkpoint(self, w: Workload, spec: JobSpec) -> tuple[int, str] | None:
        """The newest checkpoint: reported in heartbeats, or found at the job's location.

        A job that saved a checkpoint but died before reporting it still resumes from
        it; an unreadable location is logged and the reported checkpoint used.
        """
        reported = self._store.latest_checkpoint(w.id)
        best = None if reported is None else (reported.step, reported.location)
        if spec.checkpoint is not None:
            try:
                found = open_checkpoints(spec.checkpoint).latest()
            except CheckpointError as e:
                log.warning("checkpoints of %s: %s", w.name, e)
                found = None
            if found is not None and (best is None or found.step > best[0]):
                best = (found.step, found.location)
        return best

    def _reject(self, w: Workload, replica: int, decision: Placement,
                report: StepReport) -> None:
        lines = explain(decision)
        report.unplaced.append(f"{w.name}/{replica}")
        self._note(w, replica, "rejection", "\n".join(lines),
                   {"outcome": str(decision.outcome), "explain": lines})
        if decision.outcome is Outcome.UNRESOLVABLE:
            log.error("%s can never be placed as specified", w.name)

    def _note(self, w: Workload, replica: int, kind: EventKind, reason: str,
              data: JsonDict | None = None) -> None:
        """An event only when it differs from the last one noted for this replica."""
        if self._notes.get((w.id, replica)) != reason:
            self._notes[(w.id, replica)] = reason
            self._event(kind, reason, w.id, data=data)

    # -- 6. launch --------------------------------------------------------------------

    async def _launch(self, workloads: Mapping[int, Workload], report: StepReport) -> None:
        ready: list[tuple[Attempt, Workload, Provider]] = []
        for a in self._store.list_attempts(states=_UNSTARTED):
            w = workloads.get(a.workload_id) or self._store.get_workload(a.workload_id)
            provider = self._providers.get(a.provider)
            if w is not None and w.desired == "running" and provider is not None:
                ready.append((a, w, provider))
        for start in range(0, len(ready), _BATCH):
            await self._launch_batch(ready[start:start + _BATCH], report)

    async def _launch_batch(self, batch: Sequence[tuple[Attempt, Workload, Provider]],
                            report: StepReport) -> None:
        """``planned -> launching`` for the batch in one transaction, the provider calls,
        then ``launching -> running`` in one transaction."""
        claims = [Move(a.id, ("planned",), "launching") for a, _, _ in batch
                  if a.state == "planned"]
        claimed = {m.attempt_id for m, ok in zip(claims, self._store.advance_many(claims),
                                                  strict=True) if ok}
        started: list[Move] = []
        keys: list[str] = []
        for a, w, provider in batch:
            if a.state == "planned" and a.id not in claimed:
                continue  # another process moved it
            try:
                inst = await provider.launch(self._request(a, w))
            except Transient as e:
                tries = self._transient[a.id] = self._transient.get(a.id, 0) + 1
                if tries < self.max_transient_retries:
                    log.warning("launch of %s: %s; retrying with the same key (%d/%d)",
                                a.idempotency_key, e, tries, self.max_transient_retries)
                    continue
                reason = (f"launch failed {tries} times in a row with transient errors, last: "
                          f"{e}")
                self._block(e.scope, reason, report, a)
                self._fail(a, "failed", "Transient", e.scope, reason, report)
                continue
            except _BLOCKING_LAUNCH_ERRORS as e:
                reason = f"launch refused: {type(e).__name__}: {e}"
                self._block(e.scope, reason, report, a)
                self._fail(a, "failed", type(e).__name__, e.scope, reason, report)
                continue
            except InvalidRequest as e:
                self._fail(a, "failed", "InvalidRequest", None, f"launch invalid: {e}", report)
                continue
            self._known.add(a.id)
            self._transient.pop(a.id, None)
            keys.append(a.idempotency_key)
            started.append(Move(a.id, ("launching",), "running", instance_id=inst.id,
                                address=inst.address, event=NewEvent(
                                    "launch", f"launched {a.idempotency_key} as {inst.id} on "
                                    f"{a.pool} ({a.chips} chips)", a.workload_id, a.id)))
        for key, move, ok in zip(keys, started, self._store.advance_many(started), strict=True):
            if ok:
                report.launched.append(key)
                self._resume.pop(move.attempt_id, None)

    def _request(self, a: Attempt, w: Workload) -> LaunchRequest:
        """The launch request of an attempt: the same for the same key, on every call."""
        spec = _spec(w)
        env = {"CLOUDHEDGE_WORKLOAD": w.name, "CLOUDHEDGE_ATTEMPT": a.idempotency_key,
               "CLOUDHEDGE_REPLICA": str(a.replica)}
        token = self.attempt_token(a)
        if token is not None and self.api_url is not None:
            env["CLOUDHEDGE_HEARTBEAT_URL"] = f"{self.api_url}/v1/attempts/{a.id}/heartbeat"
            env["CLOUDHEDGE_ATTEMPT_TOKEN"] = token
        if isinstance(spec, ServiceSpec):
            env["CLOUDHEDGE_MODEL"] = spec.model
            if a.port is not None:
                env[spec.readiness.port_env] = str(a.port)
        else:
            env["CLOUDHEDGE_GANG_SIZE"] = str(spec.gang_size)
            if spec.checkpoint is not None:
                env["CLOUDHEDGE_CHECKPOINT"] = spec.checkpoint
            resume = self._resume.get(a.id)
            if resume is None and spec.kind == "training":  # planned by an earlier process
                placed = next((e for e in self._store.list_events(attempt_id=a.id)
                               if e.kind == "placement"), None)
                resume = None if placed is None else placed.data
            if resume and "resume_from" in resume:
                env["CLOUDHEDGE_RESUME_FROM"] = str(resume["resume_from"])
                env["CLOUDHEDGE_RESUME_STEP"] = str(resume["resume_step"])
        return LaunchRequest(a.idempotency_key, w.name, a.pool, a.chips, list(spec.command), env,
                             a.port)

    # -- helpers ----------------------------------------------------------------------

    def _blocks(self) -> list[Scope]:
        return [Scope(ScopeKind(b.scope_kind), b.scope_name) for b in self._store.active_blocks()]

    def _block(self, scope: Scope, reason: str, report: StepReport,
               attempt: Attempt | None = None) -> None:
        """Block ``scope`` for ``block_for_s``; a ``blocklist`` event when newly blocked."""
        fresh = scope not in self._blocks()
        self._store.block(scope.kind.value, scope.name, reason,
                          until_unix_s=self._clock.now() + self.block_for_s)
        if fresh:
            self._event("blocklist", f"blocked {scope} for {self.block_for_s:.0f} s: {reason}",
                        None if attempt is None else attempt.workload_id,
                        None if attempt is None else attempt.id, {"scope": str(scope)})
            report.blocked.append(str(scope))

    def _event(self, kind: EventKind, reason: str, workload_id: int | None = None,
               attempt_id: int | None = None, data: JsonDict | None = None) -> None:
        log.info("%s: %s", kind, reason)
        self._store.append_event(kind, reason, workload_id=workload_id, attempt_id=attempt_id,
                                 data=data)
