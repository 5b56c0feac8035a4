"""``cloudhedge up``: the control plane in one process.

:class:`ControlPlane` wires an :class:`~cloudhedge.control.providers.EmulatedCloud` of the
fleet (instances are local processes, under ``STATE_DIR/instances``), the
:class:`~cloudhedge.control.store.ControlStore` (``sqlite:///STATE_DIR/control.db`` unless
``database_url`` is given), a :class:`~cloudhedge.control.placement.Placer` (guided by the
plan, if any), the :class:`~cloudhedge.control.reconciler.Reconciler` and the API
(:mod:`cloudhedge.control.api`). The reconciler loop is an asyncio task started and
stopped by the server's lifespan. :meth:`ControlPlane.serve` binds the port, writes
``STATE_DIR/server.json`` (pid, url, token; mode 0600) and removes it on exit. After a
graceful shutdown on a signal, uvicorn re-raises the signal, so the process ends with
its status (e.g. -15 after ``cloudhedge down``).

The token is generated when not given; the server keeps only its hash in memory.

Shutdown (SIGTERM from ``cloudhedge down``, or Ctrl-C) stops the loop, then closes the
emulated cloud, which **terminates its instances**. The store keeps their attempts as
``running``: the next ``cloudhedge up`` finds no such instance (an emulated cloud lives
and dies with its process, so there is nothing to adopt), marks them ``lost`` and places
the work again; training resumes from its checkpoint. With real cloud adapters the
instances would be left running and adopted by idempotency key instead; leaving
emulated ones behind would only orphan processes nothing can adopt or reap.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from cloudhedge.control.api import create_api, hash_token
from cloudhedge.control.client import ServerState, state_path, write_state
from cloudhedge.control.placement import Placer
from cloudhedge.control.providers import Clock, EmulatedCloud, SystemClock
from cloudhedge.control.reconciler import Reconciler
from cloudhedge.control.store import ControlStore
from cloudhedge.core.models import Fleet
from cloudhedge.core.plan import Plan

__all__ = ["ControlPlane"]

log = logging.getLogger(__name__)


class ControlPlane:
    """Store + emulated clouds + placer + reconciler + API; see the module docstring."""

    def __init__(self, fleet: Fleet, *, plan: Plan | None = None, state_dir: Path,
                 database_url: str | None = None, token: str | None = None,
                 clock: Clock | None = None, run_processes: bool = True,
                 interval_s: float = 2.0) -> None:
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
        self.reconciler = Reconciler(self.store, self.cloud.providers(), self.placer, fleet,
                                     clock=self.clock, interval_s=interval_s)
        self.app = create_api(self.reconciler, self.store, fleet=fleet,
                              token_hash=self.token_hash, lifespan=self._lifespan)

    def take_token(self) -> str:
        """The token, once (to print it and write the state file); then only its hash stays."""
        token, self._token = self._token, ""
        return token

    @asynccontextmanager
    async def _lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(self.reconciler.run(stop), name="reconciler")
        try:
            yield
        finally:
            stop.set()
            with suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=30)
            await self.cloud.close()
            self.store.close()
            # here, not only after server.run(): uvicorn re-raises SIGTERM/SIGINT once shut
            # down, so the process may end before run() returns
            state_path(self.state_dir).unlink(missing_ok=True)

    def serve(self, *, host: str = "127.0.0.1", port: int = 8700, token: str,
              log_level: str = "warning") -> None:
        """Serve in the foreground until SIGTERM/SIGINT; the state file exists meanwhile."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)  # connections queue until uvicorn accepts: clients may call at once
        bound = sock.getsockname()[1]
        config = uvicorn.Config(self.app, host=host, port=bound, lifespan="on",
                                log_level=log_level, access_log=False)
        server = uvicorn.Server(config)
        write_state(self.state_dir, ServerState(os.getpid(), f"http://{host}:{bound}", token))
        try:
            server.run(sockets=[sock])
        finally:
            state_path(self.state_dir).unlink(missing_ok=True)
