"""A native Deployment beside kruisebus, on a real control plane: `python -m bench.pipeline --only native`.

Why: the sim's own numbers compare kruisebus with itself. Here the same real kube-apiserver,
kube-controller-manager and kube-scheduler 1.20 (tests/realkube.py) run a Deployment rolled by the real
deployment controller, beside a CloneSet updated in place and a CloneSet with ReCreate, all on the same
simulated nodes (`python -m sim nodes`: same image pull delay, start time) and the same kind of change
(an image not yet on any node, so every new container pulls it after the change). Each kind has images
of its own, so no rollout finds another's image cached.

Measured per rollout, from the image patch: duration until every pod runs the new image and is Ready
(and the old ones are gone), API writes on kube-apiserver (`apiserver_request_total`, verbs POST, PUT,
PATCH, DELETE, node heartbeats and leases left out: the same for everyone), and how many of the pod
uids from before the change are still there afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import msgspec

from schemas.kube import Pod
from schemas.messages import CLONESETS, PODS, Resource
from services.kube import Kube
from services.stack import Stack
from tests import realkube

DEPLOYMENTS = Resource(group="apps", version="v1", plural="deployments")
POD_DECODER = msgspec.json.Decoder(Pod)
NS = "default"
SECTION_BEGIN = "<!-- native-bench:begin -->"
SECTION_END = "<!-- native-bench:end -->"
KINDS = ("deployment", "inplace", "recreate")
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")
NOT_COUNTED = ("leases", "nodes")  # heartbeats: the same for every kind


def log(msg: str) -> None:
    print(f"[native {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def api_writes(cp: realkube.ControlPlane) -> float:
    total = 0.0
    for verb in WRITE_VERBS:
        total += realkube.metric(cp, "apiserver_request_total", verb=verb)
        for res in NOT_COUNTED:
            total -= realkube.metric(cp, "apiserver_request_total", verb=verb, resource=res)
    return total


def intstr(v: str) -> int | str:
    """`25%` stays a string, `0` is an int (Kubernetes rejects a string without `%`)."""
    return int(v) if v.isdigit() else v


def status_writes(cp: realkube.ControlPlane) -> float:
    return realkube.metric(cp, "apiserver_request_total", verb="PATCH", resource="pods", subresource="status")


def body(kind: str, name: str, replicas: int, image: str, budget_: str, surge_: str
         ) -> tuple[Resource, dict[str, Any]]:
    budget, surge = intstr(budget_), intstr(surge_)
    template = {"metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "main", "image": image}]}}
    meta = {"name": name, "namespace": NS, "labels": {"app": name}}
    if kind == "deployment":
        return DEPLOYMENTS, {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template,
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxUnavailable": budget, "maxSurge": surge}}}}
    strategy = "InPlaceIfPossible" if kind == "inplace" else "ReCreate"
    return CLONESETS, {
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "metadata": meta,
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template,
                 "updateStrategy": {"type": strategy, "maxUnavailable": budget, "maxSurge": surge}}}


def settled(pods: list[Pod], replicas: int, image: str, total: int) -> bool:
    """Exactly `replicas` pods, all Ready on `image`, and nothing else left (terminating ones count)."""
    if total != replicas or len(pods) != replicas:
        return False
    for p in pods:
        cond = p.status.condition("Ready")
        if cond is None or cond.status != "True":
            return False
        if not p.status.container_statuses or any(c.image != image for c in p.status.container_statuses):
            return False
    return True


async def wait_settled(kube: Kube, name: str, replicas: int, image: str, timeout: float,
                       interval: float = 0.1) -> float:
    deadline = time.monotonic() + timeout
    while True:
        items, _ = await kube.list(PODS, NS, label_selector=f"app={name}")
        pods = [POD_DECODER.decode(raw) for raw in items]
        live = [p for p in pods if p.metadata.deletion_timestamp is None]
        if settled(live, replicas, image, len(pods)):
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: not settled on {image} after {timeout:.0f}s")
        await asyncio.sleep(interval)


async def one(kube: Kube, cp: realkube.ControlPlane, kind: str, run: int, args: argparse.Namespace
              ) -> dict[str, Any]:
    name = f"{kind}-{run}"
    old, new = f"bench/{name}:v1", f"bench/{name}:v2"
    resource, obj = body(kind, name, args.native_pods, old, args.budget, args.surge)
    await kube.create(resource, NS, obj)
    await wait_settled(kube, name, args.native_pods, old, 600)
    items, _ = await kube.list(PODS, NS, label_selector=f"app={name}")
    before = {POD_DECODER.decode(raw).metadata.uid for raw in items}
    writes0 = api_writes(cp)
    status0 = status_writes(cp)
    t0 = time.monotonic()
    await kube.patch(resource, NS, name, {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": new}]}}}}, "merge" if resource is CLONESETS else "strategic")
    t1 = await wait_settled(kube, name, args.native_pods, new, 900)
    writes = api_writes(cp) - writes0
    status = status_writes(cp) - status0
    items, _ = await kube.list(PODS, NS, label_selector=f"app={name}")
    kept = len(before & {POD_DECODER.decode(raw).metadata.uid for raw in items})
    await kube.delete(resource, NS, name)
    deadline = time.monotonic() + 120
    while (await kube.list(PODS, NS, label_selector=f"app={name}"))[0]:  # gone before the next one counts
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: pods not gone after the delete")
        await asyncio.sleep(0.2)
    res = {"kind": kind, "run": run, "duration_s": t1 - t0, "writes": writes, "status_writes": status,
           "kept": kept}
    log(f"{name}: {res['duration_s']:.1f} s, {writes:.0f} API writes ({status:.0f} pod status), "
        f"{kept}/{args.native_pods} pod uids kept")
    return res


async def scenario_native(args: argparse.Namespace) -> dict[str, Any]:
    why = realkube.unavailable()
    if why:
        raise SystemExit(f"native: {why}")
    with realkube.ControlPlane() as cp:
        nodes = realkube.SimNodes(cp, args.native_nodes, prefix="bench-node-",
                                  args=("--pull-delay", str(args.native_pull), "--start-delay",
                                        str(args.native_start), "--max-pods", "110", "--no-events"))
        nodes.start()
        stack = Stack(cluster=str(cp.kubeconfig), nodes=0, executors=args.executors,
                      env={"KRUISEBUS_LOG_LEVEL": "WARNING"})
        try:
            async with stack:
                kube = await Kube.connect(str(cp.kubeconfig))
                try:
                    kinds = [k for k in KINDS if k in args.native_kinds.split(",")]
                    runs = [await one(kube, cp, kind, run, args) for run in range(args.native_runs) for kind in kinds]
                finally:
                    await kube.close()
        finally:
            nodes.stop()
    out: dict[str, Any] = {"pods": args.native_pods, "nodes": args.native_nodes, "pull_s": args.native_pull,
                           "start_s": args.native_start, "budget": args.budget, "surge": args.surge, "runs": runs}
    return out


def render(results: dict[str, Any], argv: list[str]) -> str:
    cmd = " ".join([".venv/bin/python -m bench.pipeline", *argv])
    n, runs = results["pods"], results["runs"]
    label = {"deployment": "Deployment (kube-controller-manager, RollingUpdate)",
             "inplace": "kruisebus CloneSet, InPlaceIfPossible",
             "recreate": "kruisebus CloneSet, ReCreate"}
    lines = [SECTION_BEGIN, "", "## Beside a native Deployment (real control plane)", "",
             f"kube-apiserver, kube-controller-manager and kube-scheduler 1.20.2 with etcd "
             f"([real-cluster.md](real-cluster.md)), {results['nodes']} simulated nodes (`python -m sim nodes`, "
             f"{results['pull_s']:.0f} s per image pull, {results['start_s']:g} s container start), and kruisebus "
             "(watcher, planner, executors as processes) on the same API server. Each kind rolls "
             f"{n} pods from one image to another that no node has yet, with maxUnavailable {results['budget']} "
             f"and maxSurge {results.get('surge', '0')} (the same fields on the Deployment and the CloneSets). "
             "Duration: image "
             "patch until every pod runs the new image and is Ready and no old pod is left. API writes: "
             "`apiserver_request_total` POST/PUT/PATCH/DELETE during that time, node heartbeats and leases "
             "left out. Median of "
             f"{len(runs) // max(1, len({r['kind'] for r in runs}))} runs each.", "",
             f"Command: `{cmd}` (CPython {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
             f"{time.strftime('%Y-%m-%d')}).", "",
             "| rollout | duration | API writes | of which pod status | pod uids kept |", "|---|---|---|---|---|"]
    for kind in KINDS:
        mine = [r for r in runs if r["kind"] == kind]
        if not mine:
            continue
        d = statistics.median(r["duration_s"] for r in mine)
        w = statistics.median(r["writes"] for r in mine)
        k = statistics.median(r["kept"] for r in mine)
        st = statistics.median(r.get("status_writes", float("nan")) for r in mine)
        lines.append(f"| {label[kind]} | {d:.1f} s | {w:.0f} | {st:.0f} | {k:.0f} of {n} |")
    lines += ["", SECTION_END]
    return "\n".join(lines)


def save(results: dict[str, Any], argv: list[str], path: Path) -> None:
    path.write_text(json.dumps({"results": results, "argv": argv}, indent=1))
