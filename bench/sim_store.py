"""Embedded cluster store benchmark: write/list/watch cost at 100k pods.

Run: .venv/bin/python -m bench.sim_store [--pods 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time

import msgspec

from sim.store import MERGE_PATCH, STRATEGIC_PATCH, Store


def pod(i: int) -> dict[str, object]:
    return {
        "metadata": {
            "name": f"pod-{i}",
            "labels": {"app": f"cs-{i % 100}", "controller-revision-hash": "r1"},
            "ownerReferences": [
                {
                    "apiVersion": "apps.kruise.io/v1alpha1",
                    "kind": "CloneSet",
                    "name": f"cs-{i % 100}",
                    "uid": f"owner-{i % 100}",
                }
            ],
        },
        "spec": {
            "containers": [{"name": "main", "image": "nginx:1.25"}],
            "readinessGates": [{"conditionType": "InPlaceUpdateReady"}],
        },
    }


async def run(n: int) -> None:
    store = Store(gc_dangling=False, watch_history=10000)
    pods = store.rt("pods")
    watcher = store.watch(pods, None, str(store.rv))
    t0 = time.perf_counter()
    for i in range(n):
        store.create(pods, "default", pod(i))
        if len(watcher.queue) > 10000:
            watcher.queue.clear()
    t1 = time.perf_counter()
    print(f"create   {n} pods: {t1 - t0:.2f}s ({n / (t1 - t0):,.0f}/s)")
    for i in range(0, n, 10):
        store.patch(
            pods,
            "default",
            f"pod-{i}",
            STRATEGIC_PATCH,
            {"status": {"conditions": [{"type": "InPlaceUpdateReady", "status": "True"}]}},
            subresource="status",
        )
        if len(watcher.queue) > 10000:
            watcher.queue.clear()
    t2 = time.perf_counter()
    print(f"patch    {n // 10} status: {t2 - t1:.2f}s ({(n // 10) / (t2 - t1):,.0f}/s)")
    for i in range(0, n, 10):
        store.patch(pods, "default", f"pod-{i}", MERGE_PATCH, {"metadata": {"labels": {"x": "y"}}})
        watcher.queue.clear()
    t3 = time.perf_counter()
    print(f"merge    {n // 10} labels: {t3 - t2:.2f}s ({(n // 10) / (t3 - t2):,.0f}/s)")
    items, rv = store.list(pods, "default")
    body = msgspec.json.encode({"items": items})
    t4 = time.perf_counter()
    print(f"list+encode {len(items)} pods: {t4 - t3:.2f}s ({len(body) / 1e6:.0f} MB)")
    from sim.selectors import parse_label_selector

    sel = parse_label_selector("app=cs-7")
    items, _ = store.list(pods, None, sel)
    t5 = time.perf_counter()
    print(f"list with selector -> {len(items)}: {t5 - t4:.3f}s")
    print(f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pods", type=int, default=100_000)
    asyncio.run(run(p.parse_args().pods))


if __name__ == "__main__":
    main()
