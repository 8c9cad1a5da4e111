"""A tiny, pure, in-memory Kubernetes for planner tests: applies plans and simulates kubelets.

It implements just what the planner's commands use, with the executor semantics the lead's executor
has: ops run in order; a failed precondition (JSON-patch ``test``, uid/resourceVersion mismatch, 404 on
patch) makes the command *stale* (the rest of its ops are skipped); create AlreadyExists and delete 404
count as done. The kubelet schedules pods, starts containers, restarts a container whose spec image
changed (new imageID, restartCount+1) and evaluates readiness gates like the real kubelet (Ready needs
every gate condition True). Time is explicit: every step takes ``now``. Patches are applied by the
embedded API server's own code (`sim.patch`: JSON patch, merge patch, strategic merge patch).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from schemas import jsonmerge
from schemas.cloneset import CloneSet
from schemas.imagepulljob import ImagePullJob
from schemas.kube import ControllerRevision, Pod
from schemas.messages import Command, CreateOp, DeleteOp, PatchOp
from services.planner.cloneset.view import CloneSetView, Plan
from services.planner.kit.expectations import expectation_met
from services.planner.kit.timeutil import format_time
from sim import patch


class Stale(Exception):
    pass


def json_patch(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """`sim.patch.json_patch` (the embedded API server's RFC 6902), a failed op making the command stale."""
    try:
        new: dict[str, Any] = patch.json_patch(doc, ops)
    except patch.PatchError as e:
        raise Stale(str(e)) from None
    return new


class Cluster:
    """One CloneSet, its pods and revisions, as the API server would hold them."""

    def __init__(
        self,
        cs: dict[str, Any],
        pods: list[dict[str, Any]] | None = None,
        revisions: list[dict[str, Any]] | None = None,
    ) -> None:
        self.cs = copy.deepcopy(cs)
        self.pods: dict[str, dict[str, Any]] = {p["metadata"]["name"]: copy.deepcopy(p) for p in pods or []}
        self.revisions: dict[str, dict[str, Any]] = {
            r["metadata"]["name"]: copy.deepcopy(r) for r in revisions or []
        }
        self.jobs: dict[str, dict[str, Any]] = {}  # ImagePullJobs (the CloneSet's pre-download jobs)
        self.jobs_created: list[str] = []
        self.rv = 1000
        self.uid_counter = 0
        self.applied: list[Command] = []
        self.stale: list[Command] = []
        self.k8s_events: list[tuple[str, str]] = []
        self.update_count: dict[tuple[str, str], int] = {}  # (pod uid, revision) -> in-place updates
        self.observers: list[Callable[[Cluster], None]] = []

    # --- views -----------------------------------------------------------------------------------

    def view(self) -> CloneSetView:
        return CloneSetView(
            cloneset=msgspec.convert(self.cs, CloneSet),
            pods=[
                msgspec.convert(p, Pod)
                for p in sorted(self.pods.values(), key=lambda p: p["metadata"]["name"])
            ],
            revisions=[msgspec.convert(r, ControllerRevision) for r in self.revisions.values()],
            image_pull_jobs=[msgspec.convert(j, ImagePullJob) for _, j in sorted(self.jobs.items())],
        )

    def _bump(self, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    # --- applying plans --------------------------------------------------------------------------

    def apply(self, plan: Plan, now: datetime) -> None:
        for cmd in plan.commands:
            self.apply_command(cmd, now)
        for obs in self.observers:
            obs(self)

    def apply_command(self, cmd: Command, now: datetime) -> bool:
        snapshot = (copy.deepcopy(self.pods), copy.deepcopy(self.cs), copy.deepcopy(self.revisions), self.rv)
        try:
            for op in cmd.ops:
                self._op(op, now)
        except Stale:
            # partial application is possible in a real executor too; keep what was done before the failure
            self.stale.append(cmd)
            del snapshot
            return False
        self.applied.append(cmd)
        if cmd.verb == "update-in-place":
            key = (cmd.pod_uid, cmd.revision)
            self.update_count[key] = self.update_count.get(key, 0) + 1
        if cmd.on_success is not None:
            self.k8s_events.append((cmd.on_success.reason, cmd.on_success.message))
        return True

    def _op(self, op: Any, now: datetime) -> None:
        plural = op.resource.plural
        if isinstance(op, CreateOp):
            body = copy.deepcopy(op.body)
            name = body["metadata"]["name"]
            store = self._store(plural)
            if store is None:
                return
            if name in store:
                return  # AlreadyExists => done
            self.uid_counter += 1
            body["metadata"]["uid"] = f"uid-{name}-{self.uid_counter}"
            body["metadata"]["creationTimestamp"] = format_time(now)
            if plural == "pods":
                body.setdefault("status", {"phase": "Pending"})
            if plural == "imagepulljobs":
                self.jobs_created.append(name)
            store[name] = body
            self._bump(body)
            return
        if isinstance(op, DeleteOp):
            store = self._store(plural)
            if store is None:
                return
            obj = store.get(op.name)
            if obj is None:
                return  # 404 => done
            if op.uid and obj["metadata"].get("uid") != op.uid:
                raise Stale("uid mismatch on delete")
            del store[op.name]
            return
        assert isinstance(op, PatchOp)
        if plural == "clonesets":
            obj = self.cs
        else:
            store = self._store(plural)
            assert store is not None
            if op.name not in store:
                raise Stale("404 on patch")
            obj = store[op.name]
        if op.patch_type == "json":
            assert isinstance(op.patch, list)
            new = json_patch(obj, op.patch)
        elif op.patch_type == "merge":
            assert isinstance(op.patch, dict)
            self._check_meta(obj, op.patch)
            new = copy.deepcopy(jsonmerge.merge_patch(obj, op.patch))
        else:
            assert isinstance(op.patch, dict)
            self._check_meta(obj, op.patch)
            new = copy.deepcopy(patch.strategic_merge(obj, op.patch))
        self._bump(new)
        if plural == "clonesets":
            if op.subresource != "status":
                new["metadata"]["generation"] = new["metadata"].get("generation", 1) + 1
            self.cs = new
        else:
            store = self._store(plural)
            assert store is not None
            store[op.name] = new

    def _check_meta(self, obj: dict[str, Any], body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        if "uid" in meta and meta["uid"] != obj["metadata"].get("uid"):
            raise Stale("uid precondition")
        if "resourceVersion" in meta and meta["resourceVersion"] != obj["metadata"].get("resourceVersion"):
            raise Stale("resourceVersion precondition")

    def _store(self, plural: str) -> dict[str, dict[str, Any]] | None:
        if plural == "pods":
            return self.pods
        if plural == "controllerrevisions":
            return self.revisions
        if plural == "imagepulljobs":
            return self.jobs
        return None  # PVCs etc. are not simulated

    # --- kubelet ---------------------------------------------------------------------------------

    def kubelet(self, now: datetime, *, start: bool = True) -> None:
        """One kubelet sync for every pod: schedule, start, restart on image change, readiness."""
        ts = format_time(now)
        for name in sorted(self.pods):
            pod = self.pods[name]
            before = copy.deepcopy(pod)
            spec = pod.setdefault("spec", {})
            status = pod.setdefault("status", {})
            if not spec.get("nodeName"):
                spec["nodeName"] = f"node-{sum(map(ord, name)) % 3}"
            if not start:
                continue
            status["phase"] = "Running"
            statuses = {c["name"]: c for c in status.get("containerStatuses", [])}
            new_statuses = []
            for c in spec.get("containers", []):
                cur = statuses.get(c["name"])
                if cur is None:
                    cur = {
                        "name": c["name"],
                        "image": c["image"],
                        "imageID": f"docker://sha-{c['image']}",
                        "ready": True,
                        "restartCount": 0,
                    }
                elif cur["image"] != c["image"]:
                    cur = dict(
                        cur,
                        image=c["image"],
                        imageID=f"docker://sha-{c['image']}",
                        ready=True,
                        restartCount=cur.get("restartCount", 0) + 1,
                    )
                new_statuses.append(cur)
            status["containerStatuses"] = new_statuses
            containers_ready = all(c["ready"] for c in new_statuses)
            conds = status.setdefault("conditions", [])
            by_type = {c["type"]: c for c in conds}
            gates_ok = all(
                by_type.get(g["conditionType"], {}).get("status") == "True"
                for g in spec.get("readinessGates", [])
            )
            self._set_cond(conds, "ContainersReady", "True" if containers_ready else "False", ts)
            self._set_cond(conds, "Ready", "True" if containers_ready and gates_ok else "False", ts)
            if pod != before:
                self._bump(pod)

    @staticmethod
    def _set_cond(conds: list[dict[str, Any]], type_: str, status: str, ts: str) -> None:
        for c in conds:
            if c["type"] == type_:
                if c["status"] != status:
                    c.clear()
                    c.update({"type": type_, "status": status, "lastTransitionTime": ts})
                return
        conds.append({"type": type_, "status": status, "lastTransitionTime": ts})

    # --- queries ---------------------------------------------------------------------------------

    def pods_on(self, revision: str) -> list[str]:
        return sorted(
            n
            for n, p in self.pods.items()
            if p["metadata"]["labels"].get("controller-revision-hash") == revision
        )

    def unavailable(self) -> int:
        """Pods not Ready (kubelet view, gates included) or not lifecycle-Normal."""
        n = 0
        for p in self.pods.values():
            conds = {c["type"]: c["status"] for c in p.get("status", {}).get("conditions", [])}
            state = p["metadata"]["labels"].get("lifecycle.apps.kruise.io/state", "")
            gate_ok = conds.get("InPlaceUpdateReady", "True") == "True"
            if conds.get("Ready") != "True" or not gate_ok or state not in ("", "Normal"):
                n += 1
        return n


def drive(
    cluster: Cluster,
    now: datetime,
    *,
    gates: Any = None,
    max_passes: int = 400,
    step: float = 1.0,
    check: Callable[[Cluster, Plan], None] | None = None,
    start: bool = True,
) -> datetime:
    """Plan, apply, run the kubelet, advance the clock; until nothing happens for a while.

    Like the planner service, a pass is skipped while the previous plan's expectations are unobserved.
    ``check`` runs after every applied plan (invariant assertions). Returns the final clock.
    """
    from datetime import timedelta

    from services.planner.cloneset.plan import plan_cloneset
    from services.planner.kit.gates import DEFAULT_GATES

    quiet = 0
    pending: list[Any] = []
    for _ in range(max_passes):
        view = cluster.view()
        by_name = {p.metadata.name: p for p in view.pods}
        if pending and not all(expectation_met(e, by_name) for e in pending):
            pending = []  # the simulated API applies synchronously: unmet means the command was stale
        plan = plan_cloneset(view, now=now, gates=gates or DEFAULT_GATES)
        pending = list(plan.expectations)
        cluster.apply(plan, now)
        if check is not None:
            check(cluster, plan)
        before = copy.deepcopy(cluster.pods)
        cluster.kubelet(now, start=start)
        if not plan.commands and before == cluster.pods and plan.requeue_after is None:
            quiet += 1
            if quiet >= 3:
                return now
        else:
            quiet = 0
        now = now + timedelta(seconds=step)
    raise AssertionError("did not converge")
