"""Child process of the crash test: a burst of placements until it is killed.

    python crash_writer.py URL RUN

Plans attempts in batches of 4 (each with its placement event) and moves the first
of each batch to ``launching``; after each committed write it prints the keys it wrote
(``planned k1 k2 ...`` / ``launching k``) and flushes, so the parent knows what was
committed before it sends SIGKILL.
"""

from __future__ import annotations

import sys

from cloudhedge.control.store import AttemptPlan, ControlStore, WorkloadExists


def main(url: str, run: str) -> None:
    store = ControlStore(url)
    try:
        workload = store.create_workload("crash", "batch", {"chips": 4})
    except WorkloadExists:
        found = store.get_workload_by_name("crash")
        assert found is not None
        workload = found
    i = 0
    while True:
        plans = [AttemptPlan(workload_id=workload.id, idempotency_key=f"{run}-{i + j}",
                             pool="aws/us-east-1/h100/spot", provider="aws",
                             region="us-east-1", accelerator="h100", chips=4, replica=j,
                             reason="cheapest feasible pool", data={"batch": i})
                 for j in range(4)]
        planned = store.plan_attempts(plans)
        print("planned", *(p.attempt.idempotency_key for p in planned), flush=True)
        first = planned[0].attempt
        if store.advance(first.id, ["planned"], "launching", instance_id=f"i-{run}-{i}"):
            print("launching", first.idempotency_key, flush=True)
        i += 4


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
