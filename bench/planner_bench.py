"""CloneSet planner benchmark: decision time and memory per tracked pod (targets in docs/benchmarks.md).

Run: .venv/bin/python -m bench.planner_bench [--sizes 1000,10000,100000] [--repeat 15] [--write-docs]

Scenarios, each a single ``plan_cloneset`` call on one CloneSet (median of ``--repeat`` runs):

* ``steady``  - settled CloneSet, nothing to do (the common case: most passes are triggered by a pod
  status change that changes no decision). Warm = the same Pod objects as the previous pass (the
  planner service keeps its decoded pods; the planner memoises per-pod facts by identity).
* ``1 changed`` - the same, but one pod is a new object since the previous pass (a pod status update
  arrived: what triggers most passes); a different pod each run.
* ``cold``    - the same, first pass after start (no memo).
* ``rollout`` - template just changed, InPlaceIfPossible, maxUnavailable 1%: the pass that starts
  in-place updates of 1% of the pods (each a command with guarded JSON patches); also with one pod
  changed since the previous pass.

Memory: tracemalloc around decoding N pods from API-server JSON into the schema Structs plus one planner
pass (its per-pod memo), divided by N.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from schemas.cloneset import CloneSet
from schemas.kube import ControllerRevision, Pod
from services.planner.cloneset import calc
from services.planner.cloneset.plan import plan_cloneset
from services.planner.cloneset.revision import build_revision
from services.planner.cloneset.view import CloneSetView
from services.planner.kit.compact import compact_pod
from services.planner.kit.revision import short_hash

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
MARK_BEGIN = "<!-- planner-bench:begin -->"
MARK_END = "<!-- planner-bench:end -->"


def cloneset(n: int, image: str, generation: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "CloneSet",
        "metadata": {
            "name": "bench",
            "namespace": "default",
            "uid": "bench-uid",
            "generation": generation,
            "resourceVersion": "7",
        },
        "spec": {
            "replicas": n,
            "selector": {"matchLabels": {"app": "bench"}},
            "template": {
                "metadata": {"labels": {"app": "bench", "tier": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": image,
                            "ports": [{"containerPort": 80}],
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                        }
                    ]
                },
            },
            "updateStrategy": {"type": "InPlaceIfPossible", "maxUnavailable": "1%"},
        },
    }


def pod_json(i: int, revision: str, image: str) -> bytes:
    # distinct per pod, as in a real cluster (pods are created and become ready at different seconds)
    created = NOW - timedelta(hours=2) + timedelta(seconds=i % 3600)
    ts = (created + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created_ts = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"bench-{i:06d}",
            "namespace": "default",
            "uid": f"00000000-0000-0000-0000-{i:012d}",
            "resourceVersion": str(100000 + i),
            "creationTimestamp": created_ts,
            "labels": {
                "app": "bench",
                "tier": "web",
                "controller-revision-hash": revision,
                "pod-template-hash": short_hash(revision),
                "apps.kruise.io/cloneset-instance-id": f"{i:05d}"[-5:],
                "lifecycle.apps.kruise.io/state": "Normal",
            },
            "annotations": {"lifecycle.apps.kruise.io/timestamp": ts},
            "ownerReferences": [
                {
                    "apiVersion": "apps.kruise.io/v1alpha1",
                    "kind": "CloneSet",
                    "name": "bench",
                    "uid": "bench-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "nodeName": f"node-{i % 500}",
            "containers": [{"name": "main", "image": image}],
            "readinessGates": [{"conditionType": "InPlaceUpdateReady"}],
        },
        "status": {
            "phase": "Running",
            "podIP": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
            "hostIP": f"192.168.{i % 500 // 256}.{i % 256}",
            "startTime": ts,
            "conditions": [
                {"type": "InPlaceUpdateReady", "status": "True", "lastTransitionTime": ts},
                {"type": "Initialized", "status": "True", "lastTransitionTime": ts},
                {"type": "Ready", "status": "True", "lastTransitionTime": ts},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": ts},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts},
            ],
            "containerStatuses": [
                {
                    "name": "main",
                    "image": image,
                    "imageID": f"docker.io/library/{image}@sha256:abc",
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "containerID": f"containerd://{i:064d}",
                    "state": {"running": {"startedAt": ts}},
                }
            ],
        },
    }
    return msgspec.json.encode(pod)


def build(n: int, *, rollout: bool) -> CloneSetView:
    old_cs = msgspec.convert(cloneset(n, "nginx:1.25", 1), CloneSet)
    old_rev = build_revision(old_cs, 1, 0)
    rev_name = old_rev.metadata.name
    dec = msgspec.json.Decoder(Pod)
    pods = [dec.decode(pod_json(i, rev_name, "nginx:1.25")) for i in range(n)]
    revisions: list[ControllerRevision] = [old_rev]
    if rollout:
        cs = msgspec.convert(cloneset(n, "nginx:1.26", 2), CloneSet)
        revisions.append(build_revision(cs, 2, 0))
    else:
        cs = old_cs
    view = CloneSetView(cloneset=cs, pods=pods, revisions=revisions)
    # Settle the status as a previous pass would have written it, so "steady" writes nothing.
    first = plan_cloneset(view, now=NOW)
    status = msgspec.structs.replace(first.status)
    view.cloneset = msgspec.structs.replace(cs, status=status)
    return view


def timed(fn: Any, repeat: int, setup: Any = None) -> str:
    """ "median (best)" in ms: the best run shows the cost without noise from other processes.
    ``setup`` (untimed) runs before each run."""
    samples = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return f"{statistics.median(samples) * 1000:.1f} ms ({min(samples) * 1000:.1f})"


def one_pod_changer(view: CloneSetView) -> Any:
    """Replace one pod (a different one each call) by a fresh decode of itself, as the planner service
    does when a pod's status update arrives (untimed: decoding is the watcher's cost)."""
    state = {"i": 0}
    enc = msgspec.json.Encoder()
    dec = msgspec.json.Decoder(Pod)

    def change() -> None:
        i = state["i"] = (state["i"] + 7919) % len(view.pods)  # spread over the pods
        pods = list(view.pods)
        pods[i] = dec.decode(enc.encode(pods[i]))
        view.pods = pods

    return change


def measure_steady(n: int, repeat: int) -> tuple[str, str, str]:
    view = build(n, rollout=False)
    plan = plan_cloneset(view, now=NOW)
    assert not plan.commands, [c.verb for c in plan.commands]
    warm = timed(lambda: plan_cloneset(view, now=NOW), repeat)
    changed = timed(lambda: plan_cloneset(view, now=NOW), repeat, one_pod_changer(view))

    def cold_pass() -> None:
        calc._CACHE.clear()
        plan_cloneset(view, now=NOW)

    return warm, changed, timed(cold_pass, max(1, repeat // 2))


def measure_rollout(n: int, repeat: int) -> tuple[str, str, int]:
    view = build(n, rollout=True)
    cmds = len(plan_cloneset(view, now=NOW).commands)
    same = timed(lambda: plan_cloneset(view, now=NOW), repeat)
    changed = timed(lambda: plan_cloneset(view, now=NOW), repeat, one_pod_changer(view))
    return same, changed, cmds


def measure(n: int, repeat: int) -> dict[str, Any]:
    warm, changed, cold = measure_steady(n, repeat)
    gc.collect()
    rollout, rollout_changed, cmds = measure_rollout(n, repeat)
    gc.collect()
    calc._CACHE.clear()
    return {
        "n": n,
        "warm": warm,
        "changed": changed,
        "cold": cold,
        "rollout": rollout,
        "rollout_changed": rollout_changed,
        "rollout_cmds": cmds,
    }


def memory_per_pod(n: int, compact: bool) -> tuple[float, float]:
    """(bytes per pod for the decoded Pod structs, bytes per pod added by one planner pass's memo)."""
    calc._CACHE.clear()
    cs = msgspec.convert(cloneset(n, "nginx:1.25", 1), CloneSet)
    rev = build_revision(cs, 1, 0)
    blobs = [pod_json(i, rev.metadata.name, "nginx:1.25") for i in range(n)]
    dec = msgspec.json.Decoder(Pod)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    pods = [compact_pod(dec.decode(b)) for b in blobs] if compact else [dec.decode(b) for b in blobs]
    after_decode = tracemalloc.get_traced_memory()[0]
    view = CloneSetView(cloneset=cs, pods=pods, revisions=[rev])
    plan = plan_cloneset(view, now=NOW)
    del plan
    gc.collect()
    after_plan = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del pods, view
    calc._CACHE.clear()
    return (after_decode - base) / n, (after_plan - after_decode) / n


def render(
    results: list[dict[str, Any]],
    mem: tuple[float, float],
    mem_compact: tuple[float, float],
    mem_n: int,
    cmd: str,
) -> str:
    lines = [
        MARK_BEGIN,
        "Decision time of one `plan_cloneset` call for one CloneSet (target: <= 20 ms at 10,000",
        "pods, <= 2 KB per tracked pod). *steady*: settled CloneSet, nothing to do - the common pass, run on",
        "every pod status change; *warm* = the same Pod objects as the previous pass (the planner service",
        "keeps its decoded pods and the planner memoises per-pod facts by identity), *cold* = first pass",
        "after a restart; *1 pod changed*: one pod is a new object since the previous pass (a pod status",
        "update arrived - what triggers most passes). *rollout*: the template just changed",
        "(InPlaceIfPossible, maxUnavailable 1%), the pass that orders all candidates and issues the first",
        "in-place updates (as the previous pass, or with one pod changed since).",
        "",
        f"Command: `{cmd}` ({platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, median of repeated runs).",
        "",
        "Times are median (best) of the runs; the best run is the cost without interference from other",
        "processes on the machine.",
        "",
        "| pods | steady (warm) | steady, 1 pod changed | steady (cold start) "
        "| rollout (1% in place) | rollout, 1 pod changed |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['n']:,} | {r['warm']} | {r['changed']} | {r['cold']} "
            f"| {r['rollout']}, {r['rollout_cmds']} commands | {r['rollout_changed']} |"
        )
    pod_b, memo_b = mem
    cpod_b, cmemo_b = mem_compact
    lines += [
        "",
        f"Memory per tracked pod ({mem_n:,} pods, tracemalloc, planner memo included):",
        "",
        "| pod representation | view | planner memo | total |",
        "|---|---:|---:|---:|",
        f"| `Pod` as decoded from API JSON | {pod_b:,.0f} B | {memo_b:,.0f} B | {pod_b + memo_b:,.0f} B |",
        f"| `compact_pod(pod)` (what the planner reads, strings interned) | {cpod_b:,.0f} B | {cmemo_b:,.0f} B "
        f"| **{cpod_b + cmemo_b:,.0f} B** |",
        MARK_END,
    ]
    return "\n".join(lines)


def write_docs(block: str) -> None:
    path = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if MARK_BEGIN in text and MARK_END in text:
        head, rest = text.split(MARK_BEGIN, 1)
        _, tail = rest.split(MARK_END, 1)
        text = head + block + tail
    elif "## Planner" in text:
        text = text.replace("## Planner", "## Planner\n\n" + block, 1)
    else:
        text = text.rstrip() + "\n\n## Planner\n\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--memory-pods", type=int, default=10000)
    ap.add_argument(
        "--write-docs", action="store_true", help="update the Planner section of docs/benchmarks.md"
    )
    args = ap.parse_args()
    results = []
    for n in (int(x) for x in args.sizes.split(",")):
        r = measure(n, args.repeat)
        results.append(r)
        print(
            f"{n:>7} pods: steady warm {r['warm']}, 1 changed {r['changed']}, cold {r['cold']}, "
            f"rollout {r['rollout']} ({r['rollout_cmds']} commands), 1 changed {r['rollout_changed']}",
            flush=True,
        )
    mem = memory_per_pod(args.memory_pods, compact=False)
    memc = memory_per_pod(args.memory_pods, compact=True)
    print(f"memory per tracked pod: {mem[0]:.0f} B (Pod view) + {mem[1]:.0f} B (planner memo)")
    print(f"memory per tracked pod, compact_pod: {memc[0]:.0f} B (view) + {memc[1]:.0f} B (planner memo)")
    cmd = "python -m bench.planner_bench" + (" --write-docs" if args.write_docs else "")
    block = render(results, mem, memc, args.memory_pods, cmd)
    if args.write_docs:
        write_docs(block)
        print("docs/benchmarks.md updated")


if __name__ == "__main__":
    main()
