"""Admission webhook benchmark: pod creations through the sim with `kruisebus webhook` in the path.

Run: .venv/bin/python -m bench.webhook [--rate 500] [--seconds 10] [--clonesets 20]

NATS, the sim (`python -m sim`, no nodes, so created pods stay Pending and cost nothing after
admission) and `kruisebus webhook --pod-hook` run as separate processes, exactly as `kruisebus up`
starts them. The benchmark creates pods open-loop at ``--rate`` per second (each create is sent on
its own schedule, not after the previous one returns) through the sim's HTTP API; the sim calls the
webhook's pod hook (``mpod.kb.io``) over HTTPS for every one. Reported:

* the webhook's own handling time per review (body read -> response encoded), p50/p99, from its
  ``/stats`` endpoint: the design target is p99 <= 5 ms;
* the client-side create latency (request sent -> 201 received), which adds the sim's work and the
  HTTPS round trip to the webhook;
* then the same for ``--clonesets`` CloneSet creations (mutating + validating webhooks).

No watcher runs here, so the webhook's view holds no SidecarSet and the pod hook injects nothing: the
pod number is the cost of the admission round trip and the webhook's per-review overhead. The cost of
injection itself (100 SidecarSets in the view) is `bench.sidecarset`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp

from services.stack import Stack


def _cpu(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc (0 when unavailable)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _q(data: list[float], p: float) -> float:
    data = sorted(data)
    return round(data[min(len(data) - 1, int(p * len(data)))] * 1000, 3) if data else float("nan")


async def _stats(port: int, ca: Path, method: str = "GET") -> dict[str, Any]:
    """The webhook's handling-time summary (DELETE resets it)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    async with aiohttp.ClientSession() as s, s.request(method, f"https://127.0.0.1:{port}/stats", ssl=ctx) as r:
        out: dict[str, Any] = await r.json()
        return out


async def _create_open_loop(session: aiohttp.ClientSession, url: str, bodies: list[bytes],
                            rate: float) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    failures = 0

    async def one(body: bytes) -> None:
        nonlocal failures
        t0 = time.perf_counter()
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
            await r.read()
            if r.status != 201:
                failures += 1
                return
        latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    tasks = []
    for i, body in enumerate(bodies):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # the send schedule of an open-loop load generator
        tasks.append(asyncio.create_task(one(body)))
    await asyncio.gather(*tasks)
    return latencies, failures, time.perf_counter() - start


def _pod(i: int) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": f"bench-{i}", "labels": {"app": "bench"}},
                       "spec": {"containers": [{"name": "main", "image": "nginx:1.20"}]}}).encode()


def _cloneset(i: int) -> bytes:
    return json.dumps({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                       "metadata": {"name": f"bench-{i}"},
                       "spec": {"replicas": 0, "selector": {"matchLabels": {"app": f"b{i}"}},
                                "template": {"metadata": {"labels": {"app": f"b{i}"}},
                                             "spec": {"containers": [{"name": "m", "image": "nginx"}]}}}}).encode()


async def baseline(rate: float, seconds: float) -> dict[str, Any]:
    """The same pod creations with no webhook registered: what the sim costs by itself."""
    stack = Stack(nodes=0)
    try:
        await stack.start_sim()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
            url = f"{stack.sim_url}/api/v1/namespaces/default/pods"
            await _create_open_loop(session, url, [_pod(-i - 1) for i in range(50)], rate)
            lat, failed, took = await _create_open_loop(session, url, [_pod(i) for i in range(int(rate * seconds))],
                                                        rate)
        return {"pods_without_webhook": {"created": len(lat), "failed": failed,
                                         "achieved_rate": round(len(lat) / took, 1),
                                         "client_create_p50_ms": _q(lat, 0.5),
                                         "client_create_p99_ms": _q(lat, 0.99)}}
    finally:
        await stack.cleanup()


async def main(rate: float, seconds: float, clonesets: int) -> dict[str, Any]:
    stack = Stack(nodes=0)
    cert_dir = stack.workdir / "webhook-certs"  # removed with the stack's workdir
    stack.service_args = {"webhook": ("--pod-hook", "--cert-dir", str(cert_dir))}
    try:
        await stack.start_nats()
        await stack.start_sim()
        await stack.start_service("webhook")
        port = int(json.loads((stack.workdir / "webhook.ready").read_text())["port"])
        conn = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=conn) as session:
            base = stack.sim_url
            warm = [_pod(-i - 1) for i in range(50)]
            await _create_open_loop(session, f"{base}/api/v1/namespaces/default/pods", warm, rate)
            await _stats(port, cert_dir / "ca.crt", "DELETE")
            n = int(rate * seconds)
            sim_pid = stack.sim.pid if stack.sim is not None else None
            hook_pid = stack.procs["webhook"].pid
            cpu0 = (_cpu(sim_pid), _cpu(hook_pid), time.process_time())
            lat, failed, took = await _create_open_loop(
                session, f"{base}/api/v1/namespaces/default/pods", [_pod(i) for i in range(n)], rate)
            cpu1 = (_cpu(sim_pid), _cpu(hook_pid), time.process_time())
            after = await _stats(port, cert_dir / "ca.crt")
            cs_lat, cs_failed, _ = await _create_open_loop(
                session, f"{base}/apis/apps.kruise.io/v1alpha1/namespaces/default/clonesets",
                [_cloneset(i) for i in range(clonesets)], min(rate, 50))
            final = await _stats(port, cert_dir / "ca.crt")  # pods + CloneSets since the reset
        stack.check_alive()
        return {
            "pods": {"requested_rate": rate, "created": len(lat), "failed": failed,
                     "achieved_rate": round(len(lat) / took, 1),
                     "client_create_p50_ms": _q(lat, 0.5), "client_create_p99_ms": _q(lat, 0.99),
                     "webhook_reviews": after["count"],
                     "webhook_handling_p50_ms": after.get("p50_ms"),
                     "webhook_handling_p99_ms": after.get("p99_ms"),
                     "webhook_handling_max_ms": after.get("max_ms"),
                     "cpu_share_of_one_core": {name: round((b - a) / took, 2) for name, a, b in
                                               zip(("sim", "webhook", "benchmark"), cpu0, cpu1, strict=True)}},
            "clonesets": {"created": len(cs_lat), "failed": cs_failed,
                          "client_create_p50_ms": _q(cs_lat, 0.5), "client_create_p99_ms": _q(cs_lat, 0.99),
                          "webhook_reviews": final["count"] - after["count"]},
        }
    finally:
        await stack.cleanup()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clonesets", type=int, default=20)
    ap.add_argument("--baseline", action="store_true", help="also run the pod creations without a webhook")
    a = ap.parse_args()
    result = asyncio.run(main(a.rate, a.seconds, a.clonesets))
    if a.baseline:
        result.update(asyncio.run(baseline(a.rate, a.seconds)))
    print(json.dumps(result, indent=2))
