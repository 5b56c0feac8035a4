"""The ``aws`` adapter: each pool of a fleet's aws pools as EC2 instances of one type.

A pool (accelerator, region, tier) maps to an EC2 instance type from the catalog
(``h100 -> p5.48xlarge``, 8 chips each; ``trn2 -> trn2.48xlarge``, 16; ...). A request
for ``chips`` is one *gang* of ``ceil(chips / chips_per_instance)`` instances launched by
one ``RunInstances`` with ``MinCount = MaxCount`` (all or nothing); spot pools ask for
the spot market. One gang is one cloudhedge :class:`~.base.Instance`, whose id is the
EC2 id of the gang's first machine (``AmiLaunchIndex`` 0), the id an operator sees in
the console.

Idempotency and adoption: every machine is tagged ``cloudhedge:managed=true``,
``cloudhedge:provider`` (the adapter's name), ``cloudhedge:key``, ``cloudhedge:workload``,
``cloudhedge:pool``, ``cloudhedge:chips``, ``cloudhedge:request`` (a hash of the
request) and ``cloudhedge:created-at`` (the clock at launch). Before launching, the
adapter looks the key up by tag, so a key is launched once even by a new adapter (which
adopts what runs through ``list_instances``); the ``ClientToken`` (a hash of the key)
covers a crash between ``RunInstances`` and its answer. The same key with another
request raises :class:`~.base.InvalidRequest`.

Free chips are the pool's capacity (fleet period ``period``) minus the chips of the
pool's live managed gangs, counted as requested (a fleet's capacity is in chips).

State of a gang, from its machines: a spot interruption (``StateReason``
``Server.SpotInstanceTermination``) of any machine -> ``preempted`` (and one
``preempted`` signal, if this adapter had seen the gang live); a machine ended with a
non-zero ``cloudhedge:exit-code`` tag -> ``failed``; one terminated by a user ->
``terminated``; one ended otherwise -> ``failed``; every machine ended with exit code
0 -> ``succeeded``; any ``pending`` -> ``pending``; else ``running``. Once ended, a
gang stays ended. EC2 reports no start or end times as fields: ``started_at`` and
``ended_at`` are when this adapter first saw the change, on its clock.

Each machine runs the request's command from its user data, then tags its exit code
(``aws ec2 create-tags``; needs an instance profile allowed to tag itself) and shuts
down, which terminates it. boto3 is imported lazily; its calls run in
``asyncio.to_thread``; SDK retries are off (they sleep on wall time): ``Transient`` goes
back to the reconciler, which retries on its clock. Errors are translated by code in
:data:`ERRORS`.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import logging
import math
import shlex
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

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
    PermissionDenied,
    ProviderError,
    QuotaExceeded,
    Scope,
    SignalKind,
    Transient,
)
from cloudhedge.control.providers.clock import Clock
from cloudhedge.core.models import Pool, Tier

log = logging.getLogger(__name__)

T = TypeVar("T")

TAG_MANAGED = "cloudhedge:managed"
TAG_PROVIDER = "cloudhedge:provider"
TAG_KEY = "cloudhedge:key"
TAG_WORKLOAD = "cloudhedge:workload"
TAG_POOL = "cloudhedge:pool"
TAG_ACCELERATOR = "cloudhedge:accelerator"
TAG_CHIPS = "cloudhedge:chips"
TAG_REQUEST = "cloudhedge:request"
TAG_CREATED = "cloudhedge:created-at"
TAG_EXIT = "cloudhedge:exit-code"

SPOT_INTERRUPTION = "Server.SpotInstanceTermination"
USER_SHUTDOWN = "Client.UserInitiatedShutdown"
USER_DATA_LIMIT_BYTES = 16 * 1024
_ENDED_EC2 = ("shutting-down", "terminated", "stopping", "stopped")

# EC2 error code -> our type. Capacity codes are scoped to the zone when the pool has
# one, else to the region; quotas to the region; permissions to the provider.
CAPACITY_CODES = frozenset({"InsufficientInstanceCapacity", "InsufficientCapacity",
                            "SpotMaxPriceTooLow", "InsufficientHostCapacity"})
ERRORS: Mapping[str, type[ProviderError]] = {
    **dict.fromkeys(CAPACITY_CODES, CapacityUnavailable),
    "InstanceLimitExceeded": QuotaExceeded,
    "VcpuLimitExceeded": QuotaExceeded,
    "MaxSpotInstanceCountExceeded": QuotaExceeded,
    "RequestLimitExceeded": Transient,
    "Throttling": Transient,
    "ThrottlingException": Transient,
    "InternalError": Transient,
    "InternalFailure": Transient,
    "ServiceUnavailable": Transient,
    "Unavailable": Transient,
    "UnauthorizedOperation": PermissionDenied,
    "AuthFailure": PermissionDenied,
    "AccessDenied": PermissionDenied,
    "OptInRequired": PermissionDenied,
    "Blocked": PermissionDenied,
    "PendingVerification": PermissionDenied,
    "InvalidClientTokenId": PermissionDenied,
    "SignatureDoesNotMatch": PermissionDenied,
    "InvalidInstanceID.NotFound": NotFound,
    "IdempotentParameterMismatch": InvalidRequest,
    "MissingParameter": InvalidRequest,
    "Unsupported": InvalidRequest,
    "UnsupportedOperation": InvalidRequest,
}
"""EC2 error codes and their types; any other ``Invalid*`` code is an InvalidRequest,
any other code with an HTTP status >= 500 is Transient, anything else propagates."""

# the catalog's instance type per accelerator, used when the catalog has no aws offer
_FALLBACK_TYPES: Mapping[str, tuple[str, int]] = {
    "h100": ("p5.48xlarge", 8), "h200": ("p5en.48xlarge", 8), "a100": ("p4d.24xlarge", 8),
    "b200": ("p6-b200.48xlarge", 8), "trn1": ("trn1.32xlarge", 16),
    "trn2": ("trn2.48xlarge", 16), "inf2": ("inf2.48xlarge", 12),
}


def sdk(module: str) -> Any:
    """Import an SDK module lazily, typed ``Any`` (boto3 ships no type hints)."""
    return importlib.import_module(module)


def instance_type_for(accelerator: str, region: str) -> tuple[str, int]:
    """The EC2 instance type and its chips for ``accelerator``, from the catalog.

    Prefers a type listed in ``region``; raises ``ValueError`` for an unknown accelerator.
    """
    from cloudhedge.catalog import load_builtin

    offers = load_builtin().find(provider="aws", accelerator=accelerator)
    in_region = [o for o in offers if o.region == region]
    for offer in in_region or offers:
        return offer.instance_type, offer.chips_per_instance
    if accelerator in _FALLBACK_TYPES:
        return _FALLBACK_TYPES[accelerator]
    raise ValueError(f"no aws instance type for accelerator {accelerator!r}")


def client_token(provider: str, key: str) -> str:
    """The EC2 ``ClientToken`` of an idempotency key: 64 hex chars (EC2 allows 64)."""
    return hashlib.sha256(f"{provider}\0{key}".encode()).hexdigest()


def request_hash(request: LaunchRequest) -> str:
    """A hash of everything in a request but its key (tag ``cloudhedge:request``)."""
    body = json.dumps([request.workload, request.pool, request.chips, request.command,
                       sorted(request.env.items()), request.replica_port])
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class _PoolPlan:
    pool: Pool
    capacity_chips: int
    instance_type: str
    chips_per_instance: int
    zone: str | None


@dataclass
class _Gang:
    """What this adapter knows of one key: machines seen, times first observed."""

    key: str
    region: str
    machines: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> EC2 shape
    instance: Instance | None = None
    seen_live: bool = False


def _tags(machine: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in machine.get("Tags", [])}


class AwsProvider:
    """EC2 as a provider; see the module docstring.

    ``pools`` are a fleet's pools (those of other providers are ignored); ``image_id``
    the AMI to boot (one id, or one per region). Clients: ``region_clients`` (region ->
    boto3 EC2 client) if given, else made from ``session`` (a ``boto3.Session``; default
    one if ``None``) with ``endpoint_url``. ``zones`` pins pools to availability zones
    (pool -> zone), ``launch_options`` adds ``RunInstances`` arguments (``SubnetId``,
    ``SecurityGroupIds``, ``IamInstanceProfile``, ...), ``checkpoint_root``
    (``s3://bucket/prefix``) gives each workload ``CLOUDHEDGE_CHECKPOINT=<root>/<workload>``.
    """

    def __init__(self, pools: Iterable[Pool], *, clock: Clock,
                 image_id: str | Mapping[str, str],
                 region_clients: Mapping[str, Any] | None = None, session: Any = None,
                 endpoint_url: str | None = None, name: str = "aws",
                 zones: Mapping[str, str] | None = None,
                 instance_types: Mapping[str, tuple[str, int]] | None = None,
                 launch_options: Mapping[str, Any] | None = None,
                 checkpoint_root: str | None = None, period: int = 0) -> None:
        self._name = name
        self._clock = clock
        self._plans: dict[str, _PoolPlan] = {}
        for p in pools:
            if p.provider != name:
                continue
            if not 0 <= period < len(p.capacity_chips):
                raise ValueError(f"period {period} is outside pool {p.name!r}'s capacities")
            itype, cpi = (instance_types or {}).get(p.accelerator) or instance_type_for(
                p.accelerator, p.region)
            self._plans[p.name] = _PoolPlan(p, int(p.capacity_chips[period]), itype, cpi,
                                            (zones or {}).get(p.name))
        if not self._plans:
            raise ValueError(f"no pool of provider {name!r}")
        self._regions = sorted({plan.pool.region for plan in self._plans.values()})
        images = {r: image_id for r in self._regions} if isinstance(image_id, str) else (
            dict(image_id))
        missing = [r for r in self._regions if r not in images]
        if missing:
            raise ValueError(f"no image_id for regions {missing}")
        self._images = images
        self._given_clients = dict(region_clients or {})
        self._clients: dict[str, Any] = dict(self._given_clients)
        self._session = session
        self._endpoint_url = endpoint_url
        self._client_lock = threading.Lock()
        self._launch_options = dict(launch_options or {})
        self._checkpoint_root = checkpoint_root.rstrip("/") if checkpoint_root else None
        self._gangs: dict[str, _Gang] = {}  # by key
        self._signals: list[HealthSignal] = []
        self._launching = asyncio.Lock()
        self._capabilities = Capabilities(
            spot=any(p.pool.tier is Tier.SPOT for p in self._plans.values()),
            multi_node=True, preemption_signals=True, real_processes=True)

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def instance_type(self, pool: str) -> tuple[str, int]:
        """The instance type of ``pool`` and its chips per instance."""
        plan = self._plans[pool]
        return plan.instance_type, plan.chips_per_instance

    # -- the SDK boundary --------------------------------------------------------------

    def _client(self, region: str) -> Any:
        with self._client_lock:  # boto3 sessions are not thread-safe while making clients
            if region not in self._clients:
                boto3 = sdk("boto3")  # lazy: a missing SDK never breaks import
                session = self._session if self._session is not None else boto3.Session()
                config = sdk("botocore.config").Config(
                    retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)
                self._clients[region] = session.client(
                    "ec2", region_name=region, endpoint_url=self._endpoint_url,
                    config=config)
            return self._clients[region]

    async def _call(self, region: str, fn: Callable[[Any], T], *,
                    zone: str | None = None) -> T:
        """Run ``fn(client)`` in a thread; translate SDK errors into typed ones."""

        def blocking() -> T:
            return fn(self._client(region))

        try:
            return await asyncio.to_thread(blocking)
        except ProviderError:
            raise
        except Exception as exc:  # translated below, or re-raised
            translated = self._translate(exc, region, zone)
            if translated is None:
                raise
            raise translated from exc

    def _translate(self, exc: Exception, region: str, zone: str | None) -> ProviderError | None:
        """The typed error for an SDK exception (by code or exception class), or None."""
        bx = sdk("botocore.exceptions")
        region_scope = Scope.of_region(self._name, region)
        if isinstance(exc, bx.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            kind = ERRORS.get(code)
            if kind is None and code.startswith("Invalid"):
                kind = InvalidRequest
            if kind is None and status >= 500:
                kind = Transient
            if kind is None:
                return None
            message = f"EC2 {code}: {error.get('Message', '')}"
            if kind is CapacityUnavailable:
                scope = (Scope.of_zone(self._name, region, zone) if zone else region_scope)
            elif kind is PermissionDenied or kind is NotFound:
                scope = Scope.of_provider(self._name)
            else:
                scope = region_scope
            return kind(message, scope=scope)
        if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
            return PermissionDenied(f"no aws credentials: {exc}",
                                    scope=Scope.of_provider(self._name))
        if isinstance(exc, bx.EndpointConnectionError | bx.ConnectionError
                      | bx.ConnectTimeoutError | bx.ReadTimeoutError):
            return Transient(f"EC2 unreachable: {exc}", scope=region_scope)
        return None

    async def _describe(self, region: str) -> list[dict[str, Any]]:
        """Every managed machine of ``region`` (all pages), ended ones included."""

        def fn(ec2: Any) -> list[dict[str, Any]]:
            machines: list[dict[str, Any]] = []
            pages = ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": f"tag:{TAG_MANAGED}", "Values": ["true"]},
                         {"Name": f"tag:{TAG_PROVIDER}", "Values": [self._name]}])
            for page in pages:
                for reservation in page.get("Reservations", []):
                    machines.extend(reservation.get("Instances", []))
            return machines

        return await self._call(region, fn)

    # -- observation -------------------------------------------------------------------

    async def _refresh(self) -> None:
        """Describe every region and bring the gangs (and preemption signals) up to date."""
        found = await asyncio.gather(*(self._describe(r) for r in self._regions))
        for region, machines in zip(self._regions, found, strict=True):
            for m in machines:
                key = _tags(m).get(TAG_KEY)
                if key is None:
                    continue
                gang = self._gangs.setdefault(key, _Gang(key, region))
                gang.machines[m["InstanceId"]] = m
        for gang in self._gangs.values():
            self._observe(gang)

    def _observe(self, gang: _Gang) -> None:
        """Recompute a gang's snapshot from its machines; queue a preemption signal."""
        previous = gang.instance
        if previous is not None and previous.state.ended:
            return  # ended stays ended
        machines = sorted(gang.machines.values(),
                          key=lambda m: (int(m.get("AmiLaunchIndex", 0)), m["InstanceId"]))
        if not machines:
            return
        leader, tags = machines[0], _tags(machines[0])
        pool = tags.get(TAG_POOL, "")
        plan = self._plans.get(pool)
        state, detail, exit_code = self._state_of(machines)
        now = self._clock.now()
        created = float(tags.get(TAG_CREATED, now))
        zone = leader.get("Placement", {}).get("AvailabilityZone") or (
            plan.zone if plan else None)
        instance = Instance(
            id=leader["InstanceId"], idempotency_key=gang.key,
            workload=tags.get(TAG_WORKLOAD, ""), pool=pool, provider=self._name,
            region=gang.region, zone=zone,
            accelerator=plan.pool.accelerator if plan else tags.get(TAG_ACCELERATOR, ""),
            chips=int(tags.get(TAG_CHIPS, "0")), state=state, created_at=created,
            started_at=previous.started_at if previous else None,
            ended_at=None, exit_code=exit_code, detail=detail,
            address=leader.get("PrivateIpAddress"))
        if state is InstanceState.RUNNING and instance.started_at is None:
            instance = replace(instance, started_at=now)
        if state.ended:
            instance = replace(instance, ended_at=now)
            if state is InstanceState.PREEMPTED and gang.seen_live:
                self._signals.append(HealthSignal(
                    SignalKind.PREEMPTED, Scope.of_pool(pool), False, detail, now,
                    instance.id))
        else:
            gang.seen_live = True
        if previous is None or previous.state is not state:
            log.info("%s (%s) %s: %s", instance.id, gang.key, state, detail or "-")
        gang.instance = instance

    @staticmethod
    def _state_of(machines: list[dict[str, Any]]) -> tuple[InstanceState, str, int | None]:
        """(state, detail, exit code) of a gang; the rules are in the module docstring."""
        ended = [m for m in machines if m["State"]["Name"] in _ENDED_EC2]
        reasons = {m["InstanceId"]: (m.get("StateReason") or {}).get("Code", "")
                   for m in ended}
        codes = {m["InstanceId"]: _tags(m).get(TAG_EXIT) for m in ended}
        for mid, reason in reasons.items():
            if reason == SPOT_INTERRUPTION:
                return InstanceState.PREEMPTED, f"spot interruption of {mid}", None
        for mid, code in codes.items():
            if code is not None and code != "0":
                value = int(code) if code.lstrip("-").isdigit() else -1
                return InstanceState.FAILED, f"{mid} exited with code {code}", value
        for mid, reason in reasons.items():
            if codes[mid] is None and reason == USER_SHUTDOWN:
                return InstanceState.TERMINATED, "terminated", None
        for m in ended:
            if codes[m["InstanceId"]] is None:
                why = reasons[m["InstanceId"]] or m["State"]["Name"]
                return InstanceState.FAILED, f"{m['InstanceId']} ended: {why}", None
        if ended and len(ended) == len(machines):
            return InstanceState.SUCCEEDED, "exit code 0", 0
        if any(m["State"]["Name"] == "pending" for m in machines):
            return InstanceState.PENDING, "", None
        return InstanceState.RUNNING, "", None

    def _live_chips(self, pool: str) -> int:
        return sum(g.instance.chips for g in self._gangs.values()
                   if g.instance is not None and g.instance.pool == pool
                   and not g.instance.state.ended)

    # -- the Provider protocol ---------------------------------------------------------

    async def offers(self) -> list[Offer]:
        await self._refresh()
        return [Offer(name, self._name, plan.pool.region, plan.zone, plan.pool.accelerator,
                      plan.pool.tier, plan.capacity_chips,
                      max(0, plan.capacity_chips - self._live_chips(name)),
                      plan.pool.price_usd_per_chip_hour)
                for name, plan in self._plans.items()]

    async def launch(self, request: LaunchRequest) -> Instance:
        plan = self._plans.get(request.pool)
        if plan is None:
            raise InvalidRequest(f"no pool {request.pool!r}",
                                 scope=Scope.of_provider(self._name))
        pool_scope = Scope.of_pool(plan.pool.name)
        if request.chips <= 0:
            raise InvalidRequest("chips must be > 0", scope=pool_scope)
        if not request.command:
            raise InvalidRequest("empty command", scope=pool_scope)
        async with self._launching:  # one launch at a time: no key or chip counted twice
            await self._refresh()
            existing = self._gangs.get(request.idempotency_key)
            if existing is not None and existing.instance is not None:
                return self._same_request(existing, request)
            free = plan.capacity_chips - self._live_chips(plan.pool.name)
            if request.chips > free:
                raise CapacityUnavailable(f"{request.chips} chips asked, {max(free, 0)} free",
                                          scope=pool_scope)
            args = self._run_args(plan, request)
            region = plan.pool.region
            response = await self._call(region, lambda ec2: ec2.run_instances(**args),
                                        zone=plan.zone)
            gang = _Gang(request.idempotency_key, region)
            for m in response.get("Instances", []):
                gang.machines[m["InstanceId"]] = m  # until DescribeInstances shows them
            self._gangs[request.idempotency_key] = gang
            self._observe(gang)
            assert gang.instance is not None
            log.info("launched %s: %d x %s for %s (%s chips of %s)", gang.instance.id,
                     args["MinCount"], plan.instance_type, request.workload, request.chips,
                     plan.pool.name)
            return gang.instance

    def _same_request(self, gang: _Gang, request: LaunchRequest) -> Instance:
        assert gang.instance is not None
        hashes = {_tags(m).get(TAG_REQUEST) for m in gang.machines.values()}
        if hashes != {request_hash(request)}:
            raise InvalidRequest(
                f"idempotency key {request.idempotency_key!r} was used for another request",
                scope=Scope.of_pool(gang.instance.pool))
        return gang.instance

    def _run_args(self, plan: _PoolPlan, request: LaunchRequest) -> dict[str, Any]:
        count = math.ceil(request.chips / plan.chips_per_instance)
        tags = {TAG_MANAGED: "true", TAG_PROVIDER: self._name,
                TAG_KEY: request.idempotency_key, TAG_WORKLOAD: request.workload,
                TAG_POOL: plan.pool.name,
                TAG_ACCELERATOR: plan.pool.accelerator, TAG_CHIPS: str(request.chips),
                TAG_REQUEST: request_hash(request), TAG_CREATED: repr(self._clock.now()),
                "Name": f"cloudhedge-{request.workload}"[:255]}
        user_data = self._user_data(plan, request, count)
        if len(user_data.encode()) > USER_DATA_LIMIT_BYTES:
            raise InvalidRequest("command and env exceed EC2's 16 KiB of user data",
                                 scope=Scope.of_pool(plan.pool.name))
        args: dict[str, Any] = {
            **self._launch_options,
            "ImageId": self._images[plan.pool.region], "InstanceType": plan.instance_type,
            "MinCount": count, "MaxCount": count,
            "ClientToken": client_token(self._name, request.idempotency_key),
            "UserData": user_data, "InstanceInitiatedShutdownBehavior": "terminate",
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [
                {"Key": k, "Value": v[:256]} for k, v in tags.items()]}],
        }
        if plan.zone is not None:
            args["Placement"] = {**args.get("Placement", {}), "AvailabilityZone": plan.zone}
        if plan.pool.tier is Tier.SPOT:
            args["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": {
                "SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}}
        return args

    def _user_data(self, plan: _PoolPlan, request: LaunchRequest, count: int) -> str:
        """The boot script: environment, the command, its exit code as a tag, shutdown."""
        env = {**request.env, "CLOUDHEDGE_PROVIDER": self._name,
               "CLOUDHEDGE_REGION": plan.pool.region,
               "CLOUDHEDGE_ACCELERATOR": plan.pool.accelerator,
               "CLOUDHEDGE_POOL": plan.pool.name, "CLOUDHEDGE_NODES": str(count),
               "CLOUDHEDGE_KEY": request.idempotency_key}
        if request.replica_port is not None:
            env["CLOUDHEDGE_REPLICA_PORT"] = str(request.replica_port)
        if self._checkpoint_root is not None:
            env["CLOUDHEDGE_CHECKPOINT"] = f"{self._checkpoint_root}/{request.workload}"
        imds = "http://169.254.169.254/latest"
        lines = ["#!/bin/sh", "# cloudhedge: run the command, tag its exit code, shut down",
                 *(f"export {k}={shlex.quote(v)}" for k, v in env.items()
                   if k.isidentifier()),
                 f"T=$(curl -s -X PUT {imds}/api/token"
                 " -H 'X-aws-ec2-metadata-token-ttl-seconds: 600')",
                 f'md() {{ curl -s -H "X-aws-ec2-metadata-token: $T" {imds}/meta-data/$1; }}',
                 "export CLOUDHEDGE_INSTANCE=$(md instance-id)",
                 "export CLOUDHEDGE_NODE_RANK=$(md ami-launch-index)",
                 f"{shlex.join(request.command)} >/var/log/cloudhedge.log 2>&1",
                 "code=$?",
                 f"aws ec2 create-tags --region {shlex.quote(plan.pool.region)}"
                 f' --resources "$CLOUDHEDGE_INSTANCE" --tags Key={TAG_EXIT},Value=$code',
                 "shutdown -h now", ""]
        return "\n".join(lines)

    async def get(self, instance_id: str) -> Instance:
        await self._refresh()
        gang = self._known_gang(instance_id)
        if gang is not None and gang.instance is not None:
            return gang.instance
        raise NotFound(f"no instance {instance_id!r}", scope=Scope.of_provider(self._name))

    async def list_instances(self) -> list[Instance]:
        await self._refresh()
        return [g.instance for g in self._gangs.values() if g.instance is not None]

    def _known_gang(self, instance_id: str) -> _Gang | None:
        return next((g for g in self._gangs.values()
                     if g.instance is not None and g.instance.id == instance_id), None)

    async def _gang_of(self, instance_id: str) -> _Gang | None:
        """The gang behind ``instance_id``, looked up again after a refresh if unknown."""
        gang = self._known_gang(instance_id)
        if gang is None:
            await self._refresh()
            gang = self._known_gang(instance_id)
        return gang

    async def terminate(self, instance_id: str) -> None:
        gang = await self._gang_of(instance_id)
        if gang is None:
            return  # unknown: nothing to do
        ids = sorted(gang.machines)
        try:
            await self._call(gang.region, lambda ec2: ec2.terminate_instances(InstanceIds=ids))
            machines = await self._call(gang.region, lambda ec2: _describe_ids(ec2, ids))
        except NotFound:
            return  # gone already (or not yet visible: the next refresh tells)
        gang.machines.update({m["InstanceId"]: m for m in machines})
        self._observe(gang)

    async def logs(self, instance_id: str, *, tail_lines: int = 200) -> str:
        """The tail of the console output of the gang's first machine (EC2 keeps the
        latest 64 KB; "" until the machine has written any)."""
        gang = await self._gang_of(instance_id)
        if gang is None:
            raise NotFound(f"no instance {instance_id!r}", scope=Scope.of_provider(self._name))
        answer = await self._call(gang.region, lambda ec2: ec2.get_console_output(
            InstanceId=instance_id, Latest=True))
        text = str(answer.get("Output") or "")
        return "".join(text.splitlines(keepends=True)[-tail_lines:])

    async def signals(self) -> list[HealthSignal]:
        await self._refresh()
        out, self._signals = self._signals, []
        return out

    async def close(self) -> None:
        """Forget the clients. Instances keep running; a new adapter adopts them."""
        with self._client_lock:
            self._clients = dict(self._given_clients)


def _describe_ids(ec2: Any, ids: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for reservation in ec2.describe_instances(InstanceIds=ids).get("Reservations", []):
        out.extend(reservation.get("Instances", []))
    return out
