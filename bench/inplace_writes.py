"""The API writes of one in-place update, counted where the server sees them: `python -m bench.inplace_writes`.

Why: at 1,000 pods an in-place rollout on kube-apiserver is bound by its writes per update, not by
the pulls (docs/benchmarks.md, image pre-download). Which write is whose, and which one Kruise needs,
is only clear from the server's side: this runs the embedded API server in-process with its request
log on (`ApiServer.request_log`), `python -m sim nodes` as the kubelets (their writes arrive over HTTP
with a kubelet user agent) and kruisebus's webhook, watcher, planner and executor as processes; it
rolls a CloneSet (InPlaceIfPossible, the image already on every node, as after a pre-download) and
prints every write between the image patch and the moment the API server has seen no write for
`--quiet` seconds, grouped by who wrote it, verb, resource and subresource, and per pod.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import native
from schemas.messages import CLONESETS, PODS
from services.kube import Kube
from services.observe import poll
from services.stack import Stack
from sim.cluster import SimCluster
from sim.server import RequestRecord

WRITES = ("create", "update", "patch", "delete", "deletecollection")
# the nodes' heartbeats go on whatever happens, and are left out as in bench/native.py
HEARTBEATS = ("leases", "nodes")
OLD, NEW = "bench/writes:v1", "bench/writes:v2"


def writer(r: RequestRecord) -> str:
    return "kubelet (sim)" if r.user_agent.startswith("kubelet/") else "kruisebus"


def breakdown(records: list[RequestRecord], pods: int) -> dict[str, Any]:
    """Writes by (writer, verb, resource[/subresource]) and per pod."""
    rows: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for r in records:
        what = f"{r.resource}/{r.subresource}" if r.subresource else r.resource
        rows[(writer(r), r.verb, what)] += 1
    total = sum(rows.values())
    return {"pods": pods, "total": total, "per_pod": total / pods,
            "rows": [{"writer": w, "verb": v, "resource": res, "count": n, "per_pod": n / pods}
                     for (w, v, res), n in sorted(rows.items(), key=lambda kv: (kv[0][0], -kv[1]))]}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kruisebus-writes-") as tmp:
        async with SimCluster(nodes=0, tmpdir=tmp) as cluster:
            log: collections.deque[RequestRecord] = collections.deque()
            cluster.api.request_log = log
            stack = Stack(cluster=str(cluster.kubeconfig_path), nodes=args.nodes, workdir=Path(tmp) / "stack",
                          sim_args=("--start-delay", str(args.restart), "--no-events", "--control-port", "0"),
                          env={"KRUISEBUS_LOG_LEVEL": "WARNING", "KRUISEBUS_KUBE_QPS": "0"})
            async with stack:
                kube = await Kube.connect(str(cluster.kubeconfig_path))
                try:
                    resource, obj = native.body("inplace", "writes", args.pods, OLD, args.budget, "0")
                    await kube.create(resource, native.NS, obj)
                    await native.wait_settled(kube, "writes", args.pods, OLD, 120)
                    # the new image on every node first: the update then restarts without a pull, as
                    # after a pre-download (a pull adds no write of its own on this path)
                    for k in await asyncio.to_thread(_kubelets, stack.sim_url):
                        await asyncio.to_thread(_pull, stack.sim_url, k, NEW)
                    await _quiet(log, args.quiet)
                    start = len(log)
                    await kube.patch(CLONESETS, native.NS, "writes", {"spec": {"template": {"spec": {
                        "containers": [{"name": "main", "image": NEW}]}}}}, "merge")
                    await native.wait_settled(kube, "writes", args.pods, NEW, args.timeout)
                    await _quiet(log, args.quiet)
                    records = [r for r in list(log)[start:] if r.verb in WRITES and r.resource not in HEARTBEATS]
                    # the benchmark's own image patch is no write of the rollout
                    records = [r for r in records if not (r.resource == "clonesets" and not r.subresource
                                                          and r.verb == "patch" and writer(r) == "kruisebus"
                                                          and r is records[0])]
                    out = breakdown(records, args.pods)
                    out["sequence"] = _one_pod(records)
                    out["args"] = vars(args)
                    return out
                except TimeoutError:
                    items, _ = await kube.list(PODS, native.NS)
                    for raw in items[:3]:
                        pod = json.loads(bytes(raw))
                        print(json.dumps({"labels": pod["metadata"].get("labels"),
                                          "conditions": pod["status"].get("conditions")}), file=sys.stderr)
                    for name in ("planner", "executor", "sim"):
                        print(f"--- {name}:\n{stack.log_tail(name, 15)}", file=sys.stderr)
                    raise
                finally:
                    await kube.close()


def _one_pod(records: list[RequestRecord]) -> list[str]:
    """The writes to the first updated pod (and its Events are not named: Events carry their own name)."""
    pod = next((r.name for r in records if r.resource == "pods" and r.name), "")
    return [f"{writer(r)} {r.verb} pods{'/' + r.subresource if r.subresource else ''}"
            for r in records if r.resource == "pods" and r.name == pod]


def _kubelets(control: str) -> list[str]:
    import urllib.request

    with urllib.request.urlopen(f"{control}/sim/nodes", timeout=30) as r:
        return [k["name"] for k in json.loads(r.read())]


def _pull(control: str, node: str, image: str) -> None:
    import urllib.request

    req = urllib.request.Request(f"{control}/sim/nodes/{node}/images", data=json.dumps({"image": image}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()


async def _quiet(log: collections.deque[RequestRecord], seconds: float) -> None:
    """Until the server has seen no write for `seconds` (trailing status writes included)."""
    async def idle() -> float:
        return time.monotonic() - next((r.time for r in reversed(log) if r.verb in WRITES), 0.0)

    await poll(idle, lambda s: s >= seconds, timeout=120, interval=0.2, what=f"{seconds} s without an API write")


def render(res: dict[str, Any]) -> str:
    lines = [f"{res['pods']} pods, {res['total']} writes, {res['per_pod']:.2f} per in-place update", "",
             "| writer | verb | resource | writes | per update |", "|---|---|---|---:|---:|"]
    lines += [f"| {r['writer']} | {r['verb']} | {r['resource']} | {r['count']} | {r['per_pod']:.2f} |"
              for r in res["rows"]]
    lines += ["", "One pod's writes, in order: " + "; ".join(res["sequence"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.inplace_writes", description=__doc__.split("\n\n")[0])
    p.add_argument("--pods", type=int, default=10)
    p.add_argument("--nodes", type=int, default=2)
    p.add_argument("--budget", default="20%", help="maxUnavailable")
    p.add_argument("--restart", type=float, default=1.0, help="container start seconds (the sim nodes')")
    p.add_argument("--quiet", type=float, default=3.0, help="seconds without a write that end the count")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds the rollout may take")
    p.add_argument("--json", action="store_true", help="print the raw result")
    args = p.parse_args(argv)
    res = asyncio.run(run(args))
    print(json.dumps(res, indent=1) if args.json else render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
