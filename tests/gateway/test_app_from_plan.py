"""``cloudhedge plan`` then ``cloudhedge gateway --from-plan``: traffic follows the plan.

The fleet has one service, ``chat``, needing 40 h100 chips; azure/eastus has 30 at
2 USD, aws/us-east-1 100 at 3 USD. The least-cost plan puts 30 chips on azure and 10 on
aws, so the gateway started from that plan must send about 3/4 of the requests to the
azure deployment and 1/4 to aws (weighted routing), and a deployment the plan leaves
idle (gcp) gets nothing while the others are healthy.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import openai
from app_harness import gateway_process
from typer.testing import CliRunner

from cloudhedge.cli.main import app
from cloudhedge.gateway.mock import MockServer

FLEET = """\
name: two-clouds
horizon: {start: "2026-01", periods: 1}
pools:
  - {name: az-h100, provider: azure, region: eastus, accelerator: h100, tier: on_demand,
     capacity_chips: 30, price_usd_per_chip_hour: 2.0}
  - {name: aws-h100, provider: aws, region: us-east-1, accelerator: h100, tier: on_demand,
     capacity_chips: 100, price_usd_per_chip_hour: 3.0}
  - {name: gcp-h100, provider: gcp, region: us-central1, accelerator: h100, tier: on_demand,
     capacity_chips: 100, price_usd_per_chip_hour: 9.0}
workloads:
  - kind: inference
    name: chat
    model: chat-70b
    demand_tokens_per_s: {us: 40000}
    throughput_tokens_per_s: {h100: 1000}
"""


def test_the_gateway_routes_by_the_plans_chip_shares(tmp_path: Path) -> None:
    fleet, plan = tmp_path / "fleet.yaml", tmp_path / "plan.json"
    fleet.write_text(FLEET, encoding="utf-8")
    res = CliRunner().invoke(app, ["plan", str(fleet), "--out", str(plan), "--no-explain",
                                   "-q"])
    assert res.exit_code == 0, res.output
    with ExitStack() as es:
        mocks = {p: MockServer(name=p) for p in ("azure", "aws", "gcp")}
        urls = {p: es.enter_context(m) for p, m in mocks.items()}
        regions = {"azure": "eastus", "aws": "us-east-1", "gcp": "us-central1"}
        deployments = tmp_path / "deployments.yaml"
        deployments.write_text("deployments:\n" + "".join(
            f"  - {{name: chat-{p}, model: chat, provider: {p}, region: {regions[p]}, "
            f"jurisdiction: us, base_url: \"{urls[p]}\"}}\n" for p in mocks),
            encoding="utf-8")
        config = tmp_path / "gateway.yaml"
        config.write_text(f"""\
tenant_classes:
  any: {{}}
tenants:
  t: {{class: any}}
keys:
  - {{name: k, tenant: t, key_env: FROM_PLAN_KEY}}
database_url: "sqlite:///{tmp_path / 'gw.db'}"
""", encoding="utf-8")
        url, _ = es.enter_context(gateway_process(
            ["--config", str(config), "--deployments", str(deployments), "--from-plan",
             str(plan), "--no-access-log"], {"FROM_PLAN_KEY": "sk-plan"}))
        client = openai.OpenAI(base_url=url + "/v1", api_key="sk-plan", max_retries=0)
        served = {p: 0 for p in mocks}
        for _ in range(400):
            r = client.chat.completions.create(model="chat",
                                               messages=[{"role": "user", "content": "x"}])
            served[str(r.system_fingerprint)] += 1
    assert served["gcp"] == 0  # the plan uses no gcp chips: failover only
    share = served["azure"] / 400
    assert 0.65 <= share <= 0.85, served  # 30 of 40 chips; 400 draws: sd ~ 0.02
