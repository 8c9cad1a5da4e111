"""Embedded cluster over HTTP: patch throughput and watch fan-out as clients see them.

Run: .venv/bin/python -m bench.sim_http [--pods 2000 --concurrency 50 --watchers 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp

from sim.cluster import SimCluster


async def run(n: int, concurrency: int, watchers: int) -> None:
    async with SimCluster(nodes=0, scheduler=False) as c, aiohttp.ClientSession() as s:
        base = f"{c.url}/api/v1/namespaces/default/pods"
        for i in range(n):
            c.store.create(
                c.store.rt("pods"),
                "default",
                {"metadata": {"name": f"p-{i}"}, "spec": {"containers": [{"name": "m", "image": "i:1"}]}},
            )
        rv = str(c.store.rv)
        got = [0] * watchers

        async def watch(k: int) -> None:
            async with s.get(base, params={"watch": "1", "resourceVersion": rv}) as r:
                async for line in r.content:
                    if line.strip() and json.loads(line)["type"] == "MODIFIED":
                        got[k] += 1
                        if got[k] == n:
                            return

        wtasks = [asyncio.ensure_future(watch(k)) for k in range(watchers)]
        sem = asyncio.Semaphore(concurrency)

        async def patch(i: int) -> None:
            async with (
                sem,
                s.patch(
                    f"{base}/p-{i}/status",
                    data=json.dumps(
                        {"status": {"conditions": [{"type": "InPlaceUpdateReady", "status": "True"}]}}
                    ),
                    headers={"Content-Type": "application/strategic-merge-patch+json"},
                ) as r,
            ):
                assert r.status == 200, await r.text()

        t0 = time.perf_counter()
        await asyncio.gather(*(patch(i) for i in range(n)))
        t1 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*wtasks), 60)
        t2 = time.perf_counter()
        print(
            f"{n} HTTP status patches (concurrency {concurrency}): {t1 - t0:.2f}s ({n / (t1 - t0):,.0f}/s); "
            f"{watchers} watchers saw all {n} events after {t2 - t0:.2f}s"
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pods", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--watchers", type=int, default=20)
    a = p.parse_args()
    asyncio.run(run(a.pods, a.concurrency, a.watchers))


if __name__ == "__main__":
    main()
