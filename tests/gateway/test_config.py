"""Loading gateway.yaml: resolved objects, located issues with suggestions, secrets kept out."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import get_args

import pytest

from cloudhedge.core.errors import SpecError, SpecIssue
from cloudhedge.gateway.config import Endpoint, Route, Strategy, hash_key
from cloudhedge.gateway.config_schema import (
    DeploymentSpec,
    RouteSpec,
    load_deployments,
    load_gateway_config,
    load_gateway_config_text,
    usd_per_million_tokens,
)

CLIENT_KEY = "sk-client-7f3a9c"
OTHER_KEY = "sk-other-41d0e2"
ADMIN_KEY = "sk-admin-c0ffee"
UPSTREAM_KEY = "upstream-secret-99"
ENV = {
    "GW_KEY": CLIENT_KEY,
    "GW_OTHER_KEY": OTHER_KEY,
    "GW_ADMIN": ADMIN_KEY,
    "AZURE_KEY": UPSTREAM_KEY,
}
OTHER_SHA = hashlib.sha256(b"sk-third").hexdigest().upper()

CONFIG = f"""\
deployments:
  - name: chat-az
    model: chat
    provider: azure
    region: eastus
    jurisdiction: us
    base_url: http://127.0.0.1:9101/v1/
    api_key_env: AZURE_KEY
    endpoints: [chat]
    max_concurrency: 8
    cost: {{input_usd_per_million: 2.5, output_usd_per_million: 10}}
  - name: chat-aws
    model: chat
    provider: aws
    region: us-east-1
    jurisdiction: us
    base_url: https://aws.example.com/v1
    cost: {{usd_per_chip_hour: 2.0, chips: 8, tokens_per_s: 4000}}
    weight: 3
  - name: chat-oci
    model: chat
    provider: oci
    region: eu-frankfurt-1
    jurisdiction: eu
    base_url: http://127.0.0.1:9103/v1
  - name: embed-az
    model: embed
    provider: azure
    region: eastus
    jurisdiction: us
    base_url: http://127.0.0.1:9101/v1
    endpoints: [embeddings]
tenant_classes:
  api: {{providers: [azure]}}
  eu: {{jurisdictions: [eu]}}
  default: {{}}
tenants:
  acme: {{class: default, budget_usd: 100}}
  bank: {{class: eu}}
keys:
  - name: acme-1
    tenant: acme
    key_env: GW_KEY
    requests_per_minute: 60
    tokens_per_minute: 10000
  - name: bank-1
    tenant: bank
    key_env: GW_OTHER_KEY
    budget_usd: 5
  - name: bank-2
    tenant: bank
    key_sha256: {OTHER_SHA}
routes:
  chat:
    strategy: weighted
    weights: {{chat-az: 2, chat-oci: 0}}
  embed: {{strategy: latency}}
health: {{failure_threshold: 5, cooldown_s: 10}}
retry: {{max_attempts: 2, deadline_s: 30, max_retry_after_s: 1}}
database_url: postgresql://gw:hunter2@db.internal/gateway
redis_url: redis://127.0.0.1:6379/0
admin_key_env: GW_ADMIN
max_body_bytes: 65536
"""


def issues_of(text: str, env: dict[str, str] | None = None) -> list[SpecIssue]:
    with pytest.raises(SpecError) as caught:
        load_gateway_config_text(text, "gateway.yaml", ENV if env is None else env)
    return caught.value.issues


def only(issues: list[SpecIssue]) -> SpecIssue:
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0]


def line_of(text: str, needle: str) -> int:
    """1-based line of the only line containing ``needle``."""
    lines = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(lines) == 1, (needle, lines)
    return lines[0]


def test_valid_config_resolves() -> None:
    config = load_gateway_config_text(CONFIG, "gateway.yaml", ENV)
    az, aws, oci, embed = config.deployments
    assert (az.name, az.model, az.provider, az.region, az.jurisdiction) == (
        "chat-az", "chat", "azure", "eastus", "us")
    assert az.base_url == "http://127.0.0.1:9101/v1"  # trailing slash removed
    assert az.api_key == UPSTREAM_KEY
    assert az.endpoints == frozenset({Endpoint.CHAT})
    assert az.max_concurrency == 8
    assert (az.input_usd_per_million, az.output_usd_per_million) == (2.5, 10.0)
    # 2 USD x 8 chips per hour for 4000 x 3600 tokens = 1.111 USD per million, both ways
    assert aws.input_usd_per_million == pytest.approx(16 / 14.4)
    assert aws.output_usd_per_million == aws.input_usd_per_million
    assert aws.api_key is None and aws.weight == 3.0
    assert oci.endpoints == frozenset(Endpoint) and oci.timeout_s == 60.0
    assert embed.endpoints == frozenset({Endpoint.EMBEDDINGS})

    assert config.classes["api"].providers == frozenset({"azure"})
    assert config.classes["api"].jurisdictions is None
    assert config.classes["eu"].jurisdictions == frozenset({"eu"})
    assert config.classes["default"].providers is None
    assert config.tenants["acme"].tenant_class == "default"
    assert config.tenants["acme"].budget_usd == 100.0

    acme, bank1, bank2 = config.keys
    assert acme.key_hash == hash_key(CLIENT_KEY)
    assert (acme.tenant, acme.requests_per_minute, acme.tokens_per_minute) == ("acme", 60, 1e4)
    assert bank1.key_hash == hash_key(OTHER_KEY) and bank1.budget_usd == 5.0
    assert bank2.key_hash == OTHER_SHA.lower()
    assert config.key(hash_key(CLIENT_KEY)) is acme
    assert config.admin_key_hash == hash_key(ADMIN_KEY)

    # weighted: every deployment of the model gets a weight, the deployment's own by default
    assert config.routes["chat"] == Route(
        "chat", Strategy.WEIGHTED, {"chat-az": 2.0, "chat-aws": 3.0, "chat-oci": 0.0})
    assert config.routes["embed"] == Route("embed", Strategy.LATENCY, {})
    assert (config.health.failure_threshold, config.health.cooldown_s) == (5, 10.0)
    assert config.health.probe_interval_s is None
    assert (config.retry.max_attempts, config.retry.deadline_s) == (2, 30.0)
    assert config.retry.max_retry_after_s == 1.0
    assert config.database_url == "postgresql+psycopg://gw:hunter2@db.internal/gateway"
    assert config.redis_url == "redis://127.0.0.1:6379/0"
    assert config.max_body_bytes == 65536
    assert config.source == "gateway.yaml"
    # the policy boundary works on the resolved objects
    assert [d.name for d in config.allowed(bank1, "chat")] == ["chat-oci"]


def test_defaults() -> None:
    text = """\
deployments:
  - {name: d, model: m, provider: p, region: r, jurisdiction: us, base_url: "http://h/v1"}
"""
    config = load_gateway_config_text(text, "gateway.yaml", {})
    assert config.database_url == "sqlite:///cloudhedge-gateway.db"
    assert config.keys == () and config.tenants == {} and config.routes == {}
    assert config.admin_key_hash is None and config.redis_url is None
    assert config.route("m").strategy is Strategy.LEAST_OUTSTANDING


def test_clear_keys_are_nowhere_in_the_resolved_config() -> None:
    config = load_gateway_config_text(CONFIG, "gateway.yaml", ENV)
    for text in (repr(config), str(config), repr(config.deployments), repr(config.keys)):
        for secret in (CLIENT_KEY, OTHER_KEY, ADMIN_KEY, UPSTREAM_KEY):
            assert secret not in text


def test_schema_literals_match_the_enums() -> None:
    strategy = RouteSpec.model_fields["strategy"].annotation
    assert set(get_args(strategy)) == {s.value for s in Strategy}
    endpoints = DeploymentSpec.model_fields["endpoints"].annotation
    (items,) = (a for a in get_args(endpoints) if a is not type(None))
    assert set(get_args(get_args(items)[0])) == {e.value for e in Endpoint}


def test_misspelled_field_is_located_with_a_suggestion() -> None:
    text = CONFIG.replace("    max_concurrency: 8", "    max_concurency: 8")
    issue = only(issues_of(text))
    assert (issue.line, issue.column) == (line_of(text, "max_concurency"), 5)
    assert issue.path == "deployments[0].max_concurency"
    assert issue.suggestion == "max_concurrency"
    assert "unknown field" in issue.message


def test_misspelled_section_and_strategy() -> None:
    text = CONFIG.replace("tenant_classes:", "tenant_clases:").replace(
        "strategy: latency", "strategy: latncy")
    issues = issues_of(text)
    assert [(i.path, i.suggestion) for i in issues] == [
        ("tenant_clases", "tenant_classes"),
        ("routes.embed.strategy", "latency"),
    ]
    assert issues[0].line == line_of(text, "tenant_clases")
    assert "expected one of weighted, least_outstanding, latency" in issues[1].message


def test_type_error_says_what_was_expected() -> None:
    text = CONFIG.replace("cooldown_s: 10", "cooldown_s: soon")
    issue = only(issues_of(text))
    assert issue.path == "health.cooldown_s"
    assert issue.message == "expected a number > 0, got 'soon'"


def test_unknown_names_are_suggested() -> None:
    text = (CONFIG.replace("tenant: acme", "tenant: acmee")
            .replace("bank: {class: eu}", "bank: {class: EU}")
            .replace("weights: {chat-az: 2", "weights: {chat-azz: 2")
            .replace("api: {providers: [azure]}", "api: {providers: [azur]}")
            .replace("eu: {jurisdictions: [eu]}", "eu: {jurisdictions: [eu, uk]}")
            .replace("  embed: {strategy", "  embedd: {strategy"))
    issues = issues_of(text)
    found = {i.path: (i.message, i.suggestion, i.line) for i in issues}
    assert found == {
        "tenant_classes.api.providers[0]": (
            "unknown provider 'azur': no deployment has it", "azure", line_of(text, "[azur]")),
        "tenant_classes.eu.jurisdictions[1]": (
            "unknown jurisdiction 'uk': no deployment has it", None, line_of(text, "[eu, uk]")),
        "tenants.bank.class": (
            "unknown tenant class 'EU'", "eu", line_of(text, "{class: EU}")),
        "keys[0].tenant": ("unknown tenant 'acmee'", "acme", line_of(text, "tenant: acmee")),
        "routes.chat.weights.chat-azz": (
            "unknown deployment 'chat-azz'", "chat-az", line_of(text, "chat-azz")),
        "routes.embedd": (
            "unknown model 'embedd': no deployment serves it", "embed", line_of(text, "embedd:")),
    }


def test_route_weights_name_deployments_of_their_model() -> None:
    text = CONFIG.replace("weights: {chat-az: 2", "weights: {embed-az: 2")
    issue = only(issues_of(text))
    assert issue.path == "routes.chat.weights.embed-az"
    assert issue.message == "deployment 'embed-az' serves model 'embed', not 'chat'"


def test_weights_need_the_weighted_strategy_and_a_positive_weight() -> None:
    text = CONFIG.replace("embed: {strategy: latency}", "embed: {weights: {embed-az: 1}}")
    assert only(issues_of(text)).message == "weights apply to strategy: weighted only"
    text = CONFIG.replace("    weight: 3\n", "").replace("chat-az: 2", "chat-az: 0").replace(
        "chat-oci: 0}", "chat-oci: 0, chat-aws: 0}")
    issue = only(issues_of(text))
    assert issue.path == "routes.chat"
    assert "expected at least one positive weight" in issue.message


def test_missing_env_var_is_named_and_no_value_is_printed() -> None:
    env = {k: v for k, v in ENV.items() if k != "GW_OTHER_KEY"}
    text = CONFIG.replace("api_key_env: AZURE_KEY", "api_key_env: AZURE_KEY_TYPO")
    issues = issues_of(text, env)
    assert [(i.path, i.line) for i in issues] == [
        ("deployments[0].api_key_env", line_of(text, "AZURE_KEY_TYPO")),
        ("keys[1].key_env", line_of(text, "key_env: GW_OTHER_KEY")),
    ]
    assert issues[0].message == (
        "environment variable AZURE_KEY_TYPO is not set: it should hold the upstream API key")
    assert "environment variable GW_OTHER_KEY is not set" in issues[1].message
    report = "\n".join(map(str, issues))
    for secret in (CLIENT_KEY, ADMIN_KEY, UPSTREAM_KEY):
        assert secret not in report


def test_empty_env_var_is_an_error() -> None:
    issue = only(issues_of(CONFIG, {**ENV, "GW_ADMIN": "  "}))
    assert issue.path == "admin_key_env"
    assert issue.message == "environment variable GW_ADMIN is empty: it should hold the admin key"


def test_values_that_may_be_secrets_are_never_echoed() -> None:
    text = (CONFIG.replace("key_env: GW_KEY", f"key_env: {CLIENT_KEY}")
            .replace(f"key_sha256: {OTHER_SHA}", f"key_sha256: {OTHER_KEY}")
            .replace("https://aws.example.com/v1", f"https://user:{ADMIN_KEY}@aws.example.com"))
    issues = issues_of(text)
    assert [i.path for i in issues] == [
        "deployments[1].base_url", "keys[0].key_env", "keys[2].key_sha256"]
    assert all("not shown" in i.message for i in issues)
    report = "\n".join(map(str, issues))
    for secret in (CLIENT_KEY, OTHER_KEY, ADMIN_KEY):
        assert secret not in report


def test_duplicate_keys_and_names() -> None:
    text = CONFIG.replace("key_env: GW_OTHER_KEY", "key_env: GW_KEY").replace(
        "name: bank-2", "name: bank-1")
    issues = issues_of(text)
    assert [(i.path, i.message) for i in issues] == [
        ("keys[1]", "the same key as keys[0] ('acme-1'): each entry needs its own key"),
        ("keys[2].name", f"key 'bank-1' is already defined (line {line_of(CONFIG, 'bank-1')})"),
    ]
    text = CONFIG.replace("name: chat-oci", "name: chat-aws")
    first = issues_of(text)[0]
    assert first.path == "deployments[2].name"
    line = line_of(CONFIG, "chat-aws")
    assert first.message == f"deployment 'chat-aws' is already defined (line {line})"


def test_admin_key_must_differ_from_client_keys() -> None:
    issue = only(issues_of(CONFIG, {**ENV, "GW_ADMIN": CLIENT_KEY}))
    assert issue.path == "admin_key_env"
    assert "also the client key 'acme-1'" in issue.message


def test_key_needs_exactly_one_source() -> None:
    text = CONFIG.replace(f"    key_sha256: {OTHER_SHA}\n", "")
    issue = only(issues_of(text))
    assert issue.path == "keys[2]"
    assert issue.message.startswith("field required: key_env")
    text = CONFIG.replace("key_env: GW_KEY\n", f"key_env: GW_KEY\n    key_sha256: {OTHER_SHA}\n")
    assert only(issues_of(text)).message == "expected key_env or key_sha256, not both"


def test_database_url_scheme() -> None:
    text = CONFIG.replace("postgresql://gw:hunter2@", "postgres://gw:hunter2@")
    issue = only(issues_of(text))
    assert (issue.path, issue.line) == ("database_url", line_of(text, "database_url"))
    assert issue.suggestion == "postgresql"
    assert "expected a URL starting with sqlite:// or postgresql://" in issue.message
    assert "hunter2" not in str(issue)
    text = CONFIG.replace("postgresql://gw:hunter2@db.internal/gateway", "gateway.db")
    assert only(issues_of(text)).message.endswith("got no scheme")
    text = CONFIG.replace("postgresql://", "sqlite:///").replace("redis://", "memcached://")
    assert only(issues_of(text)).path == "redis_url"


def test_base_url_scheme() -> None:
    issue = only(issues_of(CONFIG.replace("https://aws.example.com", "ftp://aws.example.com")))
    assert issue.path == "deployments[1].base_url"
    assert issue.message.startswith("expected an http:// or https:// URL with a host")


def test_cost_forms() -> None:
    both = CONFIG.replace("tokens_per_s: 4000}", "tokens_per_s: 4000, input_usd_per_million: 1}")
    assert "not both" in only(issues_of(both)).message
    partial = CONFIG.replace(", tokens_per_s: 4000}", "}")
    issue = only(issues_of(partial))
    assert issue.path == "deployments[1].cost"
    assert issue.message.endswith("missing tokens_per_s")
    assert usd_per_million_tokens(3.6, 1, 1000) == pytest.approx(1.0)


def test_no_deployment_is_an_error() -> None:
    issue = only(issues_of("tenants: {}\n", {}))
    assert issue.path == "deployments"
    assert issue.message == "expected at least one deployment"


def test_empty_file() -> None:
    assert "the file is empty" in only(issues_of("# nothing\n")).message


def test_files_and_a_separate_deployments_file(tmp_path: Path) -> None:
    head, _, rest = CONFIG.partition("tenant_classes:")
    deployments = tmp_path / "deployments.yaml"
    deployments.write_text(head, encoding="utf-8")
    gateway = tmp_path / "gateway.yaml"
    gateway.write_text("tenant_classes:" + rest, encoding="utf-8")
    loaded = load_deployments(deployments, ENV)
    assert [d.name for d in loaded] == ["chat-az", "chat-aws", "chat-oci", "embed-az"]
    config = load_gateway_config(gateway, ENV, deployments=loaded)
    assert config.deployments == loaded
    assert config.source == str(gateway)
    assert config.routes["chat"].weights["chat-aws"] == 3.0
    # the same name in both files is an error
    gateway.write_text(CONFIG, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_gateway_config(gateway, ENV, deployments=loaded[:1])
    assert "deployment 'chat-az' is also in the deployments file" in str(caught.value)
    with pytest.raises(SpecError) as caught:
        load_gateway_config(tmp_path / "missing.yaml", ENV)
    assert "cannot read the file" in str(caught.value)


def test_deployments_file_accepts_only_deployments(tmp_path: Path) -> None:
    path = tmp_path / "deployments.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_deployments(path, ENV)
    assert {i.path for i in caught.value.issues} >= {"tenant_classes", "routes", "keys"}
