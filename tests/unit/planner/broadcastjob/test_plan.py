"""The BroadcastJob pass: Kruise's BroadcastJob controller tests (the AdvancedCronJob scenarios that depend on
them) and the arithmetic of eligible nodes, parallelism, completion, failure policies, deadline and TTL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from schemas.broadcastjob import BroadcastJob
from schemas.kube import Node, Pod
from schemas.messages import CreateOp, DeleteOp
from services.planner.advancedcronjob.plan import plan_advancedcronjob
from services.planner.broadcastjob.plan import BcjPlan, eligible, plan_broadcastjob, pod_name, quantity
from tests.unit.planner.advancedcronjob.helpers import acj

NOW = datetime(2026, 6, 1, 10, 0, 0, tzinfo=UTC)
UID = "bcj-uid"


def bcj(*, parallelism: Any = None, failure: str = "", completion: str = "", deadline: int | None = None,
        ttl: int | None = None, paused: bool = False, status: dict[str, Any] | None = None,
        pod_spec: dict[str, Any] | None = None) -> BroadcastJob:
    cp: dict[str, Any] = {"type": completion} if completion else {}
    if deadline is not None:
        cp["activeDeadlineSeconds"] = deadline
    if ttl is not None:
        cp["ttlSecondsAfterFinished"] = ttl
    spec: dict[str, Any] = {"template": {"spec": {"restartPolicy": "Never",
                                                  "containers": [{"name": "c", "image": "busybox"}],
                                                  **(pod_spec or {})}},
                            "completionPolicy": cp, "failurePolicy": {"type": failure} if failure else {},
                            "paused": paused}
    if parallelism is not None:
        spec["parallelism"] = parallelism
    return msgspec.convert({"metadata": {"name": "bj", "namespace": "default", "uid": UID, "resourceVersion": "3",
                                         "generation": 1},
                            "spec": spec, "status": status or {}}, BroadcastJob)


def node(name: str, **extra: Any) -> Node:
    spec = {k: v for k, v in extra.items() if k in ("taints", "unschedulable")}
    labels = extra.get("labels", {})
    return msgspec.convert({"metadata": {"name": name, "labels": labels}, "spec": spec,
                            "status": {"allocatable": extra.get("allocatable", {"cpu": "4", "memory": "8Gi"})}}, Node)


def pod(node_name: str, phase: str = "Running", restarts: int = 0) -> Pod:
    name = pod_name("bj", node_name)
    return msgspec.convert({"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                                         "ownerReferences": [{"apiVersion": "apps.kruise.io/v1alpha1",
                                                              "kind": "BroadcastJob", "name": "bj", "uid": UID,
                                                              "controller": True}]},
                            "spec": {"nodeName": node_name},
                            "status": {"phase": phase,
                                       "containerStatuses": [{"name": "c", "restartCount": restarts}]}}, Pod)


def nodes(n: int) -> list[Node]:
    return [node(f"n{i}") for i in range(1, n + 1)]


def created(p: BcjPlan) -> list[str]:
    return [op.body["spec"]["nodeName"] for c in p.commands for op in c.ops if isinstance(op, CreateOp)]


def test_M42_percent_parallelism() -> None:
    p = plan_broadcastjob(bcj(parallelism="40%"), [pod("n1")], nodes(5), now=NOW)
    assert len(created(p)) == 1  # ceil(40% of 5) = 2, one active
    assert (p.status.active, p.status.desired, p.status.phase) == (2, 5, "running")
    # and for the AdvancedCronJob that owns it, a running BroadcastJob is an active child
    status_only = msgspec.structs.replace(bcj(), status=p.status)
    child = msgspec.structs.replace(status_only, metadata=msgspec.structs.replace(
        status_only.metadata, annotations={"apps.kruise.io/scheduled-at": "2026-06-01T09:00:00Z"}))
    a = acj("0 * * * *", broadcast=True)
    assert [r.name for r in plan_advancedcronjob(a, [child], now=NOW).status.active] == ["bj"]


def test_M43_fail_fast() -> None:
    p = plan_broadcastjob(bcj(failure="FailFast"), [pod("n1", "Succeeded"), pod("n2", "Succeeded"),
                                                    pod("n3", "Failed")], nodes(3), now=NOW)
    (cond,) = p.status.conditions
    assert (cond.type, cond.status) == ("Failed", "True")
    assert cond.message == "failure policy is FailurePolicyTypeFailFast and failed pod is found"
    assert (p.status.phase, p.status.active) == ("failed", 0)
    warn = [c.on_success for c in p.commands if c.verb == "event"]
    assert warn and warn[0] is not None and warn[0].reason == "failed pod is found"
    assert warn[0].message.endswith(": 2 pods succeeded, 1 pods failed")


def test_fail_fast_deletes_the_active_pods() -> None:
    p = plan_broadcastjob(bcj(), [pod("n1", "Failed"), pod("n2")], nodes(3), now=NOW)
    assert p.deleted == [pod_name("bj", "n2")] and created(p) == []


def test_M44_continue_keeps_running() -> None:
    p = plan_broadcastjob(bcj(failure="Continue"), [pod("n1", "Succeeded"), pod("n2", "Failed")], nodes(3), now=NOW)
    assert created(p) == ["n3"]
    assert (p.status.phase, p.status.active, p.status.conditions) == ("running", 1, [])


def test_M45_pause_on_failure() -> None:
    p = plan_broadcastjob(bcj(failure="Pause"), [pod("n1", "Succeeded"), pod("n2", "Failed")], nodes(3), now=NOW)
    assert created(p) == []
    assert (p.status.phase, p.status.conditions) == ("paused", [])


def test_complete_when_every_eligible_node_has_a_finished_pod() -> None:
    p = plan_broadcastjob(bcj(), [pod("n1", "Succeeded"), pod("n2", "Succeeded")], nodes(2), now=NOW)
    (cond,) = p.status.conditions
    assert (cond.type, cond.message) == ("Complete", "Job completed, 2 pods succeeded, 0 pods failed")
    assert p.status.phase == "completed" and p.status.completion_time == "2026-06-01T10:00:00Z"
    events = [c.on_success for c in p.commands if c.verb == "event"]
    assert events[0] is not None and events[0].message == "Job default/bj is completed, 2 pods succeeded, 0 pods failed"


def test_never_never_finishes() -> None:
    p = plan_broadcastjob(bcj(completion="Never"), [pod("n1", "Succeeded")], nodes(1), now=NOW)
    assert p.status.conditions == [] and p.status.phase == "running"


def test_no_eligible_node_never_completes() -> None:
    p = plan_broadcastjob(bcj(), [], [], now=NOW)
    assert p.status.desired == 0 and p.status.conditions == []


def test_parallelism_and_slow_start() -> None:
    p = plan_broadcastjob(bcj(parallelism=3), [], nodes(10), now=NOW)
    assert created(p) == ["n1", "n10", "n2"]  # node-name order, at most 3
    p = plan_broadcastjob(bcj(parallelism=3), [], nodes(10), now=NOW, create_limit=1)
    assert len(created(p)) == 1


def test_ten_nodes_parallelism_three_runs_one_pod_on_each_over_passes() -> None:
    job, pods, all_nodes = bcj(parallelism=3), [], nodes(10)
    for _ in range(10):
        p = plan_broadcastjob(job, pods, all_nodes, now=NOW)
        assert p.status.active <= 3
        pods = [msgspec.structs.replace(x, status=msgspec.structs.replace(x.status, phase="Succeeded")) for x in pods]
        pods += [pod(n) for n in created(p)]
        job = msgspec.structs.replace(job, status=p.status)
        if p.status.phase == "completed":
            break
    assert sorted(x.spec.node_name for x in pods) == sorted(n.metadata.name for n in all_nodes)
    assert job.status.phase == "completed" and job.status.succeeded == 10


def test_pod_object() -> None:
    p = plan_broadcastjob(bcj(), [], nodes(1), now=NOW)
    (cmd,) = [c for c in p.commands if c.verb == "create"]
    op = cmd.ops[0]
    assert isinstance(op, CreateOp) and op.owner is not None and op.owner.uid == UID
    meta = op.body["metadata"]
    assert meta["name"] == pod_name("bj", "n1") and meta["labels"] == {"broadcastjob-name": "bj",
                                                                       "broadcastjob-controller-uid": UID}
    assert meta["ownerReferences"][0]["controller"] is True and op.body["spec"]["nodeName"] == "n1"
    assert cmd.on_success is not None and cmd.on_success.message == f"Created pod: {meta['name']}"
    assert [e.kind for e in cmd.expects] == ["present"]


def test_active_deadline() -> None:
    job = bcj(deadline=60, status={"startTime": "2026-06-01T09:59:30Z"})
    running = plan_broadcastjob(job, [pod("n1")], nodes(1), now=NOW)
    assert running.requeue_after == 30
    late = plan_broadcastjob(job, [pod("n1")], nodes(1), now=datetime(2026, 6, 1, 10, 0, 30, tzinfo=UTC))
    (cond,) = late.status.conditions
    assert cond.message == "Job default/bj was active longer than specified deadline"
    assert late.deleted == [pod_name("bj", "n1")]


def test_ttl_after_finished_deletes_the_job() -> None:
    done = {"conditions": [{"type": "Complete", "status": "True"}], "completionTime": "2026-06-01T09:59:00Z",
            "phase": "completed"}
    wait = plan_broadcastjob(bcj(ttl=120, status=done), [], nodes(1), now=NOW)
    assert wait.commands == [] and wait.requeue_after == 60
    gone = plan_broadcastjob(bcj(ttl=30, status=done), [], nodes(1), now=NOW)
    (cmd,) = gone.commands
    assert isinstance(cmd.ops[0], DeleteOp) and cmd.ops[0].name == "bj" and cmd.ops[0].uid == UID


def test_restart_limit_counts_an_on_failure_pod_as_failed() -> None:
    job = bcj(failure="Continue", pod_spec={"restartPolicy": "OnFailure"})
    p = plan_broadcastjob(job, [pod("n1", restarts=2)], nodes(1), now=NOW)
    assert p.status.failed == 1


@pytest.mark.parametrize(("node_kw", "pod_spec", "fits"), [
    pytest.param({}, {}, True, id="plain"),
    pytest.param({"taints": [{"key": "k", "effect": "NoSchedule"}]}, {}, False, id="untolerated-taint"),
    pytest.param({"taints": [{"key": "k", "effect": "NoSchedule"}]},
                 {"tolerations": [{"key": "k", "operator": "Exists"}]}, True, id="tolerated-taint"),
    pytest.param({"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}, {}, True, id="prefer-no-schedule"),
    pytest.param({"unschedulable": True}, {}, False, id="cordoned"),
    pytest.param({"labels": {"disk": "ssd"}}, {"nodeSelector": {"disk": "ssd"}}, True, id="selector-match"),
    pytest.param({}, {"nodeSelector": {"disk": "ssd"}}, False, id="selector-miss"),
    pytest.param({}, {"nodeName": "other"}, False, id="node-name"),
    pytest.param({}, {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}]}}}},
                 True, id="affinity-on-name"),
    pytest.param({"labels": {"zone": "a"}}, {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]}}}}, False,
                 id="affinity-not-in"),
    pytest.param({"allocatable": {"cpu": "500m", "memory": "1Gi"}},
                 {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1"}}}]}, False,
                 id="requests-do-not-fit"),
    pytest.param({"allocatable": {"cpu": "2", "memory": "1Gi"}},
                 {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1500m",
                                                                                        "memory": "512Mi"}}}]},
                 True, id="requests-fit"),
])
def test_eligible_nodes(node_kw: dict[str, Any], pod_spec: dict[str, Any], fits: bool) -> None:
    from schemas.kube import PodPlacementView

    placement = msgspec.convert({"containers": [{"name": "c", "image": "i"}], **pod_spec}, PodPlacementView)
    assert eligible(node("n", **node_kw), placement) is fits


def test_a_pod_on_a_node_that_stopped_fitting_is_deleted() -> None:
    p = plan_broadcastjob(bcj(pod_spec={"nodeSelector": {"pool": "x"}}), [pod("n1")],
                          [node("n1"), node("n2", labels={"pool": "x"})], now=NOW)
    assert p.deleted == [pod_name("bj", "n1")] and created(p) == ["n2"]


def test_quantities() -> None:
    assert quantity("1500m") == quantity("1.5") and quantity("1Gi") == 2**30 and quantity("1e3") == 1000
    assert quantity(2) == 2 and quantity("bogus") is None


def test_an_invalid_broadcastjob_is_reported_not_run() -> None:
    job = bcj(pod_spec={"restartPolicy": "Always"})
    p = plan_broadcastjob(job, [], nodes(2), now=NOW)
    assert not p.accepted and created(p) == [] and [e.type for e in p.events] == ["rejected"]
    (cond,) = p.status.conditions
    assert cond.type == "InvalidSpec" and "pod restartPolicy can only be Never or OnFailure" in cond.message
    again = plan_broadcastjob(msgspec.structs.replace(job, status=p.status), [], nodes(2), now=NOW)
    assert again.commands == [] and again.events == []  # told once
