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
    GET    /healthz

A workload file is validated exactly as ``cloudhedge validate``-style loaders do
(:func:`~cloudhedge.control.specs.load_job_text`); an invalid one is answered ``422``
with every issue located (``file:line:column``, field path). The handlers are
``async``: they run on the event loop, between the reconciler's awaits, so a
submission never interleaves with a store write of the same step.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from cloudhedge import __version__
from cloudhedge.control.reconciler import Reconciler
from cloudhedge.control.specs import load_job_text, load_service_text
from cloudhedge.control.store import LIVE_STATES, Attempt, ControlStore, Workload
from cloudhedge.core.errors import SpecError
from cloudhedge.core.models import Fleet

__all__ = ["create_api", "hash_token"]

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

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


# --- views -------------------------------------------------------------------------------


def _attempt_out(a: Attempt) -> AttemptOut:
    return AttemptOut(
        id=a.id, key=a.idempotency_key, replica=a.replica, state=a.state, pool=a.pool,
        provider=a.provider, region=a.region, accelerator=a.accelerator, chips=a.chips,
        instance_id=a.instance_id, error_kind=a.error_kind, error_scope=a.error_scope,
        created_unix_s=a.created_unix_s, updated_unix_s=a.updated_unix_s)


def _summary(w: Workload, attempts: list[Attempt]) -> dict[str, Any]:
    live = [a for a in attempts if a.state in LIVE_STATES]
    return {"id": w.id, "name": w.name, "kind": w.kind, "desired": w.desired,
            "priority": w.priority, "version": w.version,
            "attempts": dict(Counter(a.state for a in attempts)),
            "pools": sorted({a.pool for a in live}),
            "live_chips": sum(a.chips for a in live), "updated_unix_s": w.updated_unix_s}


def _invalid(exc: SpecError) -> JSONResponse:
    issues = [Issue(file=i.file, line=i.line, column=i.column, path=i.path, message=i.message,
                    suggestion=i.suggestion, text=str(i)) for i in exc.issues]
    body = InvalidWorkload(detail=f"invalid workload: {len(issues)} problem(s)", issues=issues)
    return JSONResponse(body.model_dump(), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


# --- the app -----------------------------------------------------------------------------


def create_api(reconciler: Reconciler, store: ControlStore, *, fleet: Fleet, token_hash: str,
               lifespan: Lifespan | None = None) -> FastAPI:
    """The control-plane API; ``token_hash`` is :func:`hash_token` of the bearer token."""
    app = FastAPI(title="cloudhedge control plane", version=__version__, lifespan=lifespan)
    def authorized(credentials: BearerCredentials) -> None:
        given = "" if credentials is None else hash_token(credentials.credentials)
        if credentials is None or not hmac.compare_digest(given, token_hash):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    auth = [Depends(authorized)]
    errors: dict[int | str, dict[str, Any]] = {401: {"model": Problem}}
    submit_errors: dict[int | str, dict[str, Any]] = {
        **errors, 422: {"model": InvalidWorkload}, 409: {"model": Problem}}
    named_errors: dict[int | str, dict[str, Any]] = {**errors, 404: {"model": Problem}}

    def found(name: str) -> Workload:
        w = store.get_workload_by_name(name)
        if w is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no workload {name!r}")
        return w

    def submitted(workload_id: int) -> Submitted:
        w = store.get_workload(workload_id)
        assert w is not None
        return Submitted(id=w.id, name=w.name, kind=w.kind, version=w.version)

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        return Health(status="ok", version=__version__)

    @app.post("/v1/jobs", response_model=Submitted, status_code=201, dependencies=auth,
              responses=submit_errors)
    async def submit_job(body: SubmitRequest) -> Submitted | JSONResponse:
        """Store a job's desired state (create, or update one of the same name)."""
        try:
            spec = load_job_text(body.yaml, body.filename, fleet)
        except SpecError as exc:
            return _invalid(exc)
        try:
            return submitted(reconciler.submit_job(spec))
        except ValueError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None

    @app.post("/v1/services", response_model=Submitted, status_code=201, dependencies=auth,
              responses=submit_errors)
    async def submit_service(body: SubmitRequest) -> Submitted | JSONResponse:
        """Store a service's desired state (create, or update one of the same name)."""
        try:
            spec = load_service_text(body.yaml, body.filename, fleet)
        except SpecError as exc:
            return _invalid(exc)
        try:
            return submitted(reconciler.submit_service(spec))
        except ValueError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None

    @app.get("/v1/workloads", response_model=list[WorkloadOut], dependencies=auth,
             responses=errors)
    async def list_workloads() -> list[WorkloadOut]:
        by_workload: dict[int, list[Attempt]] = {}
        for a in store.list_attempts():
            by_workload.setdefault(a.workload_id, []).append(a)
        return [WorkloadOut(**_summary(w, by_workload.get(w.id, [])))
                for w in store.list_workloads()]

    @app.get("/v1/workloads/{name}", response_model=WorkloadDetail, dependencies=auth,
             responses=named_errors)
    async def get_workload(name: str) -> WorkloadDetail:
        w = found(name)
        attempts = store.list_attempts(workload_id=w.id)
        return WorkloadDetail(**_summary(w, attempts), spec=w.spec,
                              attempt_list=[_attempt_out(a) for a in attempts])

    @app.get("/v1/workloads/{name}/explain", response_model=Explanation, dependencies=auth,
             responses=named_errors)
    async def explain_workload(name: str) -> Explanation:
        """Why the workload runs where it does (or why it does not run)."""
        w = found(name)
        events = store.list_events(workload_id=w.id)
        placement: list[str] = []
        for e in reversed(events):
            lines = (e.data or {}).get("explain")
            if e.kind in ("placement", "rejection") and isinstance(lines, list):
                placement = [str(line) for line in lines]
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

    return app
