"""A tiny training job for ``cloudhedge launch``: counts steps and checkpoints them.

It stands in for a real trainer: every ``--every`` steps it writes its step count to
``$CLOUDHEDGE_CHECKPOINT_DIR/step`` (atomically: write, then rename), and on start it
resumes from that file, so a job that is preempted, failed over or retried continues
where it stopped. It exits 0 after ``--steps`` steps.

    python examples/control/train.py --steps 200 --every 20 --step-seconds 0.05
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="total steps to reach")
    parser.add_argument("--every", type=int, default=20, help="checkpoint every N steps")
    parser.add_argument("--step-seconds", type=float, default=0.05, help="time per step")
    args = parser.parse_args(argv)
    directory = Path(os.environ.get("CLOUDHEDGE_CHECKPOINT_DIR", ".checkpoint"))
    directory.mkdir(parents=True, exist_ok=True)
    checkpoint = directory / "step"
    step = int(checkpoint.read_text()) if checkpoint.exists() else 0
    print(f"starting at step {step} of {args.steps}", flush=True)
    while step < args.steps:
        time.sleep(args.step_seconds)
        step += 1
        if step % args.every == 0 or step == args.steps:
            partial = directory / "step.tmp"
            partial.write_text(str(step))
            partial.replace(checkpoint)
            print(f"checkpoint at step {step}", flush=True)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
