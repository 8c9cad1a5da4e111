"""The Kubernetes client's write rate limit, measured where the API server sees the requests.

A rollout engine that floods the API server during a large rollout is a bad citizen: every service's
writes go through one token bucket (`--kube-qps`, `--kube-burst`). The sim's request log records the
moment each request arrived, so the test checks the rate the server saw, not the client's intent.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

from schemas.messages import EVENTS
from services.kube import Kube
from sim.cluster import SimCluster
from sim.server import RequestRecord

QPS = 200.0
BURST = 100
WRITES = 1000


def event_body(i: int) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": f"burst.{i}", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "Burst", "message": f"write {i}", "type": "Normal"}


async def test_a_burst_of_writes_is_held_to_the_configured_qps(tmp_path: Path) -> None:
    async with SimCluster(nodes=1, tmpdir=tmp_path) as cluster:  # type: ignore[arg-type]
        log: collections.deque[RequestRecord] = collections.deque()
        cluster.api.request_log = log
        kube = await Kube.connect(str(cluster.kubeconfig_path), qps=QPS, burst=BURST)
        try:
            slots = asyncio.Semaphore(64)

            async def write(i: int) -> None:
                async with slots:
                    await kube.create(EVENTS, "default", event_body(i))

            await asyncio.gather(*(write(i) for i in range(WRITES)))
        finally:
            await kube.close()
        times = [r.time for r in log if r.verb == "create" and r.resource == "events"]
        assert len(times) == WRITES
        # at most `burst` plus `qps` per second in any one-second window (10% for requests that the
        # client let go evenly but that reach the server bunched, on a loaded machine) ...
        worst = max(sum(1 for u in times[i:] if u - t < 1.0) for i, t in enumerate(times))
        assert worst <= (BURST + QPS) * 1.1, f"{worst} writes reached the server within one second"
        # ... so the whole burst takes at least (writes - burst) / qps seconds
        took = times[-1] - times[0]
        assert took >= (WRITES - BURST) / QPS * 0.95, f"{WRITES} writes in {took:.2f}s"
