"""Checkpoint stores: on disk and in S3 (moto on loopback), and train.py using them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ConnectionClosedError

from cloudhedge.control.checkpoints import (
    CheckpointError,
    CheckpointStore,
    LocalCheckpoints,
    S3Checkpoints,
    StoredCheckpoint,
    open_checkpoints,
)
from control import moto_server

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "examples" / "control" / "train.py"
BUCKET = "ckpt"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A clean moto server with one bucket; boto3 finds it through the environment."""
    url = moto_server.fresh(monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    moto_server.client("s3").create_bucket(Bucket=BUCKET)
    yield url


@pytest.fixture(params=["local", "file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> CheckpointStore:
    if request.param == "local":
        return open_checkpoints(str(tmp_path / "ckpt"))
    if request.param == "file":
        return open_checkpoints(f"file://{tmp_path}/ckpt")
    request.getfixturevalue("s3")
    return open_checkpoints(f"s3://{BUCKET}/runs/job")


def test_open_picks_the_store_by_location(tmp_path: Path) -> None:
    assert isinstance(open_checkpoints(str(tmp_path)), LocalCheckpoints)
    assert open_checkpoints(f"file://{tmp_path}/a%20b").location == f"{tmp_path}/a b"
    s3 = open_checkpoints("s3://bucket/some/prefix/")
    assert isinstance(s3, S3Checkpoints) and s3.location == "s3://bucket/some/prefix"
    with pytest.raises(ValueError):
        open_checkpoints("gs://bucket/x")
    with pytest.raises(ValueError):
        open_checkpoints("s3:///no-bucket")


def test_save_latest_load_and_list(store: CheckpointStore) -> None:
    assert store.latest() is None and store.list() == []
    first = store.save(10, b"ten")
    assert first.step == 10 and first.location.endswith("/step-000000000010")
    assert first.location.startswith(store.location)
    store.save(9, b"nine")  # saved later, but an earlier step
    store.save(100, b"hundred")
    store.save(10, b"ten again")  # a step saved again replaces its checkpoint
    assert [c.step for c in store.list()] == [9, 10, 100]
    latest = store.latest()
    assert latest is not None and latest.step == 100
    assert store.load(latest) == b"hundred"
    assert store.load(store.list()[1]) == b"ten again"


def test_order_is_by_step_not_name_nor_time(tmp_path: Path) -> None:
    store = LocalCheckpoints(tmp_path)
    big = store.save(10**12 + 5, b"big")  # one digit more than the padding
    store.save(999_999_999_999, b"small")  # written last: the newest file
    os.utime(big.location, (1, 1))  # and the big step's file is the oldest
    (tmp_path / "step-7").write_bytes(b"not ours")  # foreign names are ignored
    (tmp_path / "notes.txt").write_text("x")
    assert [c.step for c in store.list()] == [999_999_999_999, 10**12 + 5]
    assert store.latest() == big


def test_a_writer_killed_mid_save_leaves_the_previous_latest(tmp_path: Path) -> None:
    # the child saves step 1, then dies (SIGKILL) after writing step 2's bytes, just
    # before the rename that would publish them: the worst moment
    child = textwrap.dedent(f"""
        import os, signal
        from cloudhedge.control import checkpoints
        store = checkpoints.LocalCheckpoints({str(tmp_path)!r})
        store.save(1, b"one")
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
        store.save(2, b"two" * 100000)
    """)
    done = subprocess.run([sys.executable, "-c", child], check=False)
    assert done.returncode == -9
    assert any(p.name.endswith(".partial") for p in tmp_path.iterdir())  # it did write
    store = LocalCheckpoints(tmp_path)
    assert store.list() == [StoredCheckpoint(1, str(tmp_path / "step-000000000001"))]
    latest = store.latest()
    assert latest is not None and store.load(latest) == b"one"
    store.save(2, b"two")
    assert [c.step for c in store.list()] == [1, 2]


def test_a_failed_local_save_raises_naming_the_location(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = LocalCheckpoints(blocker / "ckpt")  # a directory under a file: impossible
    with pytest.raises(CheckpointError) as caught:
        store.save(1, b"x")
    assert caught.value.location == str(blocker / "ckpt")
    assert str(blocker / "ckpt") in str(caught.value)
    with pytest.raises(CheckpointError):
        store.load(StoredCheckpoint(5, str(tmp_path / "step-000000000005")))


def _listing_calls(client: Any) -> tuple[list[dict[str, Any]], Callable[[], None]]:
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(dict(params))

    event = "provide-client-params.s3.ListObjectsV2"
    client.meta.events.register(event, record)
    return seen, lambda: client.meta.events.unregister(event, record)


def test_s3_lists_every_page_and_only_its_prefix(s3: str) -> None:
    client = moto_server.client("s3")
    store = S3Checkpoints(f"s3://{BUCKET}/run", client=client, page_size=2)
    for step in (5, 1, 4, 2, 3):
        store.save(step, json.dumps({"step": step}).encode())
    S3Checkpoints(f"s3://{BUCKET}/run2").save(99, b"other run")  # a prefix sharing "run"
    client.put_object(Bucket=BUCKET, Key="run/step-000000000007.partial", Body=b"junk")
    seen, stop = _listing_calls(client)
    try:
        assert [c.step for c in store.list()] == [1, 2, 3, 4, 5]
    finally:
        stop()
    assert len(seen) >= 3 and all(p["MaxKeys"] == 2 for p in seen)  # 6 keys, 2 a page
    latest = store.latest()
    assert latest == StoredCheckpoint(5, f"s3://{BUCKET}/run/step-000000000005")
    assert json.loads(store.load(latest)) == {"step": 5}


def test_s3_finds_its_endpoint_in_the_environment(s3: str) -> None:
    # no client given: boto3 itself reads AWS_ENDPOINT_URL_S3 (then AWS_ENDPOINT_URL)
    store = open_checkpoints(f"s3://{BUCKET}/env")
    store.save(3, b"three")
    [item] = moto_server.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="env/")["Contents"]
    assert item["Key"] == "env/step-000000000003"


def test_s3_with_the_generic_endpoint_variable(s3: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3)
    store = open_checkpoints(f"s3://{BUCKET}")  # the bucket's root
    store.save(1, b"one")
    assert [c.location for c in store.list()] == [f"s3://{BUCKET}/step-000000000001"]


def test_s3_errors_name_the_location(s3: str) -> None:
    store = open_checkpoints("s3://no-such-bucket/x")
    with pytest.raises(CheckpointError) as caught:
        store.save(1, b"x")
    assert caught.value.location == "s3://no-such-bucket/x" and "NoSuchBucket" in str(caught.value)
    with pytest.raises(CheckpointError):
        store.list()
    with pytest.raises(CheckpointError):
        store.load(StoredCheckpoint(1, "s3://no-such-bucket/x/step-000000000001"))


def test_a_failed_s3_put_leaves_the_previous_latest(s3: str) -> None:
    client = moto_server.client("s3")
    store = S3Checkpoints(f"s3://{BUCKET}/run", client=client)
    store.save(1, b"one")
    event = "before-send.s3.PutObject"

    def drop(request: Any, **_: Any) -> None:  # what botocore raises on a dropped upload
        raise ConnectionClosedError(endpoint_url=request.url)

    client.meta.events.register(event, drop)
    try:
        with pytest.raises(CheckpointError):
            store.save(2, b"two")
    finally:
        client.meta.events.unregister(event, drop)
    assert [c.step for c in store.list()] == [1]


# -- train.py ----------------------------------------------------------------------------


def train(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDHEDGE_")}
    return subprocess.run([sys.executable, str(TRAIN), "--step-seconds", "0", *args],
                          env={**base, **env}, capture_output=True, text=True,
                          timeout=timeout, check=False)


def ledger_steps(ledger: Path) -> tuple[list[int], set[str]]:
    steps: list[int] = []
    attempts: set[str] = set()
    for line in ledger.read_text().splitlines():
        start, end, attempt = line.split()
        steps += range(int(start), int(end) + 1)
        attempts.add(attempt)
    return steps, attempts


def test_train_resumes_from_the_latest_checkpoint_and_counts_each_step_once(
        tmp_path: Path) -> None:
    ckpt, ledger = tmp_path / "ckpt", tmp_path / "ledger"
    env = {"CLOUDHEDGE_CHECKPOINT_DIR": str(ckpt), "CLOUDHEDGE_ATTEMPT": "job:0"}
    # a first attempt that "dies" after step 23 (a checkpoint every 10)
    first = train(env, "--steps", "50", "--every", "10", "--ledger", str(ledger),
                  "--stop-after", "23")
    assert first.returncode == 3, first.stderr
    assert "starting at step 0 of 50" in first.stdout
    assert [c.step for c in LocalCheckpoints(ckpt).list()] == [10, 20]
    second = train({**env, "CLOUDHEDGE_ATTEMPT": "job:1"}, "--steps", "50", "--every", "10",
                   "--ledger", str(ledger))
    assert second.returncode == 0, second.stderr
    assert "starting at step 20 of 50" in second.stdout and "done" in second.stdout
    steps, attempts = ledger_steps(ledger)
    assert steps == list(range(1, 51)) and attempts == {"job:0", "job:1"}
    latest = LocalCheckpoints(ckpt).latest()
    assert latest is not None and json.loads(LocalCheckpoints(ckpt).load(latest)) == {"step": 50}


def test_train_records_a_saved_range_the_dead_attempt_did_not(tmp_path: Path) -> None:
    ckpt, ledger = tmp_path / "ckpt", tmp_path / "ledger"
    env = {"CLOUDHEDGE_CHECKPOINT_DIR": str(ckpt), "CLOUDHEDGE_ATTEMPT": "job:0"}
    assert train(env, "--steps", "20", "--every", "10", "--ledger", str(ledger),
                 "--stop-after", "10").returncode == 3
    # as if it had died between its save of step 20 and the ledger line
    LocalCheckpoints(ckpt).save(20, b'{"step": 20}')
    done = train({**env, "CLOUDHEDGE_ATTEMPT": "job:1"}, "--steps", "30", "--every", "10",
                 "--ledger", str(ledger))
    assert done.returncode == 0, done.stderr
    assert ledger_steps(ledger)[0] == list(range(1, 31))


def test_train_prefers_cloudhedge_checkpoint_and_uses_s3(s3: str) -> None:
    env = {"CLOUDHEDGE_CHECKPOINT": f"s3://{BUCKET}/train", "CLOUDHEDGE_CHECKPOINT_DIR": "/nope",
           **{k: os.environ[k] for k in os.environ if k.startswith("AWS_")}}
    assert train(env, "--steps", "4", "--every", "2").returncode == 0
    store = open_checkpoints(f"s3://{BUCKET}/train")
    assert [c.step for c in store.list()] == [2, 4]
    again = train(env, "--steps", "6", "--every", "2")
    assert "starting at step 4 of 6" in again.stdout


def test_train_reports_each_save_to_the_heartbeat_url(tmp_path: Path) -> None:
    import http.server
    import threading

    got: list[tuple[str | None, dict[str, Any]]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((self.headers["Authorization"], json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/attempts/7/heartbeat"
        env = {"CLOUDHEDGE_CHECKPOINT_DIR": str(tmp_path), "CLOUDHEDGE_HEARTBEAT_URL": url,
               "CLOUDHEDGE_ATTEMPT_TOKEN": "tok"}
        assert train(env, "--steps", "4", "--every", "2").returncode == 0
    finally:
        server.shutdown()
        server.server_close()
    assert got == [("Bearer tok", {"step": 2, "checkpoint": str(tmp_path / "step-000000000002")}),
                   ("Bearer tok", {"step": 4, "checkpoint": str(tmp_path / "step-000000000004")})]


def test_train_carries_on_when_the_heartbeat_fails(tmp_path: Path) -> None:
    env = {"CLOUDHEDGE_CHECKPOINT_DIR": str(tmp_path),
           "CLOUDHEDGE_HEARTBEAT_URL": "http://127.0.0.1:9/heartbeat",
           "CLOUDHEDGE_ATTEMPT_TOKEN": "tok"}
    done = train(env, "--steps", "2", "--every", "2")
    assert done.returncode == 0 and "heartbeat" in done.stderr
    assert [c.step for c in LocalCheckpoints(tmp_path).list()] == [2]
