"""End-to-end planner passes against the simulated cluster: the issue-2 seed and the basic flows."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from schemas.messages import Command
from services.planner.cloneset.plan import plan_cloneset
from services.planner.cloneset.view import CloneSetView, Plan
from tests.unit.planner.helpers import (
    NOW,
    cs_dict,
    cs_obj,
    pod_dict,
    pod_obj,
    rev_obj,
    revision_dict,
    with_image,
)
from tests.unit.planner.simkube import Cluster, drive


def settled(cs: dict[str, Any]) -> tuple[Cluster, Any]:
    c = Cluster(cs)
    now = drive(c, NOW)
    return c, now


def verbs(plan: Plan) -> list[str]:
    return [c.verb for c in plan.commands]


def uids_and_restarts(c: Cluster) -> dict[str, tuple[str, int, str]]:
    return {
        n: (
            p["metadata"]["uid"],
            p["status"]["containerStatuses"][0]["restartCount"],
            p["metadata"]["labels"]["controller-revision-hash"],
        )
        for n, p in c.pods.items()
    }


# --- issue-2 seed ------------------------------------------------------------------------------------


@pytest.mark.parametrize("partition", [3, "60%"], ids=["int", "percent"])
def test_seed_inplace_partition_updates_exactly_two(partition: Any) -> None:
    cs = cs_dict(
        replicas=5, strategy="InPlaceIfPossible", partition=partition, max_unavailable="20%", grace=10
    )
    c, now = settled(cs)
    assert len(c.pods) == 5
    old_rev = c.cs["status"]["updateRevision"]
    before = uids_and_restarts(c)

    c.cs = with_image(c.cs, "nginx:2.0")
    max_unavailable = 0

    def check(cl: Cluster, plan: Plan) -> None:
        nonlocal max_unavailable
        max_unavailable = max(max_unavailable, cl.unavailable())
        assert cl.unavailable() <= 1
        assert all(v == 1 for v in cl.update_count.values())

    drive(c, now, check=check)
    after = uids_and_restarts(c)
    new_rev = c.cs["status"]["updateRevision"]
    assert new_rev != old_rev
    assert set(after) == set(before), "in-place: same pods, no create/delete"
    changed = [n for n in after if after[n][2] == new_rev]
    assert len(changed) == 2
    for n in after:
        assert after[n][0] == before[n][0]  # same uid
        if n in changed:
            assert after[n][1] == before[n][1] + 1  # restarted once
            assert c.pods[n]["spec"]["containers"][0]["image"] == "nginx:2.0"
        else:
            assert after[n] == before[n]
    assert max_unavailable == 1
    st = c.cs["status"]
    assert (st["replicas"], st["readyReplicas"], st["updatedReplicas"], st["updatedReadyReplicas"]) == (
        5,
        5,
        2,
        2,
    )
    assert st["currentRevision"] == old_rev and st["updateRevision"] == new_rev
    assert st["observedGeneration"] == c.cs["metadata"]["generation"]
    reasons = [r for r, _ in c.k8s_events if r == "SuccessfulUpdatePodInPlace"]
    assert len(reasons) == 2
    msgs = [m for r, m in c.k8s_events if r == "SuccessfulUpdatePodInPlace"]
    assert all(
        m.startswith("successfully update pod ") and f"in-place(revision {new_rev})" in m for m in msgs
    )


def test_seed_grace_period_delays_image_and_marks_unready() -> None:
    cs = cs_dict(replicas=5, strategy="InPlaceIfPossible", partition=3, max_unavailable="20%", grace=10)
    c, now = settled(cs)
    c.cs = with_image(c.cs, "nginx:2.0")
    # pass 1: the new revision is created alone
    p = plan_cloneset(c.view(), now=now)
    assert verbs(p) == ["revision-create", "status"]
    c.apply(p, now)
    # pass 2: exactly one in-place update (budget 1), grace 10 s -> image not yet changed
    p = plan_cloneset(c.view(), now=now)
    assert verbs(p) == ["update-in-place"]
    cmd = p.commands[0]
    assert p.requeue_after == 10.0
    status_op, pod_op = cmd.ops
    assert status_op.patch_type == "strategic" and status_op.subresource == "status"
    conds = status_op.patch["status"]["conditions"]
    assert conds[0]["type"] == "InPlaceUpdateReady" and conds[0]["status"] == "False"
    assert conds[0]["reason"] == "StartInPlaceUpdate"
    ops = pod_op.patch
    assert ops[0] == {"op": "test", "path": "/metadata/uid", "value": cmd.pod_uid}
    assert ops[1]["op"] == "test" and ops[1]["path"] == "/metadata/labels/controller-revision-hash"
    assert not any(o["path"].startswith("/spec/containers") for o in ops)
    assert any(o["path"] == "/metadata/annotations/apps.kruise.io~1inplace-update-grace" for o in ops)
    assert cmd.id.endswith(f"/update-in-place/{cmd.pod_uid}/{cmd.revision}")
    c.apply(p, now)
    pod = c.pods[cmd.pod]
    assert pod["spec"]["containers"][0]["image"] == "nginx:1.0"
    assert pod["metadata"]["labels"]["lifecycle.apps.kruise.io/state"] == "Updating"
    # during grace: requeue with the remainder, no more updates
    p = plan_cloneset(c.view(), now=now + timedelta(seconds=4))
    assert "update-in-place" not in verbs(p)
    assert p.requeue_after == 6.0
    # after grace: images replaced
    p = plan_cloneset(c.view(), now=now + timedelta(seconds=10))
    assert [v for v in verbs(p) if v != "status"] == ["inplace-refresh"]
    c.apply(p, now + timedelta(seconds=10))
    assert c.pods[cmd.pod]["spec"]["containers"][0]["image"] == "nginx:2.0"
    assert "apps.kruise.io/inplace-update-grace" not in c.pods[cmd.pod]["metadata"]["annotations"]


def test_duplicate_update_command_is_stale() -> None:
    cs = cs_dict(replicas=2, strategy="InPlaceIfPossible", max_unavailable=1)
    c, now = settled(cs)
    c.cs = with_image(c.cs, "nginx:2.0")
    c.apply(plan_cloneset(c.view(), now=now), now)
    p = plan_cloneset(c.view(), now=now)
    assert verbs(p) == ["update-in-place"]
    assert c.apply_command(p.commands[0], now)
    assert not c.apply_command(p.commands[0], now)  # the label test fails: never updated twice


def test_recreate_update_with_partition() -> None:
    cs = cs_dict(replicas=5, strategy="ReCreate", partition=3, max_unavailable=1)
    c, now = settled(cs)
    old = {p["metadata"]["uid"] for p in c.pods.values()}
    c.cs = with_image(c.cs, "nginx:2.0")
    drive(c, now, check=lambda cl, _: None)
    new_rev = c.cs["status"]["updateRevision"]
    assert len(c.pods) == 5
    assert len(c.pods_on(new_rev)) == 2
    assert len({p["metadata"]["uid"] for p in c.pods.values()} & old) == 3
    assert any(r == "SuccessfulUpdatePodReCreate" for r, _ in c.k8s_events)


def test_scale_up_and_down() -> None:
    cs = cs_dict(replicas=3, strategy="ReCreate")
    c, now = settled(cs)
    assert len(c.pods) == 3
    names = sorted(c.pods)
    c.cs["spec"]["replicas"] = 6
    c.cs["metadata"]["generation"] += 1
    now = drive(c, now)
    assert len(c.pods) == 6 and set(names) <= set(c.pods)
    c.cs["spec"]["replicas"] = 2
    c.cs["metadata"]["generation"] += 1
    drive(c, now)
    assert len(c.pods) == 2
    assert c.cs["status"]["replicas"] == 2


def test_creates_are_deterministic_and_fully_formed() -> None:
    cs = cs_dict(replicas=3)
    rev = revision_dict(cs)
    view = CloneSetView(cloneset=cs_obj(cs), pods=[], revisions=[rev_obj(rev)])
    p1 = plan_cloneset(view, now=NOW)
    p2 = plan_cloneset(copy.deepcopy(view), now=NOW)
    assert msgspec.json.encode(p1) == msgspec.json.encode(p2)
    creates = [c for c in p1.commands if c.verb == "create"]
    assert len(creates) == 3
    body = creates[0].ops[-1].body
    meta = body["metadata"]
    assert meta["name"].startswith("demo-") and len(meta["name"]) == len("demo-") + 5
    assert meta["labels"]["controller-revision-hash"] == rev["metadata"]["name"]
    assert meta["labels"]["lifecycle.apps.kruise.io/state"] == "PreparingNormal"
    assert meta["labels"]["apps.kruise.io/cloneset-instance-id"] == meta["name"][5:]
    assert "lifecycle.apps.kruise.io/timestamp" in meta["annotations"]
    assert meta["ownerReferences"][0]["controller"] is True
    assert body["spec"]["readinessGates"] == [{"conditionType": "InPlaceUpdateReady"}]
    assert creates[0].on_success is not None
    assert creates[0].on_success.message == f"succeed to create pod {meta['name']}"
    assert [e.kind for e in p1.expectations] == ["present"] * 3


def test_status_fields_and_write_rule() -> None:
    cs = cs_dict(replicas=3)
    rev = revision_dict(cs)
    name = rev["metadata"]["name"]
    pods = [pod_dict(cs, name, i) for i in range(3)]
    view = CloneSetView(cloneset=cs_obj(cs), pods=[pod_obj(p) for p in pods], revisions=[rev_obj(rev)])
    p = plan_cloneset(view, now=NOW)
    assert verbs(p) == ["status"]
    st = p.status
    assert (st.replicas, st.ready_replicas, st.available_replicas, st.updated_replicas) == (3, 3, 3, 3)
    assert st.update_revision == st.current_revision == name
    assert st.observed_generation == 1 and st.label_selector == "app=demo"
    body = p.commands[0].ops[0].patch
    assert body["status"]["readyReplicas"] == 3
    assert body["metadata"] == {"resourceVersion": "100"}
    # once written, an identical pass writes nothing
    cs2 = copy.deepcopy(cs)
    cs2["status"] = body["status"]
    view2 = CloneSetView(cloneset=cs_obj(cs2), pods=view.pods, revisions=view.revisions)
    assert plan_cloneset(view2, now=NOW).commands == []


# --- invalid spec -----------------------------------------------------------------------------------


def test_invalid_spec_is_reported_once_and_not_acted_on() -> None:
    cs = cs_dict(replicas=-1)
    view = CloneSetView(cloneset=cs_obj(cs), pods=[], revisions=[])
    p = plan_cloneset(view, now=NOW)
    assert p.errors and p.errors[0].field == "spec.replicas"
    assert verbs(p) == ["invalid-spec"]
    cmd: Command = p.commands[0]
    assert cmd.on_success is not None and cmd.on_success.type == "Warning"
    assert cmd.on_success.reason == "InvalidSpec" and "spec.replicas" in cmd.on_success.message
    assert [e.type for e in p.events] == ["rejected"] and p.events[0].field == "spec.replicas"
    conds = {c.type: c for c in p.status.conditions}
    assert conds["InvalidSpec"].status == "True" and "spec.replicas" in conds["InvalidSpec"].message
    assert p.status.observed_generation == 0
    # condition present with the same message -> nothing re-emitted
    c = Cluster(cs)
    c.apply(p, NOW)
    p2 = plan_cloneset(c.view(), now=NOW)
    assert p2.commands == [] and p2.events == [] and p2.errors
    # fixed spec -> normal pass, condition removed
    c.cs["spec"]["replicas"] = 1
    c.cs["metadata"]["generation"] += 1
    p3 = plan_cloneset(c.view(), now=NOW)
    assert not p3.errors and "status" in verbs(p3)
    assert all(x.type != "InvalidSpec" for x in p3.status.conditions)
    c.apply(p3, NOW)
    assert all(x["type"] != "InvalidSpec" for x in c.cs["status"]["conditions"])


def test_invalid_spec_keeps_pods_untouched() -> None:
    cs = cs_dict(replicas=3, max_unavailable="5")  # non-percent string: rejected by the webhook rules
    rev = revision_dict(cs)
    pods = [pod_obj(pod_dict(cs, rev["metadata"]["name"], i)) for i in range(1)]
    p = plan_cloneset(CloneSetView(cloneset=cs_obj(cs), pods=pods, revisions=[rev_obj(rev)]), now=NOW)
    assert verbs(p) == ["invalid-spec"]
    assert p.errors[0].field == "spec.updateStrategy.maxUnavailable"


def test_revision_created_alone_before_pods_reference_it() -> None:
    cs = cs_dict(replicas=2)
    p = plan_cloneset(CloneSetView(cloneset=cs_obj(cs), pods=[], revisions=[]), now=NOW)
    assert verbs(p) == ["revision-create", "status"]
    body = p.commands[0].ops[0].body
    assert body["kind"] == "ControllerRevision" and body["revision"] == 1
    assert p.status.update_revision == body["metadata"]["name"]


def test_rollback_bumps_old_revision() -> None:
    cs1 = cs_dict(replicas=2)
    cs2 = with_image(cs1, "nginx:2.0")
    r1 = revision_dict(cs1, 1)
    r2 = revision_dict(cs2, 2)
    cs3 = with_image(cs2, "nginx:1.0")
    view = CloneSetView(cloneset=cs_obj(cs3), pods=[], revisions=[rev_obj(r1), rev_obj(r2)])
    p = plan_cloneset(view, now=NOW)
    assert verbs(p)[0] == "revision-bump"
    assert p.status.update_revision == r1["metadata"]["name"]


@pytest.mark.parametrize("strategy", ["InPlaceIfPossible", "ReCreate"])
def test_compact_pods_plan_identically(strategy: str) -> None:
    from services.planner.kit.compact import compact_pod

    cs = cs_dict(replicas=4, strategy=strategy, partition=1, max_unavailable=1, grace=2)
    c, now = settled(cs)
    c.cs = with_image(c.cs, "nginx:2.0")
    for step in range(60):
        v = c.view()
        p1 = plan_cloneset(v, now=now)
        compacted = CloneSetView(
            cloneset=v.cloneset, pods=[compact_pod(p) for p in v.pods], revisions=v.revisions
        )
        p2 = plan_cloneset(compacted, now=now)
        assert msgspec.json.encode(p1) == msgspec.json.encode(p2), step
        c.apply(p1, now)
        c.kubelet(now)
        now += timedelta(seconds=1)
    assert len(c.pods_on(c.cs["status"]["updateRevision"])) == 3


def test_history_truncated_to_revision_history_limit() -> None:
    base = cs_dict(replicas=1)
    revs = []
    cs = base
    for n in range(1, 14):
        cs = with_image(base, f"nginx:{n}")
        revs.append(revision_dict(cs, n))
    cs["spec"]["revisionHistoryLimit"] = 10
    live = revs[-1]["metadata"]["name"]
    pods = [pod_obj(pod_dict(cs, live, 0))]
    view = CloneSetView(cloneset=cs_obj(cs), pods=pods, revisions=[rev_obj(r) for r in revs])
    p = plan_cloneset(view, now=NOW)
    deleted = [c.revision for c in p.commands if c.verb == "revision-delete"]
    # 13 revisions: 1 live (current = update) + 12 others -> the 2 oldest go
    assert deleted == [revs[0]["metadata"]["name"], revs[1]["metadata"]["name"]]
