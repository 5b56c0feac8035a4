"""An open-loop, fixed-rate HTTP load generator that does not hide queueing delay.

    python bench/gateway/openloop.py URL --rate 200 --duration 10 --warmup 2 \
        --header 'Authorization: Bearer sk-bench' --body '{"model": "chat", ...}'

Request ``i`` is *scheduled* at ``t0 + i / rate`` whatever happened to earlier ones
(open loop), and its latency is measured from that scheduled time to the end of its
response body. A request that waits for a free connection, or for the generator's
own event loop, is therefore charged for the wait: no coordinated omission (the
generator never slows down because the server did). Connections are HTTP/1.1
keep-alive from a pool (``--connections``); a server that falls behind shows a
growing latency, not a lower rate.

Why not h2load: ``h2load --rps`` paces each client, but with HTTP/1.1 a client sends
its next request only after the previous response and measures from the actual send,
so queueing inside the client is not counted; ``-r/--rate`` paces new connections,
not requests. wrk is closed-loop by design (it is used for maximum throughput only).

Prints one JSON object on stdout (latencies in milliseconds; the first ``--warmup``
seconds are sent but not counted; ``samples`` lists every counted request's scheduled
time and latency, for pooling runs and for looking at stalls over time).
``gen_lag_p99_ms`` is how late the generator sent its requests: if it is not small next
to the latencies, the generator (or the core it shares) is the bottleneck and the run
says nothing about the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp


@dataclass
class Tally:
    latencies_s: list[float] = field(default_factory=list)
    scheduled_s: list[float] = field(default_factory=list)  # the same requests' send times
    lags_s: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    ok: int = 0
    errors: int = 0


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (``q`` in 0..100); NaN if empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def _one(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str],
               scheduled: float, counted: bool, tally: Tally, t0: float) -> None:
    lag = time.perf_counter() - scheduled
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            status = str(resp.status)
            good = 200 <= resp.status < 300
    except (TimeoutError, aiohttp.ClientError) as exc:
        status, good = type(exc).__name__, False
    if not counted:
        return
    tally.latencies_s.append(time.perf_counter() - scheduled)
    tally.scheduled_s.append(scheduled - t0)
    tally.lags_s.append(lag)
    tally.statuses[status] += 1
    if good:
        tally.ok += 1
    else:
        tally.errors += 1


async def run(url: str, rate: float, duration_s: float, warmup_s: float, body: bytes,
              headers: dict[str, str], connections: int, timeout_s: float) -> dict[str, object]:
    tally = Tally()
    total = round(rate * (warmup_s + duration_s))
    counted_from = round(rate * warmup_s)
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     skip_auto_headers=("User-Agent",)) as session:
        t0 = time.perf_counter() + 0.05
        i = 0
        while i < total:
            now = time.perf_counter()
            # Launch every request whose time has come (a late wake-up launches a batch).
            while i < total and t0 + i / rate <= now:
                task = asyncio.create_task(
                    _one(session, url, body, headers, t0 + i / rate, i >= counted_from, tally,
                         t0))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            if i < total:
                await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
        sent_s = time.perf_counter() - t0
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s + 1.0)
        wall_s = time.perf_counter() - t0
    lat = sorted(tally.latencies_s)
    lags = sorted(tally.lags_s)
    ms = 1000.0
    return {
        "rate_rps": rate,
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "scheduled": total - counted_from,
        "completed": len(lat),
        "ok": tally.ok,
        "errors": tally.errors,
        "statuses": dict(tally.statuses),
        "send_seconds": sent_s,
        "wall_seconds": wall_s,
        "p50_ms": percentile(lat, 50) * ms,
        "p90_ms": percentile(lat, 90) * ms,
        "p99_ms": percentile(lat, 99) * ms,
        "p999_ms": percentile(lat, 99.9) * ms,
        "max_ms": (lat[-1] * ms) if lat else math.nan,
        "mean_ms": (sum(lat) / len(lat) * ms) if lat else math.nan,
        "gen_lag_p99_ms": percentile(lags, 99) * ms,
        # every counted request: [scheduled second since the start, latency ms]
        "samples": [[round(t, 4), round(x * ms, 3)]
                    for t, x in zip(tally.scheduled_s, tally.latencies_s, strict=True)],
    }


def _headers(raw: list[str]) -> dict[str, str]:
    out = {"Content-Type": "application/json"}
    for item in raw:
        name, _, value = item.partition(":")
        out[name.strip()] = value.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url")
    p.add_argument("--rate", type=float, required=True, help="requests per second")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds sent but not counted")
    p.add_argument("--body", required=True, help="request body (JSON text)")
    p.add_argument("--header", action="append", default=[], help="'Name: value'")
    p.add_argument("--connections", type=int, default=256, help="connection pool size")
    p.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    args = p.parse_args(argv)
    coro = run(args.url, args.rate, args.duration, args.warmup, args.body.encode(),
               _headers(args.header), args.connections, args.timeout)
    try:
        import uvloop  # optional: the faster event loop, as the servers use

        result = uvloop.run(coro)
    except ImportError:
        result = asyncio.run(coro)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
