"""The chaos checker's DaemonSet and SidecarSet rules on hand-made objects: breaches are flagged with
their evidence, rollouts within their budgets are not, and convergence means what a user checks."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from schemas.daemonset import DaemonSet
from schemas.kube import Pod
from schemas.sidecarset import SidecarSet
from services.chaoscheck import (
    PARTITION,
    RULES,
    SURGE_LEFT,
    TOO_MANY,
    UNAVAILABLE,
    Checker,
    daemonset_convergence,
    daemonset_findings,
    sidecarset_convergence,
    sidecarset_findings,
)

NODES = ("n1", "n2", "n3", "n4")
DS_UID = "ds-uid"


def daemonset(image: str = "img:v2", *, partition: int = 1, generation: int = 2, **status: Any) -> DaemonSet:
    return msgspec.convert({
        "metadata": {"name": "daemon", "namespace": "default", "uid": DS_UID, "generation": generation},
        "spec": {"selector": {"matchLabels": {"app": "daemon"}},
                 "updateStrategy": {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxUnavailable": 1, "partition": partition}},
                 "template": {"metadata": {"labels": {"app": "daemon"}},
                              "spec": {"containers": [{"name": "main", "image": image}]}}},
        "status": status}, DaemonSet)


def ds_pod(node: str, image: str, *, ready: bool = True, n: int = 0, running: str | None = None) -> Pod:
    return msgspec.convert({
        "metadata": {"name": f"daemon-{node}-{n}", "namespace": "default", "uid": f"uid-{node}-{n}",
                     "labels": {"app": "daemon", "controller-revision-hash": image.replace(":", "-")},
                     "ownerReferences": [{"apiVersion": "apps.kruise.io/v1alpha1", "kind": "DaemonSet",
                                          "name": "daemon", "uid": DS_UID, "controller": True}]},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": image}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                   "containerStatuses": [{"name": "main", "image": running or image, "ready": ready,
                                          "containerID": f"sim://{node}-{n}"}]}}, Pod)


def ds_kinds(ds: DaemonSet, pods: list[Pod]) -> set[str]:
    return {f.kind for f in daemonset_findings(ds, pods, NODES, armed=True, partition_armed=True)}


def test_daemonset_two_nodes_down_with_max_unavailable_1_is_flagged_with_the_nodes() -> None:
    ds = daemonset()
    # n2's new pod not Ready counts (an old one would not: Kruise replaces it for free); n4 has no pod
    pods = [ds_pod("n1", "img:v2"), ds_pod("n2", "img:v2", ready=False), ds_pod("n3", "img:v1")]
    found = daemonset_findings(ds, pods, NODES, armed=True, partition_armed=True)
    assert [f.kind for f in found] == [UNAVAILABLE]
    assert (found[0].value, found[0].limit) == (2, 1) and "n2, n4" in found[0].detail


def test_daemonset_one_node_down_is_within_budget() -> None:
    ds = daemonset()
    assert ds_kinds(ds, [ds_pod("n1", "img:v2"), ds_pod("n2", "img:v1", ready=False),
                         ds_pod("n3", "img:v1"), ds_pod("n4", "img:v1")]) == set()


def test_daemonset_two_pods_on_a_node_and_an_update_beyond_the_partition_are_flagged() -> None:
    ds = daemonset(partition=2)
    pods = [ds_pod("n1", "img:v2"), ds_pod("n2", "img:v2"), ds_pod("n3", "img:v2"), ds_pod("n4", "img:v1"),
            ds_pod("n4", "img:v1", n=1)]
    assert ds_kinds(ds, pods) == {TOO_MANY, PARTITION}  # 3 updated > 4 - 2


def test_daemonset_convergence_wants_nodes_minus_partition_updated_and_true_counts() -> None:
    pods = [ds_pod("n1", "img:v2"), ds_pod("n2", "img:v2"), ds_pod("n3", "img:v2"), ds_pod("n4", "img:v1")]
    counts: dict[str, Any] = {"observedGeneration": 2, "desiredNumberScheduled": 4, "currentNumberScheduled": 4, "numberReady": 4,
              "numberAvailable": 4, "numberUnavailable": 0, "updatedNumberScheduled": 3}
    assert daemonset_convergence(daemonset(**counts), pods, NODES) == []
    lagging = [*pods[:2], ds_pod("n3", "img:v2", running="img:v1"), pods[3]]
    assert any("not running" in p for p in daemonset_convergence(daemonset(**counts), lagging, NODES))
    wrong = daemonset_convergence(daemonset(**{**counts, "updatedNumberScheduled": 4}), pods, NODES)
    assert wrong == ["status.updatedNumberScheduled 4 but 3 seen"]
    assert any("want 3" in p for p in daemonset_convergence(daemonset(**counts), [ds_pod(n, "img:v1") for n in NODES],
                                                             NODES))


def test_daemonset_second_pod_left_after_settle_is_surge_left() -> None:
    c = Checker(clock=lambda: 0.0)
    for n in NODES:
        c.node(n)
    c.workload(RULES["daemonsets"], daemonset("img:v1"))
    for p in [*(ds_pod(n, "img:v1") for n in NODES), ds_pod("n1", "img:v1", n=1)]:
        c.pod(p)
    assert [v.kind for v in c.check_settled()] == [SURGE_LEFT]


def sidecarset(image: str = "log:v2", *, generation: int = 2, **status: Any) -> SidecarSet:
    return msgspec.convert({
        "metadata": {"name": "sidecar", "uid": "ss-uid", "generation": generation},
        "spec": {"selector": {"matchLabels": {"sidecar": "soak"}},
                 "containers": [{"name": "log-agent", "image": image}],
                 "updateStrategy": {"type": "RollingUpdate", "maxUnavailable": 1}},
        "status": status}, SidecarSet)


def ss_pod(i: int, image: str, *, ready: bool = True, running: str | None = None) -> Pod:
    return msgspec.convert({
        "metadata": {"name": f"sidecar-{i}", "namespace": "default", "uid": f"uid-s{i}",
                     "labels": {"sidecar": "soak"},
                     "annotations": {"kruise.io/sidecarset-injected-list": "sidecar",
                                     "kruise.io/sidecarset-hash": json.dumps({"sidecar": {}})}},
        "spec": {"nodeName": "n1", "containers": [{"name": "log-agent", "image": image},
                                                  {"name": "main", "image": "app:v1"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                   "containerStatuses": [{"name": "log-agent", "image": running or image, "ready": ready},
                                         {"name": "main", "image": "app:v1", "ready": True}]}}, Pod)


def test_sidecarset_two_upgrades_from_ready_with_max_unavailable_1_are_flagged_with_the_pods() -> None:
    ss = sidecarset()
    pods = [ss_pod(0, "log:v2", ready=False), ss_pod(1, "log:v2", ready=False), ss_pod(2, "log:v1")]
    found = sidecarset_findings(ss, pods, {"uid-s0", "uid-s1"})
    assert [(f.kind, f.value, f.limit) for f in found] == [(UNAVAILABLE, 2, 1)]
    assert "sidecar-0" in found[0].detail and "sidecar-1" in found[0].detail
    assert sidecarset_findings(ss, pods, {"uid-s0"}) == []


def test_sidecarset_convergence_wants_every_pod_on_the_image_and_equal_counts() -> None:
    counts: dict[str, Any] = {"observedGeneration": 2, "matchedPods": 3, "updatedPods": 3, "readyPods": 3, "updatedReadyPods": 3}
    pods = [ss_pod(i, "log:v2") for i in range(3)]
    assert sidecarset_convergence(sidecarset(**counts), pods) == []
    assert any("not running" in p for p in sidecarset_convergence(
        sidecarset(**counts), [*pods[:2], ss_pod(2, "log:v2", running="log:v1")]))
    assert sidecarset_convergence(sidecarset(**{**counts, "updatedPods": 2}), pods) == [
        "status.updatedPods 2 but 3 matched pods"]


def checker_with_ready_pods(image: str, n: int) -> Checker:
    c = Checker(clock=lambda: 0.0)
    c.workload(RULES["sidecarsets"], sidecarset(image))
    for i in range(n):
        c.pod(ss_pod(i, image, ready=False))  # a pod being created is not an upgrade
        c.pod(ss_pod(i, image))
    return c


def test_checker_charges_upgrades_of_ready_pods_to_max_unavailable() -> None:
    c = checker_with_ready_pods("log:v1", 3)
    c.workload(RULES["sidecarsets"], sidecarset("log:v2"))
    c.pod(ss_pod(0, "log:v2", running="log:v1"))  # patched while Ready: charged
    c.pod(ss_pod(0, "log:v2", ready=False))
    assert c.violations == []
    c.pod(ss_pod(1, "log:v2", running="log:v1"))  # a second upgrade from Ready while the first is not done
    assert [(v.kind, v.workload, v.worst, v.limit) for v in c.violations] == [
        (UNAVAILABLE, "sidecarsets/sidecar", 2, 1)]


def test_checker_does_not_charge_an_upgrade_of_a_pod_that_was_not_ready() -> None:
    """Kruise upgrades a not-Ready pod outside the budget: an update overtaking one in progress (v2 not
    Ready yet, then v3) may leave two pods not Ready with maxUnavailable 1."""
    c = checker_with_ready_pods("log:v1", 3)
    c.workload(RULES["sidecarsets"], sidecarset("log:v2"))
    c.pod(ss_pod(0, "log:v2", running="log:v1"))
    c.pod(ss_pod(0, "log:v2", ready=False))
    c.workload(RULES["sidecarsets"], sidecarset("log:v3"))
    c.pod(ss_pod(0, "log:v3", ready=False))  # not Ready when upgraded again: free
    c.pod(ss_pod(1, "log:v3", running="log:v1"))
    c.pod(ss_pod(1, "log:v3", ready=False))
    assert c.violations == []
    c.pod(ss_pod(1, "log:v3"))  # Ready on the new image: released
    c.pod(ss_pod(2, "log:v3", running="log:v1"))
    assert c.violations == []


def test_checker_does_not_charge_a_pod_whose_upgrade_a_newer_version_overtook() -> None:
    """Kruise's budget counts only pods updated to the latest sidecar: a pod patched to v2 and still
    running v1 when v3 arrives is in progress (neither charged nor a candidate), so one more Ready pod
    may be upgraded to v3 (the soak's four `unavailable` on the SidecarSet were this shape); a second
    pod upgraded to v3 from Ready while the first v3 upgrade is not done is still flagged."""
    c = checker_with_ready_pods("log:v1", 3)
    c.workload(RULES["sidecarsets"], sidecarset("log:v2"))
    c.pod(ss_pod(0, "log:v2", running="log:v1"))  # charged ...
    c.workload(RULES["sidecarsets"], sidecarset("log:v3"))  # ... until overtaken
    c.pod(ss_pod(1, "log:v3", running="log:v1"))  # the budget's one upgrade to the latest
    assert c.violations == []
    c.pod(ss_pod(2, "log:v3", running="log:v1"))  # a second one to the latest: Kruise would not
    assert [(v.kind, v.worst, v.limit) for v in c.violations] == [(UNAVAILABLE, 2, 1)]


def ds_checker(image: str) -> Checker:
    c = Checker(clock=lambda: 0.0)
    for n in NODES:
        c.node(n)
    c.workload(RULES["daemonsets"], daemonset(image))
    for n in NODES:
        c.pod(ds_pod(n, image))
    return c


def _gone(pod: Pod) -> Pod:
    return msgspec.structs.replace(pod, metadata=msgspec.structs.replace(pod.metadata,
                                                                         deletion_timestamp="2026-12-03T00:00:00Z"))


def test_checker_does_not_charge_a_node_whose_pod_was_not_ready_when_the_update_was_overtaken() -> None:
    """Kruise replaces an old pod that is not available without charging it to maxUnavailable: an update
    overtaking one in progress (n1's v2 pod not Ready yet, then v3) may take n1 and one more node down."""
    c = ds_checker("img:v1")
    c.workload(RULES["daemonsets"], daemonset("img:v2"))
    c.pod(_gone(ds_pod("n1", "img:v1")))
    c.pod(ds_pod("n1", "img:v2", ready=False, n=1))
    c.workload(RULES["daemonsets"], daemonset("img:v3"))
    c.pod(_gone(ds_pod("n1", "img:v2", ready=False, n=1)))  # replaced for free
    c.pod(_gone(ds_pod("n2", "img:v1")))  # the budget's one node
    assert c.violations == []
    c.pod(_gone(ds_pod("n3", "img:v1")))  # one node more than that is a planner bug
    assert [(v.kind, v.worst, v.limit) for v in c.violations] == [(UNAVAILABLE, 2, 1)]  # n2, n3; n1 free


def test_checker_charges_a_node_without_a_pod_at_the_template_change_and_forgets_recovered_nodes() -> None:
    c = ds_checker("img:v1")
    c.workload(RULES["daemonsets"], daemonset("img:v2"))
    c.pod(_gone(ds_pod("n1", "img:v1")))  # n1 has no pod: Kruise counts it
    c.workload(RULES["daemonsets"], daemonset("img:v3"))
    c.pod(_gone(ds_pod("n2", "img:v1")))
    assert [(v.kind, v.worst, v.limit) for v in c.violations] == [(UNAVAILABLE, 2, 1)]
    c2 = ds_checker("img:v1")
    c2.workload(RULES["daemonsets"], daemonset("img:v2"))
    c2.pod(ds_pod("n1", "img:v1", ready=False))
    c2.workload(RULES["daemonsets"], daemonset("img:v3"))  # n1 overtaken ...
    c2.pod(ds_pod("n1", "img:v1"))  # ... until it is Ready again
    c2.pod(_gone(ds_pod("n1", "img:v1")))  # then deleted while Ready: charged
    c2.pod(_gone(ds_pod("n2", "img:v1")))
    assert [(v.kind, v.worst, v.limit) for v in c2.violations] == [(UNAVAILABLE, 2, 1)]


def _at(obj: Any, rv: int) -> Any:
    return msgspec.structs.replace(obj, metadata=msgspec.structs.replace(obj.metadata, resource_version=str(rv)))


def test_a_pod_older_than_the_template_change_but_seen_after_it_is_overtaken_too() -> None:
    """The pod and DaemonSet watches keep no order between them: n1's v2 pod, created (rv 140) before the
    change to v3 (rv 150) and not Ready, may arrive after it. By resourceVersion it was there at the
    change, so n1 is replaced for free as in Kruise; a pod created after the change is not."""
    c = ds_checker("img:v1")
    c.workload(RULES["daemonsets"], _at(daemonset("img:v2"), 120))
    c.pod(_gone(ds_pod("n1", "img:v1")))
    c.workload(RULES["daemonsets"], _at(daemonset("img:v3"), 150))  # n1 has no pod in the checker's eyes
    c.pod(_at(ds_pod("n1", "img:v2", ready=False, n=1), 140))  # ... but it had one, not Ready
    c.pod(_gone(_at(ds_pod("n1", "img:v2", ready=False, n=1), 160)))  # replaced for free
    c.pod(_gone(ds_pod("n2", "img:v1")))  # the budget's one node
    assert c.violations == []
    late = ds_checker("img:v1")
    late.workload(RULES["daemonsets"], _at(daemonset("img:v2"), 120))
    late.pod(_gone(ds_pod("n1", "img:v1")))
    late.workload(RULES["daemonsets"], _at(daemonset("img:v3"), 150))
    late.pod(_at(ds_pod("n1", "img:v3", ready=False, n=1), 155))  # created after the change: n1 counts
    late.pod(_gone(ds_pod("n2", "img:v1")))
    assert [(v.kind, v.worst, v.limit) for v in late.violations] == [(UNAVAILABLE, 2, 1)]


def test_a_node_whose_old_pod_was_not_ready_is_free_while_it_exists_and_after_its_deletion() -> None:
    """Kruise replaces a pod that is on an old template and not Ready without charging it: n1's pod,
    created on v2 just before the change to v3 (the planner had not seen it yet), is old and not Ready;
    its deletion and n2's (the budget's one) leave two nodes without a pod, which Kruise allows. Two
    old Ready pods deleted at once are still flagged."""
    c = ds_checker("img:v1")
    c.workload(RULES["daemonsets"], daemonset("img:v2"))
    c.pod(_gone(ds_pod("n1", "img:v1")))
    c.workload(RULES["daemonsets"], daemonset("img:v3"))
    c.pod(ds_pod("n1", "img:v2", ready=False, n=1))  # after the change, on the old template
    c.pod(_gone(ds_pod("n2", "img:v1")))  # n1 free while its old pod is there
    assert c.violations == []
    c.pod(ds_pod("n1", "img:v2", ready=False, n=1), deleted=True)  # ... and once it is deleted
    assert c.violations == []
    c.pod(_gone(ds_pod("n3", "img:v1")))  # n2 and n3 down, both Ready old pods: a planner bug
    assert [(v.kind, v.worst, v.limit) for v in c.violations] == [(UNAVAILABLE, 2, 1)]
