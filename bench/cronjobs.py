"""The AdvancedCronJob planner at scale: 10,000 ACJs with mixed schedules and zones over simulated time.

Question answered: how much planner CPU does a minute of schedules cost, how much memory do the ACJs and
their children take, and how late (planner-side) is a child created after its slot when many ACJs share a
slot (every `*/1` and `0 * * * *` ACJ fires at the same second)?

The pure planner runs as the service would drive it: one timer heap (`services/planner/kit/timers.py`)
wakes each ACJ at its `requeue_after`; a pass that creates a child is followed by the passes its effects
cause (the child observed active, then finished); commands are applied to the in-memory objects at once.
Lateness of a child = the CPU time from the start of its slot's burst (all ACJs due at that second, planned
one after another) until its own pass returned: what the planner alone adds, bus and API excluded.

    python -m bench.cronjobs [--acjs 10000] [--minutes 60]
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from schemas.advancedcronjob import AdvancedCronJob
from schemas.job import Job
from schemas.messages import CreateOp, DeleteOp, PatchOp
from services.planner.advancedcronjob.plan import plan_advancedcronjob
from services.planner.kit.timers import TimerHeap

SCHEDULES = ["*/1 * * * *", "*/5 * * * *", "0 * * * *", "30 2 * * *", "@every 90s", "@every 1h",
             "15 */2 * * 1-5", "@daily", "*/10 9-17 * * *", "0 0 1 * *"]
ZONES = [None, "UTC", "Asia/Shanghai", "America/New_York", "Europe/Berlin", "Asia/Kolkata"]
START = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)


def make_acj(i: int, rng: random.Random) -> AdvancedCronJob:
    schedule = SCHEDULES[i % len(SCHEDULES)]
    zone = None if schedule.startswith("@every") else rng.choice(ZONES)
    spec: dict[str, Any] = {"schedule": schedule, "concurrencyPolicy": rng.choice(["Allow", "Forbid", "Replace"]),
                            "paused": False, "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                            "startingDeadlineSeconds": 300,
                            "template": {"jobTemplate": {"metadata": {"labels": {"app": f"a{i}"}}, "spec": {
                                "template": {"spec": {"restartPolicy": "OnFailure",
                                                      "containers": [{"name": "c", "image": "busybox"}]}}}}}}
    if zone:
        spec["timeZone"] = zone
    return msgspec.convert({"metadata": {"name": f"acj-{i}", "namespace": "default", "uid": f"uid-{i}",
                                         "resourceVersion": "1", "generation": 1,
                                         "creationTimestamp": "2026-05-31T23:00:00Z"},
                            "spec": spec}, AdvancedCronJob)


class World:
    """The objects as the API server would hold them after the planner's commands."""

    def __init__(self, n: int) -> None:
        rng = random.Random(1)
        self.acjs = {f"uid-{i}": make_acj(i, rng) for i in range(n)}
        self.children: dict[str, dict[str, Job]] = {uid: {} for uid in self.acjs}
        self.rv = 1

    def apply(self, uid: str, plan: Any) -> list[str]:
        created = []
        for cmd in plan.commands:
            for op in cmd.ops:
                if isinstance(op, CreateOp):
                    body = op.body
                    self.rv += 1
                    meta = {**body["metadata"], "uid": f"{body['metadata']['name']}-u", "resourceVersion": str(self.rv)}
                    self.children[uid][meta["name"]] = msgspec.convert({**body, "metadata": meta}, Job)
                    created.append(meta["name"])
                elif isinstance(op, DeleteOp):
                    self.children[uid].pop(op.name, None)
                elif isinstance(op, PatchOp) and op.subresource == "status":
                    self.rv += 1
                    acj = self.acjs[uid]
                    self.acjs[uid] = msgspec.structs.replace(
                        acj, status=plan.status,
                        metadata=msgspec.structs.replace(acj.metadata, resource_version=str(self.rv)))
        return created

    def finish(self, uid: str, name: str, at: datetime) -> None:
        child = self.children[uid].get(name)
        if child is None:
            return
        ts = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        status = msgspec.convert({"startTime": ts, "succeeded": 1, "completionTime": ts,
                                  "conditions": [{"type": "Complete", "status": "True"}]}, type(child.status))
        self.children[uid][name] = msgspec.structs.replace(child, status=status)


def run(n: int, minutes: int) -> dict[str, Any]:
    tracemalloc.start()
    world = World(n)
    objects_mem = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()  # tracing triples the CPU cost; memory is measured on the objects and at the end
    timers: TimerHeap[str] = TimerHeap()
    finishes: list[tuple[float, str, str]] = []
    for uid in world.acjs:
        timers.arm(uid, 0.0)
    end = minutes * 60.0
    passes = creates = 0
    lateness: list[float] = []
    cpu_total = 0.0
    t = 0.0
    while True:
        due_at = timers.next_due()
        if due_at is None or due_at > end:
            break
        t = due_at
        now = START + timedelta(seconds=t)
        # children finishing up to now (their status change re-plans the ACJ)
        for _, uid, name in [f for f in finishes if f[0] <= t]:
            world.finish(uid, name, now)
            timers.arm(uid, t)
        finishes = [f for f in finishes if f[0] > t]
        burst = timers.pop_due(t)
        burst_start = time.process_time()
        for uid in burst:
            plan = plan_advancedcronjob(world.acjs[uid], sorted(world.children[uid].values(),
                                                                key=lambda c: c.metadata.name),
                                        now=now + timedelta(milliseconds=1))
            passes += 1
            created = world.apply(uid, plan)
            if created:
                creates += len(created)
                lateness.append(time.process_time() - burst_start)
                finishes.extend((t + 5.0, uid, name) for name in created)
            if plan.requeue_after is not None:
                timers.arm(uid, t + max(plan.requeue_after, 0.05))
        cpu_total += time.process_time() - burst_start
    tracemalloc.start()
    end_mem = _size(world, timers)
    tracemalloc.stop()
    lateness.sort()

    def q(p: float) -> float:
        return round(lateness[min(len(lateness) - 1, int(p * len(lateness)))] * 1000, 1) if lateness else 0.0

    return {"acjs": n, "simulated_minutes": minutes, "passes": passes, "children_created": creates,
            "cpu_seconds": round(cpu_total, 2), "cpu_ms_per_simulated_minute": round(cpu_total * 1000 / minutes, 1),
            "lateness_ms_p50": q(0.5), "lateness_ms_p99": q(0.99), "lateness_ms_max": q(1.0),
            "objects_mb_start": round(objects_mem / 2**20, 1), "objects_mb_end": round(end_mem / 2**20, 1),
            "bytes_per_acj_end": end_mem // n}


def _size(world: World, timers: TimerHeap[str]) -> int:
    """The memory of the ACJs, their children and the timers after the run (a traced deep copy)."""
    before = tracemalloc.get_traced_memory()[0]
    copy = msgspec.json.decode(msgspec.json.encode(world.acjs), type=dict[str, AdvancedCronJob])
    kids = {u: msgspec.json.decode(msgspec.json.encode(c), type=dict[str, Job]) for u, c in world.children.items()}
    heap: TimerHeap[str] = TimerHeap()
    for uid in world.acjs:
        w = timers.when(uid)
        if w is not None:
            heap.arm(uid, w)
    size = tracemalloc.get_traced_memory()[0] - before
    del copy, kids, heap
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--acjs", type=int, default=10_000)
    ap.add_argument("--minutes", type=int, default=60)
    args = ap.parse_args()
    print(msgspec.json.encode(run(args.acjs, args.minutes)).decode())


if __name__ == "__main__":
    main()
