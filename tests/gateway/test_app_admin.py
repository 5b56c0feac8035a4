"""The admin API: its own key, deployments and their health, drain / enable, and a
configuration reload under load that drops no request."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import httpx2 as httpx
import pytest
from app_harness import ADMIN_KEY, KEYS, Stack, stack

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack(tmp_path_factory.mktemp("admin")) as st:
        yield st


def test_admin_needs_the_admin_key(s: Stack) -> None:
    assert httpx.get(s.url + "/admin/deployments").status_code == 401
    client_key = {"Authorization": f"Bearer {KEYS['all']}"}
    assert httpx.get(s.url + "/admin/deployments", headers=client_key).status_code == 401
    r = httpx.post(s.url + "/admin/deployments/nope/drain", headers=ADMIN)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_deployments_show_health_in_flight_and_ewma(s: Stack) -> None:
    s.client().completions.create(model="gpt-test", prompt="x")
    deployments = httpx.get(s.url + "/admin/deployments", headers=ADMIN).json()["deployments"]
    assert {d["name"] for d in deployments} == {"azure-gpt", "aws-gpt", "gcp-gpt",
                                                "azure-embed", "gcp-embed"}
    for d in deployments:
        assert d["state"] == "closed" and d["in_flight"] == 0
        assert "api_key" not in d
    assert any(d["ewma_ttft_ms"] is not None for d in deployments)


def test_drain_takes_a_deployment_out_and_enable_brings_it_back(s: Stack) -> None:
    c = s.client()
    for name in ("azure-gpt", "aws-gpt"):
        r = httpx.post(f"{s.url}/admin/deployments/{name}/drain", headers=ADMIN)
        assert r.json() == {"name": name, "state": "drained"}
    try:
        seen = {c.completions.with_raw_response.create(model="gpt-test", prompt="x")
                .headers["x-cloudhedge-deployment"] for _ in range(10)}
        assert seen == {"gcp-gpt"}
    finally:
        for name in ("azure-gpt", "aws-gpt"):
            httpx.post(f"{s.url}/admin/deployments/{name}/enable", headers=ADMIN)
    seen = {c.completions.with_raw_response.create(model="gpt-test", prompt="x")
            .headers["x-cloudhedge-deployment"] for _ in range(40)}
    assert seen == {"azure-gpt", "aws-gpt", "gcp-gpt"}


def test_reload_under_load_drops_no_request(s: Stack) -> None:
    config = s.app.config
    without_gcp = dataclasses.replace(config, deployments=tuple(
        d for d in config.deployments if d.name != "gcp-gpt"))
    s.next_config.append(without_gcp)
    stop = threading.Event()
    failures: list[str] = []
    count = [0]

    def load() -> None:
        c = s.client()
        while not stop.is_set():
            try:
                stream = c.chat.completions.create(
                    model="gpt-test", messages=[{"role": "user", "content": "x"}], stream=True)
                list(stream)
                c.completions.create(model="gpt-test", prompt="x")
                count[0] += 2
            except Exception as e:
                failures.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(5):
            r = httpx.post(s.url + "/admin/reload", headers=ADMIN)
            assert r.status_code == 200, r.text
            assert "gcp-gpt" not in r.json()["deployments"]
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == [] and count[0] > 0
    before = s.mocks["gcp"].stats()["by_endpoint"].get("completions", 0)
    for _ in range(10):
        s.client().completions.create(model="gpt-test", prompt="x")
    assert s.mocks["gcp"].stats()["by_endpoint"].get("completions", 0) == before


def test_reload_of_an_invalid_config_keeps_the_old_one(s: Stack) -> None:
    s.next_config.append(ValueError("deployments[0].base_url: not a URL"))
    try:
        r = httpx.post(s.url + "/admin/reload", headers=ADMIN)
    finally:
        s.next_config.pop()
    assert r.status_code == 400 and "not a URL" in r.json()["error"]["message"]
    assert s.client().completions.create(model="gpt-test", prompt="x").choices
