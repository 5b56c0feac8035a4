"""The reconciler against simulated clouds: ManualClock + EmulatedCloud(run_processes=False)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "planning"))

from fleets import fleet, pool

from cloudhedge.control.placement import Placer
from cloudhedge.control.providers import (
    CapacityUnavailable,
    EmulatedCloud,
    HealthSignal,
    Instance,
    InstanceState,
    LaunchRequest,
    ManualClock,
    Provider,
    Scope,
    Transient,
)
from cloudhedge.control.reconciler import (
    Reconciler,
    job_from_json,
    service_from_json,
    spec_to_json,
)
from cloudhedge.control.specs import (
    AcceleratorOption,
    JobSpec,
    Readiness,
    RetryPolicy,
    ServiceSpec,
)
from cloudhedge.control.store import LIVE_STATES, ControlStore
from cloudhedge.core.models import Criticality, DomainKind, Fleet


def four_clouds() -> Fleet:
    """One h100 pool (8 chips) on each of four providers, cheapest first."""
    return fleet([
        pool("aws-h100", "aws", "h100", 8, 2.0, region="us-east-1"),
        pool("gcp-h100", "gcp", "h100", 8, 2.5, region="us-central1"),
        pool("azure-h100", "azure", "h100", 8, 3.0, region="eastus"),
        pool("lambda-h100", "lambda", "h100", 8, 3.5, region="us-west"),
    ])


def job(name: str = "train", chips: int = 4, checkpoint: str | None = "/ckpt") -> JobSpec:
    return JobSpec(name=name, kind="training", command=("python", "train.py"),
                   accelerators=(AcceleratorOption("h100", chips),), gang_size=1,
                   checkpoint=checkpoint, retry=RetryPolicy(), priority=1, tenant_class=None,
                   jurisdiction=None, spot_allowed=False, source="job.yaml")


def service(name: str = "chat", replicas: int = 3) -> ServiceSpec:
    return ServiceSpec(name=name, model="llama", command=("serve",), replicas=replicas,
                       accelerators=(AcceleratorOption("h100", 2),), spread=DomainKind.PROVIDER,
                       readiness=Readiness(), tenant_class=None, jurisdiction=None,
                       criticality=Criticality.STANDARD, spot_allowed=False,
                       source="service.yaml")


@dataclass
class World:
    clock: ManualClock
    cloud: EmulatedCloud
    store: ControlStore
    fleet: Fleet

    def reconciler(self, providers: dict[str, Provider] | None = None,
                   **kw: float) -> Reconciler:
        """A new reconciler (as after a restart): fresh adapters over the same cloud."""
        return Reconciler(self.store, providers or self.cloud.providers(), Placer(self.fleet),
                          self.fleet, clock=self.clock, **kw)

    async def instances(self) -> list[Instance]:
        out: list[Instance] = []
        for p in self.cloud.providers().values():
            out += await p.list_instances()
        return out

    async def live(self) -> list[Instance]:
        return [i for i in await self.instances() if not i.state.ended]


def run(tmp_path: Path, body: Callable[[World], Awaitable[None]]) -> None:
    clock = ManualClock(1000.0)
    f = four_clouds()
    world = World(clock, EmulatedCloud(f, clock=clock, run_processes=False),
                  ControlStore(f"sqlite:///{tmp_path / 'control.db'}", clock=clock.now), f)

    async def main() -> None:
        try:
            await body(world)
        finally:
            await world.cloud.close()
            world.store.close()

    asyncio.run(main())


def test_specs_round_trip_through_json() -> None:
    assert job_from_json(spec_to_json(job())) == job()
    assert service_from_json(spec_to_json(service())) == service()


def test_a_job_is_placed_and_launched_once(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        rec = w.reconciler()
        wid = rec.submit_job(job())
        assert rec.submit_job(job()) == wid  # resubmitting the same spec changes nothing
        first = await rec.step()
        assert first.placed == ["train/0/0"] and first.launched == ["train/0/0"]
        for _ in range(5):
            w.clock.advance(5)
            again = await rec.step()
            assert not (again.placed or again.launched or again.failed or again.terminated)
        [attempt] = w.store.list_attempts(workload_id=wid)
        [inst] = await w.instances()
        assert (attempt.state, attempt.instance_id, attempt.pool) == ("running", inst.id,
                                                                      "aws-h100")
        assert inst.state is InstanceState.RUNNING and inst.idempotency_key == "train/0/0"
        kinds = [e.kind for e in w.store.list_events(workload_id=wid)]
        assert kinds == ["desired", "placement", "launch"]
        # done when the instance succeeds: no new attempt
        w.cloud.complete(inst.id)
        done = await rec.step()
        assert done.completed == ["train/0/0"] and not done.placed
        assert (await rec.step()).placed == []
        assert w.store.get_attempt(attempt.id).state == "succeeded"  # type: ignore[union-attr]

    run(tmp_path, body)


def test_an_outage_fails_over_to_another_provider_and_resumes(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        rec = w.reconciler(block_for_s=600)
        wid = rec.submit_job(job())
        await rec.step()
        w.store.record_checkpoint(wid, 1200, "/ckpt/step-1200")
        w.clock.advance(10)
        w.cloud.outage(Scope.of_provider("aws"))
        report = await rec.step()
        assert report.failed == ["train/0/0"] and report.blocked == ["provider:aws"]
        assert report.placed == ["train/1/0"] and report.launched == ["train/1/0"]
        old, new = w.store.list_attempts(workload_id=wid)
        assert (old.state, old.error_scope) == ("failed", "provider:aws")
        assert (new.state, new.provider) == ("running", "gcp")
        [live] = await w.live()
        assert live.provider == "gcp"
        failover = [e for e in w.store.list_events(workload_id=wid) if e.kind == "failover"]
        assert "provider:aws is blocked" in failover[0].reason
        placement = w.store.list_events(attempt_id=new.id)[0]
        assert placement.kind == "placement" and "placed on gcp-h100" in placement.reason
        assert "resuming from step 1200" in placement.reason
        workload = w.store.get_workload(wid)
        assert workload is not None and placement.data is not None
        lines = rec.explain_placement(workload, placement.data)  # rendered from its inputs
        assert lines[0] == placement.reason.split("; resuming")[0]
        assert any("blocked by provider:aws" in line for line in lines)
        assert any(line.strip().startswith("chosen   gcp-h100") for line in lines)
        assert any(e.kind == "blocklist" and "provider:aws" in e.reason
                   for e in w.store.list_events())
        # the block lapses; the job stays where it is
        w.clock.advance(601)
        assert w.store.active_blocks() == []
        assert (await rec.step()).placed == []

    run(tmp_path, body)


def test_resumed_attempt_is_told_its_checkpoint(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        rec = w.reconciler()
        wid = rec.submit_job(job())
        w.store.record_checkpoint(wid, 7, "/ckpt/step-7")
        await rec.step()
        [attempt] = w.store.list_attempts(workload_id=wid)
        request = rec._request(attempt, w.store.get_workload(wid))  # type: ignore[arg-type]
        assert request.env["CLOUDHEDGE_RESUME_FROM"] == "/ckpt/step-7"
        assert request.env["CLOUDHEDGE_RESUME_STEP"] == "7"
        # a later checkpoint does not change this attempt's request (same key, same request)
        w.store.record_checkpoint(wid, 9, "/ckpt/step-9")
        assert rec._request(attempt, w.store.get_workload(wid)) == request  # type: ignore[arg-type]

    run(tmp_path, body)


def test_a_service_replica_lost_with_its_provider_is_replaced_elsewhere(
        tmp_path: Path) -> None:
    async def body(w: World) -> None:
        rec = w.reconciler()
        wid = rec.submit_service(service(replicas=3))
        first = await rec.step()
        assert len(first.launched) == 3
        spread = {a.provider for a in w.store.list_attempts(workload_id=wid)}
        assert len(spread) == 3
        lost = "gcp" if "gcp" in spread else sorted(spread)[0]
        w.clock.advance(10)
        w.cloud.outage(Scope.of_provider(lost))
        report = await rec.step()
        assert len(report.failed) == 1 and len(report.launched) == 1
        live = w.store.list_attempts(workload_id=wid, states=LIVE_STATES)
        assert sorted(a.replica for a in live) == [0, 1, 2]
        providers = [a.provider for a in live]
        assert lost not in providers and len(set(providers)) == 3  # still spread
        assert len(await w.live()) == 3

    run(tmp_path, body)


def test_a_restart_adopts_what_runs_and_terminates_strangers(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        wid = w.reconciler().submit_job(job())
        await w.reconciler().step()
        [before] = await w.live()
        # a stranger: launched with a key the store does not know
        stray = await w.cloud.provider("gcp").launch(
            LaunchRequest("ghost/0/0", "ghost", "gcp-h100", 2, ["sleep"]))
        # a crash between launch and its record: the attempt stays "launching"
        sid = w.reconciler().submit_job(job("other", chips=2))
        planned = w.store.plan_attempt(sid, idempotency_key="other/0/0", pool="azure-h100",
                                       provider="azure", region="eastus", accelerator="h100",
                                       chips=2)
        assert w.store.advance(planned.attempt.id, ["planned"], "launching")
        orphan = await w.cloud.provider("azure").launch(
            LaunchRequest("other/0/0", "other", "azure-h100", 2, ["sleep"]))

        restarted = w.reconciler()
        report = await restarted.step()
        assert report.terminated == [stray.id]
        assert sorted(report.adopted) == ["other/0/0", "train/0/0"]
        assert not report.placed and not report.launched
        assert {i.id for i in await w.live()} == {before.id, orphan.id}
        assert w.store.get_attempt(planned.attempt.id).instance_id == orphan.id  # type: ignore[union-attr]
        assert [a.instance_id for a in w.store.list_attempts(workload_id=wid)] == [before.id]
        assert any(e.kind == "adoption" for e in w.store.list_events(workload_id=wid))
        assert any(e.kind == "termination" and "ghost" in e.reason
                   for e in w.store.list_events())
        again = await restarted.step()
        assert not (again.adopted or again.terminated or again.placed or again.launched)

    run(tmp_path, body)


def test_capacity_unavailable_at_launch_blocks_its_scope_and_places_again(
        tmp_path: Path) -> None:
    async def body(w: World) -> None:
        rec = w.reconciler()
        wid = rec.submit_job(job())
        w.cloud.fail_launches(CapacityUnavailable, Scope.of_region("aws", "us-east-1"))
        first = await rec.step()
        assert first.placed == ["train/0/0"] and first.launched == []
        assert first.failed == ["train/0/0"] and first.blocked == ["region:aws/us-east-1"]
        second = await rec.step()
        assert second.placed == ["train/1/0"] and second.launched == ["train/1/0"]
        attempts = w.store.list_attempts(workload_id=wid)
        assert [(a.provider, a.state, a.error_kind) for a in attempts] == [
            ("aws", "failed", "CapacityUnavailable"), ("gcp", "running", None)]
        assert len(await w.live()) == 1

    run(tmp_path, body)


def test_cancel_terminates_the_instances(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        rec = w.reconciler()
        rec.submit_service(service(replicas=2))
        await rec.step()
        assert rec.cancel("chat") and not rec.cancel("chat")
        report = await rec.step()
        assert len(report.terminated) == 2 and await w.live() == []
        assert not (await rec.step()).placed

    run(tmp_path, body)


def test_application_failures_retry_with_backoff_then_give_up(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        rec = w.reconciler()
        wid = rec.submit_job(job())  # RetryPolicy(): 3 attempts, 30 s then 60 s backoff
        await rec.step()
        for n, backoff_s in ((1, 30.0), (2, 60.0)):
            [inst] = await w.live()
            w.cloud.complete(inst.id, exit_code=1)
            report = await rec.step()
            assert len(report.failed) == 1 and not report.blocked and not report.placed
            w.clock.advance(backoff_s - 1)
            assert not (await rec.step()).placed  # still backing off
            w.clock.advance(1)
            assert (await rec.step()).launched == [f"train/{n}/0"]
        [inst] = await w.live()
        w.cloud.complete(inst.id, exit_code=1)
        await rec.step()
        w.clock.advance(3600)
        assert not (await rec.step()).placed
        assert [a.state for a in w.store.list_attempts(workload_id=wid)] == ["failed"] * 3
        gave_up = [e for e in w.store.list_events(workload_id=wid) if e.kind == "rejection"]
        assert len(gave_up) == 1 and "gave up after 3" in gave_up[0].reason

    run(tmp_path, body)


def test_scaling_a_service_down_ends_the_extra_replicas(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        rec = w.reconciler()
        wid = rec.submit_service(service(replicas=3))
        await rec.step()
        rec.submit_service(service(replicas=1))
        report = await rec.step()
        assert len(report.terminated) == 2 and not report.placed
        [kept] = w.store.list_attempts(workload_id=wid, states=LIVE_STATES)
        assert kept.replica == 0 and len(await w.live()) == 1

    run(tmp_path, body)


class Silent:
    """A provider adapter that stops answering when ``down`` is set."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.down = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def _check(self) -> None:
        if self.down:
            raise Transient("timed out", scope=Scope.of_provider(self.inner.name))

    async def signals(self) -> list[HealthSignal]:
        self._check()
        return await self.inner.signals()

    async def list_instances(self) -> list[Instance]:
        self._check()
        return await self.inner.list_instances()


def test_a_provider_silent_past_the_heartbeat_timeout_is_lost(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        providers = w.cloud.providers()
        aws = Silent(providers["aws"])
        providers["aws"] = aws  # type: ignore[assignment]
        rec = w.reconciler(providers, heartbeat_timeout_s=60)
        wid = rec.submit_job(job())
        await rec.step()
        aws.down = True
        w.clock.advance(30)
        assert not (await rec.step()).failed  # within the timeout: wait
        w.clock.advance(31)
        report = await rec.step()
        assert report.failed == ["train/0/0"] and report.blocked == ["provider:aws"]
        assert report.launched == ["train/1/0"]
        assert [a.state for a in w.store.list_attempts(workload_id=wid)] == ["lost", "running"]

    run(tmp_path, body)


def test_run_steps_on_the_injected_clock_until_stopped(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        rec = w.reconciler(interval_s=5)
        rec.submit_job(job())
        stop = asyncio.Event()
        task = asyncio.create_task(rec.run(stop))
        for _ in range(3):
            await asyncio.sleep(0)
        assert len(await w.live()) == 1
        w.clock.advance(5)
        await asyncio.sleep(0)
        stop.set()
        await asyncio.wait_for(task, 5)
        assert len(w.store.list_attempts()) == 1

    run(tmp_path, body)


def test_a_job_silent_past_its_heartbeat_timeout_is_failed_and_placed_again(
        tmp_path: Path) -> None:
    async def body(w: World) -> None:
        r = w.reconciler()
        spec = JobSpec(**{**job().__dict__, "heartbeat_timeout_s": 30.0})
        r.submit_job(spec)
        await r.step()
        [a] = w.store.list_attempts(states=("running",))
        w.clock.advance(20)
        assert r.heartbeat(a, step=3)
        w.clock.advance(20)  # 20 s since the heartbeat: within the timeout
        report = await r.step()
        assert report.failed == []
        w.clock.advance(11)  # 31 s of silence
        report = await r.step()
        assert report.failed == ["train/0/0"]
        ended = w.store.get_attempt(a.id)
        assert ended is not None and (ended.state, ended.error_kind) == ("failed", "heartbeat")
        assert report.launched == []  # counts against the retry policy: backoff first
        [ended_instance] = await w.instances()
        assert ended_instance.state is InstanceState.TERMINATED
        w.clock.advance(job().retry.backoff_s)
        assert (await r.step()).launched == ["train/1/0"]
        failover = [e for e in w.store.list_events() if e.kind == "failover"]
        assert "no heartbeat for 31 s" in failover[0].reason

    run(tmp_path, body)


def test_without_a_heartbeat_timeout_silence_is_fine(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        r = w.reconciler()
        r.submit_job(job())
        await r.step()
        w.clock.advance(10_000)
        assert (await r.step()).failed == []

    run(tmp_path, body)


def test_a_service_replica_is_given_its_port_in_the_request(tmp_path: Path) -> None:
    ports = iter(range(9000, 9100))

    async def body(w: World) -> None:
        r = Reconciler(w.store, w.cloud.providers(), Placer(w.fleet), w.fleet, clock=w.clock,
                       replica_port=lambda: next(ports), attempt_secret=b"k",
                       api_url="http://127.0.0.1:8700")
        r.submit_service(service(replicas=2))
        await r.step()
        attempts = w.store.list_attempts()
        assert sorted(a.port for a in attempts) == [9000, 9001]
        for a in attempts:
            workload = w.store.get_workload(a.workload_id)
            assert workload is not None
            request = r._request(a, workload)
            assert request.replica_port == a.port
            assert request.env["CLOUDHEDGE_REPLICA_PORT"] == str(a.port)
            assert request.env["CLOUDHEDGE_MODEL"] == "llama"
            assert request.env["CLOUDHEDGE_HEARTBEAT_URL"] == (
                f"http://127.0.0.1:8700/v1/attempts/{a.id}/heartbeat")
            assert request.env["CLOUDHEDGE_ATTEMPT_TOKEN"] == r.attempt_token(a)
            assert request == r._request(a, workload)  # the same request for the same key

    run(tmp_path, body)


def test_transient_launch_errors_retry_with_the_same_key_then_give_up_on_the_scope(
        tmp_path: Path) -> None:
    async def body(w: World) -> None:
        r = w.reconciler(max_transient_retries=3)
        w.cloud.fail_launches(Transient, Scope.of_pool("aws-h100"), times=2)
        r.submit_job(job())
        assert (await r.step()).launched == []  # 1st transient error
        report = await r.step()  # 2nd; the 3rd call succeeds with the same key
        assert report.launched == []
        report = await r.step()
        assert report.launched == ["train/0/0"]
        [a] = w.store.list_attempts()
        assert a.pool == "aws-h100"  # retried in place, not moved

        w.cloud.fail_launches(Transient, Scope.of_pool("gcp-h100"), times=10)
        r.submit_job(job("other", chips=8))  # aws has 4 chips left: "other" goes to gcp
        for _ in range(2):
            assert (await r.step()).failed == []
        report = await r.step()
        assert report.failed == ["other/0/0"] and report.blocked == ["pool:gcp-h100"]
        report = await r.step()
        assert report.launched == ["other/1/0"]
        [moved] = w.store.list_attempts(states=("running",), workload_id=2)
        assert moved.pool == "azure-h100"

    run(tmp_path, body)


def test_a_checkpoint_saved_but_never_reported_is_found_at_the_job_location(
        tmp_path: Path) -> None:
    from cloudhedge.control.checkpoints import open_checkpoints

    location = str(tmp_path / "ckpt")

    async def body(w: World) -> None:
        r = w.reconciler()
        wid = r.submit_job(job(checkpoint=location))
        await r.step()
        w.store.record_checkpoint(wid, 20, f"{location}/reported")  # an older report
        saved = open_checkpoints(location).save(30, b'{"step": 30}')  # died before reporting
        [a] = w.store.list_attempts()
        assert a.instance_id is not None
        w.cloud.preempt(a.instance_id)
        report = await r.step()
        assert report.launched == ["train/1/0"]
        placed = [e for e in w.store.list_events(workload_id=wid) if e.kind == "placement"]
        assert placed[-1].data is not None
        assert (placed[-1].data["resume_step"], placed[-1].data["resume_from"]) == (
            30, saved.location)

    run(tmp_path, body)


def test_a_submission_wakes_the_loop_before_its_interval(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        rec = w.reconciler(interval_s=3600)
        stop = asyncio.Event()
        task = asyncio.create_task(rec.run(stop))
        for _ in range(3):
            await asyncio.sleep(0)
        assert w.store.list_attempts() == []  # the first step found nothing to do
        rec.submit_job(job())  # the clock does not move: only the wake-up can step
        for _ in range(10):
            await asyncio.sleep(0)
        assert len(await w.live()) == 1
        rec.cancel("train")
        for _ in range(10):
            await asyncio.sleep(0)
        assert await w.live() == []
        w.cloud.outage(Scope.of_provider("gcp"))  # not a desired-state change: no wake-up
        for _ in range(10):
            await asyncio.sleep(0)
        assert w.store.active_blocks() == []  # noticed at the next poll, not before
        stop.set()
        await asyncio.wait_for(task, 5)

    run(tmp_path, body)
