"""Gateway benchmark: cloudhedge against LiteLLM, side by side, on the same mock upstream.

    python bench/gateway/run.py --out results.json   # full: about 8 minutes
    python bench/gateway/run.py --quick              # smoke: about 20 s (+ LiteLLM's start)

Three targets answer the same small non-streaming POST /v1/chat/completions: the mock
upstream called directly (the baseline), ``cloudhedge gateway`` and the LiteLLM proxy,
both routing to that same mock. For each target:

(a) maximum throughput: ``wrk -t1 -c64`` (closed loop) with ``wrk/post.lua``; only 2xx
    answers count, so a target that fails fast cannot win; also the CPU time the
    target's processes spent per request (less noisy than req/s on a shared machine);
(b) latency at fixed rates: ``openloop.py``, an open-loop generator that schedules
    requests on a fixed clock and measures from the scheduled time (no coordinated
    omission); p50/p99 over all repeats' requests together, and the ADDED latency: the
    target's percentile minus the mock-direct percentile at the same rate.

Then the ratios cloudhedge/LiteLLM against the goals (issue item 8): at least 5x
LiteLLM's maximum throughput, at most 1/5 of its p99 added latency at the same rate.

Fairness (README.md): one worker process each; cores pinned with taskset (the proxy
under test alone on core 1, the mock and the load generators on core 0); no debug or
access logging; targets measured in turn, each repeat visiting every target, after
waiting for the previous one to go idle. LiteLLM runs from its own virtual environment
(``setup_litellm.sh``); when that is absent its part is skipped and said so.

The machine is shared and small (2 cores): compare the figures of one run with each
other, not with another day's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LITELLM_VENV = HERE / ".litellm-venv"
MOCK_ADDR_IN_CONFIGS = "127.0.0.1:18100"  # replaced by the mock's actual address
BENCH_KEY = "sk-bench"  # gateway.yaml holds its SHA-256; litellm.yaml its master key
UPSTREAM_MODEL = "mock-model"
CORE_LOAD, CORE_PROXY = 0, 1  # mock + load generators | the proxy under test
GOAL_THROUGHPUT_RATIO = 5.0
GOAL_P99_ADDED_RATIO = 0.2
LITELLM_ENV = {  # what is switched off, and why: litellm.yaml
    "LITELLM_LOG": "ERROR",
    "LITELLM_TELEMETRY_DISABLED": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_MODE": "PRODUCTION",
}

console = Console(width=None if sys.stdout.isatty() else 160)


# --- settings -------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    quick: bool
    repeat: int
    wrk_seconds: float
    wrk_warmup_seconds: float
    connections: int
    rate_seconds: float
    rate_warmup_seconds: float
    min_samples: int  # per fixed-rate run: a low rate runs longer
    rates_rps: tuple[float, ...] | None  # None: chosen from the measured maxima
    sustain_p99_ms: float
    mock_latency_ms: float
    pin: bool
    gateway_args: tuple[str, ...]

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> Settings:
        rates = None if a.rates == "auto" else tuple(float(r) for r in a.rates.split(","))
        if a.quick and rates is None:
            rates = (50.0, 100.0)
        return cls(quick=a.quick, repeat=a.repeat or (1 if a.quick else 3),
                   wrk_seconds=a.wrk_seconds or (2.0 if a.quick else 10.0),
                   wrk_warmup_seconds=1.0 if a.quick else 3.0, connections=a.connections,
                   rate_seconds=a.rate_seconds or (2.0 if a.quick else 10.0),
                   rate_warmup_seconds=0.5 if a.quick else 2.0, rates_rps=rates,
                   min_samples=a.min_samples if a.min_samples is not None
                   else (0 if a.quick else 500),
                   sustain_p99_ms=a.sustain_p99_ms, mock_latency_ms=a.mock_latency_ms,
                   pin=not a.no_pin and (os.cpu_count() or 1) >= 2
                   and shutil.which("taskset") is not None,
                   gateway_args=tuple(a.gateway_arg))


# --- processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cmd: Sequence[str], core: int, settings: Settings) -> list[str]:
    return ["taskset", "-c", str(core), *cmd] if settings.pin else list(cmd)


@dataclass
class Service:
    """A server this run started (its own process group), with its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    cmd: list[str]

    @classmethod
    def start(cls, name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> Service:
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    cwd=cwd, start_new_session=True)
        return cls(name, proc, log, cmd)

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def pids(self) -> list[int]:
        """The process and its descendants (workers), from /proc."""
        children: dict[int, list[int]] = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(d.name))
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, []))
        return out

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process tree so far."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                continue
        return total / tick

    def wait_idle(self, timeout_s: float = 30.0, busy_share: float = 0.05) -> None:
        """Until the tree uses less than ``busy_share`` of a core (a backlog drained)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            c0 = self.cpu_seconds()
            time.sleep(0.5)
            if (self.cpu_seconds() - c0) / 0.5 < busy_share:
                return

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            except ProcessLookupError:
                pass


@dataclass(frozen=True)
class Target:
    """Something to load: its URL, the model it is asked for and the key it wants."""

    name: str  # "mock", "cloudhedge", "litellm"
    label: str
    url: str
    model: str
    key: str
    service: Service

    def body(self) -> str:
        return json.dumps({"model": self.model, "stream": False, "max_tokens": 16, "messages": [
            {"role": "user", "content": "Say hello to the benchmark."}]})

    def post(self, timeout_s: float = 5.0) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url, data=self.body().encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {self.key}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout_s: float) -> None:
        """Until one request answers 200 with a completion; fail with the log otherwise."""
        deadline, last = time.monotonic() + timeout_s, "no answer"
        while time.monotonic() < deadline:
            if self.service.proc.poll() is not None:
                raise BenchError(f"{self.label} exited ({self.service.proc.returncode}):\n"
                                 f"{self.service.tail()}")
            try:
                status, body = self.post()
                if status == 200 and b'"choices"' in body:
                    return
                last = f"HTTP {status}: {body[:300]!r}"
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.3)
        raise BenchError(f"{self.label} not ready after {timeout_s:.0f} s ({last}):\n"
                         f"{self.service.tail()}")


class BenchError(RuntimeError):
    pass


def _config(template: Path, run_dir: Path, mock_addr: str, extra: dict[str, str]) -> Path:
    text = template.read_text().replace(MOCK_ADDR_IN_CONFIGS, mock_addr)
    for old, new in extra.items():
        text = text.replace(old, new)
    out = run_dir / template.name
    out.write_text(text)
    return out


def cloudhedge_bin(given: str | None) -> str:
    if given:
        return given
    beside = Path(sys.executable).parent / "cloudhedge"
    found = str(beside) if beside.exists() else shutil.which("cloudhedge")
    if not found:
        raise BenchError("the `cloudhedge` command is not installed (make test installs it)")
    return found


def gateway_args(ch: str, extra: tuple[str, ...]) -> list[str]:
    """``--no-access-log`` when the gateway has it (LiteLLM runs without one too)."""
    done = subprocess.run([ch, "gateway", "--help"], capture_output=True, text=True,
                          timeout=60, check=False, env=dict(os.environ, COLUMNS="200"))
    quiet = ["--no-access-log"] if "--no-access-log" in done.stdout else []
    return [*quiet, *extra]


def start_targets(targets: list[Target], settings: Settings, run_dir: Path, ch: str,
                  with_cloudhedge: bool, litellm_venv: Path | None) -> None:
    """Start the mock, cloudhedge and LiteLLM (each when asked) into ``targets``; wait
    until each answers (``targets`` holds whatever started, for the caller to stop)."""
    mock_port = free_port()
    mock = Service.start("mock", pinned([ch, "mock-upstream", "--port", str(mock_port),
                                         "--latency-ms", f"{settings.mock_latency_ms:g}"],
                                        CORE_LOAD, settings), run_dir / "mock.log", cwd=run_dir)
    mock_addr = f"127.0.0.1:{mock_port}"
    targets.append(Target("mock", "mock (direct)", f"http://{mock_addr}/v1/chat/completions",
                          UPSTREAM_MODEL, "sk-upstream", mock))
    targets[-1].wait_ready(30)

    if with_cloudhedge:
        gw_port = free_port()
        gw_config = _config(HERE / "gateway.yaml", run_dir, mock_addr, {
            "sqlite:///cloudhedge-gateway-bench.db": f"sqlite:///{run_dir / 'gateway.db'}"})
        cmd = [ch, "gateway", "--config", str(gw_config), "--port", str(gw_port), "--workers",
               "1", *gateway_args(ch, settings.gateway_args)]
        gw = Service.start("cloudhedge", pinned(cmd, CORE_PROXY, settings),
                           run_dir / "cloudhedge.log", cwd=run_dir)
        targets.append(Target("cloudhedge", "cloudhedge", f"http://127.0.0.1:{gw_port}"
                              "/v1/chat/completions", "chat", BENCH_KEY, gw))

    if litellm_venv is not None:
        ll_port = free_port()
        ll_config = _config(HERE / "litellm.yaml", run_dir, mock_addr, {})
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env.update(LITELLM_ENV)
        env["PATH"] = f"{litellm_venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        ll = Service.start("litellm", pinned(
            [str(litellm_venv / "bin" / "litellm"), "--config", str(ll_config), "--port",
             str(ll_port), "--num_workers", "1"], CORE_PROXY, settings),
            run_dir / "litellm.log", env=env, cwd=run_dir)
        targets.append(Target("litellm", "LiteLLM", f"http://127.0.0.1:{ll_port}"
                              "/v1/chat/completions", "chat", BENCH_KEY, ll))
    for t in targets[1:]:
        t.wait_ready(120)


# --- load generators ------------------------------------------------------------------


def run_wrk(t: Target, seconds: float, settings: Settings) -> dict[str, Any]:
    env = dict(os.environ, BENCH_MODEL=t.model, BENCH_KEY=t.key)
    cmd = pinned(["wrk", "-t1", f"-c{settings.connections}", f"-d{seconds:g}s", "--timeout",
                  "10s", "-s", str(HERE / "wrk" / "post.lua"), t.url], CORE_LOAD, settings)
    cpu0 = t.service.cpu_seconds()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 60,
                          check=False)
    cpu_s = t.service.cpu_seconds() - cpu0
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed on {t.label}: {done.stderr.strip() or done.stdout[-500:]}")
    r: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    secs = r["duration_us"] / 1e6
    socket_errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    ok = r["requests"] - r["non2xx"]  # requests: complete responses; socket errors apart
    r.update(seconds=secs, rps=r["requests"] / secs, ok_rps=ok / secs, socket_errors=socket_errors,
             error_share=(r["non2xx"] + socket_errors) / max(1, r["requests"] + socket_errors),
             cpu_seconds=cpu_s, cpu_ms_per_request=1000 * cpu_s / max(1, ok),
             command=" ".join(cmd))
    return r


def rate_seconds(rate: float, settings: Settings) -> float:
    return max(settings.rate_seconds, settings.min_samples / rate)


def run_openloop(t: Target, rate: float, settings: Settings) -> dict[str, Any]:
    seconds = rate_seconds(rate, settings)
    cmd = pinned([sys.executable, str(HERE / "openloop.py"), t.url, "--rate", f"{rate:g}",
                  "--duration", f"{seconds:g}", "--warmup",
                  f"{settings.rate_warmup_seconds:g}", "--body", t.body(), "--header",
                  f"Authorization: Bearer {t.key}", "--connections",
                  str(max(64, settings.connections))], CORE_LOAD, settings)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          timeout=seconds + settings.rate_warmup_seconds + 60)
    if done.returncode != 0:
        raise BenchError(f"openloop failed on {t.label}: {done.stderr[-1000:]}")
    r: dict[str, Any] = json.loads(done.stdout)
    r["sustained"] = (r["completed"] == r["scheduled"] and r["errors"] <= 0.001 * r["scheduled"]
                      and r["p99_ms"] <= settings.sustain_p99_ms)
    return r


# --- the measurements -----------------------------------------------------------------


@dataclass
class Results:
    throughput: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    latency: dict[float, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    skipped_rates: dict[float, dict[str, str]] = field(default_factory=dict)

    def max_ok_rps(self, name: str) -> float:
        return statistics.median(r["ok_rps"] for r in self.throughput[name])


def measure_throughput(targets: list[Target], settings: Settings, res: Results) -> None:
    for t in targets:
        run_wrk(t, settings.wrk_warmup_seconds, settings)  # lazy imports, pools: not counted
        t.service.wait_idle()
    for i in range(settings.repeat):
        for t in targets:
            r = run_wrk(t, settings.wrk_seconds, settings)
            res.throughput.setdefault(t.name, []).append(r)
            console.print(f"  wrk {i + 1}/{settings.repeat} {t.label:<14} {r['ok_rps']:>9,.0f}"
                          f" req/s 2xx, {r['requests'] - r['non2xx']:,} ok, {r['non2xx']:,} "
                          f"non-2xx, {r['socket_errors']} socket errors, "
                          f"{r['cpu_ms_per_request']:.2f} CPU ms/req", style="dim")
            t.service.wait_idle()


def choose_rates(targets: list[Target], settings: Settings, res: Results) -> list[float]:
    """The given rates, or 100 and 200 req/s and half the slowest proxy's maximum (rounded
    down to a multiple of 5): a rate both proxies sustain."""
    if settings.rates_rps is not None:
        return sorted(settings.rates_rps)
    proxies = [res.max_ok_rps(t.name) for t in targets if t.name != "mock"]
    rates = {100.0, 200.0}
    half = 5 * math.floor(0.5 * min(proxies) / 5) if proxies else 0
    if half >= 5:
        rates.add(float(half))
    return sorted(rates)


def measure_latency(targets: list[Target], rates: list[float], settings: Settings,
                    res: Results) -> None:
    for rate in rates:
        runnable = []
        for t in targets:
            cap = res.max_ok_rps(t.name)
            if rate > 0.9 * cap:  # open loop past capacity: a queue growing for the whole run
                res.skipped_rates.setdefault(rate, {})[t.name] = (
                    f"above 90% of its maximum throughput ({cap:,.0f} req/s)")
            else:
                runnable.append(t)
        for i in range(settings.repeat):
            for t in runnable:
                r = run_openloop(t, rate, settings)
                res.latency.setdefault(rate, {}).setdefault(t.name, []).append(r)
                console.print(f"  rate {rate:g} req/s {i + 1}/{settings.repeat} {t.label:<14} "
                              f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                              f"{r['errors']} errors, generator lag p99 "
                              f"{r['gen_lag_p99_ms']:.2f} ms", style="dim")
                t.service.wait_idle()


# --- summary --------------------------------------------------------------------------


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs)


def _pooled(runs: list[dict[str, Any]], q: float) -> float:
    """Nearest-rank percentile of every run's latencies together: a tail percentile from
    all repeats' samples is steadier than the median of each run's few worst."""
    lat = sorted(x for r in runs for _, x in r["samples"])
    return lat[min(len(lat), max(1, math.ceil(q / 100 * len(lat)))) - 1] if lat else math.nan


def summarize(targets: list[Target], res: Results) -> dict[str, Any]:
    names = [t.name for t in targets]
    thr = {n: {"ok_rps": _median(res.throughput[n], "ok_rps"),
               "rps": _median(res.throughput[n], "rps"),
               "non2xx": sum(r["non2xx"] for r in res.throughput[n]),
               "socket_errors": sum(r["socket_errors"] for r in res.throughput[n]),
               "p50_ms": _median(res.throughput[n], "p50_us") / 1000,
               "p99_ms": _median(res.throughput[n], "p99_us") / 1000,
               "cpu_ms_per_request": _median(res.throughput[n], "cpu_ms_per_request"),
               "runs": res.throughput[n]} for n in names}
    lat: dict[str, dict[str, Any]] = {}
    for rate in sorted(set(res.latency) | set(res.skipped_rates)):
        row: dict[str, Any] = {}
        base = res.latency.get(rate, {}).get("mock")
        for n in names:
            runs = res.latency.get(rate, {}).get(n)
            if not runs:
                row[n] = {"skipped": res.skipped_rates.get(rate, {}).get(n, "not run")}
                continue
            p50, p99 = _pooled(runs, 50), _pooled(runs, 99)
            row[n] = {"p50_ms": p50, "p99_ms": p99, "p999_ms": _pooled(runs, 99.9),
                      "samples": sum(len(r["samples"]) for r in runs),
                      "added_p50_ms": p50 - _pooled(base, 50) if base else None,
                      "added_p99_ms": p99 - _pooled(base, 99) if base else None,
                      "errors": sum(r["errors"] for r in runs),
                      "gen_lag_p99_ms": _median(runs, "gen_lag_p99_ms"),
                      "sustained": all(r["sustained"] for r in runs),
                      "runs": [{k: v for k, v in r.items() if k != "samples"} for r in runs]}
        lat[f"{rate:g}"] = row
    return {"throughput": thr, "latency": lat, "goals": goals(names, thr, lat)}


def goals(names: list[str], thr: dict[str, Any], lat: dict[str, Any]) -> dict[str, Any]:
    if "litellm" not in names or "cloudhedge" not in names:
        missing = " and ".join(n for n in ("cloudhedge", "litellm") if n not in names)
        return {"throughput": None, "p99_added": None, "p99_added_by_rate": {},
                "note": f"{missing} not run: no ratios"}
    ratio = thr["cloudhedge"]["ok_rps"] / max(thr["litellm"]["ok_rps"], 1e-9)
    by_rate: dict[str, Any] = {}
    for rate, row in lat.items():
        ch, ll = row.get("cloudhedge", {}), row.get("litellm", {})
        if (ch.get("sustained") and ll.get("sustained")
                and ch["added_p99_ms"] is not None and ll["added_p99_ms"] is not None):
            ll_added = ll["added_p99_ms"]
            r = ch["added_p99_ms"] / ll_added if ll_added and ll_added > 0 else None
            by_rate[rate] = {"cloudhedge_added_p99_ms": ch["added_p99_ms"],
                             "litellm_added_p99_ms": ll_added, "ratio": r,
                             "pass": r is not None and r <= GOAL_P99_ADDED_RATIO}
    common = max(by_rate, key=float) if by_rate else None
    return {
        "throughput": {"cloudhedge_ok_rps": thr["cloudhedge"]["ok_rps"],
                       "litellm_ok_rps": thr["litellm"]["ok_rps"], "ratio": ratio,
                       "goal_ratio_at_least": GOAL_THROUGHPUT_RATIO,
                       "pass": ratio >= GOAL_THROUGHPUT_RATIO},
        "p99_added": ({"rate_rps": float(common), **by_rate[common],
                       "goal_ratio_at_most": GOAL_P99_ADDED_RATIO} if common else None),
        "p99_added_by_rate": by_rate,
        "cpu_per_request_ratio": thr["litellm"]["cpu_ms_per_request"]
        / max(thr["cloudhedge"]["cpu_ms_per_request"], 1e-9),
    }


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:,.2f}"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("[green]PASS[/]" if ok else "[red]FAIL[/]")


def print_tables(targets: list[Target], s: dict[str, Any], settings: Settings) -> None:
    labels = {t.name: t.label for t in targets}
    t = Table(title=f"(a) Maximum throughput: wrk -t1 -c{settings.connections} "
                    f"-d{settings.wrk_seconds:g}s, median of {settings.repeat}")
    for col in ("target", "req/s (2xx)", "non-2xx", "socket errors", "p50 ms", "p99 ms",
                "CPU ms/req"):
        t.add_column(col, justify="left" if col == "target" else "right")
    for n, row in s["throughput"].items():
        t.add_row(labels[n], f"{row['ok_rps']:,.0f}", f"{row['non2xx']:,}",
                  f"{row['socket_errors']:,}", _ms(row["p50_ms"]), _ms(row["p99_ms"]),
                  _ms(row["cpu_ms_per_request"]))
    console.print(t)
    console.print("  closed loop: its latencies are at saturation, not comparable across "
                  "targets; CPU ms/req is the target's processes only", style="dim")

    least = f" and >= {settings.min_samples} requests" if settings.min_samples else ""
    t = Table(title=f"(b) Latency at fixed rates: open loop, {settings.repeat} run(s) of "
                    f">= {settings.rate_seconds:g} s{least}, percentiles of all runs' "
                    "requests; added = minus mock (direct)")
    for col in ("rate req/s", "target", "requests", "p50 ms", "p99 ms", "added p50 ms",
                "added p99 ms", "errors", "gen. lag p99 ms", "sustained"):
        t.add_column(col, justify="left" if col == "target" else "right")
    for rate, row in s["latency"].items():
        for n in labels:
            cell = row.get(n, {})
            if "skipped" in cell:
                t.add_row(rate, labels[n], "-", "-", "-", "-", "-", "-", "-",
                          f"skipped: {cell['skipped']}")
                continue
            t.add_row(rate, labels[n], f"{cell['samples']:,}", _ms(cell["p50_ms"]),
                      _ms(cell["p99_ms"]),
                      _ms(cell["added_p50_ms"]), _ms(cell["added_p99_ms"]),
                      str(cell["errors"]), _ms(cell["gen_lag_p99_ms"]),
                      "yes" if cell["sustained"] else "[red]no[/]")
    console.print(t)
    console.print("  gen. lag: how late the generator sent (its core is shared); when it is "
                  "not small next to p99, that row measured the machine, not the target",
                  style="dim")

    g = s["goals"]
    t = Table(title="(c) Goals: cloudhedge against LiteLLM (1 worker each, same machine)")
    for col in ("metric", "cloudhedge", "LiteLLM", "ratio", "goal", "verdict"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    if g.get("throughput") is None:
        t.add_row(g["note"], "-", "-", "-", "-", "-")
    else:
        th = g["throughput"]
        t.add_row("max throughput req/s (2xx)", f"{th['cloudhedge_ok_rps']:,.0f}",
                  f"{th['litellm_ok_rps']:,.0f}", f"{th['ratio']:.1f}x",
                  f">= {GOAL_THROUGHPUT_RATIO:g}x", _verdict(th["pass"]))
        for rate, r in g["p99_added_by_rate"].items():
            t.add_row(f"p99 added ms at {rate} req/s", _ms(r["cloudhedge_added_p99_ms"]),
                      _ms(r["litellm_added_p99_ms"]),
                      "-" if r["ratio"] is None else f"{r['ratio']:.3f}",
                      f"<= {GOAL_P99_ADDED_RATIO:g}", _verdict(r["pass"]))
        if not g["p99_added_by_rate"]:
            t.add_row("p99 added latency", "-", "-", "-", f"<= {GOAL_P99_ADDED_RATIO:g}",
                      "no rate both sustained")
        t.add_row("CPU ms per request (LiteLLM/cloudhedge)", "-", "-",
                  f"{g['cpu_per_request_ratio']:.1f}x", "-", "-")
    console.print(t)
    if settings.quick:
        console.print("quick: a smoke run; a p99 of a few hundred requests is no verdict",
                      style="yellow")


# --- main -----------------------------------------------------------------------------


def _version(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return "?"
    return ((done.stdout or done.stderr).strip().splitlines() or ["?"])[0]


def _git_commit() -> str:
    return _version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])


def meta(settings: Settings, litellm: Path | None, litellm_note: str) -> dict[str, Any]:
    return {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "loadavg_before": os.getloadavg(), "git_commit": _git_commit(),
        "wrk": _version(["wrk", "-v"]),
        "litellm": (_version([str(litellm / "bin" / "python"), "-c", "import importlib.metadata"
                              " as m; print(m.version('litellm'))"]) if litellm else None),
        "litellm_note": litellm_note, "litellm_env": LITELLM_ENV,
        "pinning": ({"mock_and_load_generators": CORE_LOAD, "proxy_under_test": CORE_PROXY}
                    if settings.pin else "off"),
        "settings": {k: v for k, v in settings.__dict__.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short runs, 1 repeat: a smoke run")
    p.add_argument("--out", type=Path, help="write every figure to this JSON file")
    p.add_argument("--repeat", type=int, help="repeats (medians); default 3, quick 1")
    p.add_argument("--wrk-seconds", type=float, help="per wrk run; default 10, quick 2")
    p.add_argument("--rate-seconds", type=float, help="per fixed-rate run; default 10, quick 2")
    p.add_argument("--min-samples", type=int, help="requests counted per fixed-rate run "
                   "at least (default 500, quick 0): a low rate runs longer")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    p.add_argument("--rates", default="auto", help="comma-separated req/s, or 'auto': 100, "
                   "200 and 1/4, 1/2 of the slowest proxy's maximum (quick: 50,100)")
    p.add_argument("--sustain-p99-ms", type=float, default=1000.0,
                   help="a rate is sustained if no errors and p99 below this (1000)")
    p.add_argument("--mock-latency-ms", type=float, default=0.0,
                   help="the mock's time to first byte (0: measures pure overhead)")
    p.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV,
                   help="LiteLLM's environment (setup_litellm.sh); skipped when absent")
    p.add_argument("--no-litellm", action="store_true", help="skip LiteLLM")
    p.add_argument("--no-cloudhedge", action="store_true",
                   help="skip the gateway (e.g. to measure LiteLLM and the mock alone)")
    p.add_argument("--cloudhedge", help="the cloudhedge command (default: beside python)")
    p.add_argument("--gateway-arg", action="append", default=[],
                   help="an extra argument for `cloudhedge gateway` (repeatable)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    p.add_argument("--keep-logs", action="store_true", help="keep the run directory")
    args = p.parse_args(argv)
    settings = Settings.from_args(args)

    if shutil.which("wrk") is None:
        console.print("[red]wrk is not installed[/]: apt-get install -y wrk  (Debian/Ubuntu)")
        return 2
    litellm: Path | None = args.litellm_venv
    note = "run"
    if args.no_litellm:
        litellm, note = None, "skipped: --no-litellm"
    elif litellm is not None and not (litellm / "bin" / "litellm").exists():
        note = (f"skipped: no LiteLLM environment at {litellm} "
                "(create it with bash bench/gateway/setup_litellm.sh)")
        litellm = None
    console.print(f"gateway bench: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, "
                  f"pinning {'on' if settings.pin else 'off'}"
                  f"{', quick' if settings.quick else ''}; LiteLLM {note}")

    run_dir = Path(tempfile.mkdtemp(prefix="cloudhedge-gateway-bench-"))
    info = meta(settings, litellm, note)
    targets: list[Target] = []
    try:
        ch = cloudhedge_bin(args.cloudhedge)
        start_targets(targets, settings, run_dir, ch, not args.no_cloudhedge, litellm)
        res = Results()
        console.print("(a) maximum throughput", style="bold")
        measure_throughput(targets, settings, res)
        rates = choose_rates(targets, settings, res)
        console.print(f"(b) latency at {', '.join(f'{r:g}' for r in rates)} req/s",
                      style="bold")
        measure_latency(targets, rates, settings, res)
    except BenchError as exc:
        console.print(f"[red]bench failed:[/] {exc}")
        console.print(f"logs: {run_dir}")
        args.keep_logs = True
        return 1
    finally:
        for t in reversed(targets):
            t.service.stop()
        if not args.keep_logs:
            shutil.rmtree(run_dir, ignore_errors=True)
    summary = summarize(targets, res)
    info["loadavg_after"] = os.getloadavg()
    info["commands"] = {t.name: " ".join(t.service.cmd) for t in targets}
    info["rates_rps"] = rates
    print_tables(targets, summary, settings)
    console.print(f"load average before {info['loadavg_before'][0]:.2f}, after "
                  f"{info['loadavg_after'][0]:.2f}: a shared 2-core machine, figures are "
                  "noisy; compare within one run", style="dim")
    if args.out:
        args.out.write_text(json.dumps({"meta": info, **summary}, indent=2, default=str))
        console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
