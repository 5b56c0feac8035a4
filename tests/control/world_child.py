"""Child process of the restart tests: an emulated cloud that launches, then waits to die.

    python world_child.py WORKDIR '[["key", "pool", chips, ["argv", ...]], ...]'

Launches each request on provider ``aws`` of ``small_fleet()`` with processes under
``WORKDIR``, prints ``running`` (flushed) once every instance runs, then waits
forever, for the test to SIGKILL it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloudhedge.control.providers import EmulatedCloud, LaunchRequest, SystemClock
from control.provider_harness import small_fleet


async def main(workdir: Path, requests: list[tuple[str, str, int, list[str]]]) -> None:
    cloud = EmulatedCloud(small_fleet(), clock=SystemClock(), workdir=workdir)
    aws = cloud.provider("aws")
    ids = [(await aws.launch(LaunchRequest(key, key, pool, chips, argv))).id
           for key, pool, chips, argv in requests]
    while [i.state for i in await aws.list_instances()] != ["running"] * len(ids):
        await asyncio.sleep(0.01)
    print("running", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), json.loads(sys.argv[2])))
