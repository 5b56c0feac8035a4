"""The aws adapter against moto, a real EC2 API server on loopback.

The contract suite runs it too (``provider_harness.aws``); these tests check what is
aws-specific: instance types and gangs, tags and ``ClientToken``, the spot market,
adoption, EC2 states, and the translation of EC2 error codes. moto cannot run out of
capacity, so errors are injected honestly at the SDK boundary: a ``before-call`` hook
on the adapter's own client answers one call with an EC2 error response, which
botocore turns into the same ``ClientError`` a real endpoint would give.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.ec2.models.instances import StateReason

from cloudhedge.control.providers import (
    CapacityUnavailable,
    InstanceState,
    InvalidRequest,
    LaunchRequest,
    ManualClock,
    PermissionDenied,
    ProviderError,
    QuotaExceeded,
    Scope,
    SignalKind,
    Transient,
)
from cloudhedge.control.providers.aws import (
    SPOT_INTERRUPTION,
    TAG_EXIT,
    AwsProvider,
    client_token,
    instance_type_for,
)
from cloudhedge.core.models import Pool
from control import moto_server
from control.provider_harness import SLEEP, Tier, fleet, pool

T = TypeVar("T")
EAST, WEST = "us-east-1", "us-west-2"


def pools() -> tuple[Pool, ...]:
    return fleet([
        pool("h100", "aws", "h100", 16, 2.0, region=EAST),
        pool("h100-spot", "aws", "h100", 16, 1.0, tier=Tier.SPOT, region=EAST),
        pool("trn2", "aws", "trn2", 64, 1.5, region=WEST),
        pool("gcp-h100", "gcp", "h100", 4, 2.5, region="us-central1"),
    ]).pools


_hooks: list[tuple[Any, str, Callable[..., Any]]] = []


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield moto_server.fresh(monkeypatch)
    while _hooks:  # the clients are shared by the whole test process
        client, event, handler = _hooks.pop()
        client.meta.events.unregister(event, handler)


def adapter(clock: ManualClock | None = None, *, own_clients: bool = False,
            **kw: Any) -> AwsProvider:
    """A new adapter on the process's shared clients, or making its own from a session
    and the endpoint (as in production, but ~0.1 s slower per client)."""
    options: dict[str, Any] = {
        "clock": clock or ManualClock(1000.0),
        "image_id": {r: moto_server.image_id(r) for r in (EAST, WEST)}, **kw}
    if own_clients:
        options.setdefault("endpoint_url", moto_server.endpoint())
        options["session"] = moto_server.session()
    else:
        options["region_clients"] = {r: moto_server.client("ec2", r) for r in (EAST, WEST)}
    return AwsProvider(pools(), **options)


def hook(provider: AwsProvider, region: str, event: str, handler: Callable[..., Any]) -> None:
    client = provider._client(region)
    client.meta.events.register(event, handler)
    _hooks.append((client, event, handler))


def run(body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(body())


def req(key: str, pool_name: str = "h100", chips: int = 1, **kw: Any) -> LaunchRequest:
    return LaunchRequest(key, kw.pop("workload", "job"), pool_name, chips,
                         kw.pop("command", SLEEP), **kw)


def machines(region: str = EAST) -> list[dict[str, Any]]:
    """Every EC2 instance moto holds in ``region``, managed or not."""
    out: list[dict[str, Any]] = []
    for r in moto_server.client("ec2", region).describe_instances()["Reservations"]:
        out.extend(r["Instances"])
    return out


def tags(machine: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in machine.get("Tags", [])}


def calls(provider: AwsProvider, region: str, operation: str) -> list[dict[str, Any]]:
    """The parameters of every ``operation`` call the adapter makes in ``region``."""
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(dict(params))

    hook(provider, region, f"provide-client-params.ec2.{operation}", record)
    return seen


def fail(provider: AwsProvider, region: str, operation: str, code: str, status: int = 400,
         times: int = 1) -> None:
    """The next ``times`` calls of ``operation`` get EC2 error ``code`` as an answer."""
    left = [times]

    def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if left[0] == 0:
            return None
        left[0] -= 1
        return (AWSResponse("https://ec2.amazonaws.com/", status, {}, None),
                {"Error": {"Code": code, "Message": f"injected {code}"},
                 "ResponseMetadata": {"HTTPStatusCode": status}})

    hook(provider, region, f"before-call.ec2.{operation}", answer)


def end_machine(instance_id: str, reason: str, region: str = EAST) -> None:
    """What EC2 does to a machine that ends on its own (spot reclaim, self shutdown)."""
    machine = ec2_backends[DEFAULT_ACCOUNT_ID][region].get_instance(instance_id)
    machine.terminate()
    machine.state_reason = StateReason(f"{reason}: {reason}", reason)


# -- mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(("accelerator", "itype", "chips"), [
    ("h100", "p5.48xlarge", 8), ("a100", "p4d.24xlarge", 8), ("h200", "p5en.48xlarge", 8),
    ("b200", "p6-b200.48xlarge", 8), ("trn1", "trn1.32xlarge", 16),
    ("trn2", "trn2.48xlarge", 16), ("inf2", "inf2.48xlarge", 12)])
def test_accelerators_map_to_the_catalog_instance_types(accelerator: str, itype: str,
                                                        chips: int) -> None:
    assert instance_type_for(accelerator, EAST) == (itype, chips)


def test_an_accelerator_aws_does_not_sell_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="mi300x"):
        instance_type_for("mi300x", EAST)


def test_importing_the_providers_does_not_import_boto3() -> None:
    code = ("import sys, cloudhedge.control.providers as p, cloudhedge.control.providers.aws; "
            "assert p.AwsProvider is cloudhedge.control.providers.aws.AwsProvider; "
            "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- launching -------------------------------------------------------------------------


def test_a_request_is_one_gang_of_whole_instances(moto: str) -> None:
    provider = adapter()
    run_calls = calls(provider, WEST, "RunInstances")

    async def body() -> None:
        inst = await provider.launch(req("train:0", "trn2", chips=20, workload="train",
                                         env={"MY_VAR": "x y"}))
        assert (inst.chips, inst.pool, inst.region, inst.accelerator, inst.state) == (
            20, "trn2", WEST, "trn2", InstanceState.PENDING)
        assert inst.created_at == 1000.0
        [call] = run_calls
        assert (call["MinCount"], call["MaxCount"], call["InstanceType"]) == (
            2, 2, "trn2.48xlarge")
        assert call["ClientToken"] == client_token("aws", "train:0")
        assert len(call["ClientToken"]) <= 64
        assert call["InstanceInitiatedShutdownBehavior"] == "terminate"
        assert "InstanceMarketOptions" not in call
        script = call["UserData"]
        assert "export MY_VAR='x y'" in script and "export CLOUDHEDGE_NODES=2" in script
        assert "time.sleep(60)" in script and "shutdown -h now" in script
        gang = sorted(machines(WEST), key=lambda m: m["AmiLaunchIndex"])
        assert [m["InstanceType"] for m in gang] == ["trn2.48xlarge"] * 2
        assert inst.id == gang[0]["InstanceId"]  # the first machine names the gang
        for m in gang:
            assert {k: v for k, v in tags(m).items() if k in (
                "cloudhedge:managed", "cloudhedge:key", "cloudhedge:workload",
                "cloudhedge:pool", "cloudhedge:chips")} == {
                "cloudhedge:managed": "true", "cloudhedge:key": "train:0",
                "cloudhedge:workload": "train", "cloudhedge:pool": "trn2",
                "cloudhedge:chips": "20"}
        # EC2 received the script itself (base64 on the wire)
        attr = moto_server.client("ec2", WEST).describe_instance_attribute(
            InstanceId=inst.id, Attribute="userData")
        assert "MY_VAR" in base64.b64decode(attr["UserData"]["Value"]).decode()
        running = await provider.get(inst.id)
        assert running.state is InstanceState.RUNNING and running.started_at == 1000.0
        offers = {o.pool: o for o in await provider.offers()}
        assert (offers["trn2"].capacity_chips, offers["trn2"].chips_free) == (64, 44)
        assert set(offers) == {"h100", "h100-spot", "trn2"}  # not gcp's pool

    run(body)


def test_the_same_key_launches_once_and_a_new_adapter_adopts_it(moto: str) -> None:
    first_adapter = adapter()
    launches = calls(first_adapter, EAST, "RunInstances")

    async def body() -> None:
        inst = await first_adapter.launch(req("job:0", chips=9))  # 2 x p5.48xlarge
        assert (await first_adapter.launch(req("job:0", chips=9))).id == inst.id
        assert len(launches) == 1 and len(machines()) == 2

        second = adapter(own_clients=True)  # a restarted control plane: no memory
        second_launches = calls(second, EAST, "RunInstances")
        [adopted] = await second.list_instances()
        assert (adopted.id, adopted.idempotency_key, adopted.workload, adopted.chips,
                adopted.pool, adopted.created_at) == (inst.id, "job:0", "job", 9, "h100",
                                                      1000.0)
        assert (await second.launch(req("job:0", chips=9))).id == inst.id
        with pytest.raises(InvalidRequest):
            await second.launch(req("job:0", chips=9, command=["true"]))
        assert second_launches == [] and len(machines()) == 2
        free = {o.pool: o.chips_free for o in await second.offers()}
        assert free["h100"] == 16 - 9

    run(body)


def test_terminate_ends_the_whole_gang_and_is_idempotent(moto: str) -> None:
    provider = adapter()

    async def body() -> None:
        inst = await provider.launch(req("job:0", chips=16))
        await provider.terminate(inst.id)
        await provider.terminate(inst.id)
        await provider.terminate("i-0123456789abcdef0")
        assert {m["State"]["Name"] for m in machines()} == {"terminated"}
        ended = await provider.get(inst.id)
        assert (ended.state, ended.ended_at) == (InstanceState.TERMINATED, 1000.0)
        assert (await adapter().get(inst.id)).state is InstanceState.TERMINATED
        assert {o.pool: o.chips_free for o in await provider.offers()}["h100"] == 16

    run(body)


def test_spot_pools_use_the_spot_market(moto: str) -> None:
    provider = adapter()
    launches = calls(provider, EAST, "RunInstances")
    assert provider.capabilities.spot
    assert not AwsProvider([p for p in pools() if p.tier is not Tier.SPOT],
                           clock=ManualClock(), image_id="ami-1").capabilities.spot

    async def body() -> None:
        spot = await provider.launch(req("s:0", "h100-spot", chips=8))
        on_demand = await provider.launch(req("o:0", "h100", chips=8))
        assert launches[0]["InstanceMarketOptions"]["MarketType"] == "spot"
        lifecycle = {m["InstanceId"]: m.get("InstanceLifecycle") for m in machines()}
        assert lifecycle[spot.id] == "spot" and lifecycle[on_demand.id] != "spot"

    run(body)


def test_a_spot_interruption_is_a_preemption_signalled_once(moto: str) -> None:
    clock = ManualClock(1000.0)
    provider = adapter(clock)

    async def body() -> None:
        inst = await provider.launch(req("s:0", "h100-spot", chips=16))  # 2 machines
        assert await provider.signals() == []
        clock.advance(30)
        end_machine(sorted(m["InstanceId"] for m in machines())[-1], SPOT_INTERRUPTION)
        [signal] = await provider.signals()
        assert (signal.kind, signal.scope, signal.instance_id, signal.healthy, signal.at) == (
            SignalKind.PREEMPTED, Scope.of_pool("h100-spot"), inst.id, False, 1030.0)
        assert await provider.signals() == []
        preempted = await provider.get(inst.id)
        assert (preempted.state, preempted.ended_at) == (InstanceState.PREEMPTED, 1030.0)
        assert {o.pool: o.chips_free for o in await provider.offers()}["h100-spot"] == 16
        # a new adapter sees the state, but does not replay the old signal
        later = adapter(clock)
        assert (await later.get(inst.id)).state is InstanceState.PREEMPTED
        assert await later.signals() == []

    run(body)


@pytest.mark.parametrize(("codes", "state", "exit_code"), [
    (["0", "0"], InstanceState.SUCCEEDED, 0), (["0", "3"], InstanceState.FAILED, 3),
    (["0", None], InstanceState.RUNNING, None)])
def test_the_exit_codes_the_machines_tag_decide_the_state(
        moto: str, codes: list[str | None], state: InstanceState,
        exit_code: int | None) -> None:
    provider = adapter()

    async def body() -> None:
        inst = await provider.launch(req("j:0", chips=16))
        ids = sorted(m["InstanceId"] for m in machines())
        for machine_id, code in zip(ids, codes, strict=True):
            if code is not None:  # what the boot script does when the command exits
                moto_server.client("ec2").create_tags(
                    Resources=[machine_id], Tags=[{"Key": TAG_EXIT, "Value": code}])
                end_machine(machine_id, "Client.InstanceInitiatedShutdown")
        got = await provider.get(inst.id)
        assert (got.state, got.exit_code) == (state, exit_code)

    run(body)


def test_a_machine_ending_without_an_exit_code_fails_the_gang(moto: str) -> None:
    provider = adapter()

    async def body() -> None:
        inst = await provider.launch(req("j:0", chips=8))
        end_machine(inst.id, "Server.InternalError")
        got = await provider.get(inst.id)
        assert got.state is InstanceState.FAILED and "Server.InternalError" in got.detail

    run(body)


def test_a_full_pool_is_refused_without_calling_ec2(moto: str) -> None:
    provider = adapter()
    launches = calls(provider, EAST, "RunInstances")

    async def body() -> None:
        await provider.launch(req("a:0", chips=12))
        with pytest.raises(CapacityUnavailable) as caught:
            await provider.launch(req("b:0", chips=8))
        assert caught.value.scope == Scope.of_pool("h100")
        assert len(launches) == 1

    run(body)


# -- error translation -----------------------------------------------------------------

REGION = Scope.of_region("aws", EAST)
ZONE = Scope.of_zone("aws", EAST, "us-east-1b")


@pytest.mark.parametrize(("code", "status", "error", "scope"), [
    ("InsufficientInstanceCapacity", 500, CapacityUnavailable, REGION),
    ("InsufficientCapacity", 500, CapacityUnavailable, REGION),
    ("SpotMaxPriceTooLow", 400, CapacityUnavailable, REGION),
    ("InstanceLimitExceeded", 400, QuotaExceeded, REGION),
    ("VcpuLimitExceeded", 400, QuotaExceeded, REGION),
    ("MaxSpotInstanceCountExceeded", 400, QuotaExceeded, REGION),
    ("RequestLimitExceeded", 503, Transient, REGION),
    ("InternalError", 500, Transient, REGION),
    ("SomethingNewOnTheServer", 502, Transient, REGION),
    ("UnauthorizedOperation", 403, PermissionDenied, Scope.of_provider("aws")),
    ("AuthFailure", 401, PermissionDenied, Scope.of_provider("aws")),
    ("OptInRequired", 401, PermissionDenied, Scope.of_provider("aws")),
    ("InvalidParameterValue", 400, InvalidRequest, REGION),
])
def test_ec2_error_codes_become_typed_errors(moto: str, code: str, status: int,
                                             error: type[ProviderError], scope: Scope) -> None:
    provider = adapter()
    fail(provider, EAST, "RunInstances", code, status)

    async def body() -> None:
        with pytest.raises(error) as caught:
            await provider.launch(req("k:0", chips=8))
        assert type(caught.value) is error and caught.value.scope == scope
        assert code in str(caught.value)
        # the failed launch recorded nothing: the same key launches now, once
        assert machines() == []
        inst = await provider.launch(req("k:0", chips=8))
        assert [m["InstanceId"] for m in machines()] == [inst.id]

    run(body)


def test_a_capacity_error_is_scoped_to_the_zone_of_a_pinned_pool(moto: str) -> None:
    provider = adapter(zones={"h100": "us-east-1b"})
    fail(provider, EAST, "RunInstances", "InsufficientInstanceCapacity", 500)
    launches = calls(provider, EAST, "RunInstances")

    async def body() -> None:
        assert {o.pool: o.zone for o in await provider.offers()}["h100"] == "us-east-1b"
        with pytest.raises(CapacityUnavailable) as caught:
            await provider.launch(req("k:0"))
        assert caught.value.scope == ZONE
        inst = await provider.launch(req("k:0"))
        assert launches[-1]["Placement"] == {"AvailabilityZone": "us-east-1b"}
        assert inst.zone == "us-east-1b"

    run(body)


def test_an_unknown_client_error_code_is_not_guessed(moto: str) -> None:
    provider = adapter()
    fail(provider, EAST, "RunInstances", "BrandNewError", 400)

    async def body() -> None:
        with pytest.raises(ClientError):
            await provider.launch(req("k:0"))

    run(body)


def test_a_describe_failure_is_an_error_not_a_signal(moto: str) -> None:
    provider = adapter()

    async def body() -> None:
        await provider.launch(req("k:0"))
        fail(provider, WEST, "DescribeInstances", "RequestLimitExceeded", 503, times=2)
        with pytest.raises(Transient) as caught:
            await provider.signals()
        assert caught.value.scope == Scope.of_region("aws", WEST)
        with pytest.raises(Transient):
            await provider.list_instances()
        assert await provider.signals() == []
        assert len(await provider.list_instances()) == 1

    run(body)


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    yield port


def test_an_unreachable_endpoint_is_transient(moto: str, closed_port: int) -> None:
    provider = adapter(own_clients=True, endpoint_url=f"http://127.0.0.1:{closed_port}")

    async def body() -> None:
        with pytest.raises(Transient):
            await provider.offers()

    run(body)


def test_constructor_checks(moto: str) -> None:
    with pytest.raises(ValueError, match="no pool"):
        AwsProvider(pools(), clock=ManualClock(), image_id="ami-1", name="azure")
    with pytest.raises(ValueError, match="us-west-2"):
        AwsProvider(pools(), clock=ManualClock(), image_id={EAST: "ami-1"})


def test_logs_are_the_tail_of_the_console_output(moto: str) -> None:
    provider = adapter()

    async def body() -> None:
        inst = await provider.launch(req("logs:0", "h100", chips=8))
        text = await provider.logs(inst.id, tail_lines=2)
        # moto's console: a fixed kernel boot log; EC2 sends it base64-encoded
        assert text == ("Kernel command line: root=/dev/sda1 ro 4\n"
                        "Enabling fast FPU save and restore... done.\n")

    run(body)
