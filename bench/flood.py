"""A flood of pod state messages into the running stack: do the services' memory and backlogs stay bounded?

Run: .venv/bin/python -m bench.flood [--rate 10000] [--seconds 60] [--pods 200]

NATS, the sim and the webhook, watcher, planner and executor run as processes (`services.stack.Stack`, as
`kruisebus up`). A settled CloneSet of ``--pods`` pods; then the benchmark publishes the state of those
pods into KB_STATE, each message a new resourceVersion (as a kubelet reporting status would cause), at
``--rate`` messages/s for ``--seconds`` (paced every 100 ms, acked publishes, at most 2,000 in flight;
``--core``: without waiting for acks, so the consumers rather than the publisher set the pace),
straight onto the bus: the sim's HTTP watch could not produce that many events, and the consumers of
the state stream (the planner, the webhook) are what a flood tests. Every 0.5 s it samples each process's
RSS from /proc; at the end it reads the kernel's peak (VmHWM). Then it scales the CloneSet up by one
through the API and times how long until the new pod exists: the planner's backlog, if it fell behind.

The API write rate: the executor runs with ``--kube-qps``/``--kube-burst`` and its /metrics on; from the
flood's start on, its `kruisebus_kube_requests_total` of the write verbs (create, update, patch,
delete) is sampled every 0.25 s. After the catch-up it scales the CloneSet up by ``--write-pods`` more
(a burst of creates, then their status writes) and reports the executor's writes/s over that phase and
its busiest 1 s window against the QPS setting: the client's token bucket allows at most
``qps * t + burst`` writes in any ``t`` seconds.

It prints a table and, with ``--json``, writes the figures; docs/reliability.md quotes a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from schemas.kube import Pod
from schemas.messages import CLONESETS, ENCODER, PodState
from services.bus import state_msg_id
from services.kube import Kube
from services.observe import poll, snapshot
from services.stack import Stack

NS = "default"
NAME = "flooded"


def cloneset(replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "metadata": {"name": NAME, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": NAME}},
                     "updateStrategy": {"type": "InPlaceIfPossible"},
                     "template": {"metadata": {"labels": {"app": NAME}},
                                  "spec": {"containers": [{"name": "main", "image": "nginx:1.20"}]}}}}


WRITE_VERBS = frozenset({"create", "update", "patch", "delete"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def writes_of(metrics_text: str) -> float:
    """The API writes a process made so far: its `kruisebus_kube_requests_total` of the write verbs."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("kruisebus_kube_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            if any(f'verb="{v}"' in labels for v in WRITE_VERBS):
                total += float(value)
    return total


def busiest_window(samples: list[tuple[float, float]], window: float = 1.0) -> float:
    """The most writes within any `window` seconds of (time, total) samples."""
    best = 0.0
    j = 0
    for i, (t, total) in enumerate(samples):
        while samples[j][0] < t - window:
            j += 1
        best = max(best, total - samples[j][1]) if i > j else best
    return best


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    """A process's resident set (or its peak, `VmHWM`) in KiB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def pids(stack: Stack) -> dict[str, int]:
    out = {name: proc.pid for name, proc in stack.procs.items()}
    if stack.sim is not None:
        out["sim"] = stack.sim.pid
    if stack.nats.proc is not None:
        out["nats-server"] = stack.nats.proc.pid
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    stack = Stack(nodes=4, service_args={"executor": (
        "--kube-qps", str(args.kube_qps), "--kube-burst", str(args.kube_burst),
        "--metrics-port", str(port), "--metrics-host", "127.0.0.1")})
    await stack.start()
    kube = await Kube.connect(stack.kubeconfig)
    http = aiohttp.ClientSession()
    writes: list[tuple[float, float]] = []  # (monotonic time, the executor's writes so far)

    async def sample_writes(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    writes.append((time.monotonic(), writes_of(await resp.text())))
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.25)

    try:
        await kube.create(CLONESETS, NS, cloneset(args.pods))
        await poll(lambda: snapshot(kube, NS, NAME), lambda s: s.ready == args.pods, timeout=300,
                   what=f"{args.pods} pods Ready")
        pods: list[Pod] = (await snapshot(kube, NS, NAME)).pods
        procs = pids(stack)
        before = {name: rss_kb(pid) for name, pid in procs.items()}
        peak_sampled = dict(before)
        bus = await stack.connect(name="bench-flood")
        sem = asyncio.Semaphore(2000)
        sent = 0
        failed = 0

        async def one(i: int) -> None:
            nonlocal sent, failed
            pod = pods[i % len(pods)]
            ev = PodState(object=msgspec.structs.replace(
                pod, metadata=msgspec.structs.replace(pod.metadata, resource_version=str(10_000_000 + i))))
            try:
                await bus.publish_raw(bus.state_subject(ev), ENCODER.encode(ev), {"Nats-Msg-Id": state_msg_id(ev)})
                sent += 1
            except Exception:
                failed += 1
            finally:
                sem.release()

        async def sample(stop: asyncio.Event) -> None:
            while not stop.is_set():
                for name, pid in procs.items():
                    peak_sampled[name] = max(peak_sampled[name], rss_kb(pid))
                await asyncio.sleep(0.5)

        # --core: each pod's message encoded once around a marker resourceVersion, which each message
        # replaces with its own (the same bytes and message id `PodState` and `state_msg_id` give)
        marker = "987654321987654321"
        templates: list[tuple[str, tuple[bytes, bytes], tuple[str, str]]] = []
        for pod in pods:
            ev = PodState(object=msgspec.structs.replace(
                pod, metadata=msgspec.structs.replace(pod.metadata, resource_version=marker)))
            head, tail = ENCODER.encode(ev).split(marker.encode())
            id_head, id_tail = state_msg_id(ev).split(marker)
            templates.append((bus.state_subject(ev), (head, tail), (id_head, id_tail)))

        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(stop))
        write_sampler = asyncio.create_task(sample_writes(stop))
        tasks: set[asyncio.Task[None]] = set()
        total = int(args.rate * args.seconds)
        per_tick = max(1, int(args.rate / 10))
        t0 = time.monotonic()
        i = 0
        while i < total:
            tick = t0 + (i // per_tick) * 0.1
            delay = tick - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if args.core:  # no task per message, and no encoding: the publisher's own cost was the limit
                for _ in range(min(per_tick, total - i)):
                    subject, (head, tail), (id_head, id_tail) = templates[i % len(pods)]
                    rv = str(10_000_000 + i).encode()
                    await bus.nc.publish(subject, head + rv + tail,
                                         headers={"Nats-Msg-Id": f"{id_head}{10_000_000 + i}{id_tail}"})
                    sent += 1
                    i += 1
                continue
            for _ in range(min(per_tick, total - i)):
                await sem.acquire()
                t = asyncio.create_task(one(i))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
                i += 1
        await asyncio.gather(*tasks)
        await bus.nc.flush()
        flood_s = time.monotonic() - t0
        # the planner's backlog: how long until a change made now is acted on
        t1 = time.monotonic()
        await kube.patch(CLONESETS, NS, NAME, {"spec": {"replicas": args.pods + 1}}, "merge")
        await poll(lambda: snapshot(kube, NS, NAME), lambda s: len(s.pods) == args.pods + 1, timeout=600,
                   what="the scale-up after the flood")
        catch_up_s = time.monotonic() - t1
        # a burst of writes: --write-pods creates at once, then the status writes that follow them
        w0 = time.monotonic()
        n0 = writes[-1][1] if writes else 0.0
        await kube.patch(CLONESETS, NS, NAME, {"spec": {"replicas": args.pods + 1 + args.write_pods}}, "merge")
        await poll(lambda: snapshot(kube, NS, NAME), lambda s: s.ready == args.pods + 1 + args.write_pods,
                   timeout=600, what=f"{args.write_pods} more pods Ready")
        await asyncio.sleep(1.0)  # the last status writes
        stop.set()
        await sampler
        await write_sampler
        phase = [(t, n) for t, n in writes if t >= w0]
        burst_writes = (phase[-1][1] - n0) if phase else 0.0
        burst_s = (phase[-1][0] - w0) if phase else 0.0
        flood_writes = [(t, n) for t, n in writes if t < w0]
        peak = {name: max(peak_sampled[name], rss_kb(pid, "VmHWM")) for name, pid in procs.items()}
        after = {name: rss_kb(pid) for name, pid in procs.items()}
        await bus.close()
        stack.check_alive()
        return {"rate_target": args.rate, "seconds_target": args.seconds, "pods": args.pods, "published": sent,
                "failed": failed, "flood_s": flood_s, "rate": sent / flood_s, "catch_up_s": catch_up_s,
                "rss_before_kb": before, "rss_peak_kb": peak, "rss_after_kb": after,
                "kube_qps": args.kube_qps, "kube_burst": args.kube_burst, "write_pods": args.write_pods,
                "flood_writes": (flood_writes[-1][1] - flood_writes[0][1]) if flood_writes else 0.0,
                "burst_writes": burst_writes, "burst_s": burst_s,
                "burst_rate": burst_writes / burst_s if burst_s else 0.0,
                "busiest_1s": busiest_window(writes)}
    finally:
        await http.close()
        await kube.close()
        await stack.cleanup()


def render(r: dict[str, Any], argv: list[str]) -> str:
    lines = [f"Command: `.venv/bin/python -m bench.flood {' '.join(argv)}` (CPython {platform.python_version()}, "
             f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')})", "",
             f"Published {r['published']:,} pod states ({r['failed']} failed) in {r['flood_s']:.1f} s: "
             f"{r['rate']:,.0f}/s (target {r['rate_target']:,}/s for {r['seconds_target']} s) over {r['pods']} pods; "
             f"a scale-up made after the flood was done {r['catch_up_s']:.1f} s later.", "",
             f"Executor API writes (`--kube-qps {r['kube_qps']:g} --kube-burst {r['kube_burst']}`): "
             f"{r['flood_writes']:.0f} during the flood; scaling up by {r['write_pods']} pods, "
             f"{r['burst_writes']:.0f} writes in {r['burst_s']:.1f} s = {r['burst_rate']:.1f}/s; busiest 1 s "
             f"window {r['busiest_1s']:.0f} (the bucket allows {r['kube_qps'] + r['kube_burst']:g}).", "",
             "| process | RSS before (MB) | peak RSS (MB) | RSS after (MB) |", "|---|---|---|---|"]
    for name in sorted(r["rss_peak_kb"]):
        lines.append(f"| {name} | {r['rss_before_kb'][name] / 1024:.0f} | {r['rss_peak_kb'][name] / 1024:.0f} | "
                     f"{r['rss_after_kb'][name] / 1024:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m bench.flood", description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=int, default=10_000, help="pod state messages per second")
    p.add_argument("--seconds", type=float, default=60.0, help="how long the flood lasts")
    p.add_argument("--pods", type=int, default=200, help="pods of the flooded CloneSet")
    p.add_argument("--core", action="store_true",
                   help="publish without waiting for JetStream's acks (a faster flood; the consumers may fall behind)")
    p.add_argument("--kube-qps", type=float, default=20.0, help="the executor's API write rate limit (--kube-qps)")
    p.add_argument("--kube-burst", type=int, default=10, help="the executor's API write burst (--kube-burst)")
    p.add_argument("--write-pods", type=int, default=100,
                   help="pods added after the flood: a burst of API writes against the QPS setting")
    p.add_argument("--json", default=None, help="write the figures to this file")
    args = p.parse_args(argv)
    result = asyncio.run(run(args))
    print(render(result, argv))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
