"""Kruise's TestUpdate (`sync/cloneset_update_test.go`, r1) and update-step behaviour: one pass, then the pod as written."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from services.planner.cloneset.plan import plan_cloneset
from services.planner.cloneset.view import Plan
from services.planner.kit.gates import FeatureGates
from services.planner.kit.timeutil import format_time
from tests.unit.planner.helpers import NOW, cs_dict, pod_dict, revision_dict, with_image
from tests.unit.planner.simkube import Cluster

IMAGE_ID = "docker://image-id-xyz"


def setup(
    strategy: str = "InPlaceIfPossible",
    *,
    on_new: bool = False,
    grace: int | None = None,
    lifecycle: dict[str, Any] | None = None,
    new_env: bool = False,
    state: str = "Normal",
    node: str | None = "node-1",
    template_hash: bool = True,
    condition: bool | None = True,
    replicas: int = 1,
    max_unavailable: Any = None,
) -> tuple[Cluster, str, str]:
    old = cs_dict(
        replicas=replicas,
        strategy=strategy,
        image="foo1",
        grace=grace,
        lifecycle=lifecycle,
        max_unavailable=max_unavailable,
    )
    new = with_image(old, "foo2")
    if new_env:
        new["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "K", "value": "v"}]
    r_old, r_new = revision_dict(old, 1), revision_dict(new, 2)
    new["status"] = {
        "currentRevision": r_old["metadata"]["name"],
        "updateRevision": r_new["metadata"]["name"],
        "observedGeneration": new["metadata"]["generation"],
    }
    rev = r_new["metadata"]["name"] if on_new else r_old["metadata"]["name"]
    pods = []
    for i in range(replicas):
        pod = pod_dict(
            new, rev, i, state=state, node=node, image="foo2" if on_new else "foo1", inplace_ready=condition
        )
        pod["status"]["containerStatuses"][0]["imageID"] = IMAGE_ID
        if not template_hash:
            del pod["metadata"]["labels"]["pod-template-hash"]
        pods.append(pod)
    return Cluster(new, pods, [r_old, r_new]), r_old["metadata"]["name"], r_new["metadata"]["name"]


def one_pass(c: Cluster, now: Any = NOW, gates: FeatureGates | None = None) -> Plan:
    from services.planner.kit.gates import DEFAULT_GATES

    plan = plan_cloneset(c.view(), now=now, gates=gates or DEFAULT_GATES)
    c.apply(plan, now)
    return plan


def pod0(c: Cluster) -> dict[str, Any]:
    return c.pods["demo-p000"]


def cond(pod: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((x for x in pod["status"]["conditions"] if x["type"] == type_), None)


def verbs(plan: Plan) -> list[str]:
    return [x.verb for x in plan.commands if x.verb != "status"]


def test_D1_do_nothing_but_backfill() -> None:
    c, _, new = setup(on_new=True, template_hash=False)
    p = one_pass(c)
    assert verbs(p) == ["backfill"]
    assert pod0(c)["metadata"]["labels"]["pod-template-hash"] == new.rsplit("-", 1)[1]


def test_D2_condition_initialised() -> None:
    c, _, _ = setup(on_new=True, condition=None)
    p = one_pass(c)
    assert verbs(p) == ["inplace-refresh"]
    got = cond(pod0(c), "InPlaceUpdateReady")
    assert got is not None and got["status"] == "True"


def test_D3_recreate_marks_specified_delete() -> None:
    c, _, _ = setup("ReCreate")
    p = one_pass(c)
    assert verbs(p) == ["update-recreate"]
    assert pod0(c)["metadata"]["labels"]["apps.kruise.io/specified-delete"] == "true"


def test_D4_not_in_place_falls_back_to_recreate() -> None:
    c, _, _ = setup("InPlaceIfPossible", new_env=True)
    p = one_pass(c)
    assert verbs(p) == ["update-recreate"]
    assert pod0(c)["metadata"]["labels"]["apps.kruise.io/specified-delete"] == "true"


def test_D4b_in_place_only_cannot_recreate() -> None:
    c, _, _ = setup("InPlaceOnly", new_env=True)
    p = plan_cloneset(c.view(), now=NOW)
    assert verbs(p) == []
    failed = next(x for x in p.status.conditions if x.type == "FailedUpdate")
    assert failed.message == "find Pod demo-p000 update strategy is InPlaceOnly but can not update in-place"
    assert any(e.type == "update-failed" for e in p.events)


def test_D5_in_place_update() -> None:
    c, _, new = setup()
    p = one_pass(c)
    assert verbs(p) == ["update-in-place"]
    pod = pod0(c)
    assert pod["spec"]["containers"][0]["image"] == "foo2"
    labels = pod["metadata"]["labels"]
    assert labels["controller-revision-hash"] == new
    assert labels["pod-template-hash"] == new.rsplit("-", 1)[1]
    assert labels["lifecycle.apps.kruise.io/state"] == "Updating"
    state = json.loads(pod["metadata"]["annotations"]["apps.kruise.io/inplace-update-state"])
    ts = format_time(NOW)
    assert state == {
        "revision": new,
        "updateTimestamp": ts,
        "lastContainerStatuses": {"main": {"imageID": IMAGE_ID}},
        "updateImages": True,
        "containerBatchesRecord": [{"timestamp": ts, "containers": ["main"]}],
    }
    got = cond(pod, "InPlaceUpdateReady")
    assert got is not None and got["status"] == "False" and got["reason"] == "StartInPlaceUpdate"
    ready = cond(pod, "Ready")
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "ReadinessGatesNotReady"


def test_D6_in_place_with_grace() -> None:
    c, _, new = setup(grace=3630)
    p = one_pass(c)
    assert verbs(p) == ["update-in-place"] and p.requeue_after == 3630
    pod = pod0(c)
    assert pod["spec"]["containers"][0]["image"] == "foo1"
    assert pod["metadata"]["labels"]["controller-revision-hash"] == new
    assert pod["metadata"]["labels"]["lifecycle.apps.kruise.io/state"] == "Updating"
    state = json.loads(pod["metadata"]["annotations"]["apps.kruise.io/inplace-update-state"])
    assert state == {"revision": new, "updateTimestamp": format_time(NOW), "updateImages": True}
    grace = pod["metadata"]["annotations"]["apps.kruise.io/inplace-update-grace"]
    assert json.loads(grace) == {"revision": new, "containerImages": {"main": "foo2"}, "graceSeconds": 3630}
    got = cond(pod, "InPlaceUpdateReady")
    assert got is not None and got["status"] == "False" and got["reason"] == "StartInPlaceUpdate"


def test_D7_during_grace_nothing() -> None:
    c, _, _ = setup(grace=3630)
    one_pass(c)
    del pod0(c)["metadata"]["labels"]["pod-template-hash"]
    p = one_pass(c, NOW + timedelta(seconds=10))
    assert verbs(p) == ["backfill"]
    assert p.requeue_after == 3620
    assert pod0(c)["spec"]["containers"][0]["image"] == "foo1"


def test_D8_after_grace_images_applied() -> None:
    c, _, new = setup(grace=3630)
    one_pass(c)
    later = NOW + timedelta(seconds=3631)
    p = one_pass(c, later)
    assert verbs(p) == ["inplace-refresh"]
    pod = pod0(c)
    assert pod["spec"]["containers"][0]["image"] == "foo2"
    assert "apps.kruise.io/inplace-update-grace" not in pod["metadata"]["annotations"]
    state = json.loads(pod["metadata"]["annotations"]["apps.kruise.io/inplace-update-state"])
    assert state["lastContainerStatuses"] == {"main": {"imageID": IMAGE_ID}}
    assert state["containerBatchesRecord"] == [{"timestamp": format_time(later), "containers": ["main"]}]
    assert state["revision"] == new


def test_D9_preparing_normal_to_normal_when_scheduled() -> None:
    c, _, _ = setup(on_new=True, state="PreparingNormal")
    assert verbs(one_pass(c)) == ["lifecycle"]
    assert pod0(c)["metadata"]["labels"]["lifecycle.apps.kruise.io/state"] == "Normal"
    assert pod0(c)["metadata"]["annotations"]["lifecycle.apps.kruise.io/timestamp"] == format_time(NOW)


def test_D10_unscheduled_stays_preparing_normal() -> None:
    c, _, _ = setup(on_new=True, state="PreparingNormal", node="")
    assert verbs(one_pass(c)) == []
    assert pod0(c)["metadata"]["labels"]["lifecycle.apps.kruise.io/state"] == "PreparingNormal"


@pytest.mark.parametrize(
    ("hooked", "expected"),
    [(False, "PreparingNormal"), (True, "Normal")],
    ids=["D11-not-hooked", "D11-hooked"],
)
def test_D11_pre_normal_hook(hooked: bool, expected: str) -> None:
    c, _, _ = setup(
        on_new=True,
        state="PreparingNormal",
        lifecycle={"preNormal": {"labelsHandler": {"preNormalHooked": "true"}}},
    )
    if hooked:
        pod0(c)["metadata"]["labels"]["preNormalHooked"] = "true"
    one_pass(c)
    assert pod0(c)["metadata"]["labels"]["lifecycle.apps.kruise.io/state"] == expected


def test_D12_recreate_preparing_normal_specified_delete() -> None:
    c, _, _ = setup(
        "ReCreate",
        state="PreparingNormal",
        lifecycle={"preNormal": {"finalizersHandler": ["slb.com/online"]}},
    )
    p = one_pass(c)
    assert verbs(p) == ["update-recreate"]
    assert pod0(c)["metadata"]["labels"]["apps.kruise.io/specified-delete"] == "true"
    assert pod0(c)["metadata"]["labels"]["lifecycle.apps.kruise.io/state"] == "PreparingNormal"


# --- more the update step behaviour --------------------------------------------------------------------------------


def test_completion_moves_updating_to_normal_and_ready() -> None:
    c, _, _ = setup()
    one_pass(c)
    c.kubelet(NOW)  # restarts the container: new imageID
    p = one_pass(c, NOW + timedelta(seconds=1))
    assert verbs(p) == ["lifecycle"]  # the InPlaceUpdateReady=True write leads the same command
    assert p.commands[0].ops[0].subresource == "status"  # type: ignore[union-attr]
    pod = pod0(c)
    assert pod["metadata"]["labels"]["lifecycle.apps.kruise.io/state"] == "Normal"
    got = cond(pod, "InPlaceUpdateReady")
    assert got is not None and got["status"] == "True" and not got.get("reason")


def test_in_place_hook_parks_pod_in_preparing_update() -> None:
    c, _, new = setup(lifecycle={"inPlaceUpdate": {"labelsHandler": {"hold": "true"}}})
    pod0(c)["metadata"]["labels"]["hold"] = "true"
    p = one_pass(c)
    assert verbs(p) == ["lifecycle"]
    assert pod0(c)["metadata"]["labels"]["lifecycle.apps.kruise.io/state"] == "PreparingUpdate"
    assert pod0(c)["metadata"]["labels"]["controller-revision-hash"] != new
    # still hooked: waits
    assert verbs(one_pass(c)) == []
    # released: updated in place
    del pod0(c)["metadata"]["labels"]["hold"]
    assert verbs(one_pass(c)) == ["update-in-place"]
    assert pod0(c)["metadata"]["labels"]["controller-revision-hash"] == new
    # completed: lifecycle exists and the pod is not all-hooked -> Updated, then the user re-adds the hook -> Normal
    c.kubelet(NOW)
    one_pass(c)
    assert pod0(c)["metadata"]["labels"]["lifecycle.apps.kruise.io/state"] == "Updated"
    pod0(c)["metadata"]["labels"]["hold"] = "true"
    one_pass(c)
    assert pod0(c)["metadata"]["labels"]["lifecycle.apps.kruise.io/state"] == "Normal"


def test_paused_stops_updates() -> None:
    c, _, _ = setup()
    c.cs["spec"]["updateStrategy"]["paused"] = True
    assert verbs(one_pass(c)) == []


def test_update_budget_counts_unavailable_pods() -> None:
    # 3 replicas, mu 1: one old pod already unavailable -> updating it is free, but the target budget (1) stops
    # after one accepted pod.
    c, _, new = setup(replicas=3, max_unavailable=1)
    c.pods["demo-p001"]["status"]["conditions"][1]["status"] = "False"
    p = one_pass(c)
    assert verbs(p) == ["update-in-place"]
    assert p.commands[0].pod == "demo-p001"  # not-ready pods first (ActivePods order)


def test_rollback_with_gate_moves_pods_back() -> None:
    c, old, new = setup(on_new=True, replicas=2, max_unavailable=2)
    c.cs["spec"]["updateStrategy"]["partition"] = 2  # raise partition: roll back both
    p = one_pass(c, gates=FeatureGates(clone_set_partition_rollback=True))
    assert verbs(p) == ["update-in-place", "update-in-place"]
    assert all(x.revision == old for x in p.commands if x.verb == "update-in-place")
    c2, _, _ = setup(on_new=True, replicas=2, max_unavailable=2)
    c2.cs["spec"]["updateStrategy"]["partition"] = 2
    assert verbs(one_pass(c2)) == []


def test_priority_strategy_orders_candidates() -> None:
    c, _, _ = setup(replicas=3, max_unavailable=1)
    c.cs["spec"]["updateStrategy"]["priorityStrategy"] = {
        "weightPriority": [{"weight": 50, "matchSelector": {"matchLabels": {"first": "yes"}}}]
    }
    c.pods["demo-p002"]["metadata"]["labels"]["first"] = "yes"
    p = one_pass(c)
    assert [x.pod for x in p.commands if x.verb == "update-in-place"] == ["demo-p002"]


def test_terminating_pods_are_inactive_but_keep_their_ids() -> None:
    c, _, _ = setup(on_new=True, replicas=2)
    c.pods["demo-p001"]["metadata"]["deletionTimestamp"] = format_time(NOW)
    p = plan_cloneset(c.view(), now=NOW)
    assert p.status.replicas == 1
    creates = [x for x in p.commands if x.verb == "create"]
    assert len(creates) == 1
    iid = creates[0].ops[-1].body["metadata"]["labels"]["apps.kruise.io/cloneset-instance-id"]  # type: ignore[union-attr]
    assert iid not in ("p000", "p001")
