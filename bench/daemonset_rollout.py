"""An Advanced DaemonSet rollout on 200 simulated nodes with image pre-download: `python -m bench.daemonset_rollout`.

Question answered: how long does an in-place rollout of a 200-node DaemonSet take when every node must pull
the new image (30 s) and restart its container (1 s), with `PreDownloadImageForDaemonSetUpdate` on and
`apps.kruise.io/image-predownload-parallelism` 1, 10 and 50, and how far is that from the best any
controller could do with the same pulls?

The stack is every kruisebus service as a process on the sim (`services.stack.Stack`, node agents for
the NodeImage pulls), the sim's kubelets with a fixed pull time and container start time. `--scale`
shrinks both (default 0.2: 6 s pulls, 0.2 s restarts) so that a run takes minutes; the table gives the
measured times and the same divided by the scale. The fixed costs of the engine (passes, writes, watch
round trips) are not scaled, so at a small scale they weigh more than they would at full scale.

Per row: a new DaemonSet (InPlaceIfPossible, maxUnavailable 10% = 20 nodes a batch, the row's
parallelism) settles on a base image, then its image changes to one no node has. Wall time: from the
image change until the status shows every node updated and available on the new generation.

Lower bound of a row (`lower_bound`): the rollout goes in batches of maxUnavailable nodes, each batch
starting when the one before is available; a node's update ends one restart after its image is there,
which is the earlier of its own kubelet's pull (started with its batch) and the job's pull (the job
pulling `parallelism` nodes at a time from the image change, in the best order for the rollout: the
nodes the rollout reaches last first, so that its pulls add to the batch's instead of repeating them).
The order the job really takes (the pods' list order) and the rollout's (node names descending) are not
arranged to be that order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import time
import urllib.request
from typing import Any

import msgspec

from schemas.daemonset import DaemonSet
from schemas.messages import DAEMONSETS, NODE_IMAGES
from services.kube import Kube, KubeNotFound
from services.observe import poll
from services.stack import Stack

NS = "default"
GATES = "PreDownloadImageForDaemonSetUpdate=true"


def log(msg: str) -> None:
    print(f"[ds-rollout {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def lower_bound(nodes: int, batch: int, parallelism: int, pull: float, restart: float) -> float:
    """The best rollout time with these pulls (see the module doc)."""
    t = 0.0
    for start in range(0, nodes, batch):
        ready = 0.0
        for i in range(start, min(start + batch, nodes)):
            # the job's best order is the rollout's reversed: it pulls where the rollout gets last
            by_job = ((nodes - 1 - i) // parallelism + 1) * pull if parallelism > 0 else math.inf
            ready = max(ready, max(t, min(t + pull, by_job)))
        t = ready + restart
    return t


def body(name: str, image: str, parallelism: int, max_unavailable: str) -> dict[str, Any]:
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": NS,
                         "annotations": {"apps.kruise.io/image-predownload-parallelism": str(parallelism)}},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {
                         "rollingUpdateType": "InPlaceIfPossible", "maxUnavailable": max_unavailable}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 1,
                                           "containers": [{"name": "main", "image": image}]}}}}


async def get_ds(kube: Kube, name: str) -> DaemonSet:
    return msgspec.json.decode(await kube.get(DAEMONSETS, NS, name), type=DaemonSet)


async def settled(kube: Kube, name: str, nodes: int, timeout: float) -> DaemonSet:
    def done(ds: DaemonSet) -> bool:
        s = ds.status
        return (s.observed_generation == ds.metadata.generation and s.desired_number_scheduled == nodes
                and s.number_available == nodes and s.updated_number_scheduled == nodes)

    return await poll(lambda: get_ds(kube, name), done, timeout=timeout, interval=0.25, what=f"{name} settled")


def kubelets(control: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{control}/sim/nodes", timeout=30) as r:
        out: list[dict[str, Any]] = json.loads(r.read())
    return out


async def row(stack: Stack, kube: Kube, args: argparse.Namespace, parallelism: int, pull: float,
              restart: float) -> dict[str, Any]:
    name = f"agent-p{parallelism}"
    await kube.create(DAEMONSETS, NS, body(name, "bench/agent:base", parallelism, args.max_unavailable))
    await settled(kube, name, args.nodes, timeout=600)
    t0 = time.monotonic()
    await kube.patch(DAEMONSETS, NS, name, {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": f"bench/agent:p{parallelism}"}]}}}}, "merge")
    await settled(kube, name, args.nodes, timeout=args.nodes * (pull + restart) * 2 + 120)
    wall = time.monotonic() - t0
    batch = math.ceil(args.nodes * int(args.max_unavailable.rstrip("%")) / 100)
    bound = lower_bound(args.nodes, batch, parallelism, pull, restart)
    image = f"bench/agent:p{parallelism}"
    record = await asyncio.to_thread(kubelets, stack.sim_url)
    waits = sum(1 for k in record for w in k["pullWaits"] if w["image"] == image)
    pulls = [(p["start"], p["end"], k["name"]) for k in record for p in k["pullLog"] if p["image"] == image]
    log(f"parallelism {parallelism}: {wall:.1f} s (lower bound {bound:.1f} s), {len(pulls)} pulls, "
        f"{waits} container starts waited for one")
    if args.verbose:
        first = min(s for s, _, _ in pulls)
        for s_, e, n in sorted(pulls):
            log(f"  {n}: {s_ - first:.1f} .. {e - first:.1f}")
    await kube.delete(DAEMONSETS, NS, name)
    async def gone() -> bool:
        try:
            await kube.get(DAEMONSETS, NS, name)
        except KubeNotFound:
            return True
        return False
    await poll(gone, bool, timeout=120, what=f"{name} deleted")
    return {"parallelism": parallelism, "wall_s": wall, "bound_s": bound, "batch": batch, "waits": waits}


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    pull, restart = args.pull * args.scale, args.restart * args.scale
    stack = Stack(nodes=args.nodes, node_agents=True, env={"KRUISEBUS_FEATURE_GATES": GATES},
                  service_args={"planner": ("--nodeimage-creation-delay", "0")},
                  sim_args=("--pull-delay", str(pull), "--start-delay", str(restart), "--no-events"))
    async with stack:
        kube = await Kube.connect(stack.kubeconfig)
        try:
            async def node_images() -> int:
                items, _ = await kube.list(NODE_IMAGES, None)
                return len(items)
            await poll(node_images, lambda n: n == args.nodes, timeout=120, what="NodeImages")
            return [await row(stack, kube, args, p, pull, restart) for p in args.parallelism]
        finally:
            await kube.close()


def render(args: argparse.Namespace, rows: list[dict[str, Any]]) -> str:
    s = args.scale
    out = [f"{args.nodes} nodes, pulls {args.pull * s:g} s, restarts {args.restart * s:g} s (scale {s:g} of "
           f"{args.pull:g} s / {args.restart:g} s), batches of {rows[0]['batch'] if rows else '?'} nodes",
           "", "| parallelism | wall time | lower bound | wall / bound | wall time / scale | bound / scale | starts that waited for a pull |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['parallelism']} | {r['wall_s']:.1f} s | {r['bound_s']:.1f} s | "
                   f"{r['wall_s'] / r['bound_s']:.2f} | {r['wall_s'] / s:.0f} s | {r['bound_s'] / s:.0f} s | {r['waits']} |")
    out.append(f"\nPython {platform.python_version()}, {platform.machine()}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.daemonset_rollout", description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=200)
    p.add_argument("--pull", type=float, default=30.0, help="seconds per image pull (before --scale)")
    p.add_argument("--restart", type=float, default=1.0, help="seconds per container start (before --scale)")
    p.add_argument("--scale", type=float, default=0.2, help="factor on --pull and --restart (sim time)")
    p.add_argument("--max-unavailable", default="10%")
    p.add_argument("--parallelism", type=lambda v: [int(x) for x in v.split(",")], default=[1, 10, 50])
    p.add_argument("--verbose", action="store_true", help="print every pull of the new images")
    args = p.parse_args(argv)
    rows = asyncio.run(run(args))
    print(render(args, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
