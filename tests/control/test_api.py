"""The control-plane API on a real uvicorn server on loopback.

The app is :func:`create_api` over a SQLite store in ``tmp_path``, simulated clouds
(``EmulatedCloud(run_processes=False)``) and a :class:`ManualClock`; the test drives the
reconciler by hand, on the server's own event loop (where the API handlers run too).
One end-to-end test runs ``cloudhedge up`` as a subprocess and drives it with the CLI.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI

from cloudhedge.control.api import create_api, hash_token
from cloudhedge.control.chaos import Chaos
from cloudhedge.control.client import ApiError, ControlClient, read_state
from cloudhedge.control.placement import Placer
from cloudhedge.control.providers import EmulatedCloud, ManualClock
from cloudhedge.control.reconciler import Reconciler, StepReport
from cloudhedge.control.store import Attempt, ControlStore
from cloudhedge.gateway.mock import AppServer
from cloudhedge.spec import load_fleet

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TOKEN = "s3cret-token"
CLI = Path(sys.executable).parent / "cloudhedge"
JOB_YAML = (EXAMPLES / "control" / "job.yaml").read_text(encoding="utf-8")


@dataclass
class Api:
    client: ControlClient
    url: str
    reconciler: Reconciler
    store: ControlStore
    cloud: EmulatedCloud
    loop: asyncio.AbstractEventLoop
    clock: ManualClock

    def step(self) -> StepReport:
        """One reconciler step on the server's loop."""
        return asyncio.run_coroutine_threadsafe(self.reconciler.step(), self.loop).result(10)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    fleet = load_fleet(EXAMPLES / "frontier-lab.yaml")
    clock = ManualClock(start=time.time())
    store = ControlStore(f"sqlite:///{tmp_path / 'control.db'}", clock=clock.now)
    cloud = EmulatedCloud(fleet, clock=clock, run_processes=False)
    reconciler = Reconciler(store, cloud.providers(), Placer(fleet), fleet, clock=clock,
                            attempt_secret=b"attempt-secret")
    loops: list[asyncio.AbstractEventLoop] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        loops.append(asyncio.get_running_loop())
        yield

    async def logs(a: Attempt, tail: int) -> str:
        return f"output of {a.instance_id}, last {tail} lines\n"

    app = create_api(reconciler, store, fleet=fleet, token_hash=hash_token(TOKEN),
                     lifespan=lifespan, chaos=Chaos(cloud, store, fleet, clock=clock),
                     logs=logs)
    with AppServer(app) as url:
        yield Api(ControlClient(url, TOKEN), url, reconciler, store, cloud, loops[0], clock)
    store.close()


def test_health_needs_no_token_and_openapi_is_published(api: Api) -> None:
    anonymous = ControlClient(api.url, "")
    assert anonymous.request("GET", "/healthz")["status"] == "ok"
    doc = anonymous.request("GET", "/openapi.json")
    assert {"/v1/jobs", "/v1/services", "/v1/workloads", "/v1/workloads/{name}",
            "/v1/workloads/{name}/explain"} <= set(doc["paths"])


@pytest.mark.parametrize("token", ["wrong", ""])
def test_a_wrong_or_missing_token_is_401(api: Api, token: str) -> None:
    client = ControlClient(api.url, token)
    for method, path, body in (("GET", "/v1/workloads", None),
                               ("POST", "/v1/jobs", {"yaml": JOB_YAML}),
                               ("DELETE", "/v1/workloads/x", None)):
        with pytest.raises(ApiError) as caught:
            client.request(method, path, body)
        assert caught.value.status == 401
    assert api.store.list_workloads() == []


def test_a_posted_job_appears_then_runs_after_a_step(api: Api) -> None:
    submitted = api.client.submit("jobs", EXAMPLES / "control" / "job.yaml")
    assert submitted["name"] == "pretrain-small" and submitted["kind"] == "training"
    [listed] = api.client.workloads()
    assert listed["desired"] == "running" and listed["attempts"] == {}
    report = api.step()
    assert report.launched == ["pretrain-small/0/0"]
    [listed] = api.client.workloads()
    assert listed["attempts"] == {"running": 1}
    assert len(listed["pools"]) == 1 and listed["live_chips"] == 32
    detail = api.client.workload("pretrain-small")
    [attempt] = detail["attempt_list"]
    assert attempt["state"] == "running" and attempt["instance_id"]
    assert detail["spec"]["gang_size"] == 4


def test_a_bad_job_is_422_with_file_line_and_field(api: Api) -> None:
    bad = JOB_YAML.replace("gang_size: 4", "gang_size: four").replace(
        "{accelerator: h100, chips: 8}", "{accelerator: h10, chips: 8}")
    with pytest.raises(ApiError) as caught:
        api.client.request("POST", "/v1/jobs", {"yaml": bad, "filename": "bad-job.yaml"})
    assert caught.value.status == 422
    issues = caught.value.body["issues"]
    by_path = {i["path"]: i for i in issues}
    assert by_path["gang_size"]["file"] == "bad-job.yaml"
    assert by_path["gang_size"]["line"] == JOB_YAML.splitlines().index("gang_size: 4") + 1
    assert any(i["text"].startswith("bad-job.yaml:") for i in issues)
    assert api.store.list_workloads() == []


def test_a_service_posted_as_a_job_is_rejected_by_kind(api: Api) -> None:
    service = (EXAMPLES / "control" / "service.yaml").read_text(encoding="utf-8")
    with pytest.raises(ApiError) as caught:
        api.client.request("POST", "/v1/jobs", {"yaml": service, "filename": "s.yaml"})
    assert caught.value.status == 422
    posted = api.client.request("POST", "/v1/services", {"yaml": service, "filename": "s.yaml"})
    assert posted["kind"] == "service"


def test_explain_lists_the_reasons(api: Api) -> None:
    api.client.submit("jobs", EXAMPLES / "control" / "job.yaml")
    api.step()
    result = api.client.explain("pretrain-small")
    kinds = [e["kind"] for e in result["events"]]
    assert kinds[:3] == ["desired", "placement", "launch"]
    assert "placed on" in result["placement"][0]
    assert any(line.strip().startswith("chosen") for line in result["placement"])
    assert any(line.strip().startswith("rejected") for line in result["placement"])


def test_cancel_stops_the_workload(api: Api) -> None:
    api.client.submit("jobs", EXAMPLES / "control" / "job.yaml")
    api.step()
    assert api.client.cancel("pretrain-small") == {"name": "pretrain-small", "cancelled": True}
    assert api.client.cancel("pretrain-small")["cancelled"] is False
    report = api.step()
    assert len(report.terminated) == 1
    [listed] = api.client.workloads()
    assert listed["desired"] == "cancelled" and listed["attempts"] == {"terminated": 1}
    assert listed["pools"] == []
    for call in (lambda: api.client.cancel("nope"), lambda: api.client.explain("nope")):
        with pytest.raises(ApiError) as caught:
            call()
        assert caught.value.status == 404


# --- heartbeats -----------------------------------------------------------------------------


def _running_job(api: Api) -> Attempt:
    api.client.submit("jobs", EXAMPLES / "control" / "job.yaml")
    api.step()
    [a] = api.store.list_attempts(states=("running",))
    return a


def _beat(api: Api, a: Attempt, token: str | None, body: dict[str, object]) -> object:
    return ControlClient(api.url, token or "").request(
        "POST", f"/v1/attempts/{a.id}/heartbeat", body)


def test_a_heartbeat_needs_its_own_attempt_token(api: Api) -> None:
    a = _running_job(api)
    token = api.reconciler.attempt_token(a)
    assert token is not None and token != TOKEN
    for wrong in (TOKEN, "", token[:-1] + ("0" if token[-1] != "0" else "1")):
        with pytest.raises(ApiError) as caught:
            _beat(api, a, wrong, {"step": 1})
        assert caught.value.status == 401
    with pytest.raises(ApiError) as caught:  # a token is valid for its own attempt only
        ControlClient(api.url, token).request("POST", f"/v1/attempts/{a.id + 1}/heartbeat",
                                              {"step": 1})
    assert caught.value.status == 401
    assert _beat(api, a, token, {"step": 7}) == {"desired": "running"}
    stored = api.store.get_attempt(a.id)
    assert stored is not None and stored.progress_step == 7
    assert stored.heartbeat_unix_s == api.clock.now()


def test_a_reported_checkpoint_is_where_the_failover_resumes(api: Api) -> None:
    a = _running_job(api)
    token = api.reconciler.attempt_token(a)
    with pytest.raises(ApiError) as caught:
        _beat(api, a, token, {"checkpoint": "/ckpt/step-40"})  # no step
    assert caught.value.status == 422
    _beat(api, a, token, {"step": 40, "checkpoint": "/ckpt/step-40"})
    _beat(api, a, token, {"step": 40, "checkpoint": "/ckpt/step-40"})  # repeated: harmless
    assert [e.kind for e in api.store.list_events(workload_id=a.workload_id)].count(
        "checkpoint") == 1
    api.client.request("POST", "/v1/chaos/preempt", {"target": "pretrain-small"})
    report = api.step()
    assert report.failed == ["pretrain-small/0/0"]
    assert report.launched == ["pretrain-small/1/0"]
    placed = [e for e in api.store.list_events(workload_id=a.workload_id)
              if e.kind == "placement"][-1]
    assert "resuming from step 40 (/ckpt/step-40)" in placed.reason
    with pytest.raises(ApiError) as caught:  # the old attempt ended: told to stop
        _beat(api, a, token, {"step": 41})
    assert caught.value.status == 409


def test_a_cancelled_workload_hears_it_in_the_heartbeat_answer(api: Api) -> None:
    a = _running_job(api)
    api.client.cancel("pretrain-small")
    assert _beat(api, a, api.reconciler.attempt_token(a), {}) == {"desired": "cancelled"}


# --- chaos and logs -------------------------------------------------------------------------


def test_chaos_outage_restore_and_capacity_over_the_api(api: Api) -> None:
    a = _running_job(api)
    with pytest.raises(ApiError) as caught:
        api.client.request("POST", "/v1/chaos/outage", {"scope": "azur"})
    assert caught.value.status == 422 and "did you mean 'azure'" in str(caught.value)
    done = api.client.request("POST", "/v1/chaos/outage",
                              {"scope": a.provider, "duration_s": 600})
    assert done["target"] == f"provider:{a.provider}" and done["instances"] == [a.instance_id]
    assert done["until_unix_s"] == pytest.approx(api.clock.now() + 600)
    report = api.step()
    assert report.blocked == [f"provider:{a.provider}"]
    [moved] = api.store.list_attempts(states=("running",))
    assert moved.provider != a.provider
    assert api.client.request("GET", "/v1/blocklist")[0]["scope"] == f"provider:{a.provider}"
    assert api.client.request("POST", "/v1/chaos/restore", {"scope": a.provider}) == {
        "scope": a.provider, "restored": True}
    assert api.client.request("POST", "/v1/chaos/restore", {"scope": a.provider})[
        "restored"] is False
    api.step()
    assert api.client.request("GET", "/v1/blocklist") == []
    assert api.client.request("POST", "/v1/chaos/capacity",
                              {"pool": moved.pool, "chips": 0}) == {"pool": moved.pool,
                                                                    "chips": 0}
    with pytest.raises(ApiError) as caught:
        api.client.request("POST", "/v1/chaos/capacity", {"pool": "nope", "chips": 1})
    assert caught.value.status == 422
    chaos = [e.reason for e in api.store.list_events() if e.kind == "chaos"]
    assert len(chaos) == 3 and chaos[0].startswith(f"chaos: outage of provider:{a.provider}")


def test_chaos_without_emulated_clouds_is_409(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    fleet = load_fleet(EXAMPLES / "frontier-lab.yaml")
    clock = ManualClock()
    store = ControlStore(f"sqlite:///{tmp_path / 'c.db'}", clock=clock.now)
    cloud = EmulatedCloud(fleet, clock=clock, run_processes=False)
    app = create_api(Reconciler(store, cloud.providers(), Placer(fleet), fleet, clock=clock),
                     store, fleet=fleet, token_hash=hash_token(TOKEN))
    with TestClient(app) as client:
        answer = client.post("/v1/chaos/outage", json={"scope": "aws"},
                             headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 409 and "emulated" in answer.json()["detail"]
    store.close()


def test_logs_of_the_newest_launched_attempt(api: Api) -> None:
    with pytest.raises(ApiError) as caught:
        api.client.request("GET", "/v1/workloads/pretrain-small/logs")
    assert caught.value.status == 404
    a = _running_job(api)
    shown = api.client.request("GET", "/v1/workloads/pretrain-small/logs?tail=5")
    assert shown == {"name": "pretrain-small", "attempt": "pretrain-small/0/0",
                     "instance_id": a.instance_id,
                     "text": f"output of {a.instance_id}, last 5 lines\n"}
    with pytest.raises(ApiError) as caught:
        api.client.request("GET", "/v1/workloads/pretrain-small/logs?replica=3")
    assert caught.value.status == 404


# --- the CLI end to end ------------------------------------------------------------------


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=30, check=False,
                          env={**os.environ, "COLUMNS": "200"})


def test_up_launch_status_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    server = subprocess.Popen(
        [str(CLI), "up", str(EXAMPLES / "frontier-lab.yaml"),
         "--port", "0", "--gateway-port", "0", "--state-dir", str(state),
         "--interval", "0.2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while not (state / "server.json").exists():
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "cloudhedge up did not start"
            time.sleep(0.05)
        assert read_state(state).pid == server.pid
        assert oct((state / "server.json").stat().st_mode & 0o777) == "0o600"
        job = str(EXAMPLES / "control" / "job.yaml")
        done = _cli("launch", job, "--state-dir", str(state))
        assert done.returncode == 0, done.stderr
        assert "pretrain-small" in done.stdout
        deadline = time.monotonic() + 10
        while True:
            done = _cli("status", "--state-dir", str(state))
            assert done.returncode == 0, done.stderr
            if "running 1" in done.stdout:
                break
            assert time.monotonic() < deadline, done.stdout
            time.sleep(0.2)
        done = _cli("explain", "pretrain-small", "--state-dir", str(state))
        assert done.returncode == 0 and "placed on" in done.stdout, done.stderr
        done = _cli("down", "--state-dir", str(state))
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("stopped")
        assert server.wait(timeout=15) == 0
        assert not (state / "server.json").exists()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_batch_of_jobs_is_stored_all_or_none(api: Api) -> None:
    def job(name: str, gang: str = "4") -> dict[str, str]:
        return {"yaml": JOB_YAML.replace("pretrain-small", name).replace(
            "gang_size: 4", f"gang_size: {gang}"), "filename": f"{name}.yaml"}

    with pytest.raises(ApiError) as caught:
        api.client.request("POST", "/v1/jobs/batch", {"jobs": [
            job("a"), job("b", gang="four"), job("c", gang="-1")]})
    assert caught.value.status == 422
    assert sorted(i["file"] for i in caught.value.body["issues"]) == ["b.yaml", "c.yaml"]
    assert api.store.list_workloads() == []  # none
    api.client.submit("jobs", EXAMPLES / "control" / "job.yaml")  # exists: an update
    done = api.client.request("POST", "/v1/jobs/batch", {"jobs": [
        job("a"), job("pretrain-small", gang="2"), job("b")]})
    assert [(d["name"], d["version"]) for d in done] == [("a", 1), ("pretrain-small", 2),
                                                        ("b", 1)]
    report = api.step()
    assert sorted(report.launched) == ["a/0/0", "b/0/0", "pretrain-small/0/0"]
    events = [e.reason for e in api.store.list_events() if e.kind == "desired"]
    assert "training a submitted" in events and "training pretrain-small updated" in events
    with pytest.raises(ApiError) as caught:
        api.client.request("POST", "/v1/jobs/batch", {"jobs": [job("x"), job("x")]})
    assert caught.value.status == 409
    service = (EXAMPLES / "control" / "service.yaml").read_text(encoding="utf-8")
    api.client.request("POST", "/v1/services", {"yaml": service, "filename": "s.yaml"})
    with pytest.raises(ApiError) as caught:  # a service's name among new jobs: none stored
        api.client.request("POST", "/v1/jobs/batch", {"jobs": [job("y"), job("chat-mock")]})
    assert caught.value.status == 409 and "'chat-mock' is a service" in str(caught.value)
    assert api.store.get_workload_by_name("y") is None
