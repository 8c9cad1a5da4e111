"""The chaos checker's rules on hand-made pods: what is a violation, and what must not be flagged."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from schemas.cloneset import CloneSet
from schemas.kube import Pod
from services.chaoscheck import (
    EVENT_TWICE,
    PARTITION,
    TOO_FEW,
    TOO_MANY,
    UNAVAILABLE,
    UPDATED_TWICE,
    Budget,
    Checker,
    KubeEventView,
    _PodHistory,
    convergence_problems,
    duplicate_events,
    state_findings,
    update_revision,
    updated_twice,
)

CS_UID = "cs-uid"


def cloneset(replicas: int = 6, image: str = "img:v1", *, generation: int = 1, **strategy: Any) -> CloneSet:
    body = {
        "metadata": {"name": "web", "namespace": "default", "uid": CS_UID, "generation": generation},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "updateStrategy": strategy,
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "main", "image": image}]}}},
    }
    return msgspec.convert(body, CloneSet)


def with_status(cs: CloneSet, pods: list[Pod], **override: Any) -> CloneSet:
    rev = update_revision(cs)
    ready = sum(1 for p in pods if _ready(p))
    updated = [p for p in pods if p.metadata.labels.get("controller-revision-hash") == rev]
    status = {"observedGeneration": cs.metadata.generation, "replicas": len(pods), "readyReplicas": ready,
              "availableReplicas": ready, "updatedReplicas": len(updated),
              "updatedReadyReplicas": sum(1 for p in updated if _ready(p)), "updateRevision": rev,
              "currentRevision": rev, **override}
    return msgspec.structs.replace(cs, status=msgspec.convert(status, type(cs.status)))


def _ready(p: Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)


def pod(name: str, cs: CloneSet | None = None, *, ready: bool = True, deleting: bool = False,
        revision: str | None = None, image: str | None = None, status_image: str | None = None,
        container_id: str | None = None, restarts: int = 0, uid: str | None = None,
        annotations: dict[str, str] | None = None) -> Pod:
    cs = cs or cloneset()
    image = image or cs.spec.template.spec["containers"][0]["image"]
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "default", "uid": uid or f"uid-{name}",
                     "labels": {"app": "web", "controller-revision-hash": revision or update_revision(cs)},
                     "annotations": annotations or {},
                     "ownerReferences": [{"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                                          "name": "web", "uid": CS_UID, "controller": True}]},
        "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": image}]},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                   "containerStatuses": [{"name": "main", "image": status_image or image, "ready": ready,
                                          "restartCount": restarts,
                                          "containerID": container_id or f"sim://{name}-{restarts}"}]},
    }
    if deleting:
        body["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return msgspec.convert(body, Pod)


def kinds(cs: CloneSet, pods: list[Pod], armed: bool = True, partition_armed: bool = True) -> set[str]:
    return {f.kind for f in state_findings(cs, pods, armed=armed, partition_armed=partition_armed)}


# --- budgets ----------------------------------------------------------------------------------------


def test_budget_uses_kruise_rounding() -> None:
    # maxUnavailable rounds up without surge, down with surge; maxSurge rounds up
    assert Budget.of(cloneset(6, maxUnavailable="20%")) == Budget(6, 2, 0, 0)
    assert Budget.of(cloneset(6, maxUnavailable="20%", maxSurge="10%")) == Budget(6, 1, 1, 0)
    assert Budget.of(cloneset(10, partition="30%")).partition == 3
    assert Budget.of(cloneset(10)).max_unavailable == 2  # the default 20%


# --- unavailable / lost / duplicated ---------------------------------------------------------------


def test_unavailable_beyond_max_unavailable_is_flagged() -> None:
    cs = cloneset(6, maxUnavailable=2)
    pods = [pod(f"p{i}", cs, ready=i >= 3) for i in range(6)]  # 3 not Ready
    assert kinds(cs, pods) == {UNAVAILABLE}


def test_unavailable_within_budget_is_not_flagged() -> None:
    cs = cloneset(6, maxUnavailable=2)
    assert kinds(cs, [pod(f"p{i}", cs, ready=i >= 2) for i in range(6)]) == set()


def test_pods_being_deleted_count_as_unavailable_even_if_ready() -> None:
    cs = cloneset(6, maxUnavailable=2)
    pods = [pod(f"p{i}", cs, deleting=i < 3) for i in range(6)] + [pod(f"n{i}", cs, ready=False) for i in range(3)]
    assert kinds(cs, pods) == {UNAVAILABLE}


def test_unready_surge_pods_are_not_unavailability() -> None:
    # maxUnavailable 0, maxSurge 2: two new pods starting next to six Ready ones is the plan
    cs = cloneset(6, maxUnavailable=0, maxSurge=2)
    pods = [pod(f"p{i}", cs) for i in range(6)] + [pod(f"s{i}", cs, ready=False) for i in range(2)]
    assert kinds(cs, pods) == set()
    assert kinds(cs, pods + [pod("s3", cs, ready=False)]) == {TOO_MANY}


def test_creation_and_scale_up_are_not_unavailability() -> None:
    cs = cloneset(6, maxUnavailable=1)
    starting = [pod(f"p{i}", cs, ready=False) for i in range(6)]
    assert kinds(cs, starting, armed=False) == set()
    assert kinds(cs, starting[:2], armed=False) == set()  # still being created


def test_too_few_and_too_many_pods() -> None:
    cs = cloneset(6, maxUnavailable=1)
    assert kinds(cs, [pod(f"p{i}", cs) for i in range(4)]) == {UNAVAILABLE, TOO_FEW}
    assert kinds(cs, [pod(f"p{i}", cs) for i in range(7)]) == {TOO_MANY}
    # a replacement created while its predecessor is still terminating is not a duplicate
    assert kinds(cs, [pod(f"p{i}", cs) for i in range(6)] + [pod("old", cs, deleting=True)]) == set()


# --- partition -------------------------------------------------------------------------------------


def test_update_beyond_partition_is_flagged() -> None:
    old, cs = cloneset(10, "img:v1", partition=3), cloneset(10, "img:v2", partition=3)
    old_rev = update_revision(old)
    seven = [pod(f"n{i}", cs) for i in range(7)] + [pod(f"o{i}", old) for i in range(3)]
    assert kinds(cs, seven) == set()
    eight = [pod(f"n{i}", cs) for i in range(8)] + [pod(f"o{i}", old, revision=old_rev) for i in range(2)]
    assert kinds(cs, eight) == {PARTITION}


def test_partition_does_not_apply_to_the_first_revision() -> None:
    cs = cloneset(10, partition="30%")
    assert kinds(cs, [pod(f"p{i}", cs) for i in range(10)], partition_armed=False) == set()


def test_checker_arms_partition_only_after_a_template_change() -> None:
    c = Checker(clock=lambda: 0.0)
    cs = cloneset(10, partition=3)
    c.cloneset(cs)
    for i in range(10):
        c.pod(pod(f"p{i}", cs))
    assert c.violations == []
    cs2 = cloneset(10, "img:v2", partition=3, generation=2)
    c.cloneset(cs2)
    for i in range(8):  # one too many moved to v2
        c.pod(pod(f"p{i}", cs2))
    assert [v.kind for v in c.violations] == [PARTITION]


# --- updated twice ---------------------------------------------------------------------------------


def test_a_second_restart_into_the_same_image_is_an_update_twice() -> None:
    h = _PodHistory("p")
    assert updated_twice(h, pod("p", container_id="c1")) is None
    assert updated_twice(h, pod("p", container_id="c1")) is None  # the same state again
    found = updated_twice(h, pod("p", container_id="c2", restarts=1))
    assert found is not None and "started 2 times" in found


def test_a_restart_into_an_intermediate_image_is_not_an_update_twice() -> None:
    v1, v2, v3 = cloneset(image="img:v1"), cloneset(image="img:v2"), cloneset(image="img:v3")
    h = _PodHistory("p")
    assert updated_twice(h, pod("p", v1, container_id="c1")) is None
    # v2 patched, then v3 before the kubelet restarted: it first restarts into v2, then into v3
    assert updated_twice(h, pod("p", v2, status_image="img:v1", container_id="c1")) is None
    assert updated_twice(h, pod("p", v3, status_image="img:v1", container_id="c1")) is None
    assert updated_twice(h, pod("p", v3, status_image="img:v2", container_id="c2", restarts=1)) is None
    assert updated_twice(h, pod("p", v3, container_id="c3", restarts=2)) is None


def test_two_in_place_updates_to_one_revision_are_flagged() -> None:
    def state(ts: str) -> dict[str, str]:
        return {"apps.kruise.io/inplace-update-state": f'{{"revision":"web-1","updateTimestamp":"{ts}"}}'}

    h = _PodHistory("p")
    assert updated_twice(h, pod("p", annotations=state("2026-01-01T00:00:01Z"))) is None
    assert updated_twice(h, pod("p", annotations=state("2026-01-01T00:00:01Z"))) is None
    assert updated_twice(h, pod("p", annotations=state("2026-01-01T00:00:05Z"))) is not None
    other = _PodHistory("q")  # a later revision is a new update, not a second one
    assert updated_twice(other, pod("q", annotations=state("2026-01-01T00:00:01Z"))) is None
    ann = {"apps.kruise.io/inplace-update-state": '{"revision":"web-2","updateTimestamp":"2026-01-01T00:00:09Z"}'}
    assert updated_twice(other, pod("q", annotations=ann)) is None


def test_checker_reports_updated_twice() -> None:
    c = Checker(clock=lambda: 0.0)
    c.cloneset(cloneset())
    c.pod(pod("p", container_id="c1"))
    c.pod(pod("p", container_id="c2", restarts=1))
    assert [v.kind for v in c.violations] == [UPDATED_TWICE]


# --- Events ----------------------------------------------------------------------------------------


def event(reason: str, message: str) -> KubeEventView:
    return msgspec.convert({"involvedObject": {"namespace": "default", "name": "web", "uid": CS_UID},
                            "reason": reason, "message": message}, KubeEventView)


def test_an_update_event_twice_for_one_pod_is_flagged() -> None:
    msg = "successfully update pod web-abc in-place(revision web-1)"
    evs = [event("SuccessfulUpdatePodInPlace", msg)] * 2
    found = duplicate_events(evs, {("default", "web-abc"): {"u1"}}, {})
    assert [f.kind for f in found] == [EVENT_TWICE]
    assert duplicate_events(evs[:1], {("default", "web-abc"): {"u1"}}, {}) == []


def test_recycled_pod_names_may_repeat_events() -> None:
    # deterministic instance ids: a ReCreate'd pod comes back with the same name (another uid)
    evs = [event("SuccessfulDelete", "succeed to delete pod web-abc")] * 2
    uids = {("default", "web-abc"): {"u1", "u2"}}
    assert duplicate_events(evs, uids, {("default", "web-abc"): {"u1", "u2"}}) == []
    # ... but a delete reported for a pod that was deleted once is a ghost delete
    assert [f.kind for f in duplicate_events(evs, uids, {("default", "web-abc"): {"u1"}})] == [EVENT_TWICE]


def test_create_events_are_not_counted() -> None:
    evs = [event("SuccessfulCreate", "succeed to create pod web-abc")] * 3
    assert duplicate_events(evs, {}, {}) == []


# --- convergence -----------------------------------------------------------------------------------


def test_converged() -> None:
    cs = cloneset(3)
    pods = [pod(f"p{i}", cs) for i in range(3)]
    assert convergence_problems(with_status(cs, pods), pods) == []


@pytest.mark.parametrize(("case", "expect"), [
    ("generation", "observedGeneration"),
    ("surge-left", "active pods != replicas"),
    ("terminating", "being deleted"),
    ("not-ready", "not Ready"),
    ("old-revision", "pods on"),
    ("stale-status", "status.readyReplicas"),
    ("old-image-running", "not running its images"),
])
def test_not_converged(case: str, expect: str) -> None:
    cs = cloneset(3)
    pods = [pod(f"p{i}", cs) for i in range(3)]
    status: dict[str, Any] = {}
    if case == "generation":
        cs = msgspec.structs.replace(cs, metadata=msgspec.structs.replace(cs.metadata, generation=2))
        status["observedGeneration"] = 1
    elif case == "surge-left":
        pods.append(pod("p3", cs))
    elif case == "terminating":
        pods.append(pod("p3", cs, deleting=True))
    elif case == "not-ready":
        pods[0] = pod("p0", cs, ready=False)
    elif case == "old-revision":
        pods[0] = pod("p0", cs, revision="web-old")
    elif case == "stale-status":
        status["readyReplicas"] = 2
    elif case == "old-image-running":
        pods[0] = pod("p0", cs, status_image="img:v0")
    found = convergence_problems(with_status(cs, pods, **status), pods)
    assert any(expect in p for p in found), found


def test_partitioned_cloneset_converges_at_the_partition() -> None:
    old, cs = cloneset(10, "img:v1", partition=3), cloneset(10, "img:v2", partition=3, generation=2)
    pods = [pod(f"n{i}", cs) for i in range(7)] + [pod(f"o{i}", old) for i in range(3)]
    assert convergence_problems(with_status(cs, pods), pods) == []
    assert convergence_problems(with_status(cs, pods[1:]), pods[1:])  # 6 of 7 updated, one pod missing


# --- episodes --------------------------------------------------------------------------------------


def test_one_breach_is_one_violation_with_its_worst_value() -> None:
    t = [0.0]
    c = Checker(clock=lambda: t[0])
    cs = cloneset(6, maxUnavailable=1)
    c.cloneset(cs)
    for i in range(6):
        c.pod(pod(f"p{i}", cs))  # arms the lower bounds
    for i in range(3):  # 1, 2, 3 pods not Ready
        t[0] += 1
        c.pod(pod(f"p{i}", cs, ready=False))
    for i in range(3):
        t[0] += 1
        c.pod(pod(f"p{i}", cs, container_id=f"sim://p{i}-0"))
    [v] = c.violations
    assert (v.kind, v.worst, v.limit, v.started, v.ended) == (UNAVAILABLE, 3, 5, 2.0, 5.0)


def test_a_breach_flickering_at_its_limit_is_one_violation() -> None:
    t = [0.0]
    c = Checker(clock=lambda: t[0])
    cs = cloneset(6, maxUnavailable=1)
    c.cloneset(cs)
    for i in range(6):
        c.pod(pod(f"p{i}", cs))
    for step, (name, ready) in enumerate([("p0", False), ("p1", False), ("p1", True), ("p1", False),
                                          ("p1", True), ("p0", True)]):
        t[0] = 1 + step * 0.2
        c.pod(pod(name, cs, ready=ready))
    assert len(c.violations) == 1
    t[0] = 10  # much later: a new breach
    c.pod(pod("p0", cs, ready=False))
    c.pod(pod("p1", cs, ready=False))
    assert len(c.violations) == 2


def test_an_extra_event_is_reported_once_while_the_name_is_recycled() -> None:
    c = Checker(clock=lambda: 0.0)
    c.cloneset(cloneset())
    msg = b'"succeed to delete pod web-abc"'
    for i in range(3):  # pod web-abc deleted 3 times (3 uids), but 4 delete Events: one ghost delete
        c.pod(pod("web-abc", uid=f"u{i}", deleting=True))
        c.event(b'{"metadata":{"uid":"e%d"},"involvedObject":{"namespace":"default","name":"web"},'
                b'"reason":"SuccessfulDelete","message":%s}' % (i, msg))
    c.event(b'{"metadata":{"uid":"ghost"},"involvedObject":{"namespace":"default","name":"web"},'
            b'"reason":"SuccessfulDelete","message":%s}' % msg)
    assert [v.kind for v in c.check_settled()] == [EVENT_TWICE]
    # the name comes back once more, deleted once more, with its one Event: nothing new
    c.pod(pod("web-abc", uid="u9", deleting=True))
    c.event(b'{"metadata":{"uid":"e9"},"involvedObject":{"namespace":"default","name":"web"},'
            b'"reason":"SuccessfulDelete","message":%s}' % msg)
    assert c.check_settled() == []
