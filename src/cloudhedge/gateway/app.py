"""The gateway's ASGI app: OpenAI-compatible API, policy, balancing, failover, operations.

Raw ASGI, no framework on the hot path. An API request goes through, in order (the
refusal of each step in brackets):

    1. key         ``Authorization: Bearer`` -> hash_key -> the configured key     [401]
    2. body        at most ``max_body_bytes``; a JSON object with ``model`` and the
                   endpoint's field (messages / prompt / input)                    [413, 400]
    3. model       known to the configuration                                      [404]
    4. policy      ``config.allowed(key, model)``: from the key's tenant only,
                   never from the request; empty is a refusal, never "any"         [403]
                   ... and serving this endpoint                                   [400]
    5. limits      ``Limiter.admit``                                     [429, 403, 503]
    6. attempts    balance (balance.py) -> breaker -> upstream (upstream.py); a failed
                   attempt is retried elsewhere, preferring another provider, up to
                   ``retry.max_attempts`` within ``retry.deadline_s``      [502, 503, 504]
    7. accounting  usage -> cost -> ``UsageStore.record``, ``Limiter.record``, metrics,
                   one JSON log line (logger ``cloudhedge.gateway.access``)

Streams: the first upstream bytes are awaited before anything is sent to the client, so
failover before them is invisible; a failure after them ends the stream with an SSE
event ``data: {"error": {...}}`` and no ``data: [DONE]``. A client disconnect cancels
the upstream request (status 499 in the records).

A reload (``POST /admin/reload``) swaps in a new :class:`_Generation`; each request
keeps the generation it started on, and upstream pools no longer used are closed when
the last request of an old generation ends. Store, limiter and breakers are kept
(``database_url``, ``redis_url`` and ``health`` changes need a restart).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from cloudhedge.core.errors import SpecError
from cloudhedge.gateway.balance import Balancer, DeploymentStats
from cloudhedge.gateway.breaker import Breakers, State, make_breakers
from cloudhedge.gateway.config import (
    ApiKey,
    Deployment,
    Endpoint,
    GatewayConfig,
    RetryPolicy,
    Route,
    hash_key,
)
from cloudhedge.gateway.errors import (
    AttemptError,
    FailureKind,
    GatewayError,
    all_failed,
    bad_request,
)
from cloudhedge.gateway.limits import Decision, Limiter, make_limiter
from cloudhedge.gateway.metrics import GatewayMetrics
from cloudhedge.gateway.store import RequestRecord, UsageStore
from cloudhedge.gateway.upstream import (
    PATHS,
    Reply,
    SSERelay,
    StreamStart,
    Target,
    Upstreams,
    open_stream,
    send,
    upstream_body,
    usage_of,
)

__all__ = ["Gateway", "build_app_from_config", "create_app"]

log = logging.getLogger(__name__)
access_log = logging.getLogger("cloudhedge.gateway.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_API = {"/v1" + path: endpoint for endpoint, path in PATHS.items()}
_REQUIRED = {Endpoint.CHAT: "messages", Endpoint.COMPLETIONS: "prompt",
             Endpoint.EMBEDDINGS: "input"}
_ADMIN_DEPLOYMENT = re.compile(r"/admin/deployments/([^/]+)/(drain|enable)")
_ROUTABLE = (State.CLOSED, State.HALF_OPEN)
_JSON = b"application/json"
_SSE_HEADERS = [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]


class _Generation:
    """One loaded configuration and what the hot path derives from it."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.keys = {k.key_hash: k for k in config.keys}
        self.models = frozenset(config.models)
        self.targets = {d.name: Target(d) for d in config.deployments}
        self.base_urls = frozenset(d.base_url for d in config.deployments)
        self.loaded_at = time.time()
        self.active = 0  # requests in flight that started on this generation
        self._serving: dict[tuple[str, str, Endpoint], tuple[Deployment, ...]] = {}
        self._routes: dict[str, Route] = {}

    def serving(self, key: ApiKey, model: str, endpoint: Endpoint) -> tuple[Deployment, ...]:
        """``config.allowed(key, model)`` that serve ``endpoint`` (cached per key)."""
        k = (key.key_hash, model, endpoint)
        found = self._serving.get(k)
        if found is None:
            found = self._serving[k] = tuple(d for d in self.config.allowed(key, model)
                                             if endpoint in d.endpoints)
        return found

    def route(self, model: str) -> Route:
        r = self._routes.get(model)
        if r is None:
            r = self._routes[model] = self.config.route(model)
        return r


_REQUEST_PREFIX = secrets.token_hex(4)
_request_ids = itertools.count(1)


class _Call:
    """What happens to one API request, for the response headers, records and logs."""

    __slots__ = ("attempts", "cost_usd", "deployment", "disconnected", "endpoint", "error",
                 "finished", "include_usage", "input_tokens", "key", "model", "output_tokens",
                 "request_id", "responded", "start", "status", "stream", "ts", "upstream_s")

    def __init__(self, endpoint: Endpoint) -> None:
        self.start = time.perf_counter()
        self.ts = time.time()
        self.request_id = f"{_REQUEST_PREFIX}-{next(_request_ids):x}"
        self.endpoint = endpoint
        self.key: ApiKey | None = None
        self.model = ""
        self.stream = False
        self.include_usage = False
        self.status = 0
        self.deployment: Deployment | None = None
        self.attempts = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self.error: str | None = None
        self.upstream_s = 0.0  # waiting on upstreams (and their Retry-After)
        self.responded = False  # response headers sent
        self.finished = False  # the last body part is being sent: a disconnect is moot
        self.disconnected = False


async def _respond(send: Send, status: int, body: bytes,
                   headers: list[tuple[bytes, bytes]]) -> None:
    headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _respond_json(send: Send, status: int, obj: object) -> None:
    await _respond(send, status, orjson.dumps(obj), [(b"content-type", _JSON)])


def _headers_of(scope: Scope) -> tuple[str | None, int | None]:
    """The bearer token and the content length of a request."""
    token: str | None = None
    length: int | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, rest = value.partition(b" ")
            token = rest.strip().decode("latin-1") if scheme.lower() == b"bearer" else ""
        elif name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise bad_request("invalid Content-Length header") from None
    return token, length


def _authenticate(gen: _Generation, token: str | None) -> ApiKey:
    if token is None:
        raise GatewayError(401, "You didn't provide an API key: pass it as "
                                "'Authorization: Bearer YOUR_KEY'.", code="missing_api_key")
    key = gen.keys.get(hash_key(token)) if token else None
    if key is None:
        raise GatewayError(401, "Incorrect API key provided.", code="invalid_api_key")
    return key


async def _read_body(receive: Receive, limit: int, length: int | None) -> bytes | None:
    """The request body, at most ``limit`` bytes (413 beyond); None if the client left."""
    too_large = GatewayError(413, f"the request body exceeds {limit} bytes",
                             code="request_too_large")
    if length is not None and length > limit:
        raise too_large
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large
        if not message.get("more_body", False):
            if not parts:
                return bytes(chunk)
            parts.append(chunk)
            return b"".join(parts)
        parts.append(chunk)


def _parse(body: bytes, endpoint: Endpoint) -> dict[str, Any]:
    """The request's JSON object, checked for what every upstream needs."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise bad_request(f"the request body is not valid JSON: {e}") from None
    if not isinstance(payload, dict):
        raise bad_request("the request body must be a JSON object")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("you must provide a model parameter", "model")
    field = _REQUIRED[endpoint]
    value = payload.get(field)
    if value is None or (endpoint is Endpoint.CHAT and not (isinstance(value, list) and value)):
        raise bad_request(f"'{field}' is required" + (" (a non-empty list of messages)"
                                                      if endpoint is Endpoint.CHAT else ""),
                          field)
    if not isinstance(payload.get("stream", False), bool | None):
        raise bad_request("'stream' must be a boolean", "stream")
    return payload


def _refusal(decision: Decision) -> GatewayError:
    kind = {429: "rate_limit_error", 403: "insufficient_quota"}.get(decision.status,
                                                                     "server_error")
    return GatewayError(decision.status, decision.reason or "request refused by limits",
                        type=kind, code=decision.code, retry_after_s=decision.retry_after_s)


class Gateway:
    """The ASGI app. Build it with :func:`create_app` or :func:`build_app_from_config`."""

    def __init__(self, config: GatewayConfig, *, store: UsageStore, limiter: Limiter,
                 breakers: Breakers,
                 config_loader: Callable[[], GatewayConfig] | None = None) -> None:
        self._gen = _Generation(config)
        self.store = store
        self.limiter = limiter
        self.breakers = breakers
        self.balancer = Balancer()
        self.metrics = GatewayMetrics()
        self.upstreams = Upstreams()
        self._config_loader = config_loader
        self._background: set[asyncio.Task[None]] = set()

    @property
    def config(self) -> GatewayConfig:
        """The configuration new requests use."""
        return self._gen.config

    # -- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = _API.get(scope["path"])
            if endpoint is not None and scope["method"] == "POST":
                await self._api(scope, receive, send, endpoint)
            else:
                await self._other(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._spawn(self._probe_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        """Stop probes, close upstream pools, the limiter, the breakers and the store."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.upstreams.close()
        await self.limiter.close()
        await self.breakers.close()
        await asyncio.to_thread(self.store.close)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- the API ------------------------------------------------------------------------

    async def _api(self, scope: Scope, receive: Receive, send: Send,
                   endpoint: Endpoint) -> None:
        call = _Call(endpoint)
        gen = self._gen
        gen.active += 1
        try:
            await self._serve(gen, call, scope, receive, send)
        except GatewayError as e:
            call.status, call.error = e.status, e.message
            if not call.responded:
                await self._send_error(send, call, e)
        except Exception as e:  # a bug must cost one request, never the process
            log.exception("request %s failed", call.request_id)
            call.status, call.error = 500, f"internal error: {type(e).__name__}: {e}"
            if not call.responded:
                await self._send_error(send, call, GatewayError(
                    500, "internal error in the gateway", type="server_error",
                    code="internal_error"))
        finally:
            gen.active -= 1
            if gen.active == 0 and gen is not self._gen:
                self._retire(gen)
            self._account(call)

    async def _serve(self, gen: _Generation, call: _Call, scope: Scope, receive: Receive,
                     send: Send) -> None:
        token, length = _headers_of(scope)
        key = call.key = _authenticate(gen, token)
        tenant = gen.config.tenants.get(key.tenant)
        body = await _read_body(receive, gen.config.max_body_bytes, length)
        if body is None:
            call.status, call.error, call.disconnected = 499, "client disconnected", True
            return
        payload = _parse(body, call.endpoint)
        model = call.model = payload["model"]
        if call.endpoint is not Endpoint.EMBEDDINGS:
            call.stream = payload.get("stream") is True
            options = payload.get("stream_options")
            call.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        if model not in gen.models:
            raise GatewayError(404, f"The model '{model}' does not exist.", param="model",
                               code="model_not_found")
        serving = gen.serving(key, model, call.endpoint)
        if not serving or tenant is None:
            if gen.config.allowed(key, model):
                raise bad_request(f"model '{model}' is not served on /v1{PATHS[call.endpoint]}",
                                  "model")
            raise GatewayError(403, f"tenant '{key.tenant}' may not use model '{model}' on any "
                                    "deployment", type="permission_error", param="model",
                               code="model_not_allowed")
        decision = await self.limiter.admit(key, tenant)
        if not decision.allowed:
            raise _refusal(decision)
        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.ensure_future(self._watch(receive, call, task))
        try:
            await self._route(gen, call, payload, body, serving, send)
        except asyncio.CancelledError:
            if not call.disconnected:
                raise
            task.uncancel()
            call.status, call.error = 499, "client disconnected"
        finally:
            watcher.cancel()
        if call.input_tokens or call.output_tokens or call.cost_usd:
            await self.limiter.record(key, tenant, call.input_tokens + call.output_tokens,
                                      call.cost_usd)

    @staticmethod
    async def _watch(receive: Receive, call: _Call, task: asyncio.Task[Any]) -> None:
        """Cancel ``task`` (and so the upstream request) if the client goes away."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not call.finished:
                    call.disconnected = True
                    task.cancel()
                return

    async def _route(self, gen: _Generation, call: _Call, payload: dict[str, Any], raw: bytes,
                     serving: tuple[Deployment, ...], send: Send) -> None:
        """Attempts until one succeeds; raises the all-failed GatewayError otherwise."""
        retry = gen.config.retry
        route = gen.route(call.model)
        deadline = call.start + retry.deadline_s
        tried: set[str] = set()
        avoid: set[str] = set()  # failure domains that failed for this request
        failures: list[AttemptError] = []
        while len(failures) < retry.max_attempts:
            d = await self._pick(serving, route, tried, avoid)
            if d is None:
                d = await self._wait_retry_after(call, failures, serving, retry, deadline)
                if d is None:
                    break
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            if failures:
                self.metrics.failover(call.model, failures[-1].kind)
            tried.add(d.name)
            call.attempts += 1
            call.deployment = d
            try:
                await self._attempt(gen, call, d, payload, raw, send,
                                    min(d.timeout_s, remaining))
                return
            except AttemptError as e:
                failures.append(e)
                avoid.add(d.domain)
                self.metrics.attempt_failed(d.name, e.kind)
                await self.breakers.failure(d.name, e.detail, retry_after_s=e.retry_after_s)
        raise all_failed(failures, unavailable=len(serving))

    async def _pick(self, serving: tuple[Deployment, ...], route: Route, tried: set[str],
                    avoid: set[str]) -> Deployment | None:
        """The balancer's pick among untried deployments whose breaker lets it through."""
        pool = [d for d in serving if d.name not in tried]
        while pool:
            d = self.balancer.pick(pool, route, avoid)
            if d is None:
                return None
            if await self.breakers.available(d.name):
                return d
            pool.remove(d)
        return None

    async def _wait_retry_after(self, call: _Call, failures: list[AttemptError],
                                serving: tuple[Deployment, ...], retry: RetryPolicy,
                                deadline: float) -> Deployment | None:
        """When no other deployment is left and the last one answered 429 with a
        Retry-After of at most ``max_retry_after_s`` (and within the deadline), wait it
        out and return that deployment to try again; else None."""
        last = failures[-1] if failures else None
        if last is None or last.kind is not FailureKind.RATE_LIMITED:
            return None
        wait = last.retry_after_s
        if wait is None or wait > retry.max_retry_after_s:
            return None
        if time.perf_counter() + wait >= deadline:
            return None
        t0 = time.perf_counter()
        await asyncio.sleep(wait)
        call.upstream_s += time.perf_counter() - t0
        return next((d for d in serving if d.name == last.deployment), None)

    async def _attempt(self, gen: _Generation, call: _Call, d: Deployment,
                       payload: dict[str, Any], raw: bytes, send_asgi: Send,
                       timeout_s: float) -> None:
        target = gen.targets[d.name]
        body = upstream_body(payload, raw, call.model, call.stream, d)
        headers = target.headers | {"X-Request-Id": call.request_id}
        session = self.upstreams.session(d.base_url)
        stats = self.balancer.stats(d.name)
        stats.in_flight += 1
        t0 = time.perf_counter()
        try:
            if call.stream:
                opened: StreamStart | Reply = await open_stream(
                    session, target, call.endpoint, body, headers, timeout_s)
            else:
                opened = await send(session, target, call.endpoint, body, headers, timeout_s)
        except BaseException:
            stats.in_flight -= 1
            call.upstream_s += time.perf_counter() - t0
            raise
        call.upstream_s += time.perf_counter() - t0
        self.balancer.observe_ttft(d.name, opened.ttfb_s)
        self.metrics.ttft(d.name, opened.ttfb_s)
        if isinstance(opened, StreamStart):
            await self._relay(call, target, opened, send_asgi, stats)
        else:
            stats.in_flight -= 1
            await self._reply(call, target, opened, send_asgi)

    async def _reply(self, call: _Call, target: Target, reply: Reply, send_asgi: Send) -> None:
        """Pass on a whole upstream answer (a success, or a 4xx that is the client's)."""
        d = target.deployment
        if reply.status < 300:
            try:
                obj = orjson.loads(reply.body)
            except orjson.JSONDecodeError:
                raise AttemptError(d.name, FailureKind.PROTOCOL,
                                   "the response body is not JSON") from None
            self._charge(call, target, *usage_of(obj))
        else:
            call.error = f"deployment {d.name} answered HTTP {reply.status}"
        await self.breakers.success(d.name)
        call.status = reply.status
        call.finished = call.responded = True
        await _respond(send_asgi, reply.status, reply.body,
                       self._headers(call, reply.content_type.encode("latin-1")))

    async def _relay(self, call: _Call, target: Target, start: StreamStart, send_asgi: Send,
                     stats: DeploymentStats) -> None:
        """Stream an upstream answer whose first bytes are in; no failover from here."""
        d = target.deployment
        resp = start.response
        relay = SSERelay(strip_usage=not call.include_usage)
        error: str | None = None
        complete = False
        try:
            await self.breakers.success(d.name)
            call.status = 200
            call.responded = True
            headers = self._headers(call, b"text/event-stream")
            headers.extend(_SSE_HEADERS)
            await send_asgi({"type": "http.response.start", "status": 200, "headers": headers})
            out = relay.feed(start.first)
            if out:
                await send_asgi({"type": "http.response.body", "body": out, "more_body": True})
            content = resp.content
            while True:
                t0 = time.perf_counter()
                try:
                    chunk = await content.readany()
                except (aiohttp.ClientError, TimeoutError) as e:
                    error = f"{type(e).__name__}: {e}".rstrip(": ")
                    break
                finally:
                    call.upstream_s += time.perf_counter() - t0
                if not chunk:
                    break
                out = relay.feed(chunk)
                if out:
                    await send_asgi({"type": "http.response.body", "body": out,
                                     "more_body": True})
            complete = relay.done and error is None
        finally:
            stats.in_flight -= 1
            if complete:
                resp.release()  # back to the keep-alive pool
            else:
                resp.close()
        self._charge(call, target, *relay.usage)
        call.finished = True
        if complete:
            await send_asgi({"type": "http.response.body", "body": b"", "more_body": False})
            return
        detail = error or "the stream ended without 'data: [DONE]'"
        self.metrics.attempt_failed(d.name, FailureKind.INTERRUPTED)
        await self.breakers.failure(d.name, f"stream interrupted: {detail}")
        failed = GatewayError(502, f"the stream from deployment {d.name} failed after it "
                                   f"started: {detail}", type="upstream_error",
                              code="stream_interrupted")
        call.status, call.error = failed.status, failed.message
        event = b"data: " + orjson.dumps({"error": failed.payload()}) + b"\n\n"
        await send_asgi({"type": "http.response.body", "body": event, "more_body": False})

    def _charge(self, call: _Call, target: Target, input_tokens: int,
                output_tokens: int) -> None:
        call.input_tokens, call.output_tokens = input_tokens, output_tokens
        call.cost_usd = target.cost_usd(input_tokens, output_tokens)

    def _headers(self, call: _Call, content_type: bytes) -> list[tuple[bytes, bytes]]:
        overhead_ms = (time.perf_counter() - call.start - call.upstream_s) * 1000
        headers = [(b"content-type", content_type),
                   (b"x-request-id", call.request_id.encode()),
                   (b"x-cloudhedge-overhead-ms", b"%.3f" % overhead_ms)]
        if call.deployment is not None:
            headers.append((b"x-cloudhedge-deployment", call.deployment.name.encode()))
        return headers

    async def _send_error(self, send_asgi: Send, call: _Call, e: GatewayError) -> None:
        call.finished = call.responded = True
        headers = self._headers(call, _JSON)
        headers.extend(e.headers())
        await _respond(send_asgi, e.status, e.body(), headers)

    def _account(self, call: _Call) -> None:
        """Metrics, the accounting record and the log line of a finished request."""
        latency_s = time.perf_counter() - call.start
        overhead_s = max(0.0, latency_s - call.upstream_s)
        d, key = call.deployment, call.key
        tenant = key.tenant if key is not None else ""
        model = call.model if call.model in self._gen.models else "-"  # bounded labels
        self.metrics.request(model, d.name if d else "-", tenant or "-", call.status,
                             latency_s, overhead_s)
        if d is not None and (call.input_tokens or call.output_tokens):
            self.metrics.usage(d.name, tenant, call.input_tokens, call.output_tokens,
                               call.cost_usd)
        record = RequestRecord(
            request_id=call.request_id, ts=call.ts, key_name=key.name if key else "",
            tenant=tenant, model=call.model, endpoint=call.endpoint.value,
            deployment=d.name if d else None, provider=d.provider if d else None,
            status=call.status, input_tokens=call.input_tokens,
            output_tokens=call.output_tokens, cost_usd=call.cost_usd,
            latency_ms=latency_s * 1000, overhead_ms=overhead_s * 1000,
            attempts=call.attempts, stream=call.stream, error=call.error)
        self.store.record(record)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info("%s", orjson.dumps(record).decode())

    # -- everything else ----------------------------------------------------------------

    async def _other(self, scope: Scope, receive: Receive, send_asgi: Send) -> None:
        path, method = scope["path"], scope["method"]
        try:
            if path == "/v1/models" or path.startswith("/v1/models/"):
                _expect(method, "GET")
                await self._models(scope, send_asgi, path)
            elif path == "/healthz":
                await _respond_json(send_asgi, 200, {"status": "ok"})
            elif path == "/readyz":
                await self._readyz(send_asgi)
            elif path == "/metrics":
                await self._metrics(send_asgi)
            elif path.startswith("/admin/"):
                await self._admin(scope, send_asgi, path, method)
            elif path in _API:
                raise GatewayError(405, f"use POST on {path}", code="method_not_allowed")
            else:
                raise GatewayError(404, f"no route {method} {path}", code="not_found")
        except GatewayError as e:
            await _respond(send_asgi, e.status, e.body(), [(b"content-type", _JSON),
                                                           *e.headers()])

    async def _models(self, scope: Scope, send_asgi: Send, path: str) -> None:
        gen = self._gen
        key = _authenticate(gen, _headers_of(scope)[0])
        models = [{"id": m, "object": "model", "created": 0, "owned_by": "cloudhedge"}
                  for m in gen.config.models if gen.config.allowed(key, m)]
        if path == "/v1/models":
            await _respond_json(send_asgi, 200, {"object": "list", "data": models})
            return
        name = path.removeprefix("/v1/models/")
        found = next((m for m in models if m["id"] == name), None)
        if found is None:
            raise GatewayError(404, f"The model '{name}' does not exist.", param="model",
                               code="model_not_found")
        await _respond_json(send_asgi, 200, found)

    async def _readyz(self, send_asgi: Send) -> None:
        """Ready: configuration loaded, store writable, at least one deployment routable."""
        gen = self._gen
        try:
            await asyncio.to_thread(self.store.flush, 2.0)
            store = "ok"
        except Exception as e:
            store = f"not writable: {type(e).__name__}: {e}"
        states = await asyncio.gather(*(self.breakers.state(d.name)
                                        for d in gen.config.deployments))
        routable = sum(s.state in _ROUTABLE for s in states)
        ready = store == "ok" and routable > 0
        await _respond_json(send_asgi, 200 if ready else 503, {
            "ready": ready, "config": gen.config.source, "store": store,
            "deployments": len(states), "routable_deployments": routable})

    async def _metrics(self, send_asgi: Send) -> None:
        for d in self._gen.config.deployments:
            self.metrics.in_flight.labels(d.name).set(self.balancer.stats(d.name).in_flight)
            state = await self.breakers.state(d.name)
            self.metrics.available.labels(d.name).set(1 if state.state in _ROUTABLE else 0)
        await _respond(send_asgi, 200, self.metrics.render(),
                       [(b"content-type", CONTENT_TYPE_LATEST.encode())])

    # -- admin ----------------------------------------------------------------------------

    async def _admin(self, scope: Scope, send_asgi: Send, path: str, method: str) -> None:
        expected = self._gen.config.admin_key_hash
        if expected is None:
            raise GatewayError(403, "the admin API is disabled: no admin key is configured",
                               type="permission_error", code="admin_disabled")
        token = _headers_of(scope)[0]
        if not token or not hmac.compare_digest(hash_key(token), expected):
            raise GatewayError(401, "a valid admin key is required", code="invalid_admin_key")
        if path == "/admin/deployments":
            _expect(method, "GET")
            await _respond_json(send_asgi, 200, {"deployments": await self.deployments()})
        elif path == "/admin/reload":
            _expect(method, "POST")
            config = await self.reload()
            await _respond_json(send_asgi, 200, {
                "reloaded": True, "source": config.source, "models": list(config.models),
                "deployments": [d.name for d in config.deployments]})
        elif (m := _ADMIN_DEPLOYMENT.fullmatch(path)) is not None:
            _expect(method, "POST")
            name, action = m.groups()
            if all(d.name != name for d in self._gen.config.deployments):
                raise GatewayError(404, f"no deployment '{name}'", code="not_found")
            await self.breakers.drain(name, action == "drain")
            state = await self.breakers.state(name)
            await _respond_json(send_asgi, 200, {"name": name, "state": state.state.value})
        else:
            raise GatewayError(404, f"no admin route {method} {path}", code="not_found")

    async def deployments(self) -> list[dict[str, Any]]:
        """Every configured deployment with its breaker state, in flight and EWMA."""
        out = []
        for d in self._gen.config.deployments:
            state = await self.breakers.state(d.name)
            stats = self.balancer.stats(d.name)
            ewma = stats.ewma_ttft_s
            out.append({
                "name": d.name, "model": d.model, "provider": d.provider, "region": d.region,
                "jurisdiction": d.jurisdiction, "base_url": d.base_url, "weight": d.weight,
                "max_concurrency": d.max_concurrency, "state": state.state.value,
                "failures": state.failures, "last_error": state.last_error,
                "in_flight": stats.in_flight,
                "ewma_ttft_ms": None if ewma is None else round(ewma * 1000, 3)})
        return out

    async def reload(self) -> GatewayConfig:
        """Re-read the configuration (with the loader given at creation) and swap it in."""
        if self._config_loader is None:
            raise GatewayError(409, "this gateway has no configuration file to reload",
                               code="reload_unavailable")
        try:
            config = await asyncio.to_thread(self._config_loader)
        except (SpecError, OSError, ValueError) as e:
            raise GatewayError(400, f"the configuration was not reloaded: {e}",
                               code="invalid_config") from e
        self.replace_config(config)
        log.info("configuration reloaded from %s: %d deployment(s)", config.source,
                 len(config.deployments))
        return config

    def replace_config(self, config: GatewayConfig) -> None:
        """Serve new requests with ``config``; requests in flight finish on the old one."""
        old, self._gen = self._gen, _Generation(config)
        if old.active == 0:
            self._retire(old)

    def _retire(self, old: _Generation) -> None:
        stale = old.base_urls - self._gen.base_urls
        if stale:
            self._spawn(self.upstreams.close(stale))

    # -- active probes --------------------------------------------------------------------

    async def _probe_loop(self) -> None:
        """Every ``health.probe_interval_s``: GET /models on each deployment not drained."""
        while (interval := self._gen.config.health.probe_interval_s) is not None:
            await asyncio.sleep(interval)
            await asyncio.gather(*(self._probe(t) for t in self._gen.targets.values()))

    async def _probe(self, target: Target) -> None:
        """A failed probe counts as a failure; a good one changes nothing (the breaker's
        own trial request decides when an open deployment closes)."""
        d = target.deployment
        if (await self.breakers.state(d.name)).state is State.DRAINED:
            return
        error: str | None = None
        try:
            async with asyncio.timeout(d.timeout_s), self.upstreams.session(d.base_url).get(
                    target.models_url, headers=target.headers) as resp:
                await resp.read()
                if resp.status >= 500 or resp.status == 429:
                    error = f"probe: HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as e:
            error = f"probe: {type(e).__name__}: {e}".rstrip(": ")
        if error is not None:
            await self.breakers.failure(d.name, error)


def _expect(method: str, allowed: str) -> None:
    if method != allowed:
        raise GatewayError(405, f"use {allowed}", code="method_not_allowed")


def create_app(config: GatewayConfig, *, store: UsageStore, limiter: Limiter,
               breakers: Breakers,
               config_loader: Callable[[], GatewayConfig] | None = None) -> Gateway:
    """The gateway ASGI app over the given store, limiter and breakers (closed by its
    lifespan). ``config_loader`` re-reads the configuration for ``POST /admin/reload``."""
    return Gateway(config, store=store, limiter=limiter, breakers=breakers,
                   config_loader=config_loader)


def build_app_from_config(config: GatewayConfig, *,
                          config_loader: Callable[[], GatewayConfig] | None = None) -> Gateway:
    """The gateway with a store, limiter and breakers made from ``config.database_url``
    and ``config.redis_url`` (in-process limits and breakers without Redis)."""
    store = UsageStore(config.database_url)
    return create_app(config, store=store, limiter=make_limiter(config.redis_url, store),
                      breakers=make_breakers(config.redis_url, config.health),
                      config_loader=config_loader)
