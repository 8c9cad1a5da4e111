"""PodProbeMarker at scale on the sim: `python -m bench.probemarker --pods 1000 --nodes 10 --period 2`.

Why: a marker's cost is per probe and per node, and its promise is "no API write while nothing
changes". The whole stack runs as processes (NATS, the sim with its pod network, webhook, watcher,
planner, executor, and the probers: one `kruisebus prober` per node, or with `--probers N` the nodes
split over N multi-node probers, `--node A --node B ...`, so 100 sim nodes fit one machine); one
CloneSet of `--pods` pods (or `--groups K` CloneSets sharing them, each with its own marker, so the
planner's pass per marker covers a K-th of the pods) carries a marker with two probes (exec `Idle` with label/annotation markers, tcpSocket `Port` with a condition), both
every `--period` seconds with thresholds 1. Measured:

* API writes while every result is unchanged: the marker writes (`probe` rollout events: each one pod
  status patch plus its Event) during `--window` seconds once every pod is marked, and the pods whose
  resourceVersion moved over the window (any write to them, by anyone) (target 0);
* prober CPU: user+system seconds of all prober processes over that window, per 1,000 probes/s (and
  every other process's, and the probers' resident memory);
* from a probe's state change to the pod's label being visible through the API: `--flips` pods get a
  failing exec outcome at once, and each pod's label change is timed by a watch of the API,
  from the flip (includes waiting for the next probe, up to one period) and from the prober's
  published result (`ProbeResult.time`: the pipeline alone, prober -> KB_PROBE -> planner -> KB_CMD ->
  executor -> API server; target <= 1 s). The watch has the label selector `gameserver-idle=false`
  (only the flipped pods match), so each label is timed when the API server sends its change.
  That pipeline is split into stages (`STAGES`) by the stamps the bus and the rollout log carry: p50 /
  p99 / max of each, and the stages of the five slowest pods.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from schemas.kube import Pod
from schemas.messages import CLONESETS, EVENT_DECODER, PODPROBEMARKERS, PODS, PROBE_DECODER, RolloutEvent
from schemas.timefmt import parse_time
from services import gcpolicy
from services.kube import Kube, KubeServerError
from services.observe import poll
from services.stack import Stack

NS = "default"
IDLE = "gameserver-idle"
POD_DECODER = msgspec.json.Decoder(Pod)


def cloneset(replicas: int, group: int = 0) -> dict[str, Any]:
    labels = {"app": "game", "group": f"g{group}"}
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
            "metadata": {"name": f"game-{group}", "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "updateStrategy": {"type": "InPlaceIfPossible"},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "main", "image": "nginx:1.20", "ports": [{"name": "game", "containerPort": 8080}]}]}}}}


def marker(period: int, group: int = 0) -> dict[str, Any]:
    timing = {"initialDelaySeconds": 1, "periodSeconds": period, "timeoutSeconds": 1, "successThreshold": 1,
              "failureThreshold": 1}
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "PodProbeMarker",
            "metadata": {"name": f"game-{group}", "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": "game", "group": f"g{group}"}}, "probes": [
                {"name": "Idle", "containerName": "main", "probe": {"exec": {"command": ["/idle.sh"]}, **timing},
                 "markerPolicy": [
                     {"state": "Succeeded", "labels": {IDLE: "true"},
                      "annotations": {"controller.kubernetes.io/pod-deletion-cost": "-10"}},
                     {"state": "Failed", "labels": {IDLE: "false"},
                      "annotations": {"controller.kubernetes.io/pod-deletion-cost": "10"}}]},
                {"name": "Port", "containerName": "main", "probe": {"tcpSocket": {"port": "game"}, **timing},
                 "podConditionType": "game.kruise.io/port"}]}}


FLIPPED = f"app=game,{IDLE}=false"
"""The pods whose exec probe was flipped to failing, once their marker shows it."""


async def watch_flipped(kube: Kube, version: str, names: set[str], seen: dict[str, float],
                        seen_at: dict[str, datetime], flipped: Callable[[], float]) -> None:
    """Until every pod of `names` was seen with the Failed label: the moment each first was (monotonic,
    since `flipped()`, and UTC)."""
    while len(seen) < len(names):
        try:
            async for ev in kube.watch(PODS, version, namespace=NS, label_selector=FLIPPED, timeout_seconds=150):
                pod = POD_DECODER.decode(ev.object)
                version = pod.metadata.resource_version or version
                name = pod.metadata.name
                if ev.type in ("ADDED", "MODIFIED") and name in names and name not in seen \
                        and pod.metadata.labels.get(IDLE) == "false":
                    seen[name] = time.monotonic() - flipped()
                    seen_at[name] = datetime.now(UTC)
                    if len(seen) == len(names):
                        return
        except KubeServerError as e:  # the stream broke: watch on from the last version seen
            print(f"watch: {e}; watching again", file=sys.stderr)


async def pods(kube: Kube) -> list[Pod]:
    items, _ = await kube.list(PODS, NS, label_selector="app=game")
    return [p for p in (POD_DECODER.decode(i) for i in items) if not p.metadata.deletion_timestamp]


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


STAGES = ("prober", "planner", "executor", "seen")
"""The pipeline's stages, each from the previous stamp: the prober's published result (`ProbeResult.time`)
-> prober: the result stored on KB_PROBE (its JetStream timestamp) -> planner: the marker's command stored
on KB_CMD (the `queued` of its `done` event) -> executor: the pod patched (the `done` event's `time`)
-> seen: the label seen on the benchmark's watch of the label selector."""


def _quantiles(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"p50": round(statistics.median(xs), 3), "p99": round(xs[min(len(xs) - 1, int(0.99 * len(xs)))], 3),
            "max": round(xs[-1], 3)}


def stages(stamps: dict[str, list[datetime | None]]) -> dict[str, Any]:
    """Per stage p50 / p99 / max over the flipped pods whose five stamps are all known, and the slowest
    pods' stages (where the tail is)."""
    rows: dict[str, list[float]] = {}
    for pod, ts in stamps.items():
        known = [t for t in ts if t is not None]
        if len(known) == len(ts):
            rows[pod] = [(b - a).total_seconds() for a, b in itertools.pairwise(known)]
    if not rows:
        return {"stages_pods": 0}
    slowest = sorted(rows.items(), key=lambda kv: -sum(kv[1]))[:5]
    return {
        "stages_pods": len(rows),
        "stages_s": {name: _quantiles([r[i] for r in rows.values()]) for i, name in enumerate(STAGES)},
        "stages_slowest_s": {pod: dict(zip(STAGES, (round(x, 3) for x in r), strict=True)) for pod, r in slowest},
    }


async def api_server(workdir: Path) -> tuple[asyncio.subprocess.Process, str]:
    """`--split`: the embedded API server alone (no nodes; its scheduler binds to the nodes of `sim
    nodes`), as its own process; (the process, its kubeconfig)."""
    kubeconfig = workdir / "api-kubeconfig"
    with (workdir / "api.log").open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sim", "--nodes", "0", "--port", "0", "--kubeconfig", str(kubeconfig),
            "--no-events", stdout=asyncio.subprocess.PIPE, stderr=log, stdin=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    await asyncio.wait_for(proc.stdout.readline(), 30)
    return proc, str(kubeconfig)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    api: asyncio.subprocess.Process | None = None
    cluster = None
    if args.split:
        workdir = Path(tempfile.mkdtemp(prefix="kruisebus-bench-"))
        api, cluster = await api_server(workdir)
    stack = Stack(nodes=args.nodes, probers=True, prober_processes=args.probers, cluster=cluster,
                  sim_args=("--no-events", "--start-delay", "0.05"))
    await stack.start()
    kube = await Kube.connect(stack.kubeconfig)
    bus = await stack.connect(name="bench-probemarker")
    try:
        t0 = time.monotonic()
        sizes = [args.pods // args.groups + (1 if g < args.pods % args.groups else 0) for g in range(args.groups)]
        for g, size in enumerate(sizes):
            await kube.create(CLONESETS, NS, cloneset(size, g))
        await poll(lambda: pods(kube), lambda ps: len(ps) == args.pods and all(
            p.status.container_statuses and p.status.container_statuses[0].started for p in ps),
            timeout=1800, interval=2.0, what="every pod running")
        created = time.monotonic() - t0
        for g in range(args.groups):
            await kube.create(PODPROBEMARKERS, NS, marker(args.period, g))
        t1 = time.monotonic()
        await poll(lambda: pods(kube), lambda ps: all(p.metadata.labels.get(IDLE) == "true"
                                                      and p.status.condition("game.kruise.io/port") for p in ps),
                   timeout=1800, interval=2.0, what="every pod marked")
        marked = time.monotonic() - t1
        await asyncio.sleep(args.period * 2)  # let the last writes settle
        procs = {n: p.pid for n, p in stack.procs.items()}
        if stack.sim is not None:
            procs["sim nodes" if api is not None else "sim"] = stack.sim.pid
        if api is not None:
            procs["sim api"] = api.pid
        probers = [n for n in procs if n.startswith("prober-")]
        versions0 = {p.metadata.uid: p.metadata.resource_version for p in await pods(kube)}
        since = datetime.now(UTC)
        cpus0 = {n: cpu_seconds(pid) for n, pid in procs.items()}
        w0 = time.monotonic()
        await asyncio.sleep(args.window)
        window = time.monotonic() - w0
        cpus = {n: cpu_seconds(pid) - cpus0[n] for n, pid in procs.items()}
        cpu = sum(cpus[n] for n in probers)
        rss = [rss_mb(procs[n]) for n in probers]
        writes = [e for e in await bus.read_since(bus.subjects.events_of_type("probe"), EVENT_DECODER, since)]
        versions1 = {p.metadata.uid: p.metadata.resource_version for p in await pods(kube)}
        touched = sum(1 for uid, v in versions1.items() if versions0.get(uid) != v)
        probes_per_s = 2 * args.pods / args.period
        # state change -> label visible
        victims = sorted(await pods(kube), key=lambda p: p.metadata.name)[: args.flips]
        names = {p.metadata.name for p in victims}
        seen: dict[str, float] = {}
        seen_at: dict[str, datetime] = {}
        flipped = 0.0
        flipped_at = datetime.now(UTC)
        # A watch on the label selector, as `kubectl get pods -l ... -w` would show the labels: the API
        # server sends each change as it is made (no polling interval in the figures, and no list of
        # every pod ten times a second loading the API server the writes go to).
        # (from the resourceVersion before the flip: no change is missed while the watch is opened)
        _, version = await kube.list(PODS, NS, label_selector=FLIPPED)
        watch = asyncio.create_task(watch_flipped(kube, version, names, seen, seen_at, lambda: flipped))
        try:
            async with aiohttp.ClientSession() as http:
                flipped = time.monotonic()
                flipped_at = datetime.now(UTC)
                await asyncio.gather(*(http.post(f"{stack.sim_url}/sim/pods/{NS}/{n}/exec-outcomes",
                                                 json={"*": {"exitCode": 1, "stderr": "busy"}}) for n in names))
            await asyncio.wait_for(watch, 120)
        except TimeoutError:
            pass
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        lat = sorted(seen.values())
        # the pipeline alone: from the prober's published result (its `time`) to the label seen
        results = await bus.last_per_subject_stored(bus.subjects.probe_all(), PROBE_DECODER)
        flips = {r.pod: (r, stored) for r, stored in results.values()
                 if r.pod in seen_at and r.probe.endswith("#Idle") and r.state == "Failed"}
        published = {n: parse_time(r.time) for n, (r, _) in flips.items()}
        pipe = sorted((seen_at[n] - t).total_seconds() for n, t in published.items() if t is not None)
        done: dict[str, RolloutEvent] = {}  # each flipped pod's first marker write after the flip
        for e in await bus.read_since(bus.subjects.events_of_type("probe"), EVENT_DECODER, flipped_at):
            if e.pod in flips:
                done.setdefault(e.pod, e)
        split = stages({n: [parse_time(r.time), stored, parse_time(done[n].queued), parse_time(done[n].time),
                            seen_at[n]] for n, (r, stored) in flips.items() if n in done})
        return {
            "pods": args.pods, "groups": args.groups, "nodes": args.nodes, "prober_processes": len(probers), "probes": 2 * args.pods,
            "period_s": args.period,
            "create_s": round(created, 1), "all_marked_s": round(marked, 1),
            "window_s": round(window, 1), "marker_writes_while_unchanged": len(writes),
            "pods_written_while_unchanged": touched,
            "probes_per_s": probes_per_s, "prober_cpu_s_per_s": round(cpu / window, 3),
            "prober_cpu_s_per_1000_probes_per_s": round(cpu / window / (probes_per_s / 1000), 3),
            "prober_rss_mb_max": round(max(rss), 1) if rss else None,
            "cpu_s_per_s": {n: round(c / window, 3) for n, c in sorted(cpus.items()) if not n.startswith("prober-")},
            "flips": len(names), "flips_seen": len(lat),
            "change_to_label_p50_s": round(statistics.median(lat), 2) if lat else None,
            "change_to_label_p99_s": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 2) if lat else None,
            "change_to_label_max_s": round(lat[-1], 2) if lat else None,
            "result_to_label_p50_s": round(statistics.median(pipe), 3) if pipe else None,
            "result_to_label_p99_s": round(pipe[min(len(pipe) - 1, int(0.99 * len(pipe)))], 3) if pipe else None,
            "result_to_label_s": [round(x, 3) for x in pipe],
            **split,
            "cpus": os.cpu_count(), "loadavg": open("/proc/loadavg").read().split()[:3],
        }
    finally:
        await bus.close()
        await kube.close()
        await stack.cleanup()
        if api is not None:
            api.terminate()
            await api.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.probemarker", description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=200)
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--period", type=int, default=2)
    p.add_argument("--window", type=float, default=20.0, help="seconds of unchanged results measured")
    p.add_argument("--flips", type=int, default=20, help="pods whose exec result is flipped for the latency")
    p.add_argument("--groups", type=int, default=1,
                   help="split the pods over this many CloneSets, each with its own marker (default one)")
    p.add_argument("--probers", type=int, default=0,
                   help="prober processes serving the nodes between them (0: one per node)")
    p.add_argument("--split", action="store_true",
                   help="the API server and the simulated nodes (kubelets, exec, pod network) as two processes "
                        "(`python -m sim --nodes 0` and `python -m sim nodes`), so probes do not queue API requests")
    args = p.parse_args(argv)
    # the measuring process lists every pod while the pods are marked: its own full collections would
    # otherwise pause the watch that timestamps the labels (the services' policy, for the same reason)
    gcpolicy.install()
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
