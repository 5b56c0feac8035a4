"""The HTTP API of ``cloudhedge up``: submit, list, explain and cancel workloads.

:func:`create_api` builds a FastAPI app over a :class:`~cloudhedge.control.reconciler.Reconciler`
and its :class:`~cloudhedge.control.store.ControlStore`. Every route but ``/healthz`` needs
``Authorization: Bearer TOKEN``; only the token's SHA-256 digest is kept
(:func:`hash_token`) and compared with :func:`hmac.compare_digest`. The OpenAPI document
is at ``/openapi.json``.

    POST   /v1/jobs                    {"yaml": "...", "filename": "job.yaml"}
    POST   /v1/services                {"yaml": "...", "filename": "service.yaml"}
    GET    /v1/workloads               desired state, attempts by state, pools in use
    GET    /v1/workloads/{name}        the same, with the spec and every attempt
    GET    /v1/workloads/{name}/explain  events, and the last placement's explanation
    DELETE /v1/workloads/{name}        cancel (instances end on the next reconciler step)
    GET    /v1/workloads/{name}/logs   the tail of a replica's output
    POST   /v1/chaos/outage            {"scope": "aws", "duration_s": 600}  (emulated clouds)
    POST   /v1/chaos/restore           {"scope": "aws"}
    POST   /v1/chaos/preempt           {"target": "instance id | pool | workload"}
    POST   /v1/chaos/capacity          {"pool": "...", "chips": 0}
    GET    /v1/blocklist               the failure scopes blocked now, and why
    POST   /v1/attempts/{id}/heartbeat {"step": 120, "checkpoint": "..."}  (from workloads)
    GET    /healthz

Workloads authenticate their heartbeats with their attempt's own token
(``CLOUDHEDGE_ATTEMPT_TOKEN``, an HMAC of the attempt's key), not the API token, so an
instance can only report for itself.

A workload file is validated exactly as ``cloudhedge validate``-style loaders do
(:func:`~cloudhedge.control.specs.load_job_text`); an invalid one is answered ``422``
with every issue located (``file:line:column``, field path). The handlers are
``async``: they run on the event loop, between the reconciler's awaits, so a
submission never interleaves with a store write of the same step.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from cloudhedge import __version__
from cloudhedge.control.chaos import Chaos, ChaosError
from cloudhedge.control.reconciler import Reconciler
from cloudhedge.control.specs import JobSpec, ServiceSpec, load_job_text, load_service_text
from cloudhedge.control.store import (
    LIVE_STATES,
    Attempt,
    ControlStore,
    Workload,
    WorkloadExists,
)
from cloudhedge.core.errors import SpecError
from cloudhedge.core.models import Fleet

__all__ = ["create_api", "hash_token"]

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
LogReader = Callable[[Attempt, int], Awaitable[str]]  # (attempt, tail lines) -> text
Spec = TypeVar("Spec", JobSpec, ServiceSpec)

_bearer = HTTPBearer(auto_error=False, description="The token printed by `cloudhedge up`.")
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def hash_token(token: str) -> str:
    """The SHA-256 hex digest under which the API token is kept."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# --- bodies ------------------------------------------------------------------------------


class SubmitRequest(BaseModel):
    """A workload file, as text (YAML or JSON); ``filename`` locates its issues."""

    yaml: str = Field(description="The job.yaml / service.yaml text.")
    filename: str = Field("workload.yaml", description="Named in located issues.")


class BatchRequest(BaseModel):
    """Many job files at once: all are stored, or none (the first invalid ones say why)."""

    jobs: list[SubmitRequest] = Field(min_length=1, max_length=5000)


class Issue(BaseModel):
    file: str
    line: int
    column: int
    path: str
    message: str
    suggestion: str | None = None
    text: str = Field(description="The issue as one line: file:line:column: field: message.")


class InvalidWorkload(BaseModel):
    detail: str
    issues: list[Issue]


class Problem(BaseModel):
    detail: str


class Submitted(BaseModel):
    id: int
    name: str
    kind: str
    version: int


class AttemptOut(BaseModel):
    id: int
    key: str
    replica: int
    state: str
    pool: str
    provider: str
    region: str
    accelerator: str
    chips: int
    instance_id: str | None
    error_kind: str | None
    error_scope: str | None
    created_unix_s: float
    updated_unix_s: float
    address: str | None
    port: int | None
    heartbeat_unix_s: float | None
    progress_step: int | None
    ready: bool | None = Field(description="Service replicas: routed by the gateway now.")


class WorkloadOut(BaseModel):
    id: int
    name: str
    kind: str
    desired: str
    priority: int
    version: int
    attempts: dict[str, int] = Field(description="Number of attempts per state.")
    pools: list[str] = Field(description="Pools of the live attempts.")
    live_chips: int
    ready: int | None = Field(None, description="Services: replicas routed by the gateway.")
    updated_unix_s: float


class WorkloadDetail(WorkloadOut):
    spec: dict[str, Any]
    attempt_list: list[AttemptOut]


class EventOut(BaseModel):
    id: int
    kind: str
    reason: str
    attempt_id: int | None
    at_unix_s: float


class Explanation(BaseModel):
    name: str
    events: list[EventOut]
    placement: list[str] = Field(
        description="The last placement (or rejection): the decision, then per pool why.")


class Cancelled(BaseModel):
    name: str
    cancelled: bool = Field(description="False if it was already cancelled.")


class Health(BaseModel):
    status: str
    version: str


class Heartbeat(BaseModel):
    step: int | None = Field(None, ge=0, description="Progress, e.g. the training step.")
    checkpoint: str | None = Field(
        None, min_length=1, max_length=2048,
        description="Where the checkpoint at `step` was written (needs `step`).")


class HeartbeatAck(BaseModel):
    desired: str = Field(description="`running`, or `cancelled`: the workload may stop.")


class Logs(BaseModel):
    name: str
    attempt: str
    instance_id: str
    text: str


class OutageRequest(BaseModel):
    scope: str = Field(min_length=1, max_length=512, description=(
        "aws | aws/us-east-1 | aws/us-east-1/us-east-1a | h100 | pool name | kind:name"))
    duration_s: float | None = Field(None, gt=0, description="None: until restored.")


class ScopeRequest(BaseModel):
    scope: str = Field(min_length=1, max_length=512)


class PreemptRequest(BaseModel):
    target: str = Field(min_length=1, max_length=512,
                        description="An instance id, a pool or a workload name.")


class CapacityRequest(BaseModel):
    pool: str = Field(min_length=1, max_length=512)
    chips: int = Field(ge=0)


class Injected(BaseModel):
    target: str
    instances: list[str] = Field(description="Instances the fault ended.")
    until_unix_s: float | None = None


class Restored(BaseModel):
    scope: str
    restored: bool = Field(description="False if the scope had no outage.")


class CapacitySet(BaseModel):
    pool: str
    chips: int


class BlockOut(BaseModel):
    scope: str
    reason: str
    until_unix_s: float | None


# --- views -------------------------------------------------------------------------------


def _attempt_out(a: Attempt, routed: frozenset[int]) -> AttemptOut:
    return AttemptOut(
        id=a.id, key=a.idempotency_key, replica=a.replica, state=a.state, pool=a.pool,
        provider=a.provider, region=a.region, accelerator=a.accelerator, chips=a.chips,
        instance_id=a.instance_id, error_kind=a.error_kind, error_scope=a.error_scope,
        created_unix_s=a.created_unix_s, updated_unix_s=a.updated_unix_s, address=a.address,
        port=a.port, heartbeat_unix_s=a.heartbeat_unix_s, progress_step=a.progress_step,
        ready=(a.id in routed) if a.port is not None else None)


def _summary(w: Workload, attempts: list[Attempt], routed: frozenset[int]) -> dict[str, Any]:
    live = [a for a in attempts if a.state in LIVE_STATES]
    return {"id": w.id, "name": w.name, "kind": w.kind, "desired": w.desired,
            "priority": w.priority, "version": w.version,
            "attempts": dict(Counter(a.state for a in attempts)),
            "pools": sorted({a.pool for a in live}),
            "live_chips": sum(a.chips for a in live),
            "ready": sum(1 for a in live if a.id in routed) if w.kind == "service" else None,
            "updated_unix_s": w.updated_unix_s}


_HEARTBEAT = re.compile(r"^/v1/attempts/([0-9]{1,18})/heartbeat$")
_UNAUTHORIZED = {"status": 401, "headers": [(b"content-type", b"application/json"),
                                            (b"www-authenticate", b"Bearer")]}


class _Guard:
    """Checks the bearer token of every ``/v1/`` request before anything reads its body.

    (FastAPI parses a body before it runs the route's dependencies, so without this an
    unauthenticated request with a malformed body would learn it is malformed: 422.)
    Heartbeats carry their attempt's token instead of the API's. The routes keep their
    ``authorized`` dependency too, which also documents the scheme in the OpenAPI.
    """

    def __init__(self, app: ASGIApp, *, token_hash: str,
                 attempt_token: Callable[[int], str | None]) -> None:
        self.app = app
        self.token_hash = token_hash
        self.attempt_token = attempt_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            given = _bearer_token(scope)
            heartbeat = _HEARTBEAT.match(scope["path"])
            if heartbeat is not None:
                expected = self.attempt_token(int(heartbeat.group(1)))
                ok = given is not None and expected is not None and hmac.compare_digest(
                    given, expected)
                what = "attempt token"
            else:
                ok = given is not None and hmac.compare_digest(hash_token(given),
                                                               self.token_hash)
                what = "bearer token"
            if not ok:
                await send({"type": "http.response.start", **_UNAUTHORIZED})
                body = json.dumps({"detail": f"missing or wrong {what}"}).encode()
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token if scheme.lower() == "bearer" and token else None
    return None


class _Unprocessable(Exception):
    """A request well formed but impossible to honour: 422, as :class:`InvalidWorkload`."""

    def __init__(self, detail: str, path: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.path = path


def _unprocessable(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, _Unprocessable)
    issue = Issue(file="request", line=0, column=0, path=exc.path, message=exc.detail,
                  text=f"request: {exc.path}: {exc.detail}")
    body = InvalidWorkload(detail=exc.detail, issues=[issue])
    return JSONResponse(body.model_dump(), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _request_invalid(_request: Request, exc: Exception) -> JSONResponse:
    """A body or parameter that is not what the route takes: 422, in the shape of
    :class:`InvalidWorkload` (``detail`` a sentence, ``issues`` located in the request)."""
    assert isinstance(exc, RequestValidationError)
    issues = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "invalid"))
        issues.append(Issue(file="request", line=0, column=0, path=path, message=message,
                            text=f"request: {path}: {message}"))
    body = InvalidWorkload(detail=f"invalid request: {len(issues)} problem(s)", issues=issues)
    return JSONResponse(body.model_dump(), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _invalid(exc: SpecError) -> JSONResponse:
    issues = [Issue(file=i.file, line=i.line, column=i.column, path=i.path, message=i.message,
                    suggestion=i.suggestion, text=str(i)) for i in exc.issues]
    body = InvalidWorkload(detail=f"invalid workload: {len(issues)} problem(s)", issues=issues)
    return JSONResponse(body.model_dump(), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


# --- the app -----------------------------------------------------------------------------


def create_api(reconciler: Reconciler, store: ControlStore, *, fleet: Fleet, token_hash: str,
               lifespan: Lifespan | None = None, chaos: Chaos | None = None,
               logs: LogReader | None = None,
               routed: Callable[[], frozenset[int]] = frozenset) -> FastAPI:
    """The control-plane API; ``token_hash`` is :func:`hash_token` of the bearer token.

    ``chaos`` enables ``/v1/chaos/*`` (emulated clouds), ``logs`` the logs route, and
    ``routed`` says which attempts the gateway routes to now.
    """
    app = FastAPI(title="cloudhedge control plane", version=__version__, lifespan=lifespan)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(_Unprocessable, _unprocessable)

    def attempt_token(attempt_id: int) -> str | None:
        a = store.get_attempt(attempt_id)
        return None if a is None else reconciler.attempt_token(a)

    app.add_middleware(_Guard, token_hash=token_hash, attempt_token=attempt_token)
    def authorized(credentials: BearerCredentials) -> None:
        given = "" if credentials is None else hash_token(credentials.credentials)
        if credentials is None or not hmac.compare_digest(given, token_hash):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    auth = [Depends(authorized)]
    errors: dict[int | str, dict[str, Any]] = {401: {"model": Problem},
                                              422: {"model": InvalidWorkload}}
    bodies: dict[int | str, dict[str, Any]] = {
        400: {"model": Problem, "description": "The body cannot be read (not UTF-8 JSON)."}}
    submit_errors: dict[int | str, dict[str, Any]] = {**errors, **bodies, 409: {"model": Problem}}
    named_errors: dict[int | str, dict[str, Any]] = {
        **errors, 404: {"model": Problem}, 405: {
            "model": Problem, "description": "The name, decoded, names another route."}}

    def found(name: str) -> Workload:
        w = store.get_workload_by_name(name)
        if w is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no workload {name!r}")
        return w

    def submit(files: list[SubmitRequest], load: Callable[[str, str, Fleet], Spec],
               store_specs: Callable[[list[Spec]], object]) -> list[Submitted] | JSONResponse:
        """Load every file (422 with all their issues), store them (409 on a name
        clash), and answer what is stored under their names."""
        specs, issues = [], []
        for item in files:
            try:
                specs.append(load(item.yaml, item.filename, fleet))
            except SpecError as exc:
                issues.extend(exc.issues)
        if issues:
            return _invalid(SpecError(issues))
        try:
            store_specs(specs)
        except (ValueError, WorkloadExists) as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        stored = {w.name: w for w in store.get_workloads_by_name([s.name for s in specs])}
        return [Submitted(id=w.id, name=w.name, kind=w.kind, version=w.version)
                for w in (stored[s.name] for s in specs)]

    def one(answer: list[Submitted] | JSONResponse) -> Submitted | JSONResponse:
        return answer[0] if isinstance(answer, list) else answer

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        return Health(status="ok", version=__version__)

    @app.post("/v1/jobs", response_model=Submitted, status_code=201, dependencies=auth,
              responses=submit_errors)
    async def submit_job(body: SubmitRequest) -> Submitted | JSONResponse:
        """Store a job's desired state (create, or update one of the same name)."""
        return one(submit([body], load_job_text,
                          lambda specs: reconciler.submit_job(specs[0])))

    @app.post("/v1/jobs/batch", response_model=list[Submitted], status_code=201,
              dependencies=auth, responses=submit_errors)
    async def submit_jobs(body: BatchRequest) -> list[Submitted] | JSONResponse:
        """Store many jobs in one call (all or none); 422 lists every invalid file's issues."""
        return submit(body.jobs, load_job_text, reconciler.submit_jobs)

    @app.post("/v1/services", response_model=Submitted, status_code=201, dependencies=auth,
              responses=submit_errors)
    async def submit_service(body: SubmitRequest) -> Submitted | JSONResponse:
        """Store a service's desired state (create, or update one of the same name)."""
        return one(submit([body], load_service_text,
                          lambda specs: reconciler.submit_service(specs[0])))

    @app.get("/v1/workloads", response_model=list[WorkloadOut], dependencies=auth,
             responses=errors)
    async def list_workloads() -> list[WorkloadOut]:
        by_workload: dict[int, list[Attempt]] = {}
        for a in store.list_attempts():
            by_workload.setdefault(a.workload_id, []).append(a)
        now_routed = routed()
        return [WorkloadOut(**_summary(w, by_workload.get(w.id, []), now_routed))
                for w in store.list_workloads()]

    @app.get("/v1/workloads/{name}", response_model=WorkloadDetail, dependencies=auth,
             responses=named_errors)
    async def get_workload(name: str) -> WorkloadDetail:
        w = found(name)
        attempts = store.list_attempts(workload_id=w.id)
        now_routed = routed()
        return WorkloadDetail(**_summary(w, attempts, now_routed), spec=w.spec,
                              attempt_list=[_attempt_out(a, now_routed) for a in attempts])

    @app.get("/v1/workloads/{name}/explain", response_model=Explanation, dependencies=auth,
             responses=named_errors)
    async def explain_workload(name: str) -> Explanation:
        """Why the workload runs where it does (or why it does not run)."""
        w = found(name)
        events = store.list_events(workload_id=w.id)
        placement: list[str] = []
        for e in reversed(events):
            if e.kind in ("placement", "rejection") and e.data:
                placement = reconciler.explain_placement(w, e.data)
                if placement:
                    break
        return Explanation(name=w.name, placement=placement, events=[
            EventOut(id=e.id, kind=e.kind, reason=e.reason, attempt_id=e.attempt_id,
                     at_unix_s=e.at_unix_s) for e in events])

    @app.delete("/v1/workloads/{name}", response_model=Cancelled, dependencies=auth,
                responses=named_errors)
    async def cancel_workload(name: str) -> Cancelled:
        """Cancel: the workload's instances are terminated on the next reconciler step."""
        w = found(name)
        return Cancelled(name=w.name, cancelled=reconciler.cancel(name))

    @app.get("/v1/workloads/{name}/logs", response_model=Logs, dependencies=auth,
             responses=named_errors)
    async def workload_logs(name: str, replica: Annotated[int, Query(ge=0)] = 0,
                            tail: Annotated[int, Query(ge=1, le=100_000)] = 200) -> Logs:
        """The last ``tail`` lines of the newest launched attempt of a replica."""
        w = found(name)
        launched = [a for a in store.list_attempts(workload_id=w.id)
                    if a.replica == replica and a.instance_id is not None]
        if not launched:
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                f"replica {replica} of {name!r} has not been launched")
        if logs is None:
            raise HTTPException(status.HTTP_409_CONFLICT,
                                "this control plane's providers keep no logs")
        a = launched[-1]
        assert a.instance_id is not None
        return Logs(name=w.name, attempt=a.idempotency_key, instance_id=a.instance_id,
                    text=await logs(a, tail))

    @app.get("/v1/blocklist", response_model=list[BlockOut], dependencies=auth,
             responses=errors)
    async def blocklist() -> list[BlockOut]:
        """Failure scopes placement avoids now, with the reason and until when."""
        return [BlockOut(scope=f"{b.scope_kind}:{b.scope_name}", reason=b.reason,
                         until_unix_s=b.until_unix_s) for b in store.active_blocks()]

    # -- heartbeats, from the workloads themselves --------------------------------------

    @app.post("/v1/attempts/{attempt_id}/heartbeat", response_model=HeartbeatAck,
              responses={**named_errors, **bodies, 409: {"model": Problem}})
    async def heartbeat(attempt_id: int, body: Heartbeat,
                        credentials: BearerCredentials) -> HeartbeatAck:
        """A workload reports it is alive (and its progress and latest checkpoint)."""
        a = store.get_attempt(attempt_id) if 0 < attempt_id < 2**63 else None
        expected = None if a is None else reconciler.attempt_token(a)
        if (credentials is None or expected is None
                or not hmac.compare_digest(credentials.credentials, expected)):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong attempt token",
                                headers={"WWW-Authenticate": "Bearer"})
        assert a is not None
        if body.checkpoint is not None and body.step is None:
            raise _Unprocessable("a checkpoint needs the step it was taken at", "body.step")
        if not reconciler.heartbeat(a, step=body.step, checkpoint=body.checkpoint):
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"attempt {a.idempotency_key} is {a.state}, not running: stop")
        w = store.get_workload(a.workload_id)
        return HeartbeatAck(desired="cancelled" if w is None else w.desired)

    # -- fault injection (emulated clouds) ----------------------------------------------

    chaos_errors: dict[int | str, dict[str, Any]] = {**errors, **bodies, 409: {"model": Problem}}

    def injector() -> Chaos:
        if chaos is None:
            raise HTTPException(status.HTTP_409_CONFLICT,
                                "fault injection needs emulated clouds")
        return chaos

    def refused(e: ChaosError) -> _Unprocessable:
        return _Unprocessable(str(e), "body")

    @app.post("/v1/chaos/outage", response_model=Injected, dependencies=auth,
              responses=chaos_errors)
    async def outage(body: OutageRequest) -> Injected:
        """Take a provider, region, zone, accelerator family or pool down."""
        try:
            done = injector().outage(body.scope, body.duration_s)
        except ChaosError as e:
            raise refused(e) from None
        return Injected(target=done.target, instances=done.instances,
                        until_unix_s=done.until_unix_s)

    @app.post("/v1/chaos/restore", response_model=Restored, dependencies=auth,
              responses=chaos_errors)
    async def restore(body: ScopeRequest) -> Restored:
        """End the outages of a scope now."""
        try:
            return Restored(scope=body.scope, restored=injector().restore(body.scope))
        except ChaosError as e:
            raise refused(e) from None

    @app.post("/v1/chaos/preempt", response_model=Injected, dependencies=auth,
              responses=chaos_errors)
    async def preempt(body: PreemptRequest) -> Injected:
        """Preempt an instance, every instance of a pool, or those of a workload."""
        try:
            done = injector().preempt(body.target)
        except ChaosError as e:
            raise refused(e) from None
        return Injected(target=done.target, instances=done.instances)

    @app.post("/v1/chaos/capacity", response_model=CapacitySet, dependencies=auth,
              responses=chaos_errors)
    async def capacity(body: CapacityRequest) -> CapacitySet:
        """Change a pool's capacity (a supply shock); running instances stay."""
        try:
            injector().capacity(body.pool, body.chips)
        except ChaosError as e:
            raise refused(e) from None
        return CapacitySet(pool=body.pool, chips=body.chips)

    return app
