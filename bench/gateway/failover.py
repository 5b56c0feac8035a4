"""Failover proof: steady mixed load over three providers, kill one upstream, then a second.

    python bench/gateway/failover.py             # 100 req/s, 8 s phases (about 45 s)
    python bench/gateway/failover.py --quick     # 40 req/s, 3 s phases (smoke)

Three mock upstreams (azure, aws, gcp; 20 ms to first byte, 200 tokens/s) serve model
``chat`` behind one ``cloudhedge gateway`` process. An open-loop generator sends a
fixed rate of requests, half of them streaming, and checks every answer (a stream
counts as served only if it ends with ``data: [DONE]``). Phases:

    all up  ->  azure killed  ->  aws killed too  ->  both back  ->  after the cool-down

"Killed" means the mock process stops: its listener closes and every connection is
reset (``--kill stop``, the default), or it keeps listening but resets every new
request (``--kill reset``) or never answers (``--kill hang``). The goal: **zero failed
requests while one allowed deployment is healthy**. A stream that had already sent
tokens from an upstream at the instant it was killed cannot be moved (its tokens were
generated there): those are counted apart, as "cut at the kill", and end with an
explicit SSE error event, never a clean end. Then traffic must return to the restored
upstreams once their breakers' cool-down has passed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
from rich.console import Console
from rich.table import Table

from cloudhedge.gateway.mock import MockServer

KEY = "sk-failover-bench"
PROVIDERS = ("azure", "aws", "gcp")
COOLDOWN_S = 3.0
console = Console(width=None if sys.stdout.isatty() else 140)


@dataclass
class Phase:
    name: str
    sent: int = 0
    ok: int = 0
    failed: int = 0
    cut_at_kill: int = 0
    by_upstream: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


def _config(path: Path, urls: dict[str, str], db: Path) -> None:
    deployments = "\n".join(
        f"  - {{name: chat-{p}, model: chat, provider: {p}, region: r-{p}, jurisdiction: us, "
        f"base_url: \"{u}\", timeout_s: 1.0}}" for p, u in urls.items())
    path.write_text(f"""\
deployments:
{deployments}
tenant_classes:
  any: {{}}
tenants:
  bench: {{class: any}}
keys:
  - {{name: bench, tenant: bench, key_env: FAILOVER_BENCH_KEY}}
routes:
  chat: {{strategy: least_outstanding}}
health: {{failure_threshold: 2, cooldown_s: {COOLDOWN_S}}}
retry: {{max_attempts: 3, deadline_s: 10}}
database_url: "sqlite:///{db}"
""", encoding="utf-8")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_gateway(config: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", "from cloudhedge.cli.main import main; main()", "gateway",
           "--config", str(config), "--port", str(port), "--no-access-log"]
    return subprocess.Popen(cmd, env={**os.environ, "FAILOVER_BENCH_KEY": KEY},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(200):
            if proc.poll() is not None:
                raise SystemExit(f"the gateway exited: {proc.stderr.read().decode()[-2000:]}"
                                 if proc.stderr else "the gateway exited")
            try:
                async with s.get(url + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the gateway did not start")


async def _one(session: aiohttp.ClientSession, url: str, stream: bool, phase: Phase,
               killed_at: dict[str, float]) -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 16, "stream": stream}
    t0 = time.monotonic()
    try:
        async with session.post(url + "/v1/chat/completions", data=orjson.dumps(body),
                                headers={"Authorization": f"Bearer {KEY}",
                                         "Content-Type": "application/json"}) as r:
            if r.status != 200:
                phase.failed += 1
                phase.errors[f"HTTP {r.status}"] += 1
                return
            if not stream:
                doc = orjson.loads(await r.read())
                phase.ok += 1
                phase.by_upstream[str(doc.get("system_fingerprint"))] += 1
                return
            upstream, done, error = "?", False, None
            async for raw in r.content:
                line = raw.strip()
                if not line.startswith(b"data: "):
                    continue
                data = line[6:]
                if data == b"[DONE]":
                    done = True
                    break
                event = orjson.loads(data)
                if "error" in event:
                    error = str(event["error"].get("message", "error"))[:60]
                    break
                upstream = str(event.get("system_fingerprint", upstream))
            if done:
                phase.ok += 1
                phase.by_upstream[upstream] += 1
            elif upstream in killed_at and killed_at[upstream] >= t0:
                phase.cut_at_kill += 1  # tokens were already flowing from the killed one
            else:
                phase.failed += 1
                phase.errors[error or "stream ended without [DONE]"] += 1
    except (TimeoutError, aiohttp.ClientError) as exc:
        phase.failed += 1
        phase.errors[type(exc).__name__] += 1


async def _load(url: str, rate: float, phases: list[tuple[Phase, float, object]],
                killed_at: dict[str, float]) -> None:
    """Open loop: request i at t0 + i / rate, whatever the answers; phase actions first."""
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn,
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        tasks: set[asyncio.Task[None]] = set()
        i = 0
        for phase, seconds, action in phases:
            if callable(action):
                action()
            start = time.monotonic()
            n = int(seconds * rate)
            for k in range(n):
                delay = start + k / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                phase.sent += 1
                task = asyncio.create_task(_one(session, url, i % 2 == 0, phase, killed_at))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
        await asyncio.gather(*tasks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="40 req/s, 3 s phases")
    parser.add_argument("--rate", type=float, default=None, help="requests per second")
    parser.add_argument("--phase-s", type=float, default=None, help="seconds per phase")
    parser.add_argument("--kill", choices=("stop", "reset", "hang"), default="stop")
    parser.add_argument("--port", type=int, default=0, help="gateway port (0: a free one)")
    args = parser.parse_args(argv)
    rate = args.rate or (40.0 if args.quick else 100.0)
    phase_s = args.phase_s or (3.0 if args.quick else 8.0)

    mocks = {p: MockServer(name=p, latency_ms=20, tokens_per_s=200) for p in PROVIDERS}
    urls = {p: m.start() for p, m in mocks.items()}
    killed_at: dict[str, float] = {}

    def kill(p: str) -> None:
        killed_at[p] = time.monotonic()
        if args.kill == "stop":
            mocks[p].stop()
        else:
            mocks[p].fault(args.kill)

    def restore(*names: str) -> None:
        for p in names:
            if args.kill == "stop":
                mocks[p].start()
            else:
                mocks[p].fault("none")
            killed_at.pop(p, None)

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "gateway.yaml"
        _config(config, urls, Path(tmp) / "usage.db")
        port = args.port or _free_port()
        gw = _start_gateway(config, port)
        url = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(_wait_up(url, gw))
            phases = [
                (Phase("all up"), phase_s, None),
                (Phase("azure killed"), phase_s, lambda: kill("azure")),
                (Phase("azure + aws killed"), phase_s, lambda: kill("aws")),
                (Phase("both restored"), max(phase_s, COOLDOWN_S), lambda: restore("azure",
                                                                                    "aws")),
                (Phase("after the cool-down"), phase_s, None),
            ]
            asyncio.run(_load(url, rate, phases, killed_at))
        finally:
            gw.terminate()
            gw.wait(timeout=15)
            for m in mocks.values():
                m.close()
    return _report([p for p, _, _ in phases], rate, args.kill)


def _report(phases: list[Phase], rate: float, kill: str) -> int:
    t = Table(title=f"Failover proof: {rate:g} req/s, half streaming, kill = {kill}")
    for col in ("phase", "sent", "served", "failed", "cut at the kill", *PROVIDERS, "errors"):
        t.add_column(col, justify="left" if col in ("phase", "errors") else "right")
    for p in phases:
        t.add_row(p.name, str(p.sent), str(p.ok), str(p.failed), str(p.cut_at_kill),
                  *(str(p.by_upstream.get(name, 0)) for name in PROVIDERS),
                  ", ".join(f"{k} x{v}" for k, v in p.errors.most_common(3)))
    console.print(t)
    failed = sum(p.failed for p in phases)
    returned = all(phases[-1].by_upstream.get(name, 0) > 0 for name in PROVIDERS)
    console.print(f"zero failed while one deployment is healthy: "
                  f"{'PASS' if failed == 0 else 'FAIL'} ({failed} failed)")
    console.print(f"traffic back on every upstream after the cool-down: "
                  f"{'PASS' if returned else 'FAIL'}")
    return 0 if failed == 0 and returned else 1


if __name__ == "__main__":
    sys.exit(main())
