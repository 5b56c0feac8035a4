"""``gateway.yaml``: the pydantic schema and the loader into :class:`GatewayConfig`.

Loaded exactly like the fleet spec: parsed with :func:`cloudhedge.spec.loader.parse_yaml`
(positions kept), validated by the models below (``extra="forbid"``), pydantic errors
translated by :func:`cloudhedge.spec.errors.translate_validation_error`, then resolved:

- names unique (deployments, keys); every name a section refers to is known (a tenant's
  class, a key's tenant, a route's model and weighted deployments, a class's providers
  and jurisdictions), the closest known one suggested otherwise;
- secrets read from the environment at load (``api_key_env``, ``key_env``,
  ``admin_key_env``); a missing variable is an error naming the variable; client and
  admin keys are hashed at once (:func:`hash_key`), never kept in clear; two entries
  holding the same key are an error;
- costs per chip-hour turned into prices per million tokens; URLs checked by scheme.

Every problem raises one :class:`~cloudhedge.core.errors.SpecError` listing every
issue (file:line:column, field path, what was expected, did-you-mean). Secrets never
appear in an issue: a value that may be a key (a malformed ``key_sha256``, an invalid
environment variable name, a URL with credentials) is described, never echoed.
Documented field by field in ``docs/gateway-config.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from cloudhedge.gateway.config import (
    ApiKey,
    Deployment,
    Endpoint,
    GatewayConfig,
    HealthPolicy,
    RetryPolicy,
    Route,
    Strategy,
    Tenant,
    TenantClass,
    hash_key,
)
from cloudhedge.spec.loader import read_input, validate_text
from cloudhedge.spec.schema import NonNeg
from cloudhedge.spec.source import IssueLog, PathKey, SourceMap, suggest

__all__ = [
    "DeploymentsFileSpec",
    "GatewaySpec",
    "load_deployments",
    "load_deployments_text",
    "load_gateway_config",
    "load_gateway_config_text",
    "usd_per_million_tokens",
]

Positive = Annotated[float, Field(gt=0)]
Count = Annotated[int, Field(ge=1)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CostSpec(_Spec):
    """Either both prices per million tokens, or a chip-hour price with its throughput."""

    input_usd_per_million: NonNeg | None = None
    output_usd_per_million: NonNeg | None = None
    usd_per_chip_hour: NonNeg | None = None
    chips: Count | None = None
    tokens_per_s: Positive | None = None


class DeploymentSpec(_Spec):
    name: str
    model: str
    provider: str
    region: str
    jurisdiction: str
    base_url: str
    accelerator: str | None = None
    upstream_model: str | None = None
    api_key_env: str | None = None
    endpoints: list[Literal["chat", "completions", "embeddings"]] | None = None
    max_concurrency: Count | None = None
    weight: NonNeg = Deployment.weight
    cost: CostSpec | None = None
    timeout_s: Positive = Deployment.timeout_s


class TenantClassSpec(_Spec):
    providers: list[str] | None = None
    jurisdictions: list[str] | None = None


class TenantSpec(_Spec):
    tenant_class: str = Field(alias="class")
    budget_usd: NonNeg | None = None


class KeySpec(_Spec):
    name: str
    tenant: str
    key_env: str | None = None
    key_sha256: str | None = None
    requests_per_minute: Positive | None = None
    tokens_per_minute: Positive | None = None
    budget_usd: NonNeg | None = None


class RouteSpec(_Spec):
    strategy: Literal["weighted", "least_outstanding", "latency"] = "least_outstanding"
    weights: dict[str, NonNeg] | None = None


class HealthSpec(_Spec):
    failure_threshold: Count = HealthPolicy.failure_threshold
    cooldown_s: Positive = HealthPolicy.cooldown_s
    probe_interval_s: Positive | None = None


class RetrySpec(_Spec):
    max_attempts: Count = RetryPolicy.max_attempts
    deadline_s: Positive = RetryPolicy.deadline_s
    max_retry_after_s: NonNeg = RetryPolicy.max_retry_after_s


class GatewaySpec(_Spec):
    """The whole ``gateway.yaml``. ``deployments`` may come from a deployments file."""

    deployments: list[DeploymentSpec] = Field(default_factory=list)
    tenant_classes: dict[str, TenantClassSpec] = Field(default_factory=dict)
    tenants: dict[str, TenantSpec] = Field(default_factory=dict)
    keys: list[KeySpec] = Field(default_factory=list)
    routes: dict[str, RouteSpec] = Field(default_factory=dict)
    health: HealthSpec = Field(default_factory=HealthSpec)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    database_url: str = GatewayConfig.database_url
    redis_url: str | None = None
    admin_key_env: str | None = None
    admin_key_sha256: str | None = None
    max_body_bytes: Count = GatewayConfig.max_body_bytes


class DeploymentsFileSpec(_Spec):
    """A ``deployments.yaml`` (for ``--from-plan``): the ``deployments`` section only."""

    deployments: list[DeploymentSpec]


# --- loading ---------------------------------------------------------------------------


def load_gateway_config(
    path: Path,
    env: Mapping[str, str] | None = None,
    *,
    deployments: Sequence[Deployment] = (),
) -> GatewayConfig:
    """Read, validate and resolve the ``gateway.yaml`` at ``path``.

    ``env`` holds the environment variables secrets are read from (``os.environ`` by
    default). ``deployments`` (e.g. from :func:`load_deployments`) are added to the
    file's own; the file may then omit its ``deployments`` section.
    """
    return load_gateway_config_text(read_input(path), str(path), env, deployments=deployments)


def load_gateway_config_text(
    text: str,
    filename: str,
    env: Mapping[str, str] | None = None,
    *,
    deployments: Sequence[Deployment] = (),
) -> GatewayConfig:
    """Validate and resolve ``gateway.yaml`` text; ``filename`` is used in issues."""
    spec, source = validate_text(text, filename, GatewaySpec, "a gateway config")
    return _Resolver(source, env).config(spec, tuple(deployments))


def load_deployments(path: Path, env: Mapping[str, str] | None = None) -> tuple[Deployment, ...]:
    """Read, validate and resolve a deployments file (a ``deployments:`` list only)."""
    return load_deployments_text(read_input(path), str(path), env)


def load_deployments_text(
    text: str, filename: str, env: Mapping[str, str] | None = None
) -> tuple[Deployment, ...]:
    """Validate and resolve deployments file text; ``filename`` is used in issues."""
    spec, source = validate_text(text, filename, DeploymentsFileSpec, "'deployments:' with a list")
    resolver = _Resolver(source, env)
    deployments = resolver.deployments(spec.deployments, ())
    resolver.log.raise_if_any()
    return tuple(deployments)


def usd_per_million_tokens(usd_per_chip_hour: float, chips: int, tokens_per_s: float) -> float:
    """A deployment's chip-hour cost as a price per million tokens at its throughput."""
    return usd_per_chip_hour * chips / (tokens_per_s * 3600) * 1e6


# --- resolving -------------------------------------------------------------------------

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]{0,30}")
_NOT_SHOWN = "the value is not shown in case it is a secret"
_DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")
_REDIS_SCHEMES = ("redis", "rediss", "unix")
_TOKEN_PRICES = ("input_usd_per_million", "output_usd_per_million")
_CHIP_PRICES = ("usd_per_chip_hour", "chips", "tokens_per_s")


class _Resolver:
    """Checks a validated file's names, secrets and URLs, collecting located issues."""

    def __init__(self, source: SourceMap, env: Mapping[str, str] | None) -> None:
        self.log = IssueLog(source)
        self.env: Mapping[str, str] = os.environ if env is None else env

    def config(self, spec: GatewaySpec, extra: tuple[Deployment, ...]) -> GatewayConfig:
        own = self.deployments(spec.deployments, extra)
        deployments = (*own, *extra)
        if not deployments:
            self.log.add(("deployments",), "expected at least one deployment")
        classes = self.classes(spec.tenant_classes, deployments)
        tenants = self.tenants(spec.tenants, classes)
        keys = self.keys(spec.keys, tenants)
        admin = self.admin_key(spec, keys)
        routes = self.routes(spec.routes, deployments)
        database_url = self.url(
            spec.database_url, ("database_url",), _DATABASE_SCHEMES, "sqlite:///cloudhedge.db"
        )
        if spec.redis_url is not None:
            self.url(spec.redis_url, ("redis_url",), _REDIS_SCHEMES, "redis://127.0.0.1:6379/0")
        self.log.raise_if_any()
        return GatewayConfig(
            deployments=deployments,
            tenants=tenants,
            classes=classes,
            keys=tuple(keys),
            routes=routes,
            health=HealthPolicy(**spec.health.model_dump()),
            retry=RetryPolicy(**spec.retry.model_dump()),
            database_url=database_url,
            redis_url=spec.redis_url,
            admin_key_hash=admin,
            max_body_bytes=spec.max_body_bytes,
            source=self.log.source.file,
        )

    # -- deployments

    def deployments(
        self, specs: list[DeploymentSpec], extra: tuple[Deployment, ...]
    ) -> list[Deployment]:
        """The deployments of ``specs``; their names must differ from ``extra``'s too."""
        elsewhere = {d.name for d in extra}
        seen: dict[str, PathKey] = {}
        out: list[Deployment] = []
        for i, d in enumerate(specs):
            path: PathKey = ("deployments", i)
            if d.name in elsewhere:
                message = f"deployment '{d.name}' is also in the deployments file"
                self.log.add((*path, "name"), message)
            self._unique(seen, d.name, (*path, "name"), "deployment")
            api_key = None
            if d.api_key_env is not None:
                api_key = self._env((*path, "api_key_env"), d.api_key_env, "the upstream API key")
            if d.endpoints == []:
                self.log.add((*path, "endpoints"), "expected at least one endpoint (omit for all)")
            endpoints = frozenset(Endpoint)
            if d.endpoints:
                endpoints = frozenset(map(Endpoint, d.endpoints))
            input_price, output_price = self._prices(d.cost, (*path, "cost"))
            out.append(Deployment(
                name=d.name,
                model=d.model,
                provider=d.provider,
                region=d.region,
                jurisdiction=d.jurisdiction,
                base_url=self._base_url(d.base_url, (*path, "base_url")),
                accelerator=d.accelerator,
                upstream_model=d.upstream_model,
                api_key=api_key,
                endpoints=endpoints,
                max_concurrency=d.max_concurrency,
                weight=d.weight,
                input_usd_per_million=input_price,
                output_usd_per_million=output_price,
                timeout_s=d.timeout_s,
            ))
        return out

    def _base_url(self, url: str, path: PathKey) -> str:
        parts = urlsplit(url)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if parts.username is not None or parts.password is not None:
            self.log.add(path, "expected a URL without credentials (name the upstream key's "
                         f"environment variable with api_key_env); {_NOT_SHOWN}")
        elif parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            self.log.add(path, "expected an http:// or https:// URL with a host (and a valid "
                         f"port), e.g. http://127.0.0.1:9101/v1, got '{url}'")
        elif parts.query or parts.fragment:
            self.log.add(path, f"expected a base URL without query or fragment, got '{url}'")
        return url.rstrip("/")

    def _prices(self, cost: CostSpec | None, path: PathKey) -> tuple[float, float]:
        """(input, output) USD per million tokens: given, or from the chip-hour form."""
        if cost is None:
            return 0.0, 0.0
        given = {k for k, v in cost.model_dump().items() if v is not None}
        forms = "input_usd_per_million and output_usd_per_million, or usd_per_chip_hour, " \
            "chips and tokens_per_s"
        if given & set(_TOKEN_PRICES) and given & set(_CHIP_PRICES):
            self.log.add(path, f"expected one form of cost, not both: {forms}")
        elif given >= set(_TOKEN_PRICES):
            return cost.input_usd_per_million or 0.0, cost.output_usd_per_million or 0.0
        elif cost.usd_per_chip_hour is not None and cost.chips and cost.tokens_per_s:
            price = usd_per_million_tokens(cost.usd_per_chip_hour, cost.chips, cost.tokens_per_s)
            return price, price
        else:
            form = _TOKEN_PRICES if given & set(_TOKEN_PRICES) else _CHIP_PRICES
            missing = [k for k in form if k not in given] if given else []
            text = f"missing {', '.join(missing)}" if missing else "empty"
            self.log.add(path, f"expected {forms}: {text}", at_key=not given)
        return 0.0, 0.0

    # -- tenants and keys

    def classes(
        self, specs: Mapping[str, TenantClassSpec], deployments: Sequence[Deployment]
    ) -> dict[str, TenantClass]:
        providers = {d.provider for d in deployments}
        jurisdictions = {d.jurisdiction for d in deployments}
        out: dict[str, TenantClass] = {}
        for name, spec in specs.items():
            path: PathKey = ("tenant_classes", name)
            out[name] = TenantClass(
                name,
                self._allowed(spec.providers, (*path, "providers"), "provider", providers),
                self._allowed(
                    spec.jurisdictions, (*path, "jurisdictions"), "jurisdiction", jurisdictions
                ),
            )
        return out

    def _allowed(
        self, names: list[str] | None, path: PathKey, what: str, known: set[str]
    ) -> frozenset[str] | None:
        """An allow-list (None: anything); each name must be some deployment's."""
        if names is None:
            return None
        if not names:
            self.log.add(path, f"expected at least one {what} (omit the field to allow any)")
        for j, name in enumerate(names):
            if known and name not in known:
                self.log.add((*path, j), f"unknown {what} '{name}': no deployment has it",
                             suggest(name, known))
        return frozenset(names)

    def tenants(
        self, specs: Mapping[str, TenantSpec], classes: Mapping[str, TenantClass]
    ) -> dict[str, Tenant]:
        for name, spec in specs.items():
            if spec.tenant_class not in classes:
                self.log.unknown(("tenants", name, "class"), "tenant class", spec.tenant_class,
                                 classes)
        return {name: Tenant(name, s.tenant_class, s.budget_usd) for name, s in specs.items()}

    def keys(self, specs: list[KeySpec], tenants: Mapping[str, Tenant]) -> list[ApiKey]:
        seen: dict[str, PathKey] = {}
        holders: dict[str, int] = {}  # key hash -> index of the first entry holding it
        out: list[ApiKey] = []
        for i, k in enumerate(specs):
            path: PathKey = ("keys", i)
            self._unique(seen, k.name, (*path, "name"), "key")
            if k.tenant not in tenants:
                self.log.unknown((*path, "tenant"), "tenant", k.tenant, tenants)
            key_hash = self._key_hash(path, "key", k.key_env, k.key_sha256, "the client key")
            if key_hash is None:
                continue
            if key_hash in holders:
                first = holders[key_hash]
                self.log.add(path, f"the same key as keys[{first}] ('{specs[first].name}'): "
                             "each entry needs its own key")
            holders.setdefault(key_hash, i)
            out.append(ApiKey(k.name, key_hash, k.tenant, k.requests_per_minute,
                              k.tokens_per_minute, k.budget_usd))
        return out

    def admin_key(self, spec: GatewaySpec, keys: Iterable[ApiKey]) -> str | None:
        if spec.admin_key_env is None and spec.admin_key_sha256 is None:
            return None
        key_hash = self._key_hash((), "admin_key", spec.admin_key_env, spec.admin_key_sha256,
                                  "the admin key")
        client = next((k for k in keys if k.key_hash == key_hash), None)
        if client is not None:
            field = "admin_key_env" if spec.admin_key_env is not None else "admin_key_sha256"
            self.log.add((field,), f"the admin key is also the client key '{client.name}': "
                         "use a key of its own")
        return key_hash

    def _key_hash(
        self, path: PathKey, prefix: str, env: str | None, sha256: str | None, what: str
    ) -> str | None:
        """The SHA-256 of a key given by ``<prefix>_env`` or ``<prefix>_sha256`` (one of)."""
        env_field, sha_field = f"{prefix}_env", f"{prefix}_sha256"
        if env is not None and sha256 is not None:
            self.log.add(path, f"expected {env_field} or {sha_field}, not both")
        elif sha256 is not None:
            if _SHA256.fullmatch(sha256):
                return sha256.lower()
            self.log.add((*path, sha_field), "expected 64 hexadecimal characters (the SHA-256 "
                         f"of the key, e.g. from `sha256sum`); {_NOT_SHOWN}")
        elif env is not None:
            value = self._env((*path, env_field), env, what)
            return hash_key(value) if value is not None else None
        else:
            self.log.add(path, f"field required: {env_field} (an environment variable holding "
                         f"the key) or {sha_field} (its SHA-256)")
        return None

    def _env(self, path: PathKey, name: str, what: str) -> str | None:
        """The value of environment variable ``name``, surrounding whitespace removed."""
        if not _ENV_NAME.fullmatch(name):
            self.log.add(path, "expected the name of an environment variable (letters, digits "
                         f"and _, not starting with a digit); {_NOT_SHOWN}")
            return None
        value = self.env.get(name)
        if value is None or not value.strip():
            state = "not set" if value is None else "empty"
            self.log.add(path, f"environment variable {name} is {state}: it should hold {what}")
            return None
        return value.strip()

    # -- routes and URLs

    def routes(
        self, specs: Mapping[str, RouteSpec], deployments: Sequence[Deployment]
    ) -> dict[str, Route]:
        """Routes by model; a weighted route gets a weight for every deployment of its model
        (the route's, else the deployment's own ``weight``)."""
        by_model: dict[str, list[Deployment]] = {}
        for d in deployments:
            by_model.setdefault(d.model, []).append(d)
        model_of = {d.name: d.model for d in deployments}
        out: dict[str, Route] = {}
        for model, spec in specs.items():
            path: PathKey = ("routes", model)
            if model not in by_model:
                self.log.add(path, f"unknown model '{model}': no deployment serves it",
                             suggest(model, by_model), at_key=True)
                continue
            strategy = Strategy(spec.strategy)
            given = spec.weights or {}
            if spec.weights is not None and strategy is not Strategy.WEIGHTED:
                self.log.add((*path, "weights"), "weights apply to strategy: weighted only",
                             at_key=True)
            for name in given:
                if model_of.get(name, model) != model:
                    message = f"deployment '{name}' serves model '{model_of[name]}', not '{model}'"
                    self.log.add((*path, "weights", name), message, at_key=True)
                elif name not in model_of:
                    names = [d.name for d in by_model[model]]
                    self.log.add((*path, "weights", name), f"unknown deployment '{name}'",
                                 suggest(name, names), at_key=True)
            weights: dict[str, float] = {}
            if strategy is Strategy.WEIGHTED:
                weights = {d.name: given.get(d.name, d.weight) for d in by_model[model]}
                if not any(w > 0 for w in weights.values()):
                    self.log.add(path, f"every deployment of model '{model}' has weight 0: "
                                 "expected at least one positive weight", at_key=True)
            out[model] = Route(model, strategy, weights)
        return out

    def url(self, url: str, path: PathKey, schemes: tuple[str, ...], example: str) -> str:
        """``url`` if its scheme is one of ``schemes`` (only the scheme is ever echoed:
        the rest may hold a password). PostgreSQL URLs get the psycopg (v3) driver."""
        scheme = url.partition("://")[0].lower() if "://" in url else ""
        if scheme not in schemes:
            shown = scheme if _SCHEME.fullmatch(scheme) else ""
            got = f"'{shown}://...'" if shown else "no scheme"
            starts = " or ".join(f"{s}://" for s in schemes)
            self.log.add(path, f"expected a URL starting with {starts} (e.g. {example}), "
                         f"got {got}", suggest(shown, schemes) if shown else None)
        if scheme == "postgresql":
            return "postgresql+psycopg" + url[len(scheme):]
        return url

    def _unique(self, seen: dict[str, PathKey], name: str, path: PathKey, what: str) -> None:
        if not name.strip():
            self.log.add(path, "expected a non-empty name")
        elif name in seen:
            line = self.log.source.position(seen[name])[0]
            self.log.add(path, f"{what} '{name}' is already defined (line {line})")
        else:
            seen[name] = path
