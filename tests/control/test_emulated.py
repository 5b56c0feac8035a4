"""The emulated clouds beyond the contract: latency, fault injection, modes, the clock."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudhedge.control import providers
from cloudhedge.control.providers import (
    CapacityUnavailable,
    EmulatedCloud,
    InstanceState,
    InvalidRequest,
    LaunchRequest,
    ManualClock,
    PermissionDenied,
    QuotaExceeded,
    Scope,
    SignalKind,
    Transient,
)
from control.provider_harness import SLEEP, small_fleet, wait_for


def req(key: str, pool: str = "aws-h100", chips: int = 1,
        command: list[str] | None = None) -> LaunchRequest:
    return LaunchRequest(key, "job", pool, chips, command or SLEEP)


def simulated(clock: ManualClock, launch_latency_s: float = 0.0) -> EmulatedCloud:
    return EmulatedCloud(small_fleet(), clock=clock, run_processes=False,
                         launch_latency_s=launch_latency_s)


def run(cloud: EmulatedCloud, body: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        try:
            await body()
        finally:
            await cloud.close()

    asyncio.run(main())


def test_simulated_launch_latency_follows_the_clock() -> None:
    clock = ManualClock(100.0)
    cloud = simulated(clock, launch_latency_s=30.0)
    aws = cloud.provider("aws")

    async def body() -> None:
        inst = await aws.launch(req("k1", chips=3))
        assert inst.state is InstanceState.PENDING and inst.created_at == 100.0
        assert (await aws.offers())[0].chips_free == 1  # pending instances hold their chips
        clock.advance(29.0)
        assert (await aws.get(inst.id)).state is InstanceState.PENDING
        clock.advance(5.0)
        running = await aws.get(inst.id)
        assert (running.state, running.started_at) == (InstanceState.RUNNING, 130.0)

    run(cloud, body)


def test_process_starts_after_the_latency(tmp_path: Path) -> None:
    clock = ManualClock()
    cloud = EmulatedCloud(small_fleet(), clock=clock, launch_latency_s=10.0, workdir=tmp_path)
    aws = cloud.provider("aws")

    async def body() -> None:
        inst = await aws.launch(req("k1"))
        await asyncio.sleep(0.05)
        assert (await aws.get(inst.id)).state is InstanceState.PENDING
        clock.advance(10.0)
        running = await wait_for(aws, inst.id, InstanceState.RUNNING)
        assert running.started_at == 10.0

    run(cloud, body)


def test_terminate_while_pending_never_starts_the_process(tmp_path: Path) -> None:
    clock = ManualClock()
    cloud = EmulatedCloud(small_fleet(), clock=clock, launch_latency_s=10.0, workdir=tmp_path)
    aws = cloud.provider("aws")
    marker = tmp_path / "started"

    async def body() -> None:
        cmd = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
        inst = await aws.launch(req("k1", command=cmd))
        await aws.terminate(inst.id)
        clock.advance(10.0)
        await asyncio.sleep(0.2)
        assert (await aws.get(inst.id)).state is InstanceState.TERMINATED
        assert not marker.exists()

    run(cloud, body)


def test_close_kills_running_processes_fast(tmp_path: Path) -> None:
    cloud = EmulatedCloud(small_fleet(), clock=ManualClock(), workdir=tmp_path)
    aws = cloud.provider("aws")

    async def body() -> None:
        inst = await aws.launch(req("k1"))
        await wait_for(aws, inst.id, InstanceState.RUNNING)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await cloud.close()
        assert loop.time() - start < 2.0  # SLEEP runs 60 s: it was killed, not awaited
        assert (await aws.get(inst.id)).state is InstanceState.TERMINATED

    run(cloud, body)


def test_a_command_that_cannot_start_fails(tmp_path: Path) -> None:
    cloud = EmulatedCloud(small_fleet(), clock=ManualClock(), workdir=tmp_path)
    aws = cloud.provider("aws")

    async def body() -> None:
        inst = await aws.launch(req("k1", command=[str(tmp_path / "no-such-binary")]))
        failed = await wait_for(aws, inst.id, InstanceState.FAILED)
        assert failed.detail.startswith("cannot start")

    run(cloud, body)


def test_timed_outage_ends_by_itself_with_a_restored_signal() -> None:
    clock = ManualClock(0.0)
    cloud = simulated(clock)
    aws = cloud.provider("aws")
    scope = Scope.of_provider("aws")

    async def body() -> None:
        cloud.outage(scope, duration_s=600.0)
        assert all(o.chips_free == 0 for o in await aws.offers())
        clock.advance(599.0)
        with pytest.raises(CapacityUnavailable):
            await aws.launch(req("k1"))
        clock.advance(100.0)
        await aws.launch(req("k1"))
        kinds = [(s.kind, s.at) for s in await aws.signals()]
        assert kinds == [(SignalKind.OUTAGE, 0.0), (SignalKind.RESTORED, 600.0)]
        assert not cloud.restore(scope)  # already over

    run(cloud, body)


def test_an_accelerator_outage_spans_providers() -> None:
    cloud = simulated(ManualClock())
    aws, gcp = cloud.provider("aws"), cloud.provider("gcp")

    async def body() -> None:
        a = await aws.launch(req("a", "aws-h100"))
        t = await aws.launch(req("t", "aws-trn2"))
        g = await gcp.launch(req("g", "gcp-h100"))
        failed = cloud.outage(Scope.of_accelerator("h100"))
        assert sorted(failed) == sorted([a.id, g.id])
        assert (await aws.get(t.id)).state is InstanceState.RUNNING
        await aws.launch(req("t2", "aws-trn2"))
        for provider in (aws, gcp):
            [signal] = await provider.signals()
            assert signal.scope == Scope.of_accelerator("h100")

    run(cloud, body)


def test_faults_reject_unknown_targets() -> None:
    cloud = simulated(ManualClock())
    with pytest.raises(ValueError):
        cloud.outage(Scope.of_region("aws", "mars-1"))
    with pytest.raises(ValueError):
        cloud.preempt("nothing")
    with pytest.raises(ValueError):
        cloud.set_capacity("nothing", 1)
    with pytest.raises(ValueError):
        cloud.provider("azure")


def test_preempting_a_pool_preempts_its_live_instances() -> None:
    cloud = simulated(ManualClock())
    aws = cloud.provider("aws")

    async def body() -> None:
        done = await aws.launch(req("done", "aws-h100-spot"))
        await aws.terminate(done.id)
        live = [await aws.launch(req(f"k{i}", "aws-h100-spot", chips=2)) for i in range(2)]
        assert sorted(cloud.preempt("aws-h100-spot")) == sorted(i.id for i in live)
        assert (await aws.get(done.id)).state is InstanceState.TERMINATED
        signals = await aws.signals()
        assert {s.instance_id for s in signals} == {i.id for i in live}
        assert all(s.kind is SignalKind.PREEMPTED for s in signals)
        assert cloud.preempt(live[0].id) == []  # already ended

    run(cloud, body)


def test_set_capacity_changes_launches_not_running_instances() -> None:
    cloud = simulated(ManualClock())
    aws = cloud.provider("aws")

    async def body() -> None:
        inst = await aws.launch(req("k1", chips=3))
        cloud.set_capacity("aws-h100", 2)
        offer = next(o for o in await aws.offers() if o.pool == "aws-h100")
        assert (offer.capacity_chips, offer.chips_free) == (2, 0)
        assert (await aws.get(inst.id)).state is InstanceState.RUNNING
        with pytest.raises(CapacityUnavailable):
            await aws.launch(req("k2"))
        cloud.set_capacity("aws-h100", 10)
        await aws.launch(req("k2", chips=7))

    run(cloud, body)


def test_complete_ends_a_simulated_instance(tmp_path: Path) -> None:
    cloud = simulated(ManualClock())
    aws = cloud.provider("aws")

    async def body() -> None:
        ok = await aws.launch(req("ok"))
        bad = await aws.launch(req("bad"))
        cloud.complete(ok.id)
        cloud.complete(bad.id, exit_code=2)
        assert (await aws.get(ok.id)).state is InstanceState.SUCCEEDED
        assert ((await aws.get(bad.id)).state, (await aws.get(bad.id)).exit_code) == (
            InstanceState.FAILED, 2)

    run(cloud, body)
    with pytest.raises(ValueError):
        EmulatedCloud(small_fleet(), clock=ManualClock(), workdir=tmp_path).complete("x")


def test_capacity_and_capabilities_come_from_the_fleet() -> None:
    cloud = EmulatedCloud(small_fleet(), clock=ManualClock(), run_processes=False, period=1)
    assert sorted(cloud.providers()) == ["aws", "gcp"]
    aws, gcp = cloud.provider("aws"), cloud.provider("gcp")
    assert aws.capabilities.spot and not gcp.capabilities.spot
    assert not aws.capabilities.real_processes
    offers = asyncio.run(aws.offers())
    assert {o.pool: o.capacity_chips for o in offers} == {
        "aws-h100": 4, "aws-h100-spot": 2, "aws-trn2": 4}
    with pytest.raises(ValueError):
        EmulatedCloud(small_fleet(), clock=ManualClock(), run_processes=False, period=3)


def test_manual_clock_wakes_sleepers_when_due() -> None:
    clock = ManualClock()
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(clock.now())

    async def body() -> None:
        tasks = [asyncio.create_task(sleeper(s)) for s in (5.0, 1.0)]
        await asyncio.sleep(0)
        clock.advance(2.0)
        await asyncio.sleep(0)
        assert woke == [2.0]
        clock.advance(3.0)
        await asyncio.gather(*tasks)
        assert woke == [2.0, 5.0]
        with pytest.raises(ValueError):
            clock.advance(-1.0)

    asyncio.run(body())


def test_the_public_api_is_exactly_all() -> None:
    public = {n for n in vars(providers) if not n.startswith("_")}
    modules = {"aws", "base", "clock", "emulated", "local"}
    assert public - modules == set(providers.__all__)


def test_fail_launches_raises_the_given_error_then_stops() -> None:
    cloud = simulated(ManualClock())
    aws = cloud.provider("aws")
    region = Scope.of_region("aws", "us-east-1")

    async def body() -> None:
        cloud.fail_launches(Transient, region, times=2)
        cloud.fail_launches(QuotaExceeded, Scope.of_pool("aws-trn2"))
        for _ in range(2):
            with pytest.raises(Transient) as caught:
                await aws.launch(req("k1"))
            assert caught.value.scope == region
        await aws.launch(req("k1"))
        with pytest.raises(QuotaExceeded):
            await aws.launch(req("t1", "aws-trn2"))
        await aws.launch(req("t1", "aws-trn2"))
        with pytest.raises(InvalidRequest):  # invalid requests fail before injected errors
            cloud.fail_launches(PermissionDenied, region)
            await aws.launch(req("k2", chips=0))

    run(cloud, body)
    with pytest.raises(ValueError):
        cloud.fail_launches(Transient, Scope.of_provider("azure"))


OPS = st.lists(st.tuples(st.sampled_from(["launch", "terminate", "preempt", "outage",
                                          "restore", "complete", "advance"]),
                         st.integers(0, 5)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_free_chips_always_match_the_live_instances(ops: list[tuple[str, int]]) -> None:
    clock = ManualClock()
    cloud = simulated(clock, launch_latency_s=1.0)
    aws = cloud.provider("aws")
    region = Scope.of_region("aws", "us-east-1")

    async def body() -> None:
        ids: list[str] = []
        outages_until: list[float] = []
        for n, (op, arg) in enumerate(ops):
            if op == "launch":
                with contextlib.suppress(CapacityUnavailable):
                    ids.append((await aws.launch(req(f"k{n}", chips=arg % 4 + 1))).id)
            elif op == "advance":
                clock.advance(arg)
            elif op == "outage":
                cloud.outage(region, duration_s=arg + 1)
                outages_until.append(clock.now() + arg + 1)
            elif op == "restore":
                cloud.restore(region)
                outages_until.clear()
            elif ids:
                target = ids[arg % len(ids)]
                if op == "terminate":
                    await aws.terminate(target)
                elif op == "preempt":
                    cloud.preempt(target)
                else:
                    cloud.complete(target, exit_code=arg % 2)
            live = sum(i.chips for i in await aws.list_instances() if not i.state.ended)
            offer = next(o for o in await aws.offers() if o.pool == "aws-h100")
            down = any(u > clock.now() for u in outages_until)
            assert offer.chips_free == (0 if down else 4 - live)
            assert live <= 4

    run(cloud, body)
