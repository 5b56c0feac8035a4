"""``cloudhedge up``: the control plane in one process.

:class:`ControlPlane` wires an :class:`~cloudhedge.control.providers.EmulatedCloud` of the
fleet (instances are local processes, under ``STATE_DIR/instances``), the
:class:`~cloudhedge.control.store.ControlStore` (``sqlite:///STATE_DIR/control.db`` unless
``database_url`` is given), a :class:`~cloudhedge.control.placement.Placer` (guided by the
plan, if any), the :class:`~cloudhedge.control.reconciler.Reconciler`, the API
(:mod:`cloudhedge.control.api`), fault injection (:class:`~cloudhedge.control.chaos.Chaos`)
and the OpenAI-compatible gateway (:mod:`cloudhedge.gateway`) whose deployments are
the ready service replicas (:class:`~cloudhedge.control.replicas.ReplicaRouter`).

:meth:`ControlPlane.serve` binds two ports (the API, and the gateway), runs both
servers and the two loops (reconciler, replica router) in one event loop, writes
``STATE_DIR/server.json`` (pid, urls, API token, gateway keys; mode 0600) and removes
it on exit. SIGTERM (``cloudhedge down``) or Ctrl-C stops everything gracefully; the process
then exits 0.

Tokens: the API token is generated when not given; the server keeps only its hash. The
gateway's keys come from ``--gateway gateway.yaml`` (tenants, classes, keys from
environment variables) or, by default, one generated key per tenant class of the
fleet's exclusivity policy (plus ``default``, allowed anywhere). Workloads report
heartbeats with a per-attempt token, an HMAC of the attempt's key under
``STATE_DIR/secret.key`` (kept across restarts, so adopted instances can still report).

``providers`` replaces the emulated adapters of some providers by real ones (``cloudhedge
up --aws-image AMI``: the fleet's aws pools on EC2); fault injection still acts on the
emulated clouds only.

Shutdown closes the emulated cloud, which **terminates its instances**: ``cloudhedge
down`` leaves nothing running there. Real adapters are closed, their instances left
running. A control plane that dies without shutting down (SIGKILL, a crash) leaves
every instance running; the next ``cloudhedge up`` on the same state directory adopts
them by idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from cloudhedge.control.api import create_api, hash_token
from cloudhedge.control.chaos import Chaos
from cloudhedge.control.client import ServerState, state_path, write_state
from cloudhedge.control.placement import Placer
from cloudhedge.control.providers import (
    Clock,
    EmulatedCloud,
    NotFound,
    Provider,
    SystemClock,
)
from cloudhedge.control.reconciler import Reconciler
from cloudhedge.control.replicas import ReplicaRouter
from cloudhedge.control.store import Attempt, ControlStore
from cloudhedge.core.models import Fleet
from cloudhedge.core.plan import Plan
from cloudhedge.gateway.app import Gateway, build_app_from_config
from cloudhedge.gateway.config import (
    ApiKey,
    GatewayConfig,
    HealthPolicy,
    Tenant,
    TenantClass,
    hash_key,
)

__all__ = ["ControlPlane", "default_gateway_config"]

log = logging.getLogger(__name__)

DEFAULT_TENANT = "default"


def default_gateway_config(fleet: Fleet, database_url: str) -> tuple[GatewayConfig, dict[str, str]]:
    """Tenants and keys from the fleet's policies, and the keys in clear (shown once).

    One tenant per tenant class of the exclusivity policy (served only on its allowed
    providers) and one ``default`` tenant served anywhere; one generated key each.
    """
    classes = {name: TenantClass(name, providers=frozenset(allowed))
               for name, allowed in fleet.policies.exclusivity.items()}
    classes.setdefault(DEFAULT_TENANT, TenantClass(DEFAULT_TENANT))
    tenants = {name: Tenant(name, name) for name in classes}
    keys = {name: f"ch-{name}-{secrets.token_urlsafe(18)}" for name in tenants}
    config = GatewayConfig(
        deployments=(), tenants=tenants, classes=classes,
        keys=tuple(ApiKey(name, hash_key(key), name) for name, key in keys.items()),
        health=HealthPolicy(failure_threshold=2, cooldown_s=10.0),
        database_url=database_url, source="<cloudhedge up: from the fleet's policies>")
    return config, keys


def _secret(state_dir: Path) -> bytes:
    """The HMAC key of attempt tokens, created once per state directory (mode 0600)."""
    path = state_dir / "secret.key"
    with suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_hex(32))
    return path.read_text(encoding="utf-8").strip().encode()


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals to :meth:`ControlPlane.serve` (two servers
    share one loop; each would otherwise replace the other's handlers)."""

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class ControlPlane:
    """Store + emulated clouds + placer + reconciler + API + gateway; see the module doc."""

    def __init__(self, fleet: Fleet, *, plan: Plan | None = None, state_dir: Path,
                 database_url: str | None = None, token: str | None = None,
                 clock: Clock | None = None, run_processes: bool = True,
                 interval_s: float = 1.0, gateway: GatewayConfig | None = None,
                 heartbeat_timeout_s: float = 60.0, launch_timeout_s: float = 900.0,
                 block_for_s: float = 600.0,
                 providers: Mapping[str, Provider] | None = None,
                 wake_gap_s: float | None = 0.2) -> None:
        self.fleet = fleet
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.clock: Clock = SystemClock() if clock is None else clock
        self.generated_token = token is None
        self._token = secrets.token_urlsafe(32) if token is None else token
        self.token_hash = hash_token(self._token)
        url = database_url or f"sqlite:///{(state_dir / 'control.db').resolve()}"
        self.store = ControlStore(url, clock=self.clock.now)
        self.cloud = EmulatedCloud(fleet, clock=self.clock, run_processes=run_processes,
                                   workdir=(state_dir / "instances").resolve())
        self.placer = Placer(fleet, plan)
        adapters = self.cloud.providers()
        unknown = set(providers or {}) - set(adapters)
        if unknown:
            raise ValueError(f"no pool of the fleet is on {', '.join(sorted(unknown))}")
        adapters.update(providers or {})  # real clouds replace their emulated twins
        self.real = sorted(providers or {})
        self.reconciler = Reconciler(self.store, adapters, self.placer, fleet,
                                     clock=self.clock, interval_s=interval_s,
                                     attempt_secret=_secret(state_dir),
                                     heartbeat_timeout_s=heartbeat_timeout_s,
                                     launch_timeout_s=launch_timeout_s,
                                     block_for_s=block_for_s, wake_gap_s=wake_gap_s)
        self.chaos = Chaos(self.cloud, self.store, fleet, clock=self.clock)
        usage_db = f"sqlite:///{(state_dir / 'gateway.db').resolve()}"
        if gateway is None:
            gateway, self.gateway_keys = default_gateway_config(fleet, usage_db)
        else:
            self.gateway_keys = {}
        self.gateway: Gateway = build_app_from_config(gateway)
        self.router = ReplicaRouter(self.store, fleet, clock=self.clock, base=gateway,
                                    apply=self.gateway.replace_config)
        self.app = create_api(self.reconciler, self.store, fleet=fleet,
                              token_hash=self.token_hash, lifespan=self._lifespan,
                              chaos=self.chaos, logs=self._logs,
                              routed=lambda: self.router.ready)

    async def _logs(self, a: Attempt, tail: int) -> str:
        """The tail of what an attempt's instance wrote, from its provider."""
        provider = self.reconciler.providers.get(a.provider)
        if a.instance_id is None or provider is None:
            return ""
        try:
            return await provider.logs(a.instance_id, tail_lines=tail)
        except NotFound:
            return ""

    def take_token(self) -> str:
        """The token, once (to print it and write the state file); then only its hash stays."""
        token, self._token = self._token, ""
        return token

    @asynccontextmanager
    async def _lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(self.reconciler.run(stop), name="reconciler"),
                 asyncio.create_task(self.router.run(stop), name="replica-router")]
        try:
            yield
        finally:
            stop.set()
            with suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
            await self.cloud.close()
            for name in self.real:
                await self.reconciler.providers[name].close()
            self.store.close()
            # here, not only after serve(): uvicorn re-raises SIGTERM/SIGINT once shut
            # down, so the process may end before serve() returns
            state_path(self.state_dir).unlink(missing_ok=True)

    def serve(self, *, host: str = "127.0.0.1", port: int = 8700, gateway_port: int = 8701,
              token: str, log_level: str = "warning",
              announce: Callable[[str, str], None] | None = None) -> None:
        """Serve in the foreground until SIGTERM/SIGINT; the state file exists meanwhile.

        ``announce(api_url, gateway_url)`` is called once both ports are bound.
        """
        api_sock, gateway_sock = _listen(host, port), _listen(host, gateway_port)
        api_url = f"http://{host}:{api_sock.getsockname()[1]}"
        gateway_url = f"http://{host}:{gateway_sock.getsockname()[1]}/v1"
        self.reconciler.api_url = api_url
        api = _QuietServer(uvicorn.Config(self.app, lifespan="on", log_level=log_level,
                                          access_log=False))
        gateway = _QuietServer(uvicorn.Config(self.gateway, lifespan="on",
                                              log_level=log_level, access_log=False))

        def stop() -> None:
            api.should_exit = gateway.should_exit = True

        async def both() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop)
            served = asyncio.create_task(gateway.serve(sockets=[gateway_sock]))
            try:
                await api.serve(sockets=[api_sock])
            finally:
                stop()  # the gateway ends with the API (its lifespan flushes the usage)
                await served

        write_state(self.state_dir, ServerState(os.getpid(), api_url, token,
                                                gateway_url=gateway_url,
                                                gateway_keys=self.gateway_keys))
        if announce is not None:
            announce(api_url, gateway_url)
        try:
            asyncio.run(both())
        finally:
            state_path(self.state_dir).unlink(missing_ok=True)


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # connections queue until uvicorn accepts: clients may call at once
    return sock

