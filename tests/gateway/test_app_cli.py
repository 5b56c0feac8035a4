"""``cloudhedge gateway`` as a process: from a gateway.yaml, and ``--demo`` (no file)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx2 as httpx
import openai
from app_harness import CLI, gateway_process

from cloudhedge.gateway.mock import MockServer


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
        env = {"TEST_GATEWAY_KEY": "sk-file"}
        with gateway_process(["--config", str(config)], env) as (url, proc):
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
    with gateway_process(["--demo", "--no-access-log"]) as (url, proc):
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
