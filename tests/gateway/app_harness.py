"""A real gateway over real mock upstreams on loopback, for the ``test_app_*`` tests.

:func:`stack` starts three mocks (providers azure, aws, gcp), builds a
:class:`GatewayConfig` over them (:func:`make_config`), serves the gateway under uvicorn
and yields a :class:`Stack`: the mocks, the app, its URL and an official ``openai``
client per key. Keys and tenants:

    all      tenant acme      class any          every provider
    azure    tenant contoso   class azure-only   providers {azure}
    nowhere  tenant ghost     class oci-only     providers {oci}: no deployment at all
    limited  tenant acme                         2 requests per minute

Models: ``gpt-test`` (chat, completions) on azure-gpt, aws-gpt, gcp-gpt; ``embed-test``
(embeddings) on azure-embed and gcp-embed. Each provider has its own prices, so costs
tell where a request went. Timeouts and cool-downs are short (tests finish fast).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai

from cloudhedge.gateway.app import Gateway, build_app_from_config
from cloudhedge.gateway.config import (
    ApiKey,
    Deployment,
    Endpoint,
    GatewayConfig,
    HealthPolicy,
    RetryPolicy,
    Tenant,
    TenantClass,
    hash_key,
)
from cloudhedge.gateway.mock import AppServer, MockServer

PROVIDERS = ("azure", "aws", "gcp")
KEYS = {"all": "sk-test-all", "azure": "sk-test-azure", "nowhere": "sk-test-nowhere",
        "limited": "sk-test-limited"}
ADMIN_KEY = "sk-test-admin"
PRICES = {"azure": (1.0, 2.0), "aws": (3.0, 4.0), "gcp": (5.0, 6.0)}  # USD per M in, out
CHAT = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})


def make_config(urls: dict[str, str], database_url: str, *, timeout_s: float = 0.5,
                **overrides: Any) -> GatewayConfig:
    """The test configuration over mocks at ``urls`` (provider -> base URL)."""
    deployments = [
        Deployment(name=f"{p}-gpt", model="gpt-test", provider=p, region=f"{p}-east",
                   jurisdiction="us", base_url=urls[p], endpoints=CHAT, timeout_s=timeout_s,
                   input_usd_per_million=PRICES[p][0], output_usd_per_million=PRICES[p][1])
        for p in PROVIDERS
    ] + [
        Deployment(name=f"{p}-embed", model="embed-test", provider=p, region=f"{p}-east",
                   jurisdiction="us", base_url=urls[p],
                   endpoints=frozenset({Endpoint.EMBEDDINGS}), timeout_s=timeout_s,
                   input_usd_per_million=PRICES[p][0])
        for p in ("azure", "gcp")
    ]
    config = GatewayConfig(
        deployments=tuple(deployments),
        classes={"any": TenantClass("any"),
                 "azure-only": TenantClass("azure-only", providers=frozenset({"azure"})),
                 "oci-only": TenantClass("oci-only", providers=frozenset({"oci"}))},
        tenants={"acme": Tenant("acme", "any"), "contoso": Tenant("contoso", "azure-only"),
                 "ghost": Tenant("ghost", "oci-only")},
        keys=(ApiKey("all", hash_key(KEYS["all"]), "acme"),
              ApiKey("azure", hash_key(KEYS["azure"]), "contoso"),
              ApiKey("nowhere", hash_key(KEYS["nowhere"]), "ghost"),
              ApiKey("limited", hash_key(KEYS["limited"]), "acme", requests_per_minute=2)),
        health=HealthPolicy(failure_threshold=2, cooldown_s=0.5),
        retry=RetryPolicy(max_attempts=3, deadline_s=5.0, max_retry_after_s=2.0),
        database_url=database_url,
        admin_key_hash=hash_key(ADMIN_KEY),
        max_body_bytes=64_000,
        source="tests",
    )
    return dataclasses.replace(config, **overrides)


@dataclass
class Stack:
    mocks: dict[str, MockServer]
    app: Gateway
    url: str  # the gateway, e.g. http://127.0.0.1:PORT
    urls: dict[str, str]  # the mocks' base URLs, by provider
    next_config: list[GatewayConfig | Exception]  # POST /admin/reload loads (raises) the last

    def client(self, key: str = "all", **kw: Any) -> openai.OpenAI:
        """An official client for ``KEYS[key]``; no client-side retries (the gateway's
        failover must be what saves a request)."""
        return openai.OpenAI(base_url=self.url + "/v1", api_key=kw.pop("api_key", KEYS[key]),
                             max_retries=0, timeout=kw.pop("timeout", 10.0), **kw)

    def async_client(self, key: str = "all") -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=KEYS[key], max_retries=0,
                                  timeout=10.0)

    def served(self) -> dict[str, int]:
        """API requests each mock received, by provider."""
        return {p: m.stats()["requests"] for p, m in self.mocks.items()}

    def heal(self) -> None:
        """Clear every fault (a mock stopped by a test is started again)."""
        for m in self.mocks.values():
            m.start()
            m.fault("none")


@contextlib.contextmanager
def stack(tmp_path: Path, *, latency_ms: float = 0.0, tokens_per_s: float = 0.0,
          database_url: str | None = None, **overrides: Any) -> Iterator[Stack]:
    """Three mocks and a gateway over them, all on loopback (accounting in SQLite under
    ``tmp_path`` unless ``database_url`` says otherwise)."""
    with contextlib.ExitStack() as es:
        mocks = {p: MockServer(name=p, latency_ms=latency_ms, tokens_per_s=tokens_per_s)
                 for p in PROVIDERS}
        urls = {p: es.enter_context(m) for p, m in mocks.items()}
        config = make_config(urls, database_url or f"sqlite:///{tmp_path / 'gateway.db'}",
                             **overrides)
        next_config: list[GatewayConfig | Exception] = [config]

        def load() -> GatewayConfig:
            last = next_config[-1]
            if isinstance(last, Exception):
                raise last
            return last

        app = build_app_from_config(config, config_loader=load)
        url = es.enter_context(AppServer(app))
        yield Stack(mocks, app, url, urls, next_config)


# ---------------------------------------------------------------- processes

CLI = [sys.executable, "-c", "from cloudhedge.cli.main import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def gateway_process(args: list[str], env: dict[str, str] | None = None
                    ) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``cloudhedge gateway ARGS`` as a process on a free port; yields (URL, process)."""
    port = free_port()
    proc = subprocess.Popen([*CLI, "gateway", "--port", str(port), *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.ConnectError:
                pass
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)
