"""The README walkthrough, end to end: a service and a training run survive a cloud outage.

``cloudhedge up`` runs as a process over the emulated clouds of the flagship fleet; the
service is three mock-upstream replicas, the job is ``examples/control/train.py`` with a
ledger of committed steps. While the official ``openai`` client calls the gateway in a
loop, ``cloudhedge chaos outage`` takes down the cloud that runs the job. Then:

- every client request succeeded (the gateway retried the dead replica elsewhere, and the
  replica router removed it);
- the service is back to three ready replicas, none on the failed cloud;
- the job resumed on another cloud from its last checkpoint and finished; its ledger
  holds every step exactly once (nothing lost beyond the checkpoint interval is ever
  committed twice);
- ``explain`` tells the story; ``down`` leaves no process behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from cloudhedge.control.client import ControlClient, read_state

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CLI = Path(sys.executable).parent / "cloudhedge"
STEPS, EVERY = 400, 10


def _cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(CLI), *args, "--state-dir", str(state)], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=False,
                          env={**os.environ, "COLUMNS": "250"})
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def _wait(what: str, check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def control(tmp_path: Path) -> Iterator[tuple[Path, ControlClient]]:
    state = tmp_path / "state"
    server = subprocess.Popen(
        [str(CLI), "up", str(EXAMPLES / "frontier-lab.yaml"), "--port", "0",
         "--gateway-port", "0", "--state-dir", str(state), "--interval", "0.5"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait("cloudhedge up", lambda: (state / "server.json").exists() or server.poll())
        assert server.poll() is None, server.communicate()
        yield state, ControlClient.from_state(state)
        _cli(state, "down")
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    leftovers = subprocess.run(["pgrep", "-f", str(state)], capture_output=True, text=True)
    assert leftovers.stdout == "", "instances outlived `cloudhedge down`"


def test_a_service_and_a_training_run_survive_a_cloud_outage(
        control: tuple[Path, ControlClient], tmp_path: Path) -> None:
    state, client = control
    ledger = tmp_path / "ledger.txt"
    job = tmp_path / "job.yaml"
    job.write_text((EXAMPLES / "control" / "job.yaml").read_text().replace(
        "--steps 1500 --every 25 --step-seconds 0.04",
        f"--steps {STEPS} --every {EVERY} --step-seconds 0.04 --ledger {ledger}"))
    _cli(state, "serve", str(EXAMPLES / "control" / "service.yaml"))
    _cli(state, "launch", str(job))

    def ready(name: str) -> int:
        return int(client.workload(name)["ready"] or 0)

    def live(name: str) -> list[dict[str, Any]]:
        return [a for a in client.workload(name)["attempt_list"] if a["state"] == "running"]

    _wait("three ready replicas", lambda: ready("chat-mock") == 3)
    _wait("training progress", lambda: any((a["progress_step"] or 0) >= 5 * EVERY
                                           for a in live("pretrain-small")))
    [first] = live("pretrain-small")
    down = first["provider"]

    # the official client, through the gateway, all along
    server = read_state(state)
    assert server.gateway_url is not None
    gpt = openai.OpenAI(base_url=server.gateway_url, api_key=server.gateway_keys["consumer"],
                        max_retries=0, timeout=10)
    results: list[str | None] = []  # the deployment that answered, None for a failure
    stop = threading.Event()

    def call() -> None:
        while not stop.is_set():
            try:
                raw = gpt.chat.completions.with_raw_response.create(
                    model="gpt-large", messages=[{"role": "user", "content": "hello"}])
                assert raw.parse().choices[0].message.content
                results.append(raw.headers.get("x-cloudhedge-deployment"))
            except openai.OpenAIError as e:
                results.append(None)
                print("request failed:", e)

    caller = threading.Thread(target=call)
    caller.start()
    try:
        _wait("requests before the outage", lambda: len(results) >= 20)
        before = len(results)
        outage = _cli(state, "chaos", "outage", down, "--for", "10m")
        assert f"outage of provider:{down}" in outage.stdout
        t0 = time.monotonic()
        moved = _wait("the job on another cloud", lambda: [
            a for a in live("pretrain-small") if a["provider"] != down], timeout_s=10)
        job_failover_s = time.monotonic() - t0
        _wait("three ready replicas again", lambda: ready("chat-mock") == 3
              and all(a["provider"] != down for a in live("chat-mock")), timeout_s=20)
        _wait("requests after the failover", lambda: len(results) >= before + 50)
    finally:
        stop.set()
        caller.join(timeout=30)
    assert results and None not in results, f"{results.count(None)} of {len(results)} failed"
    assert len(set(results)) >= 3  # spread over the replicas
    assert job_failover_s <= 5.0

    # the job finishes on its new cloud, from its checkpoint, with every step exactly once
    _wait("the job to finish", lambda: client.workload("pretrain-small")["attempts"].get(
        "succeeded") == 1, timeout_s=60)
    committed: list[int] = []
    attempts: set[str] = set()
    for line in ledger.read_text().splitlines():
        start, end, attempt = line.split()
        committed += range(int(start), int(end) + 1)
        attempts.add(attempt)
    assert committed == list(range(1, STEPS + 1))
    assert attempts == {first["key"], moved[0]["key"]}

    story = json.dumps(client.explain("pretrain-small")["events"])
    assert "failover" in story and "resuming from step" in story
    status = _cli(state, "status")
    assert f"provider:{down}" in status.stdout  # the blocked scope is shown
