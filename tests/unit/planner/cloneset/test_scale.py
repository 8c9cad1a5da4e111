"""Kruise's scale-step tests (`sync/cloneset_scale_test.go`) and controller sync cases E1-E4 (`cloneset_controller_test.go`), plus scale-step details."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import pytest

from schemas.kinds import CLONESET
from schemas.kube import PersistentVolumeClaim
from schemas.messages import CreateOp, DeleteOp
from services.planner.cloneset.instance_ids import candidate_id, generate_ids
from services.planner.cloneset.plan import plan_cloneset
from services.planner.cloneset.view import CloneSetView, Plan
from services.planner.kit.gates import FeatureGates
from tests.unit.planner.helpers import (
    CS_UID,
    NOW,
    cs_dict,
    cs_obj,
    pod_dict,
    pod_obj,
    rev_obj,
    revision_dict,
    with_image,
)


def view_of(cs: dict[str, Any], pods: list[dict[str, Any]], revs: list[dict[str, Any]]) -> CloneSetView:
    return CloneSetView(
        cloneset=cs_obj(cs), pods=[pod_obj(p) for p in pods], revisions=[rev_obj(r) for r in revs]
    )


def deleted(plan: Plan) -> list[str]:
    return sorted(c.pod for c in plan.commands if c.verb == "delete")


def five(cs: dict[str, Any], rev: str, **kw: Any) -> list[dict[str, Any]]:
    return [pod_dict(cs, rev, i, **kw) for i in range(5)]


def test_C1_min_ready_blocks_scale_in() -> None:
    cs = cs_dict(replicas=3, max_unavailable="20%", min_ready=9999)
    rev = revision_dict(cs)
    pods = five(cs, rev["metadata"]["name"], ready_since=NOW - timedelta(seconds=10))
    p = plan_cloneset(view_of(cs, pods, [rev]), now=NOW)
    assert deleted(p) == []
    assert not any(c.verb in ("create", "lifecycle") for c in p.commands)


def test_C2_specified_delete_first() -> None:
    cs = cs_dict(replicas=3, max_unavailable="20%")
    rev = revision_dict(cs)
    pods = five(cs, rev["metadata"]["name"])
    pods[0]["metadata"]["labels"]["apps.kruise.io/specified-delete"] = "true"
    p = plan_cloneset(view_of(cs, pods, [rev]), now=NOW)
    assert deleted(p) == [pods[0]["metadata"]["name"]]


def test_C3_scale_in_two() -> None:
    cs = cs_dict(replicas=3, max_unavailable="20%")
    rev = revision_dict(cs)
    p = plan_cloneset(view_of(cs, five(cs, rev["metadata"]["name"]), [rev]), now=NOW)
    assert len(deleted(p)) == 2
    assert [e.kind for e in p.expectations] == ["absent", "absent"]
    cmd = next(c for c in p.commands if c.verb == "delete")
    op = cmd.ops[0]
    assert isinstance(op, DeleteOp) and op.uid == cmd.pod_uid
    assert cmd.on_success is not None and cmd.on_success.reason == "SuccessfulDelete"
    assert cmd.on_success.message == f"succeed to delete pod {cmd.pod}"


def test_C4_create_pods_current_and_update_revisions_with_pvcs() -> None:
    old = cs_dict(replicas=3, partition=1)
    new = with_image(old, "nginx:2.0")
    vct = {"metadata": {"name": "datadir"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
    for d in (old, new):
        d["spec"]["volumeClaimTemplates"] = [vct]
    r_old, r_new = revision_dict(old, 1), revision_dict(new, 2)
    new["status"] = {
        "currentRevision": r_old["metadata"]["name"],
        "updateRevision": r_old["metadata"]["name"],
    }
    p = plan_cloneset(view_of(new, [], [r_old, r_new]), now=NOW)
    creates = [c for c in p.commands if c.verb == "create"]
    assert len(creates) == 3
    revs = [c.revision for c in creates]
    assert revs == [r_old["metadata"]["name"], r_new["metadata"]["name"], r_new["metadata"]["name"]]
    for cmd in creates:
        pvc, pod = cmd.ops
        assert isinstance(pvc, CreateOp) and isinstance(pod, CreateOp)
        iid = pod.body["metadata"]["labels"]["apps.kruise.io/cloneset-instance-id"]
        assert pod.body["metadata"]["name"] == f"demo-{iid}"
        assert pod.body["metadata"]["generateName"] == "demo-"
        assert pod.body["metadata"]["labels"]["pod-template-hash"] == cmd.revision.rsplit("-", 1)[1]
        vols = pod.body["spec"]["volumes"]
        assert vols == [{"name": "datadir", "persistentVolumeClaim": {"claimName": f"datadir-demo-{iid}"}}]
        assert pvc.resource.plural == "persistentvolumeclaims"
        assert pvc.body["metadata"]["name"] == f"datadir-demo-{iid}"
        assert pvc.body["metadata"]["labels"] == {"app": "demo", "apps.kruise.io/cloneset-instance-id": iid}
        assert pvc.body["metadata"]["ownerReferences"][0]["uid"] == CS_UID
    images = [c.ops[1].body["spec"]["containers"][0]["image"] for c in creates]  # type: ignore[union-attr]
    assert images == ["nginx:1.0", "nginx:2.0", "nginx:2.0"]


def test_C5_ids_reuse_pvc_ids_first_then_derive() -> None:
    ids = generate_ids(CS_UID, 2, used={"a", "b"}, reusable_pvc_ids=["b", "c"])
    assert ids[0] == "c" and ids[1] == candidate_id(CS_UID, 0)
    assert len(ids[1]) == 5 and set(ids[1]) <= set("bcdfghjklmnpqrstvwxz2456789")
    # deterministic and skipping used ids
    assert generate_ids(CS_UID, 2, used={candidate_id(CS_UID, 0)}) == [
        candidate_id(CS_UID, 1),
        candidate_id(CS_UID, 2),
    ]


def test_C6_delete_pods_and_their_pvcs() -> None:
    cs = cs_dict(replicas=1, max_unavailable=5)
    cs["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "datadir"}, "spec": {}}]
    rev = revision_dict(cs)
    pods = [pod_dict(cs, rev["metadata"]["name"], i) for i in range(3)]
    p = plan_cloneset(view_of(cs, pods, [rev]), now=NOW)
    dels = [c for c in p.commands if c.verb == "delete"]
    assert len(dels) == 2
    for cmd in dels:
        pod_op, pvc_op = cmd.ops
        assert isinstance(pvc_op, DeleteOp) and pvc_op.resource.plural == "persistentvolumeclaims"
        iid = next(x for x in pods if x["metadata"]["name"] == cmd.pod)["metadata"]["labels"][
            "apps.kruise.io/cloneset-instance-id"
        ]
        assert pvc_op.name == f"datadir-demo-{iid}"


# --- Kruise's controller/status tests controller rows (sync = scale, then update) ----------------------------------------------


@pytest.mark.parametrize(("replicas", "old_left", "new_left"), [(6, 1, 5), (4, 0, 4)], ids=["E1", "E2"])
def test_E1_E2_ondelete_scale_in_old_first(replicas: int, old_left: int, new_left: int) -> None:
    old = cs_dict(replicas=replicas, strategy="OnDelete")
    new = with_image(old, "nginx:2.0")
    r_old, r_new = revision_dict(old, 1), revision_dict(new, 2)
    new["status"] = {"currentRevision": r_old["metadata"]["name"]}
    pods = [pod_dict(new, r_old["metadata"]["name"], i, ready=False) for i in range(3)]
    pods += [pod_dict(new, r_new["metadata"]["name"], 3 + i, ready=False) for i in range(5)]
    from services.planner.cloneset.calc import classify, mark_updated
    from services.planner.cloneset.context import Ctx
    from services.planner.cloneset.scale import scale_step
    from services.planner.kit.builder import Builder
    from services.planner.kit.gates import DEFAULT_GATES

    # OnDelete is a v1beta1 strategy the v1alpha1 validation rejects: drive the scale step directly.
    cso = cs_obj(new)
    pv = [pod_obj(p) for p in pods]
    infos, _ = classify(cso, pv, NOW)
    tally = mark_updated(infos, r_new["metadata"]["name"], cso, NOW)
    ctx = Ctx(
        cs=cso,
        now=NOW,
        gates=DEFAULT_GATES,
        b=Builder.of(CLONESET, cso, NOW),
        infos=infos,
        all_pods=pv,
        revisions=[rev_obj(r_old), rev_obj(r_new)],
        update_rev=rev_obj(r_new),
        current_rev=rev_obj(r_old),
        tally=tally,
    )
    assert scale_step(ctx)
    gone = {c.pod for c in ctx.b.commands if c.verb == "delete"}
    left = [p for p in pods if p["metadata"]["name"] not in gone]
    rev_of = [p["metadata"]["labels"]["controller-revision-hash"] for p in left]
    assert rev_of.count(r_old["metadata"]["name"]) == old_left
    assert rev_of.count(r_new["metadata"]["name"]) == new_left


def test_E3_recreate_marks_one_specified_delete() -> None:
    old = cs_dict(replicas=5, strategy="ReCreate", max_unavailable=1)
    new = with_image(old, "nginx:2.0")
    r_old, r_new = revision_dict(old, 1), revision_dict(new, 2)
    new["status"] = {"currentRevision": r_old["metadata"]["name"]}
    pods = [pod_dict(new, r_old["metadata"]["name"], i, ready=False) for i in range(5)]
    p = plan_cloneset(view_of(new, pods, [r_old, r_new]), now=NOW)
    marks = [c for c in p.commands if c.verb == "update-recreate"]
    assert len(marks) == 1
    assert marks[0].on_success is not None
    assert marks[0].on_success.message == (
        f"successfully patch pod {marks[0].pod} specified-delete for update(revision {r_new['metadata']['name']})"
    )


def test_E4_recreate_all_new_nothing() -> None:
    cs = cs_dict(replicas=5, strategy="ReCreate", max_unavailable=1)
    rev = revision_dict(cs)
    pods = [pod_dict(cs, rev["metadata"]["name"], i, ready=False) for i in range(5)]
    p = plan_cloneset(view_of(cs, pods, [rev]), now=NOW)
    assert [c.verb for c in p.commands if c.verb != "status"] == []


# --- other the scale step behaviour ---------------------------------------------------------------------------


def test_scale_up_limited_by_scale_max_unavailable() -> None:
    cs = cs_dict(replicas=4, scale_max_unavailable=1)
    rev = revision_dict(cs)
    pods = [pod_dict(cs, rev["metadata"]["name"], 0, ready=False)]
    p = plan_cloneset(view_of(cs, pods, [rev]), now=NOW)
    assert [c.verb for c in p.commands if c.verb == "create"] == []
    ev = [e for e in p.events if e.type == "scale-up-limited"]
    assert ev and ev[0].reason == "ScaleUpLimited"
    assert ev[0].message == "scaleUp is limited because of scaleStrategy.maxUnavailable, limit: 0"
    # ... and the Warning Event Kruise records on the CloneSet, as a command with no API change
    (warn,) = [c for c in p.commands if c.verb == "event"]
    assert warn.ops == [] and warn.on_success is not None
    assert (warn.on_success.type, warn.on_success.reason, warn.on_success.message) == (
        "Warning", "ScaleUpLimited", ev[0].message)


def test_regret_preparing_delete_when_replicas_grow() -> None:
    cs = cs_dict(replicas=3, lifecycle={"preDelete": {"finalizersHandler": ["example.com/hook"]}})
    rev = revision_dict(cs)
    pods = [pod_dict(cs, rev["metadata"]["name"], i) for i in range(2)]
    pods.append(pod_dict(cs, rev["metadata"]["name"], 2, state="PreparingDelete"))
    p = plan_cloneset(view_of(cs, pods, [rev]), now=NOW)
    assert [c.verb for c in p.commands if c.verb != "status"] == ["lifecycle"]
    ops = p.commands[0].ops[0].patch  # type: ignore[union-attr]
    assert {
        "op": "add",
        "path": "/metadata/labels/lifecycle.apps.kruise.io~1state",
        "value": "PreparingNormal",
    } in ops


def test_pre_delete_hook_parks_pod_then_deletes_when_released() -> None:
    cs = cs_dict(replicas=2, lifecycle={"preDelete": {"labelsHandler": {"hold": "true"}}})
    rev = revision_dict(cs)
    pods = [pod_dict(cs, rev["metadata"]["name"], i, labels={"hold": "true"}) for i in range(3)]
    p = plan_cloneset(view_of(cs, pods, [rev]), now=NOW)
    assert [c.verb for c in p.commands if c.verb != "status"] == ["lifecycle"]
    victim = p.commands[0].pod
    # parked: the next pass keeps it while hooked
    for x in pods:
        if x["metadata"]["name"] == victim:
            x["metadata"]["labels"]["lifecycle.apps.kruise.io/state"] = "PreparingDelete"
    p = plan_cloneset(view_of(cs, pods, [rev]), now=NOW)
    assert [c.verb for c in p.commands if c.verb not in ("status",)] == []
    # hook released -> deleted
    for x in pods:
        if x["metadata"]["name"] == victim:
            del x["metadata"]["labels"]["hold"]
    p = plan_cloneset(view_of(cs, pods, [rev]), now=NOW)
    assert deleted(p) == [victim]


def test_scale_in_suppressed_while_specified_delete_pending() -> None:
    # r2 mu1, 4 pods: p0 ready+SD, three not ready -> deleteReadyLimit max(1+2-3, 0) = 0: p0 must wait,
    # and scale-in (4-1-2 = 1) is suppressed while it is pending.
    cs = cs_dict(replicas=2, max_unavailable=1)
    rev = revision_dict(cs)
    pods = [pod_dict(cs, rev["metadata"]["name"], 0, specified_delete=True)]
    pods += [pod_dict(cs, rev["metadata"]["name"], i, ready=False) for i in range(1, 4)]
    p = plan_cloneset(view_of(cs, pods, [rev]), now=NOW)
    assert deleted(p) == []
    # a not-ready specified-delete pod is deletable regardless of the budget
    pods[1]["metadata"]["labels"]["apps.kruise.io/specified-delete"] = "true"
    # (and no longer counts as unavailable, which frees budget for p0: limit max(1+2-2, 0) = 1)
    p = plan_cloneset(view_of(cs, pods, [rev]), now=NOW)
    assert deleted(p) == [pods[0]["metadata"]["name"], pods[1]["metadata"]["name"]]


def test_pods_to_delete_is_specified_delete_and_truncated() -> None:
    cs = cs_dict(replicas=3, pods_to_delete=["demo-p000", "ghost"], max_unavailable=1)
    rev = revision_dict(cs)
    pods = [pod_dict(cs, rev["metadata"]["name"], i) for i in range(3)]
    view = view_of(cs, pods, [rev])
    view.previous = cs_obj(cs)  # names already accepted earlier: not re-validated (Kruise checks new names)
    p = plan_cloneset(view, now=NOW)
    assert deleted(p) == ["demo-p000"]
    # truncation waits for a pass without a status write (both are resourceVersion-guarded)
    cs["status"] = {
        "observedGeneration": 1,
        "replicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "updatedReplicas": 2,
        "updatedReadyReplicas": 2,
        "updatedAvailableReplicas": 2,
        "expectedUpdatedReplicas": 2,
        "updateRevision": rev["metadata"]["name"],
        "currentRevision": rev["metadata"]["name"],
        "labelSelector": "app=demo",
    }
    pods = pods[1:]
    cs["spec"]["replicas"] = 2
    view = view_of(cs, pods, [rev])
    view.previous = cs_obj(cs)
    p = plan_cloneset(view, now=NOW)
    trunc = [c for c in p.commands if c.verb == "podstodelete-truncate"]
    assert trunc, [c.verb for c in p.commands]
    assert trunc[0].ops[0].patch["spec"] == {"scaleStrategy": {"podsToDelete": []}}  # type: ignore[union-attr,call-overload,index]


def test_surge_pod_created_before_update() -> None:
    old = cs_dict(replicas=5, partition=3, max_unavailable=1, max_surge=1, strategy="InPlaceIfPossible")
    new = with_image(old, "nginx:2.0")
    r_old, r_new = revision_dict(old, 1), revision_dict(new, 2)
    new["status"] = {"currentRevision": r_old["metadata"]["name"]}
    pods = [pod_dict(new, r_old["metadata"]["name"], i) for i in range(5)]
    p = plan_cloneset(view_of(new, pods, [r_old, r_new]), now=NOW)
    assert [c.verb for c in p.commands if c.verb != "status"] == ["create"]
    assert p.commands[0].revision == r_new["metadata"]["name"]


def test_preparing_update_as_update_gate_affects_scaling_only() -> None:
    old = cs_dict(replicas=2, partition=0)
    new = with_image(old, "nginx:2.0")
    r_old, r_new = revision_dict(old, 1), revision_dict(new, 2)
    new["status"] = {"currentRevision": r_old["metadata"]["name"]}
    pods = [pod_dict(new, r_old["metadata"]["name"], 0, state="PreparingUpdate")]
    gates = FeatureGates(preparing_update_as_update=True)
    p = plan_cloneset(view_of(new, pods, [r_old, r_new]), now=NOW, gates=gates)
    assert [c.revision for c in p.commands if c.verb == "create"] == [r_new["metadata"]["name"]]


def test_slow_start_batches_create_what_one_unlimited_pass_would() -> None:
    """Kruise's slow start (1, 2, 4, ...) as one batch per pass: each pass creates at most
    ``create_limit`` pods; passes over the growing pod list together create exactly the pods (names
    and revisions, 3 from the current revision under partition 3, 4 from the update revision) that a
    single unlimited pass plans."""
    old = cs_dict(replicas=7, partition=3)
    new = with_image(old, "nginx:2.0")
    r_old, r_new = revision_dict(old, 1), revision_dict(new, 2)
    new["status"] = {"currentRevision": r_old["metadata"]["name"], "updateRevision": r_old["metadata"]["name"]}

    def creates(plan: Plan) -> list[tuple[str, str]]:
        return [(c.pod, c.revision) for c in plan.commands if c.verb == "create"]

    everything = creates(plan_cloneset(view_of(new, [], [r_old, r_new]), now=NOW))
    assert len(everything) == 7
    pods: list[dict[str, Any]] = []
    batches: list[list[tuple[str, str]]] = []
    limit = 1
    while batch := creates(plan := plan_cloneset(view_of(new, pods, [r_old, r_new]), now=NOW, create_limit=limit)):
        batches.append(batch)
        for cmd in plan.commands:
            if cmd.verb == "create":
                body = cmd.ops[-1].body  # type: ignore[union-attr]
                meta = {**body["metadata"], "uid": f"uid-{cmd.pod}", "resourceVersion": "1",
                        "creationTimestamp": "2026-01-01T00:00:00Z"}
                pods.append({**body, "metadata": meta, "status": {"phase": "Pending"}})
        limit *= 2
    assert [len(b) for b in batches] == [1, 2, 4]
    assert sorted(p for b in batches for p in b) == sorted(everything)
    assert sum(rev == r_old["metadata"]["name"] for b in batches for _, rev in b) == 3


def test_create_limit_caps_one_pass() -> None:
    cs = cs_dict(replicas=5)
    rev = revision_dict(cs)
    p = plan_cloneset(view_of(cs, [], [rev]), now=NOW, create_limit=2)
    assert sum(c.verb == "create" for c in p.commands) == 2
    assert [e.kind for e in p.expectations].count("present") == 2


# --- PersistentVolumeClaims in the view (the reconcile's claim listing, the scale step) -------------------------------------------


def claim(cs: dict[str, Any], iid: str, *, template: str = "datadir", deleting: bool = False) -> PersistentVolumeClaim:
    meta: dict[str, Any] = {
        "name": f"{template}-{cs['metadata']['name']}-{iid}",
        "namespace": "default",
        "uid": f"uid-claim-{iid}",
        "resourceVersion": "1",
        "labels": {"app": "demo", "apps.kruise.io/cloneset-instance-id": iid},
        "ownerReferences": [{"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "name": "demo",
                             "uid": CS_UID, "controller": True}],
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return msgspec.convert({"metadata": meta}, PersistentVolumeClaim)


def with_claims(cs: dict[str, Any], pods: list[dict[str, Any]], revs: list[dict[str, Any]],
                claims: list[PersistentVolumeClaim]) -> CloneSetView:
    return msgspec.structs.replace(view_of(cs, pods, revs), pvcs=claims)


def vct_cloneset(replicas: int, **kw: Any) -> dict[str, Any]:
    cs = cs_dict(replicas=replicas, **kw)
    cs["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "datadir"}, "spec": {}}]
    return cs


def test_a_kept_claim_gives_its_id_to_the_next_pod_and_is_not_created_again() -> None:
    """A pod evicted or deleted by hand leaves its claim; the pod that replaces it takes the claim's
    instance id (so the same volume is mounted again) and only its pod is created."""
    cs = vct_cloneset(3)
    rev = revision_dict(cs)
    pods = [pod_dict(cs, rev["metadata"]["name"], i) for i in range(2)]
    claims = [claim(cs, "p000"), claim(cs, "p001"), claim(cs, "gone1")]
    p = plan_cloneset(with_claims(cs, pods, [rev], claims), now=NOW)
    (create,) = [c for c in p.commands if c.verb == "create"]
    assert create.pod == "demo-gone1"
    assert [op.resource.plural for op in create.ops] == ["pods"]  # the claim exists: no PVC create
    pod_body = create.ops[0].body  # type: ignore[union-attr]
    assert pod_body["spec"]["volumes"] == [
        {"name": "datadir", "persistentVolumeClaim": {"claimName": "datadir-demo-gone1"}}]


def test_a_claim_being_deleted_is_not_reused() -> None:
    cs = vct_cloneset(1)
    rev = revision_dict(cs)
    p = plan_cloneset(with_claims(cs, [], [rev], [claim(cs, "gone1", deleting=True)]), now=NOW)
    (create,) = [c for c in p.commands if c.verb == "create"]
    assert create.pod != "demo-gone1" and create.pod == f"demo-{candidate_id(CS_UID, 0)}"
    assert [op.resource.plural for op in create.ops] == ["persistentvolumeclaims", "pods"]


def test_deleting_a_pod_deletes_every_claim_with_its_id_guarded_by_uid() -> None:
    cs = vct_cloneset(1, max_unavailable=5)
    rev = revision_dict(cs)
    pods = [pod_dict(cs, rev["metadata"]["name"], i) for i in range(2)]
    extra = claim(cs, "p001", template="old-template")  # from a template since removed: same id
    p = plan_cloneset(with_claims(cs, pods, [rev], [claim(cs, "p001"), extra]), now=NOW)
    (delete,) = [c for c in p.commands if c.verb == "delete"]
    pvc_ops = [op for op in delete.ops if op.resource.plural == "persistentvolumeclaims"]
    assert {(op.name, op.uid) for op in pvc_ops} == {  # type: ignore[union-attr]
        ("datadir-demo-p001", "uid-claim-p001"), ("old-template-demo-p001", "uid-claim-p001")}


def test_disable_pvc_reuse_hands_claims_to_inactive_pods_and_deletes_the_rest() -> None:
    cs = vct_cloneset(2)
    cs["spec"]["scaleStrategy"] = {"disablePVCReuse": True}
    rev = revision_dict(cs)
    name = rev["metadata"]["name"]
    pods = [pod_dict(cs, name, 0), pod_dict(cs, name, 1, phase="Failed", state=None)]  # p001 inactive
    claims = [claim(cs, "p000"), claim(cs, "p001"), claim(cs, "gone1")]
    p = plan_cloneset(with_claims(cs, pods, [rev], claims), now=NOW)
    released = [c for c in p.commands if c.verb == "pvc-release"]
    deleted_claims = [c for c in p.commands if c.verb == "pvc-delete"]
    assert [c.pod for c in released] == ["demo-p001"]
    patch = released[0].ops[0].patch  # type: ignore[union-attr]
    assert patch[0] == {"op": "test", "path": "/metadata/uid", "value": "uid-claim-p001"}
    assert patch[1]["value"][0]["kind"] == "Pod" and patch[1]["value"][0]["uid"] == "uid-demo-p001"
    assert [c.ops[0].name for c in deleted_claims] == ["datadir-demo-gone1"]  # type: ignore[union-attr]
    # the id of a claim on its way out is not reused: the replacement pod gets a fresh id and claim
    (create,) = [c for c in p.commands if c.verb == "create"]
    assert create.pod not in ("demo-gone1", "demo-p001")
    assert [op.resource.plural for op in create.ops] == ["persistentvolumeclaims", "pods"]


def test_with_reuse_kept_claims_are_left_alone() -> None:
    cs = vct_cloneset(1)
    rev = revision_dict(cs)
    pods = [pod_dict(cs, rev["metadata"]["name"], 0)]
    p = plan_cloneset(with_claims(cs, pods, [rev], [claim(cs, "p000"), claim(cs, "gone1")]), now=NOW)
    assert not [c for c in p.commands if c.verb in ("pvc-release", "pvc-delete", "create", "delete")]


def test_the_replacement_of_a_terminating_pod_waits_for_it_then_takes_its_claim() -> None:
    cs = vct_cloneset(2)
    rev = revision_dict(cs)
    name = rev["metadata"]["name"]
    claims = [claim(cs, "p000"), claim(cs, "p001")]
    terminating = [pod_dict(cs, name, 0), pod_dict(cs, name, 1, deleting=True)]
    p = plan_cloneset(with_claims(cs, terminating, [rev], claims), now=NOW)
    assert not [c for c in p.commands if c.verb == "create"]  # p001's name and claim are still taken
    p = plan_cloneset(with_claims(cs, terminating[:1], [rev], claims), now=NOW)  # now it is gone
    (create,) = [c for c in p.commands if c.verb == "create"]
    assert create.pod == "demo-p001" and [op.resource.plural for op in create.ops] == ["pods"]
