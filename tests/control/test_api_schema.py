"""The control-plane API against its own OpenAPI document, with schemathesis.

The app is :class:`~cloudhedge.control.server.ControlPlane` over ``examples/startup.yaml``
(8 pools, 3 providers) with simulated instances (``run_processes=False``) and SQLite in a
temporary directory, called in-process through schemathesis' ASGI transport. Its lifespan
runs, so the reconciler places and launches what the tests submit (every 50 ms): the
workload views are checked with attempts in them too.

Every operation of the published document is covered (a route added later is too):

- authenticated calls generated from the schema, mixed with known-good inputs (the names
  of seeded workloads, valid workload files, real scopes and pools, a live attempt with
  its own token) so that 200s and 201s are reached, not only 404s and 422s: never a 5xx,
  a documented status code and content type, a body matching the documented schema;
- bodies that violate the schema: a 4xx, never a 5xx;
- no token, a wrong one, another scheme: 401 on every operation but ``/healthz``, and
  nothing is stored; only ``/healthz`` and the documentation routes answer anonymously.

Deviations these tests found when first written (500s on hostile YAML, 422 shapes and
statuses the document did not list, a malformed body answered before the token was
checked) are kept as regression tests, each with the request that showed it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.python.asgi import get_client, shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from cloudhedge.control.server import ControlPlane
from cloudhedge.spec import load_fleet

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "schema-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
EXAMPLES = 20  # per operation; the whole file runs in well under 30 s

JOB = """\
name: {name}
kind: batch
command: [sleep, "3600"]
accelerators:
  - {{accelerator: h100, chips: 8}}
  - {{accelerator: mi300x, chips: 8}}
"""
SERVICE = """\
name: {name}
model: chat
command: [sleep, "3600"]
replicas: 2
accelerators:
  - {{accelerator: h100, chips: 8}}
spread: provider
"""
JOB_NAMES = ["seeded-job", "other-job"]
SERVICE_NAMES = ["seeded-service"]
KNOWN_NAMES = [*JOB_NAMES, *SERVICE_NAMES]
SUBMIT = {"/v1/jobs": (JOB, JOB_NAMES), "/v1/services": (SERVICE, SERVICE_NAMES)}
POOLS = ["aws-use1-h100-od", "gcp-usc1-v5e-spot", "oci-ashburn-mi300x-od"]
SCOPES = ["aws", "gcp/us-central1", "mi300x", "pool:oci-ashburn-h100-od", "nowhere"]
HEARTBEAT = "/v1/attempts/{attempt_id}/heartbeat"
BATCH = "/v1/jobs/batch"
# answer without the API token: health and the documentation; the heartbeat checks the
# attempt's own token in its handler (asserted below like the others)
ANONYMOUS = {"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    fleet = load_fleet(ROOT / "examples" / "startup.yaml")
    plane = ControlPlane(fleet, state_dir=tmp_path_factory.mktemp("control"), token=TOKEN,
                         run_processes=False, interval_s=0.05)
    yield plane
    shutdown_lifespans()  # stops the reconciler, closes the cloud and the store


@pytest.fixture(scope="module")
def schema(control: ControlPlane) -> OpenApiSchema:
    """The published document (loading it starts the app's lifespan), and seeded workloads."""
    loaded = schemathesis.openapi.from_asgi("/openapi.json", control.app)
    for path, (template, names) in SUBMIT.items():
        for name in names:
            case = loaded[path]["POST"].Case(body={"yaml": template.format(name=name),
                                                   "filename": f"{name}.yaml"})
            response = case.call(headers=AUTH)
            assert response.status_code == 201, response.text
    return loaded


def _operations(schema: OpenApiSchema) -> list[tuple[str, str]]:
    """Every documented operation; faults, then cancellations, last."""
    ops = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document is valid
        ops.append((result.ok().method.upper(), result.ok().path))
    return sorted(ops, key=lambda op: (op[0] == "DELETE", "/chaos/" in op[1], op))


_ATTEMPT_HEADERS: set[str] = set()  # the Authorization of heartbeats sent as their attempt


def _attempt_headers(control: ControlPlane) -> st.SearchStrategy[tuple[int, dict[str, str]]]:
    """A stored attempt and its own bearer token (drawn when the test runs)."""
    def pick(index: int) -> tuple[int, dict[str, str]]:
        attempts = control.store.list_attempts(states=["running"])
        assume(attempts)
        a = attempts[index % len(attempts)]
        token = control.reconciler.attempt_token(a)
        assume(token is not None)
        _ATTEMPT_HEADERS.add(f"Bearer {token}")
        return a.id, {"Authorization": f"Bearer {token}"}
    return st.integers(0, 50).map(pick)


def _known(schema: OpenApiSchema, control: ControlPlane, method: str,
           path: str) -> st.SearchStrategy[Any] | None:
    """Known-good inputs of an operation, when it has some."""
    operation = schema[path][method]
    if path == BATCH:
        # fresh and known job names (created or updated); sometimes a name twice or a
        # service's name (409), or a service file among them (422)
        names = st.lists(st.sampled_from([*KNOWN_NAMES, "batch-a", "batch-b", "batch-c"]),
                         min_size=1, max_size=4)
        bodies = st.tuples(names, st.booleans()).map(lambda t: {"jobs": [
            {"yaml": (SERVICE if t[1] and i == 0 else JOB).format(name=n),
             "filename": f"{n}.yaml"} for i, n in enumerate(t[0])]})
        unique = names.map(lambda ns: {"jobs": [
            {"yaml": JOB.format(name=n), "filename": f"{n}.yaml"} for n in dict.fromkeys(ns)]})
        return st.one_of(bodies, unique, unique).flatmap(
            lambda b: operation.as_strategy(body=b))
    if path in SUBMIT:
        template, _ = SUBMIT[path]
        other = SUBMIT["/v1/services" if path == "/v1/jobs" else "/v1/jobs"][0]
        # mostly a valid file of this kind under a name of this kind (an update) or a new
        # one; else a known name of the other kind (409) or a file of the other kind (422)
        kind = "job" if path == "/v1/jobs" else "service"
        good = st.sampled_from([*SUBMIT[path][1], f"fresh-{kind}"]).map(
            lambda name: template.format(name=name))
        bad = st.tuples(st.sampled_from([template, other]), st.sampled_from(KNOWN_NAMES)).map(
            lambda t: t[0].format(name=t[1]))
        bodies = st.one_of(good, good, good, bad).map(
            lambda text: {"yaml": text, "filename": "w.yaml"})
        return bodies.flatmap(lambda b: operation.as_strategy(body=b))
    if path == HEARTBEAT:
        return st.tuples(_attempt_headers(control), st.integers(0, 10**6)).flatmap(
            lambda t: operation.as_strategy(path_parameters={"attempt_id": t[0][0]},
                                            headers=t[0][1], body={"step": t[1]}))
    if "{name}" in path:
        return st.sampled_from(KNOWN_NAMES).flatmap(
            lambda name: operation.as_strategy(path_parameters={"name": name}))
    bodies_by_path: dict[str, st.SearchStrategy[dict[str, Any]]] = {
        "/v1/chaos/outage": st.fixed_dictionaries(
            {"scope": st.sampled_from(SCOPES), "duration_s": st.just(0.2)}),
        "/v1/chaos/restore": st.fixed_dictionaries({"scope": st.sampled_from(SCOPES)}),
        "/v1/chaos/preempt": st.fixed_dictionaries(
            {"target": st.sampled_from([*KNOWN_NAMES, *POOLS])}),
        "/v1/chaos/capacity": st.fixed_dictionaries(
            {"pool": st.sampled_from(POOLS), "chips": st.sampled_from([0, 256, 4096])}),
    }
    if path in bodies_by_path:
        return bodies_by_path[path].flatmap(lambda b: operation.as_strategy(body=b))
    return None


def _call(case: Any, checks: list[Any]) -> Any:
    """Call with the API token (replacing any generated one), unless the case is a
    heartbeat sent with its attempt's token."""
    own = (case.headers or {}).get("Authorization") in _ATTEMPT_HEADERS
    return case.call_and_validate(headers=None if own else AUTH, checks=checks)


def _violations(case: Any, response: Any, checks: list[Any]) -> list[str]:
    """The checks ``response`` fails, by name (empty: it conforms)."""
    try:
        case.validate_response(response, checks=checks)
    except FailureGroup as group:
        return [f"{type(e).__name__}: {e}" for e in group.exceptions]
    return []


# --- authenticated -----------------------------------------------------------------------


def test_authenticated_calls_conform_to_the_document(schema: OpenApiSchema,
                                                     control: ControlPlane) -> None:
    reached: dict[tuple[str, str], set[int]] = {}
    failures: dict[tuple[str, str], str] = {}
    for method, path in _operations(schema):
        operation = schema[path][method]
        known = _known(schema, control, method, path)
        strategy = operation.as_strategy()
        if known is not None:
            strategy = st.one_of(strategy, known)
        statuses = reached.setdefault((method, path), set())
        try:
            PROPERTY(given(strategy)(_conforming(statuses)))()
        except Exception as e:  # every operation is tried; all failures are reported
            failures[(method, path)] = f"{type(e).__name__}: {e}"
    assert not failures, "\n\n".join(f"{m} {p}: {e}" for (m, p), e in failures.items())
    # the known inputs reach the success path of every operation, not only its errors
    unreached = {op: s for op, s in reached.items() if not s & {200, 201}}
    assert not unreached, unreached


def _conforming(statuses: set[int]) -> Any:
    def call(case: Any) -> None:
        statuses.add(_call(case, CHECKS).status_code)
    return call


def test_bodies_that_violate_the_schema_are_4xx(schema: OpenApiSchema) -> None:
    checks = [not_a_server_error, content_type_conformance, status_code_conformance,
              response_schema_conformance]
    posts = [(m, p) for m, p in _operations(schema) if m == "POST"]
    assert posts
    for method, path in posts:
        def call(case: Any) -> None:
            response = _call(case, checks)
            assert 400 <= response.status_code < 500, (case.path, response.status_code,
                                                      response.text)

        strategy = schema[path][method].as_strategy(generation_mode=GenerationMode.NEGATIVE)
        PROPERTY(given(strategy)(call))()


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/chaos/outage"])
def test_a_request_validation_422_matches_the_document(schema: OpenApiSchema,
                                                       path: str) -> None:
    case = schema[path]["POST"].Case(body={"filename": "no-yaml.yaml"})
    response = case.call(headers=AUTH)
    assert response.status_code == 422
    assert _violations(case, response, [response_schema_conformance]) == []


def test_a_body_that_is_not_utf8_is_a_documented_answer(schema: OpenApiSchema) -> None:
    case = schema["/v1/jobs"]["POST"].Case(body={"yaml": "x"})
    response = case.call(headers={**AUTH, "Content-Type": "application/json"},
                         data=b'{"yaml": "\xff"}')
    assert 400 <= response.status_code < 500
    assert _violations(case, response, [status_code_conformance]) == []


@pytest.mark.parametrize("text", [
    pytest.param("\x1f", id="control-character"),
    pytest.param("name: \x00", id="nul"),
    pytest.param("a: &a {b: 1}\nc: {<<: *a}\n", id="merge-key"),
    pytest.param("[" * 500 + "]" * 500, id="deep-nesting"),
    pytest.param("name: [a, {b: c}]\n", id="control"),
])
def test_any_workload_text_is_answered_422_not_500(schema: OpenApiSchema, text: str) -> None:
    case = schema["/v1/jobs"]["POST"].Case(body={"yaml": text, "filename": "w.yaml"})
    response = case.call_and_validate(headers=AUTH, checks=CHECKS)
    assert response.status_code == 422, response.text


def test_a_name_with_a_slash_is_a_documented_answer(schema: OpenApiSchema) -> None:
    case = schema["/v1/workloads/{name}"]["DELETE"].Case(path_parameters={"name": "x/explain"})
    response = case.call(headers=AUTH)
    assert _violations(case, response, [status_code_conformance]) == []


# --- the token ---------------------------------------------------------------------------


def test_only_health_and_documentation_answer_without_a_token(control: ControlPlane) -> None:
    # a route added without `dependencies=auth` shows up here
    unguarded = set()
    for route in control.app.routes:
        guarded = isinstance(route, APIRoute) and any(
            getattr(d.call, "__name__", "") == "authorized" for d in route.dependant.dependencies)
        if not guarded:
            unguarded.add(getattr(route, "path", ""))
    assert unguarded == ANONYMOUS | {HEARTBEAT}


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer "},
    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN},
    {"Authorization": f"Bearer {TOKEN}x"}],
    ids=["missing", "wrong", "empty", "basic", "no-scheme", "longer"])
def test_every_operation_needs_the_token(schema: OpenApiSchema, control: ControlPlane,
                                         headers: dict[str, str]) -> None:
    before = [(w.name, w.desired, w.version) for w in control.store.list_workloads()]
    last_event = max((e.id for e in control.store.list_events()), default=0)
    operations = [op for op in _operations(schema) if op != ("GET", "/healthz")]
    assert len(operations) >= 6
    for method, path in operations:
        operation = schema[path][method]
        strategy = operation.as_strategy()
        if method == "POST" and path != HEARTBEAT:  # a heartbeat's body is read first
            strategy = st.one_of(strategy, operation.as_strategy(
                generation_mode=GenerationMode.NEGATIVE))
        if path in SUBMIT:  # a valid file: refused for the token, not for its content
            body = {"yaml": SUBMIT[path][0].format(name="intruder"), "filename": "x.yaml"}
            strategy = st.one_of(strategy, operation.as_strategy(body=body))
        known = _known(schema, control, method, path)
        if known is not None and path != HEARTBEAT:
            strategy = st.one_of(strategy, known)

        def call(case: Any) -> None:
            case.headers = {k: v for k, v in (case.headers or {}).items()
                            if k.lower() != "authorization"}
            response = case.call(headers=headers)
            assert response.status_code == 401, (case.method, case.formatted_path,
                                                 response.text)
            assert response.json()["detail"].startswith("missing or wrong")
            assert response.headers["www-authenticate"] == ["Bearer"]
            case.validate_response(response, checks=CHECKS)

        settings(PROPERTY, max_examples=6)(given(strategy)(call))()
    # nothing was submitted, updated, cancelled, injected or checkpointed
    assert [(w.name, w.desired, w.version) for w in control.store.list_workloads()] == before
    assert control.store.get_workload_by_name("intruder") is None
    later = control.store.list_events(after_id=last_event)
    assert not [e for e in later if e.kind in ("chaos", "desired", "checkpoint")], later


@pytest.mark.parametrize(("path", "data"), [
    ("/v1/jobs", b"{not json"), ("/v1/attempts/1/heartbeat", b'{"step": -1}')],
    ids=["malformed-json", "heartbeat-invalid-body"])
def test_a_bad_body_without_a_token_is_401(control: ControlPlane, schema: OpenApiSchema,
                                           path: str, data: bytes) -> None:
    with get_client(cast(Any, control.app)) as client:
        response = client.post(path, data=data, headers={"Content-Type": "application/json"})
    assert response.status_code == 401, response.text


def test_health_answers_without_a_token(schema: OpenApiSchema) -> None:
    case = schema["/healthz"]["GET"].Case()
    response = case.call_and_validate(checks=CHECKS)
    assert response.status_code == 200 and response.json()["status"] == "ok"
