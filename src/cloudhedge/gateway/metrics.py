"""Prometheus metrics of one gateway app (its own registry, so several apps can coexist).

    cloudhedge_gateway_requests_total{model,deployment,tenant,status}   every request
    cloudhedge_gateway_request_duration_seconds{model,deployment}       total latency
    cloudhedge_gateway_overhead_seconds                                 time in the gateway,
                                                                        upstream excluded
    cloudhedge_gateway_ttft_seconds{deployment}                         upstream time to
                                                                        first byte / token
    cloudhedge_gateway_upstream_errors_total{deployment,kind}           failed attempts
    cloudhedge_gateway_failovers_total{model,kind}                      retries elsewhere
    cloudhedge_gateway_tokens_total{deployment,tenant,direction}        input / output
    cloudhedge_gateway_cost_usd_total{deployment,tenant}
    cloudhedge_gateway_in_flight{deployment}                            at scrape time
    cloudhedge_gateway_deployment_available{deployment}                 1 if routable

``deployment`` is ``-`` for requests refused before any attempt, ``tenant`` is ``-`` for
requests without a valid key. Label children are cached: the hot path does one dict
lookup per metric.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class GatewayMetrics:
    """The gateway's metrics; ``render()`` gives the Prometheus text exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        p = "cloudhedge_gateway_"
        r = self.registry
        self._requests = Counter(p + "requests", "Requests served, by outcome.",
                                 ["model", "deployment", "tenant", "status"], registry=r)
        self._duration = Histogram(p + "request_duration_seconds", "Total request latency.",
                                   ["model", "deployment"], buckets=_LATENCY_BUCKETS, registry=r)
        self._overhead = Histogram(p + "overhead_seconds",
                                   "Time spent in the gateway, upstream excluded.",
                                   buckets=_OVERHEAD_BUCKETS, registry=r)
        self._ttft = Histogram(p + "ttft_seconds", "Upstream time to first byte or token.",
                               ["deployment"], buckets=_LATENCY_BUCKETS, registry=r)
        self._errors = Counter(p + "upstream_errors", "Failed upstream attempts.",
                               ["deployment", "kind"], registry=r)
        self._failovers = Counter(p + "failovers", "Attempts retried on another deployment.",
                                  ["model", "kind"], registry=r)
        self._tokens = Counter(p + "tokens", "Tokens, from upstream usage.",
                               ["deployment", "tenant", "direction"], registry=r)
        self._cost = Counter(p + "cost_usd", "Cost in USD (tokens x deployment prices).",
                             ["deployment", "tenant"], registry=r)
        self.in_flight = Gauge(p + "in_flight", "Requests in flight per deployment.",
                               ["deployment"], registry=r)
        self.available = Gauge(p + "deployment_available",
                               "1 if the deployment's breaker lets traffic through.",
                               ["deployment"], registry=r)
        self._children: dict[tuple[object, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request(self, model: str, deployment: str, tenant: str, status: int,
                duration_s: float, overhead_s: float) -> None:
        """One finished request, whatever its outcome."""
        self._child(self._requests, model, deployment, tenant, str(status)).inc()
        self._child(self._duration, model, deployment).observe(duration_s)
        self._overhead.observe(overhead_s)

    def ttft(self, deployment: str, seconds: float) -> None:
        self._child(self._ttft, deployment).observe(seconds)

    def attempt_failed(self, deployment: str, kind: str) -> None:
        """One failed upstream attempt."""
        self._child(self._errors, deployment, kind).inc()

    def failover(self, model: str, kind: str) -> None:
        """A new attempt after a failed one (``kind``: why the previous one failed)."""
        self._child(self._failovers, model, kind).inc()

    def usage(self, deployment: str, tenant: str, input_tokens: int, output_tokens: int,
              cost_usd: float) -> None:
        if input_tokens:
            self._child(self._tokens, deployment, tenant, "input").inc(input_tokens)
        if output_tokens:
            self._child(self._tokens, deployment, tenant, "output").inc(output_tokens)
        if cost_usd:
            self._child(self._cost, deployment, tenant).inc(cost_usd)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
