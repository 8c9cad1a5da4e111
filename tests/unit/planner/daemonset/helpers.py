"""An Advanced DaemonSet on the in-memory cluster of the planner tests (`simkube`): nodes, a kubelet that
binds each pod to the node its `matchFields metadata.name` term names, and a pass-by-pass driver."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from schemas import jsonmerge
from schemas.daemonset import DaemonSet
from schemas.imagepulljob import ImagePullJob
from schemas.kube import ControllerRevision, Node, Pod
from schemas.placement import target_node
from services.planner.daemonset.backoff import BackoffEntry
from services.planner.daemonset.plan import DsPlan, plan_daemonset
from services.planner.kit.gates import DEFAULT_GATES, FeatureGates
from services.planner.kit.timeutil import format_time
from tests.unit.planner.simkube import Cluster, json_patch

NOW = datetime(2026, 6, 1, 10, 0, 0, tzinfo=UTC)
UID = "ds-uid"
IMAGE = "nginx:1.0"


def ds_dict(*, strategy: dict[str, Any] | None = None, image: str = IMAGE, pod_spec: dict[str, Any] | None = None,
            annotations: dict[str, str] | None = None, min_ready: int = 0, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "d"}},
        "template": {"metadata": {"labels": {"app": "d"}},
                     "spec": {"containers": [{"name": "c", "image": image}], **(pod_spec or {})}},
        "updateStrategy": strategy if strategy is not None else {},
        "minReadySeconds": min_ready,
        **spec,
    }
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "DaemonSet",
            "metadata": {"name": "ds", "namespace": "default", "uid": UID, "resourceVersion": "1", "generation": 1,
                         "annotations": annotations or {}},
            "spec": body, "status": {}}


def ds(**kw: Any) -> DaemonSet:
    return msgspec.convert(ds_dict(**kw), DaemonSet)


def node_dict(name: str, labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or []}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def node(name: str, **kw: Any) -> Node:
    return msgspec.convert(node_dict(name, **kw), Node)


def rolling(**ru: Any) -> dict[str, Any]:
    return {"type": "RollingUpdate", "rollingUpdate": ru}


class DsCluster(Cluster):
    """The simkube cluster holding one DaemonSet (in `cs`) and Nodes."""

    def __init__(self, ds: dict[str, Any], nodes: list[str] | list[dict[str, Any]], *, ready: bool = True) -> None:
        super().__init__(ds)
        self.nodes: dict[str, dict[str, Any]] = {}
        for n in nodes:
            d = node_dict(n) if isinstance(n, str) else n
            self.nodes[d["metadata"]["name"]] = d
        self.ready = ready  # the kubelet makes started pods Ready (else only those marked Ready are)
        self.marked: set[str] = set()
        self.created_on: list[tuple[str, str]] = []
        self.deleted_from: list[str] = []  # nodes of the pods the last pass deleted
        self.updated_on: list[str] = []  # nodes of the pods the last pass updated in place
        self.backoff: dict[str, BackoffEntry] = {}  # the failed-pod backoff, handed from pass to pass

    def daemonset(self) -> DaemonSet:
        return msgspec.convert(self.cs, DaemonSet)

    def pod_views(self) -> list[Pod]:
        return [msgspec.convert(p, Pod) for p in sorted(self.pods.values(), key=lambda p: p["metadata"]["name"])]

    def plan(self, now: datetime, gates: FeatureGates = DEFAULT_GATES, create_limit: int | None = None) -> DsPlan:
        return plan_daemonset(self.daemonset(), self.pod_views(),
                              [msgspec.convert(n, Node) for _, n in sorted(self.nodes.items())],
                              [msgspec.convert(r, ControllerRevision) for r in self.revisions.values()],
                              now=now, gates=gates, jobs=[msgspec.convert(j, ImagePullJob) for j in self.jobs.values()],
                              backoff=self.backoff, create_limit=create_limit)

    def _op(self, op: Any, now: datetime) -> None:
        if op.resource.plural == "daemonsets":
            if op.patch_type == "json":
                new = json_patch(self.cs, op.patch)
            else:
                self._check_meta(self.cs, op.patch)
                new = copy.deepcopy(jsonmerge.merge_patch(self.cs, op.patch))
            self._bump(new)
            self.cs = new
            return
        super()._op(op, now)

    def update_spec(self, **changes: Any) -> None:
        """A user edit of the spec (generation + 1)."""
        spec = self.cs["spec"]
        for key, value in changes.items():
            spec[key] = value
        self.cs["metadata"]["generation"] += 1
        self._bump(self.cs)

    def set_image(self, image: str) -> None:
        template = copy.deepcopy(self.cs["spec"]["template"])
        template["spec"]["containers"][0]["image"] = image
        self.update_spec(template=template)

    def kubelet(self, now: datetime, *, start: bool = True) -> None:
        for pod in self.pods.values():
            spec = pod.setdefault("spec", {})
            if not spec.get("nodeName"):
                view = msgspec.convert(pod, Pod)
                spec["nodeName"] = target_node("", view.spec.affinity) or "unbound"
        super().kubelet(now, start=start)
        if not self.ready:
            ts = format_time(now)
            for pod in self.pods.values():
                if pod["metadata"]["uid"] in self.marked:
                    continue
                for c in pod["status"].get("conditions", []):
                    if c["type"] == "Ready" and c["status"] == "True":
                        c.update(status="False", lastTransitionTime=ts)

    def mark_ready(self, now: datetime, ready: bool = True) -> None:
        ts = format_time(now)
        for pod in self.pods.values():
            if ready:
                self.marked.add(pod["metadata"]["uid"])
            else:
                self.marked.discard(pod["metadata"]["uid"])
            conds = pod.setdefault("status", {}).setdefault("conditions", [])
            self._set_cond(conds, "Ready", "True" if ready else "False", ts)
            self._bump(pod)

    def step(self, now: datetime, gates: FeatureGates = DEFAULT_GATES, *, kubelet: bool = True,
             create_limit: int | None = None) -> DsPlan:
        """One pass applied, then (optionally) one kubelet sync."""
        plan = self.plan(now, gates, create_limit)
        self.deleted_from = sorted(self.pods[n]["spec"].get("nodeName", "") for n in plan.deleted if n in self.pods)
        self.updated_on = sorted(self.pods[n]["spec"].get("nodeName", "") for n in plan.updated_in_place)
        self.apply(plan, now)  # type: ignore[arg-type]
        self.backoff = plan.backoff
        self.created_on += plan.created
        if kubelet:
            self.kubelet(now)
        return plan

    def settle(self, now: datetime, gates: FeatureGates = DEFAULT_GATES, max_passes: int = 200,
               check: Any = None) -> datetime:
        """Pass after pass (one second apart) until a pass writes nothing twice in a row."""
        quiet = 0
        for _ in range(max_passes):
            plan = self.step(now, gates)
            if check is not None:
                check(self, plan)
            quiet = quiet + 1 if not plan.commands else 0
            if quiet >= 2:
                return now
            now += timedelta(seconds=1)
        raise AssertionError("did not converge")

    def pods_by_node(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, p in sorted(self.pods.items()):
            out.setdefault(p["spec"].get("nodeName", ""), []).append(name)
        return out

    def hashes(self) -> dict[str, str]:
        """node -> the revision hash of its pod(s), comma-joined."""
        out: dict[str, list[str]] = {}
        for p in self.pods.values():
            out.setdefault(p["spec"].get("nodeName", ""), []).append(p["metadata"]["labels"]["controller-revision-hash"])
        return {k: ",".join(sorted(v)) for k, v in out.items()}


def node_of(pod: dict[str, Any]) -> str:
    """The node a pod runs on or is pinned to."""
    return target_node(pod["spec"].get("nodeName", ""), msgspec.convert(pod, Pod).spec.affinity)


def fail(c: DsCluster, node: str) -> str:
    """The kubelet rejects the pod on `node`: it goes Failed. Returns its name."""
    name = c.pods_by_node()[node][0]
    c.pods[name]["status"]["phase"] = "Failed"
    c._bump(c.pods[name])
    return name


def counts(plan: DsPlan) -> tuple[int, int]:
    """(creates, deletes) of a pass, as Kruise's tests count them."""
    return len(plan.created), len(plan.deleted)
