"""Embedded cluster node simulation benchmark: N pods from creation to Running+Ready, then an in-place update.

Run: .venv/bin/python -m bench.sim_nodes [--pods 5000 --nodes 50]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from sim.cluster import SimCluster
from sim.nodes import NodeConfig
from sim.store import STRATEGIC_PATCH


def ready(p: dict[str, object]) -> bool:
    st = p.get("status") or {}
    assert isinstance(st, dict)
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])


async def run(n: int, nodes: int, events: bool) -> None:
    cfg = NodeConfig(pull_delay=0.2, start_delay=0.1, max_pods=max(110, n // nodes + 10), events=events)
    async with SimCluster(nodes=nodes, node_config=cfg) as c:
        pods = c.store.rt("pods")
        t0 = time.perf_counter()
        for i in range(n):
            c.store.create(
                pods,
                "default",
                {
                    "metadata": {"name": f"p-{i}", "labels": {"app": "b"}},
                    "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}]},
                },
            )
            if i % 500 == 0:
                await asyncio.sleep(0)
        t1 = time.perf_counter()
        await c.wait_for(
            lambda: sum(1 for p in c.store.list(pods, "default")[0] if ready(p)) == n,
            timeout=300,
            interval=0.2,
        )
        t2 = time.perf_counter()
        print(f"{n} pods on {nodes} nodes: created in {t1 - t0:.2f}s, all Ready after {t2 - t0:.2f}s")
        for i in range(n):
            c.store.patch(
                pods,
                "default",
                f"p-{i}",
                STRATEGIC_PATCH,
                {"spec": {"containers": [{"name": "main", "image": "nginx:1.26"}]}},
            )
            if i % 500 == 0:
                await asyncio.sleep(0)
        t3 = time.perf_counter()

        def restarted() -> bool:
            return all(
                (p["status"].get("containerStatuses") or [{}])[0].get("restartCount") == 1 and ready(p)
                for p in c.store.list(pods, "default")[0]
            )

        await c.wait_for(restarted, timeout=300, interval=0.2)
        t4 = time.perf_counter()
        print(
            f"in-place image update of {n} pods: patched in {t3 - t2:.2f}s, all restarted+Ready after "
            f"{t4 - t2:.2f}s; store rv={c.store.rv}"
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pods", type=int, default=5000)
    p.add_argument("--nodes", type=int, default=50)
    p.add_argument("--no-events", action="store_true")
    a = p.parse_args()
    asyncio.run(run(a.pods, a.nodes, not a.no_events))


if __name__ == "__main__":
    main()
