"""The gateway's resolved configuration: frozen value objects every module codes against.

The YAML form (``gateway.yaml``, validated with file:line:field errors) lives in
:mod:`cloudhedge.gateway.config_schema` and resolves into :class:`GatewayConfig`.
API keys are never held in clear: a key is read from the environment (or given as
its SHA-256) at load time and only its hash is kept (:func:`hash_key`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum


class Strategy(StrEnum):
    """How a request picks among the allowed, healthy deployments of its model."""

    WEIGHTED = "weighted"  # random by weight (e.g. the plan's chip shares)
    LEAST_OUTSTANDING = "least_outstanding"  # fewest requests in flight
    LATENCY = "latency"  # lowest EWMA of time to first token


class Endpoint(StrEnum):
    CHAT = "chat"  # POST /v1/chat/completions
    COMPLETIONS = "completions"  # POST /v1/completions
    EMBEDDINGS = "embeddings"  # POST /v1/embeddings


def hash_key(key: str) -> str:
    """The SHA-256 hex digest under which an API key is stored and looked up."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Deployment:
    """One model served by one upstream in one provider/region (a failure domain)."""

    name: str  # unique
    model: str  # the public model name clients ask for
    provider: str
    region: str
    jurisdiction: str
    base_url: str  # OpenAI-compatible upstream base, e.g. "http://127.0.0.1:9001/v1"
    accelerator: str | None = None
    upstream_model: str | None = None  # name sent upstream; default: ``model``
    api_key: str | None = field(default=None, repr=False)  # upstream key, from its env var
    endpoints: frozenset[Endpoint] = frozenset(Endpoint)
    max_concurrency: int | None = None  # requests in flight at most
    weight: float = 1.0  # for Strategy.WEIGHTED
    input_usd_per_million: float = 0.0
    output_usd_per_million: float = 0.0
    timeout_s: float = 60.0  # per attempt, to the first byte

    @property
    def domain(self) -> str:
        """The failure domain failover prefers to leave: the provider."""
        return self.provider

    @property
    def sent_model(self) -> str:
        return self.upstream_model or self.model


@dataclass(frozen=True)
class TenantClass:
    """Exclusivity and residency: where a class of tenant may be served (None: anywhere)."""

    name: str
    providers: frozenset[str] | None = None
    jurisdictions: frozenset[str] | None = None

    def allows(self, d: Deployment) -> bool:
        return (self.providers is None or d.provider in self.providers) and (
            self.jurisdictions is None or d.jurisdiction in self.jurisdictions)


@dataclass(frozen=True)
class Tenant:
    name: str
    tenant_class: str
    budget_usd: float | None = None  # over the accounting store's lifetime


@dataclass(frozen=True)
class ApiKey:
    """A client key: its hash, its tenant and its own limits."""

    name: str  # a label for logs and accounting, never the key
    key_hash: str
    tenant: str
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    budget_usd: float | None = None


@dataclass(frozen=True)
class Route:
    """Per model: the balancing strategy and optional weights per deployment name."""

    model: str
    strategy: Strategy = Strategy.LEAST_OUTSTANDING
    weights: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthPolicy:
    failure_threshold: int = 3  # consecutive failures that open a deployment's circuit
    cooldown_s: float = 30.0  # how long an open circuit stays open before a trial request
    probe_interval_s: float | None = None  # active probes (GET /models) when set


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3  # deployments tried per request
    deadline_s: float = 120.0  # overall, across attempts
    max_retry_after_s: float = 10.0  # a longer Retry-After is not waited for


@dataclass(frozen=True)
class GatewayConfig:
    deployments: tuple[Deployment, ...]
    tenants: dict[str, Tenant]
    classes: dict[str, TenantClass]
    keys: tuple[ApiKey, ...]
    routes: dict[str, Route] = field(default_factory=dict)
    health: HealthPolicy = field(default_factory=HealthPolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # URLs may hold a password: kept out of the repr
    database_url: str = field(default="sqlite:///cloudhedge-gateway.db", repr=False)
    redis_url: str | None = field(default=None, repr=False)
    admin_key_hash: str | None = None
    max_body_bytes: int = 1_000_000
    source: str = "<code>"  # the file it was loaded from

    def key(self, key_hash: str) -> ApiKey | None:
        return next((k for k in self.keys if k.key_hash == key_hash), None)

    def allowed(self, key: ApiKey, model: str) -> tuple[Deployment, ...]:
        """The deployments of ``model`` the key's tenant may use: the security boundary.

        Computed from the key's tenant only, never from what the request says; empty
        means the request is refused (403), never served by "any".
        """
        tenant = self.tenants.get(key.tenant)
        cls = self.classes.get(tenant.tenant_class) if tenant is not None else None
        if cls is None:
            return ()
        return tuple(d for d in self.deployments if d.model == model and cls.allows(d))

    def route(self, model: str) -> Route:
        return self.routes.get(model, Route(model))

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d.model for d in self.deployments))
