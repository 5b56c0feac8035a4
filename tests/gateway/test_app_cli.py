"""``cloudhedge gateway`` as a process: from a gateway.yaml, and ``--demo`` (no file)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import openai

from cloudhedge.gateway.mock import MockServer

CLI = [sys.executable, "-c", "from cloudhedge.cli.main import main; main()"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _gateway(args: list[str], env: dict[str, str] | None = None
             ) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = _free_port()
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


def test_gateway_from_a_config_file(tmp_path: Path) -> None:
    with MockServer(name="only") as upstream:
        config = tmp_path / "gateway.yaml"
        config.write_text(f"""\
deployments:
  - {{name: only-1, model: m, provider: azure, region: eastus, jurisdiction: us,
     base_url: "{upstream}"}}
tenant_classes:
  any: {{}}
tenants:
  t: {{class: any}}
keys:
  - {{name: k, tenant: t, key_env: TEST_GATEWAY_KEY}}
database_url: "sqlite:///{tmp_path / 'gw.db'}"
""", encoding="utf-8")
        with _gateway(["--config", str(config)], {"TEST_GATEWAY_KEY": "sk-file"}) as (url, proc):
            client = openai.OpenAI(base_url=url + "/v1", api_key="sk-file", max_retries=0)
            r = client.chat.completions.create(model="m", messages=[{"role": "user",
                                                                      "content": "hi"}])
            assert r.system_fingerprint == "only"
        _, stderr = proc.communicate()
    log_lines = [line for line in stderr.splitlines() if line.startswith("{")]
    assert len(log_lines) == 1 and '"key_name":"k"' in log_lines[0]
    assert "sk-file" not in stderr


def test_invalid_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("deployments: 3\n", encoding="utf-8")
    done = subprocess.run([*CLI, "gateway", "--config", str(config)], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and "gateway.yaml" in done.stderr


def test_demo_needs_no_file() -> None:
    with _gateway(["--demo", "--no-access-log"]) as (url, proc):
        assert proc.stdout is not None
        banner = ""
        while "admin key" not in banner:
            banner += proc.stdout.readline()
        keys = re.findall(r"(sk-demo-\S+)", banner)
        client = openai.OpenAI(base_url=url + "/v1", api_key=keys[0], max_retries=0)
        stream = client.chat.completions.create(
            model="demo-llm", messages=[{"role": "user", "content": "hi"}], stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream)
        azure_only = openai.OpenAI(base_url=url + "/v1", api_key=keys[1], max_retries=0)
        raw = azure_only.completions.with_raw_response.create(model="demo-llm", prompt="x")
        assert raw.headers["x-cloudhedge-deployment"].startswith("azure-")
        admin = httpx.get(url + "/admin/deployments",
                          headers={"Authorization": f"Bearer {keys[2]}"})
        assert len(admin.json()["deployments"]) == 3
