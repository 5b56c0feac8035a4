"""``cloudhedge gateway``: an OpenAI-compatible router across clouds, by policy.

    config.py          resolved configuration (frozen dataclasses); hash_key
    config_schema.py   gateway.yaml: pydantic schema, loader with file:line errors
    from_plan.py       routing weights from a plan's per-service chip shares
    mock.py            an OpenAI-compatible mock upstream with faults, for tests/benchmarks
    store.py           accounting: usage and cost per request, batched writes (SQLAlchemy)
    limits.py          requests/tokens per minute and budgets; in-process or Redis-shared
    breaker.py         per-deployment circuit breakers; in-process or Redis-shared
    app.py             the ASGI app: API, routing, failover, streaming, metrics, admin
"""
