"""The Advanced DaemonSet planner at scale: one pass over a 5,000-node DaemonSet in the middle of a rollout.

Question answered: how long does one pure planner pass take (target <= 20 ms) and how much memory do the
Nodes and pods of the view take per node? The view is what the planner service holds: every Node (the
shared kind), the DaemonSet's pods (compacted as the service keeps them), its two revisions; half the
nodes already run the new revision, maxUnavailable 50.

    python -m bench.daemonset [--nodes 5000] [--passes 20]

Printed: the first pass (cold memo: a planner start), passes over the same view again, passes after one
pod was replaced by a new version (what the planner service sees during a rollout), passes after one
pod and one Node (a heartbeat) were replaced, and the pass that starts a rollout (the template's image
changed, its revision stored; five times).
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

import msgspec

from schemas.daemonset import DaemonSet
from schemas.kube import ControllerRevision, Node, Pod, PodTemplateSpec
from services.planner.daemonset import plan as ds_plan
from services.planner.daemonset.plan import plan_daemonset
from services.planner.kit.compact import compact_pod
from services.planner.kit.gates import DEFAULT_GATES
from services.planner.kit.revision import hash_revision, revision_bytes, template_patch_data
from services.planner.kit.timeutil import format_time

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def template(image: str) -> dict[str, object]:
    return {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "main", "image": image}]}}


def revision(ds: DaemonSet, image: str, number: int) -> ControllerRevision:
    data = template_patch_data(msgspec.convert(template(image), PodTemplateSpec))
    h = hash_revision(revision_bytes(data), None)
    return msgspec.convert({"metadata": {"name": f"agent-{h}", "namespace": "default", "uid": f"rev-{h}",
                                         "labels": {"app": "agent", "controller-revision-hash": h},
                                         "ownerReferences": [{"apiVersion": "apps.kruise.io/v1beta1", "kind": "DaemonSet",
                                                              "name": "agent", "uid": "ds-uid", "controller": True}]},
                            "revision": number, "data": data}, ControllerRevision)


def view(n: int) -> tuple[DaemonSet, list[Pod], list[Node], list[ControllerRevision]]:
    ds = msgspec.convert({"metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid", "generation": 2,
                                       "resourceVersion": "9"},
                          "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent:2"),
                                   "updateStrategy": {"type": "RollingUpdate",
                                                      "rollingUpdate": {"maxUnavailable": 50}}},
                          "status": {"desiredNumberScheduled": n}}, DaemonSet)
    old, new = revision(ds, "agent:1", 1), revision(ds, "agent:2", 2)
    nodes = [msgspec.convert({"metadata": {"name": f"node-{i:05d}", "labels": {"kubernetes.io/hostname": f"node-{i:05d}"}},
                              "status": {"conditions": [{"type": "Ready", "status": "True"}]}}, Node) for i in range(n)]
    ready = format_time(NOW - timedelta(minutes=5))
    pods = []
    for i, node in enumerate(nodes):
        rev = new if i % 2 else old
        name = node.metadata.name
        pods.append(compact_pod(msgspec.convert({
            "metadata": {"name": f"agent-{i:05d}", "namespace": "default", "uid": f"pod-{i}", "resourceVersion": "5",
                         "creationTimestamp": ready,
                         "labels": {"app": "agent", "controller-revision-hash": rev.metadata.labels["controller-revision-hash"]},
                         "ownerReferences": [{"apiVersion": "apps.kruise.io/v1beta1", "kind": "DaemonSet", "name": "agent",
                                              "uid": "ds-uid", "controller": True}]},
            "spec": {"nodeName": name, "containers": [{"name": "main", "image": "agent:2" if i % 2 else "agent:1"}],
                     "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                         {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [name]}]}]}}}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ready}]},
        }, Pod)))
    return ds, pods, nodes, [old, new]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.daemonset", description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=5000)
    p.add_argument("--passes", type=int, default=20)
    args = p.parse_args(argv)
    tracemalloc.start()
    ds, pods, nodes, revisions = view(args.nodes)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    times = []
    plan = None
    for k in range(args.passes):
        t = time.perf_counter()
        plan = plan_daemonset(ds, pods, nodes, revisions, now=NOW, gates=DEFAULT_GATES)
        times.append((time.perf_counter() - t) * 1000)
        if k == 0:  # what the planner keeps between passes: its memo, rebuilt from cold under tracemalloc
            ds_plan._POD_FACTS.clear()
            ds_plan._NODE_FITS.clear()
            plan = None
            tracemalloc.start()
            plan_daemonset(ds, pods, nodes, revisions, now=NOW, gates=DEFAULT_GATES)
            memo, _ = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    assert plan is not None
    # the service's case during a rollout: one pod replaced by a new version between passes
    changed = []
    for k in range(args.passes):
        i = (k * 7919) % len(pods)
        meta = msgspec.structs.replace(pods[i].metadata, resource_version=f"r{k}")
        pods[i] = msgspec.structs.replace(pods[i], metadata=meta)
        t = time.perf_counter()
        plan_daemonset(ds, pods, nodes, revisions, now=NOW, gates=DEFAULT_GATES)
        changed.append((time.perf_counter() - t) * 1000)
    # and one node replaced by a new version too (a heartbeat: its verdict is unchanged)
    beats = []
    for k in range(args.passes):
        i, j = (k * 7919) % len(pods), (k * 104729) % len(nodes)
        pods[i] = msgspec.structs.replace(pods[i], metadata=msgspec.structs.replace(pods[i].metadata,
                                                                                    resource_version=f"b{k}"))
        nodes[j] = msgspec.structs.replace(nodes[j], metadata=msgspec.structs.replace(nodes[j].metadata,
                                                                                      resource_version=f"h{k}"))
        t = time.perf_counter()
        plan_daemonset(ds, pods, nodes, revisions, now=NOW, gates=DEFAULT_GATES)
        beats.append((time.perf_counter() - t) * 1000)
    # a rollout starts: the template's image changes (placement unchanged), its revision exists
    starts = []
    for k in range(5):
        image = f"agent:{3 + k}"
        ds = msgspec.structs.replace(ds, spec=msgspec.structs.replace(
            ds.spec, template=msgspec.convert(template(image), PodTemplateSpec)))
        revisions = [*revisions, revision(ds, image, 3 + k)]
        t = time.perf_counter()
        started = plan_daemonset(ds, pods, nodes, revisions, now=NOW, gates=DEFAULT_GATES)
        starts.append((time.perf_counter() - t) * 1000)
        assert started.status.updated_number_scheduled == 0 and started.commands
    print(f"nodes {args.nodes}: first pass {times[0]:.1f} ms; same view again: median {statistics.median(times[1:]):.1f} ms, "
          f"max {max(times[1:]):.1f} ms; one pod changed: median {statistics.median(changed):.1f} ms, "
          f"max {max(changed):.1f} ms; and one node heartbeat: median {statistics.median(beats):.1f} ms, "
          f"max {max(beats):.1f} ms ({len(plan.commands)} commands, {len(plan.deleted)} deletes); "
          f"the pass after the template's image changed: median {statistics.median(starts):.1f} ms, "
          f"max {max(starts):.1f} ms; "
          f"view {held / args.nodes / 1024:.2f} KiB per node (Node + compact pod), "
          f"planner memo {memo / args.nodes / 1024:.2f} KiB per node")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
