"""The contract every provider adapter passes (see ``providers/base.py`` for the rules).

Parametrized over ``provider_harness.FACTORIES``. Checks that need processes skip on
simulated adapters and on clouds (whose processes the test cannot see); checks that
need fault injection skip on adapters without it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cloudhedge.control.providers import (
    CapacityUnavailable,
    InstanceState,
    InvalidRequest,
    NotFound,
    Scope,
    SignalKind,
)
from control.provider_harness import FACTORIES, Harness, run, wait_for

ENDED = (InstanceState.SUCCEEDED, InstanceState.FAILED)


@pytest.fixture(params=sorted(FACTORIES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    return FACTORIES[request.param](tmp_path)


async def free(h: Harness) -> int:
    return next(o.chips_free for o in await h.provider.offers() if o.pool == h.pool)


def test_offers_show_the_pool_and_its_free_chips(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        offer = next(o for o in await h.provider.offers() if o.pool == h.pool)
        assert (offer.provider, offer.capacity_chips, offer.chips_free) == (
            h.provider.name, h.capacity, h.capacity)
        assert all(o.provider == h.provider.name for o in await h.provider.offers())

    run(harness, body)


def test_launch_is_idempotent_and_counts_capacity_once(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        first = await h.provider.launch(h.request("k1", chips=2))
        again = await h.provider.launch(h.request("k1", chips=2))
        assert again.id == first.id
        assert (first.idempotency_key, first.pool, first.chips) == ("k1", h.pool, 2)
        assert first.state in (InstanceState.PENDING, InstanceState.RUNNING)
        assert await free(h) == h.capacity - 2
        assert [i.id for i in await h.provider.list_instances()] == [first.id]
        # an ended instance is still the answer for its key: never launched twice
        await h.provider.terminate(first.id)
        assert (await h.provider.launch(h.request("k1", chips=2))).id == first.id
        assert len(await h.provider.list_instances()) == 1

    run(harness, body)


def test_a_key_reused_for_another_request_is_invalid(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        await h.provider.launch(h.request("k1", chips=1))
        with pytest.raises(InvalidRequest):
            await h.provider.launch(h.request("k1", chips=2))

    run(harness, body)


def test_invalid_requests(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        req = h.request("k1")
        with pytest.raises(InvalidRequest):
            await h.provider.launch(req.__class__(**{**req.__dict__, "pool": "nowhere"}))
        with pytest.raises(InvalidRequest):
            await h.provider.launch(h.request("k2", chips=0))
        assert await h.provider.list_instances() == []

    run(harness, body)


def test_a_full_pool_raises_capacity_unavailable_scoped_to_the_pool(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        big = await h.provider.launch(h.request("big", chips=h.capacity))
        assert await free(h) == 0
        with pytest.raises(CapacityUnavailable) as caught:
            await h.provider.launch(h.request("one-more"))
        assert caught.value.scope == Scope.of_pool(h.pool)
        # the failed launch recorded nothing: the same key works once chips are free
        await h.provider.terminate(big.id)
        assert await free(h) == h.capacity
        await h.provider.launch(h.request("one-more"))

    run(harness, body)


def test_terminate_is_idempotent(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        inst = await h.provider.launch(h.request("k1"))
        await h.provider.terminate(inst.id)
        await h.provider.terminate(inst.id)
        await h.provider.terminate("no-such-instance")
        ended = await h.provider.get(inst.id)
        assert ended.state is InstanceState.TERMINATED
        assert ended.ended_at is not None
        assert await free(h) == h.capacity
        with pytest.raises(NotFound):
            await h.provider.get("no-such-instance")

    run(harness, body)


def test_list_instances_lets_a_new_adapter_adopt(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        a = await h.provider.launch(h.request("job-a:0", workload="a"))
        b = await h.provider.launch(h.request("job-b:0", workload="b"))
        await h.provider.terminate(b.id)
        adopted = {i.idempotency_key: i for i in await h.reopen().list_instances()}
        assert adopted["job-a:0"].id == a.id and adopted["job-a:0"].workload == "a"
        assert not adopted["job-a:0"].state.ended
        assert adopted["job-b:0"].state is InstanceState.TERMINATED
        # adoption includes idempotency: the new adapter does not launch "job-a:0" again
        assert (await h.reopen().launch(h.request("job-a:0", workload="a"))).id == a.id

    run(harness, body)


@pytest.mark.parametrize(("code", "state"), [(0, InstanceState.SUCCEEDED),
                                             (3, InstanceState.FAILED)])
def test_exit_code_decides_the_state(harness: Harness, code: int,
                                     state: InstanceState) -> None:
    if not harness.provider.capabilities.real_processes:
        pytest.skip("simulated instances run no process")
    if not harness.observable_processes:
        pytest.skip("the process runs out of the test's sight (a cloud)")

    async def body(h: Harness) -> None:
        cmd = [sys.executable, "-c", f"raise SystemExit({code})"]
        inst = await h.provider.launch(h.request("k1", command=cmd))
        ended = await wait_for(h.provider, inst.id, *ENDED)
        assert (ended.state, ended.exit_code) == (state, code)
        assert ended.started_at is not None and ended.ended_at is not None
        assert await free(h) == h.capacity

    run(harness, body)


def test_the_process_is_told_where_it_runs(harness: Harness, tmp_path: Path) -> None:
    if not harness.provider.capabilities.real_processes:
        pytest.skip("simulated instances run no process")
    if not harness.observable_processes:
        pytest.skip("the process runs out of the test's sight (a cloud)")
    out = tmp_path / "env.json"
    script = ("import json, os, sys; json.dump({k: v for k, v in os.environ.items() "
              "if k.startswith(('CLOUDHEDGE_', 'MY_'))}, open(sys.argv[1], 'w'))")

    async def body(h: Harness) -> None:
        inst = await h.provider.launch(h.request(
            "k1", command=[sys.executable, "-c", script, str(out)], workload="train",
            env={"MY_VAR": "x"}, replica_port=8123))
        await wait_for(h.provider, inst.id, InstanceState.SUCCEEDED)
        env = json.loads(out.read_text())
        assert env["CLOUDHEDGE_PROVIDER"] == inst.provider
        assert env["CLOUDHEDGE_REGION"] == inst.region
        assert env["CLOUDHEDGE_ACCELERATOR"] == inst.accelerator
        assert env["CLOUDHEDGE_POOL"] == h.pool
        assert env["CLOUDHEDGE_INSTANCE"] == inst.id
        assert env["CLOUDHEDGE_REPLICA_PORT"] == "8123"
        assert env["MY_VAR"] == "x"
        checkpoints = Path(env["CLOUDHEDGE_CHECKPOINT_DIR"])
        assert checkpoints.is_dir() and checkpoints.name == "train"

    run(harness, body)


def test_outage_fails_instances_blocks_launches_and_signals(harness: Harness) -> None:
    if harness.cloud is None or harness.outage_scope is None:
        pytest.skip("no fault injection")

    async def body(h: Harness) -> None:
        assert h.cloud is not None and h.outage_scope is not None
        inst = await h.provider.launch(h.request("k1"))
        assert h.cloud.outage(h.outage_scope) == [inst.id]
        failed = await h.provider.get(inst.id)
        assert (failed.state, failed.detail) == (InstanceState.FAILED, "outage")
        with pytest.raises(CapacityUnavailable) as caught:
            await h.provider.launch(h.request("k2"))
        assert caught.value.scope == h.outage_scope
        [signal] = await h.provider.signals()
        assert (signal.kind, signal.scope, signal.healthy) == (
            SignalKind.OUTAGE, h.outage_scope, False)
        assert await h.provider.signals() == []  # each signal is delivered once

        assert h.cloud.restore(h.outage_scope)
        [signal] = await h.provider.signals()
        assert (signal.kind, signal.healthy) == (SignalKind.RESTORED, True)
        await h.provider.launch(h.request("k2"))

    run(harness, body)


def test_preemption_is_signalled(harness: Harness) -> None:
    if harness.cloud is None or not harness.provider.capabilities.preemption_signals:
        pytest.skip("no preemption")

    async def body(h: Harness) -> None:
        assert h.cloud is not None
        inst = await h.provider.launch(h.request("k1"))
        assert h.cloud.preempt(inst.id) == [inst.id]
        assert (await h.provider.get(inst.id)).state is InstanceState.PREEMPTED
        [signal] = await h.provider.signals()
        assert (signal.kind, signal.instance_id, signal.scope, signal.healthy) == (
            SignalKind.PREEMPTED, inst.id, Scope.of_pool(h.pool), False)
        assert await free(h) == h.capacity

    run(harness, body)


def test_logs_are_the_tail_of_what_the_instance_wrote(harness: Harness) -> None:
    async def body(h: Harness) -> None:
        with pytest.raises(NotFound):
            await h.provider.logs("no-such-instance")
        script = "import sys; [print(f'line {i}') for i in range(50)]; sys.stdout.flush()"
        inst = await h.provider.launch(h.request("k1", command=[sys.executable, "-c", script]))
        if not h.provider.capabilities.real_processes:
            assert await h.provider.logs(inst.id) == ""  # nothing runs, nothing is written
            return
        if not h.observable_processes:  # a cloud: what its console keeps, as text
            assert isinstance(await h.provider.logs(inst.id, tail_lines=3), str)
            return
        await wait_for(h.provider, inst.id, InstanceState.SUCCEEDED)
        assert await h.provider.logs(inst.id, tail_lines=3) == "line 47\nline 48\nline 49\n"
        assert (await h.provider.logs(inst.id)).count("\n") == 50

    run(harness, body)
