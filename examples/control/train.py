"""A tiny training job for ``cloudhedge launch``: counts steps and checkpoints them.

It stands in for a real trainer: every ``--every`` steps it saves a checkpoint (the JSON
``{"step": n}``, atomically) to the store at ``$CLOUDHEDGE_CHECKPOINT`` (a directory,
``file://`` or ``s3://bucket/prefix``), else ``$CLOUDHEDGE_CHECKPOINT_DIR``, else
``.checkpoint``; on start it resumes from the latest checkpoint there, so a job that is
preempted, failed over or retried continues where it stopped. It exits 0 after
``--steps`` steps. See docs/checkpoints.md.

After each save it appends ``start end attempt`` (the steps the checkpoint committed,
and ``$CLOUDHEDGE_ATTEMPT``) to the ``--ledger`` file, if given, so a test can check that
no committed step is lost or counted twice. With ``$CLOUDHEDGE_HEARTBEAT_URL`` and
``$CLOUDHEDGE_ATTEMPT_TOKEN`` set, it also reports each save to the control plane
(failures are only written to stderr). It needs no control plane to run:

    python examples/control/train.py --steps 200 --every 20 --step-seconds 0.05
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request

from cloudhedge.control.checkpoints import CheckpointStore, open_checkpoints

CRASH_EXIT_CODE = 3


def checkpoint_location() -> str:
    return os.environ.get("CLOUDHEDGE_CHECKPOINT") or os.environ.get(
        "CLOUDHEDGE_CHECKPOINT_DIR", ".checkpoint")


def resume_step(store: CheckpointStore) -> int:
    latest = store.latest()
    if latest is None:
        return 0
    return int(json.loads(store.load(latest))["step"])


def ledger_end(path: str) -> int:
    """The last step the ledger records as committed (0 if none)."""
    try:
        with open(path, encoding="utf-8") as ledger:
            ends = [int(line.split()[1]) for line in ledger if line.strip()]
    except FileNotFoundError:
        return 0
    return max(ends, default=0)


def append_ledger(path: str, start: int, end: int, attempt: str) -> None:
    """Append one committed range durably (append, flush, fsync)."""
    with open(path, "a", encoding="utf-8") as ledger:
        ledger.write(f"{start} {end} {attempt}\n")
        ledger.flush()
        os.fsync(ledger.fileno())


def heartbeat(step: int, location: str) -> None:
    """Tell the control plane about a save; never fails the job."""
    url = os.environ.get("CLOUDHEDGE_HEARTBEAT_URL")
    token = os.environ.get("CLOUDHEDGE_ATTEMPT_TOKEN")
    if not url or not token:
        return
    body = json.dumps({"step": step, "checkpoint": location}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=2):
            pass
    except (OSError, ValueError) as e:  # URLError and HTTPError are OSErrors
        print(f"heartbeat to {url} failed: {e}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="total steps to reach")
    parser.add_argument("--every", type=int, default=20, help="checkpoint every N steps")
    parser.add_argument("--step-seconds", type=float, default=0.05, help="time per step")
    parser.add_argument("--ledger", help="append 'start end attempt' per committed range")
    parser.add_argument("--stop-after", type=int, default=None, help=(
        f"die (exit {CRASH_EXIT_CODE}, no clean-up) after this step: a crash, for tests"))
    args = parser.parse_args(argv)
    attempt = os.environ.get("CLOUDHEDGE_ATTEMPT", "-")
    store = open_checkpoints(checkpoint_location())
    step = resume_step(store)
    committed = step
    if args.ledger and ledger_end(args.ledger) < step:
        # the previous attempt died between its save and its ledger line: record it now
        append_ledger(args.ledger, ledger_end(args.ledger) + 1, step, attempt)
    print(f"starting at step {step} of {args.steps}", flush=True)
    while step < args.steps:
        time.sleep(args.step_seconds)
        step += 1
        if step % args.every == 0 or step == args.steps:
            saved = store.save(step, json.dumps({"step": step}).encode())
            if args.ledger:
                append_ledger(args.ledger, committed + 1, step, attempt)
            committed = step
            print(f"checkpoint at step {step}", flush=True)
            heartbeat(step, saved.location)
        if args.stop_after is not None and step >= args.stop_after:
            print(f"stopping at step {step} (--stop-after)", flush=True)
            sys.stdout.flush()
            os._exit(CRASH_EXIT_CODE)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
