"""An emulated cloud with processes outlives its control plane: world.db, the shim, reload.

A child process (``world_child.py``) launches instances and is SIGKILLed; a new
:class:`EmulatedCloud` on the same workdir takes them back, as ``cloudhedge up`` does
after a crash. In-process tests cover the crash windows that a kill cannot hit on
purpose (between the record and the spawn, between the record and the kill).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloudhedge.control.providers import (
    EmulatedCloud,
    Instance,
    InstanceState,
    InvalidRequest,
    LaunchRequest,
    ManualClock,
    Provider,
)
from cloudhedge.control.providers._persist import process_start
from cloudhedge.control.providers._world import SHIM
from control.provider_harness import small_fleet

CHILD = Path(__file__).with_name("world_child.py")
POOL = "aws-h100-spot"  # 8 chips in period 0


def wait_until(predicate: object, timeout_s: float = 10.0, what: str = "") -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def rows(workdir: Path) -> dict[str, tuple[str, str, int | None]]:
    """key -> (instance id, state, pid), read straight from world.db."""
    with sqlite3.connect(workdir / "world.db") as conn:
        found = conn.execute("SELECT idempotency_key, id, state, pid FROM instances").fetchall()
    return {key: (iid, state, pid) for key, iid, state, pid in found}


def wait_for_trigger(path: Path, code: int) -> list[str]:
    """A command that runs until ``path`` exists, then exits ``code``."""
    return ["sh", "-c", f"while [ ! -e '{path}' ]; do sleep 0.02; done; exit {code}"]


async def by_key(provider: Provider) -> dict[str, Instance]:
    return {i.idempotency_key: i for i in await provider.list_instances()}


def test_a_restarted_cloud_adopts_live_instances_and_learns_how_the_others_ended(
        tmp_path: Path) -> None:
    work = tmp_path / "world"
    late, soon = tmp_path / "late-go", tmp_path / "soon-go"
    requests = [("long", POOL, 2, ["sleep", "60"]),
                ("late", POOL, 1, wait_for_trigger(late, 0)),  # ends after the reload
                ("soon", POOL, 1, wait_for_trigger(soon, 3)),  # ends while nobody watches
                ("doomed", POOL, 1, ["sleep", "60"])]  # killed while nobody watches
    child = subprocess.Popen([sys.executable, str(CHILD), str(work), json.dumps(requests)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "running", child.stderr.read()  # type: ignore[union-attr]
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    before = rows(work)
    assert all(state == "running" and pid for _, state, pid in before.values())
    # while the cloud is down: one instance ends by itself, one is killed from outside
    soon.touch()
    os.killpg(before["doomed"][2], signal.SIGKILL)  # type: ignore[arg-type]
    wait_until(lambda: (work / "run" / f"{before['soon'][0]}.exit").exists(), what="soon")
    wait_until(lambda: process_start(before["doomed"][2]) is None, what="doomed")  # type: ignore[arg-type]

    clock = ManualClock(time.time())
    cloud = EmulatedCloud(small_fleet(), clock=clock, workdir=work)
    aws = cloud.provider("aws")

    async def body() -> None:
        found = await by_key(aws)
        assert {k: i.id for k, i in found.items()} == {k: r[0] for k, r in before.items()}
        assert found["long"].state is InstanceState.RUNNING
        assert found["late"].state is InstanceState.RUNNING
        assert (found["soon"].state, found["soon"].exit_code) == (InstanceState.FAILED, 3)
        assert found["doomed"].state is InstanceState.FAILED
        assert found["doomed"].detail.startswith("lost")
        # capacity held by the adopted instances only; idempotency survived the restart
        offer = next(o for o in await aws.offers() if o.pool == POOL)
        assert offer.chips_free == 8 - 3
        again = await aws.launch(LaunchRequest("long", "long", POOL, 2, ["sleep", "60"]))
        assert again.id == found["long"].id and len(rows(work)) == 4
        with pytest.raises(InvalidRequest):
            await aws.launch(LaunchRequest("long", "long", POOL, 1, ["sleep", "60"]))
        fresh = await aws.launch(LaunchRequest("fresh", "fresh", POOL, 1, ["sleep", "60"]))
        assert fresh.id not in {r[0] for r in before.values()}  # the id counter survived
        # an adopted instance that ends is seen on the clock's next poll
        late.touch()
        for _ in range(200):
            if (await aws.get(found["late"].id)).state.ended:
                break
            clock.advance(0.2)
            await asyncio.sleep(0.02)
        ended = await aws.get(found["late"].id)
        assert (ended.state, ended.exit_code) == (InstanceState.SUCCEEDED, 0)
        # terminating an adopted instance kills its process (not a child of this one)
        long_pid = before["long"][2]
        assert long_pid is not None and process_start(long_pid) is not None
        await aws.terminate(found["long"].id)
        assert (await aws.get(found["long"].id)).state is InstanceState.TERMINATED
        for _ in range(200):
            if process_start(long_pid) is None:
                break
            await asyncio.sleep(0.02)
        assert process_start(long_pid) is None
        assert rows(work)["long"][1] == "terminated"

    async def main() -> None:
        try:
            await body()
        finally:
            await cloud.close()

    asyncio.run(main())
    assert {state for _, state, _ in rows(work).values()} <= {
        "terminated", "failed", "succeeded"}


def test_a_launch_recorded_but_never_spawned_fails_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    request = LaunchRequest("k", "job", POOL, 2, ["touch", str(marker)])

    async def main() -> None:
        # the first world dies during the launch latency: its row has no process
        first = EmulatedCloud(small_fleet(), clock=ManualClock(), launch_latency_s=100.0,
                              workdir=tmp_path)
        launched = await first.provider("aws").launch(request)
        assert rows(tmp_path)["k"][1:] == ("pending", None)
        second = EmulatedCloud(small_fleet(), clock=ManualClock(), workdir=tmp_path)
        aws = second.provider("aws")
        inst = await aws.get(launched.id)
        assert inst.state is InstanceState.FAILED and "never ran" in inst.detail
        assert (await aws.launch(request)).id == launched.id  # not launched again
        assert next(o for o in await aws.offers() if o.pool == POOL).chips_free == 8
        await asyncio.sleep(0.2)
        assert not marker.exists()
        await second.close()
        first._world._db.close()  # type: ignore[union-attr]  # the first world is "dead"

    asyncio.run(main())


def test_a_process_is_killed_if_its_record_ended_and_a_reused_pid_is_left_alone(
        tmp_path: Path) -> None:
    async def main() -> None:
        first = EmulatedCloud(small_fleet(), clock=ManualClock(), workdir=tmp_path)
        aws = first.provider("aws")
        a = await aws.launch(LaunchRequest("a", "job", POOL, 1, ["sleep", "60"]))
        b = await aws.launch(LaunchRequest("b", "job", POOL, 1, ["sleep", "60"]))
        for _ in range(200):
            if all(r[2] is not None for r in rows(tmp_path).values()):
                break
            await asyncio.sleep(0.02)
        pid_a, pid_b = rows(tmp_path)["a"][2], rows(tmp_path)["b"][2]
        assert pid_a is not None and pid_b is not None
        with sqlite3.connect(tmp_path / "world.db") as conn:
            # a: the world recorded the end, then died before the kill
            conn.execute("UPDATE instances SET state = 'terminated' WHERE id = ?", (a.id,))
            # b: its pid now names another process (other start time): not ours
            conn.execute("UPDATE instances SET start_ticks = start_ticks + 1 WHERE id = ?",
                         (b.id,))
        second = EmulatedCloud(small_fleet(), clock=ManualClock(), workdir=tmp_path)
        for _ in range(200):
            if process_start(pid_a) is None:
                break
            await asyncio.sleep(0.02)
        assert process_start(pid_a) is None  # killed on reload
        assert process_start(pid_b) is not None  # a stranger's: not killed
        lost = await second.provider("aws").get(b.id)
        assert lost.state is InstanceState.FAILED and lost.detail.startswith("lost")
        await second.close()
        assert process_start(pid_b) is not None  # closing the second world leaves it too
        await first.close()  # its parent kills it
        assert process_start(pid_b) is None

    asyncio.run(main())


def test_the_shim_runs_nothing_without_the_go_byte_and_reports_exits(tmp_path: Path) -> None:
    marker, exit_file = tmp_path / "ran", tmp_path / "x.exit"

    def shim(go: bytes, *argv: str) -> int:
        read, write = os.pipe()
        proc = subprocess.Popen([sys.executable, "-I", "-S", str(SHIM), str(exit_file), "--",
                                 *argv], stdin=read)
        os.close(read)
        os.write(write, go)
        os.close(write)
        return proc.wait(timeout=10)

    assert shim(b"", "touch", str(marker)) == 125  # the world died before the go
    assert not marker.exists() and not exit_file.exists()
    assert shim(b"1", "sh", "-c", "exit 7") == 7
    assert exit_file.read_text() == "7\n"
    assert shim(b"1", "sh", "-c", "kill -TERM $$") == 128 + signal.SIGTERM
    assert exit_file.read_text() == f"{-signal.SIGTERM}\n"
    assert shim(b"1", str(tmp_path / "no-such-binary")) == 127
    assert exit_file.read_text().startswith("127\ncannot start:")
