"""The failed-pod deletion backoff (per DaemonSet uid, observedGeneration and node; 1 s doubling to 15 min)."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from schemas.kinds import CONTROLLER_REVISION, NODE
from schemas.kube import ControllerRevision, Node
from services.planner.daemonset.backoff import BACKOFF_MAX, FailedPodBackoff, backoff_key
from services.planner.daemonset.planner import DaemonSetPlanner
from services.planner.kit.gates import DEFAULT_GATES
from tests.unit.planner.daemonset.helpers import NOW, UID, DsCluster, ds_dict, fail

NODES = [f"node-{i}" for i in range(3)]


def _steady() -> DsCluster:
    c = DsCluster(ds_dict(), NODES)
    c.settle(NOW)
    return c


def _warnings(plan: object) -> list[str]:
    return [cmd.on_success.reason for cmd in plan.commands  # type: ignore[attr-defined]
            if cmd.on_success is not None and cmd.on_success.type == "Warning"]


def test_a_pod_failing_again_on_its_node_waits_out_a_doubling_backoff() -> None:
    c = _steady()
    t0 = NOW + timedelta(seconds=30)
    first = fail(c, "node-1")
    plan = c.step(t0)
    assert plan.deleted == [first] and _warnings(plan) == ["FailedDaemonPod"]
    plan = c.step(t0 + timedelta(seconds=0.2))  # the replacement
    assert [n for _, n in plan.created] == ["node-1"]
    second = fail(c, "node-1")
    plan = c.step(t0 + timedelta(seconds=0.5), kubelet=False)  # inside the 1 s backoff: kept, looked at again after it
    assert plan.deleted == [] and plan.created == [] and _warnings(plan) == []
    assert plan.requeue_after == 1.0
    assert second in c.pods
    plan = c.step(t0 + timedelta(seconds=1))  # the backoff is over: deleted, the next one is 2 s
    assert plan.deleted == [second] and _warnings(plan) == ["FailedDaemonPod"]
    c.step(t0 + timedelta(seconds=1.2))
    third = fail(c, "node-1")
    plan = c.step(t0 + timedelta(seconds=2.5), kubelet=False)
    assert plan.deleted == [] and plan.requeue_after == 2.0
    plan = c.step(t0 + timedelta(seconds=3))
    assert plan.deleted == [third]
    key = backoff_key(UID, c.daemonset().status.observed_generation, "node-1")
    assert plan.backoff[key].backoff == 4.0


def test_the_backoff_is_per_node_and_per_observed_generation() -> None:
    c = _steady()
    t0 = NOW + timedelta(seconds=30)
    fail(c, "node-1")
    c.step(t0)
    c.step(t0 + timedelta(seconds=0.1))
    fail(c, "node-1")
    other = fail(c, "node-2")  # another node has no backoff yet: deleted at once
    plan = c.step(t0 + timedelta(seconds=0.3), kubelet=False)
    assert plan.deleted == [other]
    held = c.pods_by_node()["node-1"][0]
    assert held in c.pods
    # a new generation: once a full pass observed it, (uid, 2, node-1) has no backoff
    c.cs["metadata"]["generation"] += 1
    c.cs["status"]["observedGeneration"] = c.cs["metadata"]["generation"]
    plan = c.step(t0 + timedelta(seconds=0.4), kubelet=False)
    assert held in plan.deleted


def test_backoff_doubles_to_fifteen_minutes_and_is_forgotten_after_thirty() -> None:
    b = FailedPodBackoff({}, NOW)
    lengths = [b.next("k") for _ in range(12)]
    assert lengths == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    assert b.in_backoff("k") == 900
    later = FailedPodBackoff(b.entries(), NOW + timedelta(seconds=899))
    assert later.in_backoff("k") == 900
    assert FailedPodBackoff(b.entries(), NOW + timedelta(seconds=900)).in_backoff("k") is None
    gone = FailedPodBackoff(b.entries(), NOW + timedelta(seconds=2 * BACKOFF_MAX + 1))
    assert gone.entries() == {} and gone.next("k") == 1


def test_the_planner_hands_the_backoff_from_pass_to_pass() -> None:
    """The registry entry keeps each DaemonSet's backoff between the engine's passes."""
    c = _steady()
    planner = DaemonSetPlanner()
    nodes = [msgspec.convert(n, Node) for _, n in sorted(c.nodes.items())]
    revisions = [msgspec.convert(r, ControllerRevision) for r in c.revisions.values()]
    fail(c, "node-0")

    def plan(at: float) -> list[str]:
        p = planner.plan(c.daemonset(), c.pod_views(), {NODE.token: nodes, CONTROLLER_REVISION.token: revisions}, None, now=NOW + timedelta(seconds=at),
                         gates=DEFAULT_GATES, create_limit=None)
        return p.deleted

    assert len(plan(30)) == 1  # decided (not applied): the pod is still there and Failed
    assert plan(30.5) == []  # in the backoff the first pass started
    assert len(plan(31)) == 1
