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

It prints a table and, with ``--json``, writes the figures; docs/reliability.md quotes a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

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
    stack = Stack(nodes=4)
    await stack.start()
    kube = await Kube.connect(stack.kubeconfig)
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

        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(stop))
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
            if args.core:  # no task per message: the publisher's own cost was the limit
                for _ in range(min(per_tick, total - i)):
                    pod = pods[i % len(pods)]
                    ev = PodState(object=msgspec.structs.replace(
                        pod, metadata=msgspec.structs.replace(pod.metadata, resource_version=str(10_000_000 + i))))
                    await bus.nc.publish(bus.state_subject(ev), ENCODER.encode(ev),
                                         headers={"Nats-Msg-Id": state_msg_id(ev)})
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
        stop.set()
        await sampler
        peak = {name: max(peak_sampled[name], rss_kb(pid, "VmHWM")) for name, pid in procs.items()}
        after = {name: rss_kb(pid) for name, pid in procs.items()}
        await bus.close()
        stack.check_alive()
        return {"rate_target": args.rate, "seconds_target": args.seconds, "pods": args.pods, "published": sent,
                "failed": failed, "flood_s": flood_s, "rate": sent / flood_s, "catch_up_s": catch_up_s,
                "rss_before_kb": before, "rss_peak_kb": peak, "rss_after_kb": after}
    finally:
        await kube.close()
        await stack.cleanup()


def render(r: dict[str, Any], argv: list[str]) -> str:
    lines = [f"Command: `.venv/bin/python -m bench.flood {' '.join(argv)}` (CPython {platform.python_version()}, "
             f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')})", "",
             f"Published {r['published']:,} pod states ({r['failed']} failed) in {r['flood_s']:.1f} s: "
             f"{r['rate']:,.0f}/s (target {r['rate_target']:,}/s for {r['seconds_target']} s) over {r['pods']} pods; "
             f"a scale-up made after the flood was done {r['catch_up_s']:.1f} s later.", "",
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
    p.add_argument("--json", default=None, help="write the figures to this file")
    args = p.parse_args(argv)
    result = asyncio.run(run(args))
    print(render(result, argv))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
