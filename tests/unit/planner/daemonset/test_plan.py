"""The Advanced DaemonSet pass, row by row after Kruise's controller tests (`pkg/controller/daemonset/*_test.go`)
and e2e scenarios (`test/e2e/apps/v1alpha1/daemonset.go`), on the in-memory cluster of the planner tests.

Kruise's unit tests run with a fake pod control whose creates and deletes are observed at once; here a
pass that creates or deletes stops before the rolling update (a real cluster has not observed those
writes yet), and the revision a template change needs is created by a pass of its own: `sync` folds
that pass into the next one, so the counts per sync are Kruise's.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest

from schemas.daemonset import RollingUpdateDaemonSet
from schemas.kube import ControllerRevision, Node
from schemas.messages import PatchOp
from services.planner.daemonset.plan import DsPlan, max_numbers, plan_daemonset
from services.planner.kit.gates import DEFAULT_GATES
from services.planner.service import Workload
from tests.unit.planner.daemonset.helpers import NOW, DsCluster, counts, ds_dict, node_dict, rolling

NODES = [f"node-{i}" for i in range(5)]


def sync(c: DsCluster, now: datetime) -> DsPlan:
    """One Kruise sync: a pass (after the revision-creating pass a template change needs)."""
    plan = c.step(now, kubelet=False)
    if any(cmd.verb == "revision-create" for cmd in plan.commands):
        plan = c.step(now, kubelet=False)
    c.kubelet(now)
    return plan


def steady(strategy: dict[str, Any], nodes: list[str] | None = None, *, ready: bool = True, **kw: Any) -> DsCluster:
    """A DaemonSet whose pods run (Ready or not) on every node."""
    c = DsCluster(ds_dict(strategy=strategy, **kw), nodes or NODES, ready=ready)
    c.settle(NOW)
    return c


def run(c: DsCluster, script: list[Any], now: datetime = NOW) -> None:
    """Steps: (creates, deletes) expected of a sync, "R" = mark every pod Ready, "U" = not Ready."""
    for i, item in enumerate(script):
        now += timedelta(seconds=1)
        if item in ("R", "U"):
            c.mark_ready(now, item == "R")
            continue
        got = counts(sync(c, now))
        assert got == item, f"step {i}: expected c/d {item}, got {got}"


# --- L1 - L7: rolling update counts -----------------------------------------------------------------


def test_l1_first_sync_creates_a_pod_per_node() -> None:
    c = DsCluster(ds_dict(strategy={"type": "OnDelete"}), NODES, ready=False)
    assert counts(sync(c, NOW)) == (5, 0)
    assert sorted(c.pods_by_node()) == NODES


@pytest.mark.parametrize(
    ("start_ready", "mu", "script"),
    [
        pytest.param(True, 2, [(0, 2)], id="L2-two-old-pods-deleted-none-created"),
        pytest.param(True, 2, [(0, 2), (2, 0)], id="L3-manage-fills-the-empty-nodes"),
        pytest.param(True, 2, [(0, 2), (2, 0), "R", (0, 2), (2, 0), "R", (0, 1), (1, 0), "R", (0, 0)],
                     id="L4-remaining-syncs"),
        pytest.param(True, 3, [(0, 3), (3, 0), (0, 0), (0, 0)], id="L5-new-pods-not-ready-block"),
        pytest.param(False, 3, [(0, 5), (5, 0), (0, 0)], id="L6-unavailable-old-pods-replaced-regardless"),
    ],
)
def test_rolling_update_counts(start_ready: bool, mu: int, script: list[Any]) -> None:
    c = steady(rolling(maxUnavailable=mu), ready=False)
    c.mark_ready(NOW, start_ready)
    c.set_image("nginx:2.0")
    run(c, script)


def test_l7_strategy_change_with_the_same_template_changes_nothing() -> None:
    c = steady({"type": "OnDelete"})
    c.update_spec(updateStrategy=rolling(maxUnavailable=3))
    assert counts(sync(c, NOW + timedelta(seconds=1))) == (0, 0)


# --- L8, L9: maxUnavailable / maxSurge ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("ru", "desired", "want"),
    [
        pytest.param({"maxUnavailable": 0}, 0, (0, 0), id="L8-no-nodes"),
        pytest.param({"maxUnavailable": 1}, 2, (1, 0), id="L9-two-nodes"),
        pytest.param({"maxUnavailable": "50%"}, 2, (1, 0), id="L9-two-nodes-percent"),
        pytest.param({"maxUnavailable": 0, "maxSurge": 0}, 3, (1, 0), id="both-zero-falls-back-to-one"),
        pytest.param({"maxSurge": "34%"}, 3, (0, 2), id="surge-percent-rounds-up"),
    ],
)
def test_max_numbers(ru: dict[str, Any], desired: int, want: tuple[int, int]) -> None:
    assert max_numbers(msgspec.convert(ru, RollingUpdateDaemonSet), desired) == want


# --- L10, L11, L16: the window ---------------------------------------------------------------------


def _mixed(strategy: dict[str, Any], names: list[str], new: set[str], labels: dict[str, dict[str, str]] | None = None,
           ) -> DsCluster:
    """Pods on every node, those on `new` already on the new template."""
    nodes = [node_dict(n, labels=(labels or {}).get(n)) for n in names]
    c = DsCluster(ds_dict(strategy={"type": "OnDelete"}), nodes)
    c.settle(NOW)
    c.set_image("nginx:2.0")
    c.settle(NOW + timedelta(seconds=10))  # OnDelete: the revision is created, no pod replaced
    for pod in list(c.pods.values()):
        if pod["spec"]["nodeName"] in new:
            del c.pods[pod["metadata"]["name"]]
    c.settle(NOW + timedelta(seconds=20))  # the deleted pods come back on the new revision
    c.update_spec(updateStrategy=strategy)
    return c


@pytest.mark.parametrize(
    ("names", "new", "labels", "ru", "want"),
    [
        pytest.param(["n1", "n2", "n3"], {"n2"}, None, {"maxUnavailable": 1}, ["n3"],
                     id="L10-standard-partition-0-updated-first-then-names-descending"),
        pytest.param(["n1", "n2", "n3"], {"n2"}, None, {"maxUnavailable": 3}, ["n1", "n3"],
                     id="L10-window-n2-n3-n1"),
        pytest.param(["n1", "n2", "n3", "n4"], {"n2"}, {"n3": {"node-type": "canary"}},
                     {"maxUnavailable": 4, "partition": 1, "selector": {"matchLabels": {"node-type": "canary"}}},
                     ["n3"], id="L11-partition-1-selector-only-the-canary"),
        pytest.param(["n1"], set(), {"n1": {"key1": "value1"}},
                     {"maxUnavailable": 1, "selector": {"matchLabels": {"key1": "value2"}}}, [],
                     id="L16-node-not-matching-the-selector-is-not-updated"),
        pytest.param(["n1"], set(), {"n1": {"key1": "value1"}},
                     {"maxUnavailable": 1, "selector": {"matchLabels": {"key1": "value1"}}}, ["n1"],
                     id="L16-node-matching-the-selector-is-updated"),
    ],
)
def test_window(names: list[str], new: set[str], labels: dict[str, dict[str, str]] | None, ru: dict[str, Any],
                want: list[str]) -> None:
    c = _mixed(rolling(**ru), names, new, labels)
    sync(c, NOW + timedelta(seconds=30))
    assert c.deleted_from == want


def test_l16_on_delete_updates_no_node() -> None:
    c = _mixed({"type": "OnDelete"}, ["n1"], set(), {"n1": {"key1": "value1"}})
    sync(c, NOW + timedelta(seconds=30))
    assert c.deleted_from == []


# --- L12 - L15: partition on creation --------------------------------------------------------------


def _with_new_pods(on: list[str], empty: list[str], *, partition: Any, progressive: bool) -> DsCluster:
    """Pods of the current revision on `on`, the nodes `empty` without pods, status.desired from before."""
    annotations = {"daemonset.kruise.io/progressive-create-pod": "true"} if progressive else {}
    c = DsCluster(ds_dict(strategy=rolling(maxUnavailable=1), annotations=annotations), on)
    c.settle(NOW)
    for name in empty:
        c.nodes[name] = node_dict(name)
    c.cs["status"]["desiredNumberScheduled"] = len(on) + len(empty)
    c.update_spec(updateStrategy=rolling(maxUnavailable=1, partition=partition))
    return c


@pytest.mark.parametrize(
    ("on", "empty", "partition", "progressive", "want"),
    [
        pytest.param([f"node-{i}" for i in (0, 1, 6, 7, 8, 9)], ["node-2", "node-3", "node-4", "node-5"], 5, False,
                     ["node-2", "node-3", "node-4", "node-5"], id="L12-not-progressive-all-needing-nodes"),
        pytest.param([], [f"node-{i}" for i in range(10)], 10, True, [], id="L13-progressive-p10-nothing"),
        pytest.param([], [f"node-{i}" for i in range(10)], 9, True, ["node-0"], id="L13-progressive-p9-node-0"),
        pytest.param(["node-1", "node-2", "node-3", "node-4"], ["node-5", "node-6", "node-7", "node-9", "node-10"], 0,
                     True, ["node-10", "node-5", "node-6", "node-7", "node-9"], id="L14-progressive-p0-every-node"),
        pytest.param([f"node-{i}" for i in range(5)], [f"node-{i}" for i in range(5, 10)], 100, True, [],
                     id="L15-partition-clamped-to-desired"),
    ],
)
def test_partition_on_creation(on: list[str], empty: list[str], partition: Any, progressive: bool,
                               want: list[str]) -> None:
    c = _with_new_pods(on, empty, partition=partition, progressive=progressive)
    plan = sync(c, NOW + timedelta(seconds=30))
    assert sorted(n for _, n in plan.created) == sorted(want)


# --- nodes: taints, labels, new nodes (L18, L19, L29 - L31, L36) -----------------------------------

NO_SCHEDULE = {"key": "dedicated", "value": "x", "effect": "NoSchedule"}
NO_EXECUTE = {"key": "dedicated", "value": "x", "effect": "NoExecute"}


def test_l18_a_new_node_with_an_untolerated_taint_gets_no_pod_a_plain_one_does() -> None:
    c = steady(rolling(maxUnavailable=1), ["node-0"])
    c.nodes["tainted"] = node_dict("tainted", taints=[NO_SCHEDULE])
    c.nodes["plain"] = node_dict("plain")
    plan = sync(c, NOW + timedelta(seconds=30))
    assert [n for _, n in plan.created] == ["plain"]


@pytest.mark.parametrize(
    ("taint", "kept", "misscheduled"),
    [
        pytest.param(NO_SCHEDULE, True, 1, id="L19-noschedule-added-pod-kept-but-misscheduled"),
        pytest.param(NO_EXECUTE, False, 0, id="L19-noexecute-added-pod-deleted-not-recreated"),
        pytest.param({**NO_SCHEDULE, "key": "node.kubernetes.io/unschedulable"}, True, 0,
                     id="default-toleration-unschedulable"),
        pytest.param({"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}, True, 0,
                     id="default-toleration-not-ready-noexecute"),
        pytest.param({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}, True, 1,
                     id="not-ready-noschedule-is-not-tolerated"),
        pytest.param({**NO_SCHEDULE, "effect": "PreferNoSchedule"}, True, 0, id="prefer-no-schedule-ignored"),
    ],
)
def test_taint_added_to_a_node(taint: dict[str, str], kept: bool, misscheduled: int) -> None:
    c = steady(rolling(maxUnavailable=1), ["node-0", "node-1"])
    c.nodes["node-1"]["spec"]["taints"] = [taint]
    end = c.settle(NOW + timedelta(seconds=30))
    assert ("node-1" in c.pods_by_node()) is kept
    assert c.daemonset().status.number_misscheduled == misscheduled
    if not kept:  # the taint goes away: the pod comes back
        c.nodes["node-1"]["spec"]["taints"] = []
        c.settle(end + timedelta(seconds=1))
        assert "node-1" in c.pods_by_node()


def test_l29_a_pod_on_every_node_and_a_deleted_pod_is_recreated() -> None:
    c = steady({})
    assert sorted(c.pods_by_node()) == NODES
    status = c.daemonset().status
    assert (status.desired_number_scheduled, status.number_available, status.updated_number_scheduled) == (5, 5, 5)
    victim = c.pods_by_node()["node-3"][0]
    uid = c.pods.pop(victim)["metadata"]["uid"]
    plan = sync(c, NOW + timedelta(seconds=30))
    assert [n for _, n in plan.created] == ["node-3"]
    assert [c.pods[p]["metadata"]["uid"] for p in c.pods_by_node()["node-3"]] != [uid]


def test_l30_node_selector_follows_node_labels() -> None:
    c = DsCluster(ds_dict(pod_spec={"nodeSelector": {"color": "blue"}}), ["node-0", "node-1"])
    now = c.settle(NOW)
    assert c.pods == {}
    c.nodes["node-1"]["metadata"]["labels"]["color"] = "blue"
    now = c.settle(now + timedelta(seconds=1))
    assert list(c.pods_by_node()) == ["node-1"]
    c.nodes["node-1"]["metadata"]["labels"]["color"] = "green"
    now = c.settle(now + timedelta(seconds=1))
    assert c.pods == {}
    template = copy.deepcopy(c.cs["spec"]["template"])
    template["spec"]["nodeSelector"] = {"color": "green"}
    c.update_spec(template=template, updateStrategy=rolling(maxUnavailable=1))
    c.settle(now + timedelta(seconds=1))
    assert list(c.pods_by_node()) == ["node-1"]


def test_l31_a_failed_pod_is_deleted_and_replaced_on_its_node() -> None:
    c = steady({})
    failed = c.pods_by_node()["node-2"][0]
    c.pods[failed]["status"]["phase"] = "Failed"
    plan = sync(c, NOW + timedelta(seconds=30))
    assert plan.deleted == [failed]
    warnings = [cmd.on_success for cmd in plan.commands if cmd.on_success and cmd.on_success.type == "Warning"]
    assert [(w.reason, w.message) for w in warnings] == [
        ("FailedDaemonPod", f"Found failed daemon pod default/{failed} on node node-2, will try to kill it")]
    plan = sync(c, NOW + timedelta(seconds=31))
    assert [n for _, n in plan.created] == ["node-2"]


def test_l36_affinity_not_in_removes_those_nodes_and_updates_the_rest() -> None:
    c = steady(rolling(maxUnavailable=2))
    template = copy.deepcopy(c.cs["spec"]["template"])
    template["spec"]["containers"][0]["image"] = "nginx:2.0"
    template["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["node-0", "node-1"]}]}]}}}
    c.update_spec(template=template)
    c.settle(NOW + timedelta(seconds=30))
    assert sorted(c.pods_by_node()) == ["node-2", "node-3", "node-4"]
    images = {p["spec"]["containers"][0]["image"] for p in c.pods.values()}
    assert images == {"nginx:2.0"}


def test_pods_are_pinned_with_node_affinity_and_carry_the_default_tolerations() -> None:
    c = DsCluster(ds_dict(pod_spec={"hostNetwork": True, "tolerations": [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}),
        ["node-0"])
    c.settle(NOW)
    pod = next(iter(c.pods.values()))
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms == {"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": ["node-0"]}]}]}
    keys = sorted((t["key"], t["effect"]) for t in pod["spec"]["tolerations"])
    assert keys == sorted([("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
                           ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                           ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                           ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                           ("node.kubernetes.io/unschedulable", "NoSchedule"),
                           ("node.kubernetes.io/network-unavailable", "NoSchedule")])
    assert all("tolerationSeconds" not in t for t in pod["spec"]["tolerations"])  # the default replaced it
    assert pod["metadata"]["ownerReferences"][0]["apiVersion"] == "apps.kruise.io/v1beta1"
    assert pod["metadata"]["labels"]["controller-revision-hash"] == c.daemonset().status.daemon_set_hash
    assert "pod-template-hash" not in pod["metadata"]["labels"]


# --- in place, hooks, surge, paused (L32 - L35, L37, L38) ------------------------------------------


def test_l32_in_place_image_update_keeps_names_and_nodes() -> None:
    c = steady(rolling(rollingUpdateType="InPlaceIfPossible", maxUnavailable=5))
    before = {n: p["metadata"]["uid"] for n, p in c.pods.items()}
    c.set_image("nginx:2.0")
    c.settle(NOW + timedelta(seconds=30))
    assert {n: p["metadata"]["uid"] for n, p in c.pods.items()} == before
    for pod in c.pods.values():
        assert pod["spec"]["containers"][0]["image"] == "nginx:2.0"
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 1
        assert {"conditionType": "InPlaceUpdateReady"} in pod["spec"]["readinessGates"]
    assert c.daemonset().status.updated_number_scheduled == 5
    assert ("SuccessfulUpdatePodInPlace", f"successfully update pod {next(iter(before))} in-place") in c.k8s_events


def test_l33_env_change_recreates_every_pod() -> None:
    c = steady(rolling(rollingUpdateType="InPlaceIfPossible", maxUnavailable=20))
    c.set_image("nginx:2.0")
    now = c.settle(NOW + timedelta(seconds=30))
    uids = {p["metadata"]["uid"] for p in c.pods.values()}
    template = copy.deepcopy(c.cs["spec"]["template"])
    template["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    c.update_spec(template=template)
    c.settle(now + timedelta(seconds=1))
    assert len(c.pods) == 5 and not uids & {p["metadata"]["uid"] for p in c.pods.values()}


def test_standard_pods_switched_to_in_place_are_recreated_once() -> None:
    c = steady(rolling(maxUnavailable=5))
    uids = {p["metadata"]["uid"] for p in c.pods.values()}
    c.update_spec(updateStrategy=rolling(rollingUpdateType="InPlaceIfPossible", maxUnavailable=5))
    c.set_image("nginx:2.0")
    c.settle(NOW + timedelta(seconds=30))
    assert not uids & {p["metadata"]["uid"] for p in c.pods.values()}  # no readiness gate: recreated


def test_l34_pre_delete_hook_holds_the_pod_until_released() -> None:
    hook = {"preDelete": {"labelsHandler": {"my-pre-delete": "true"}}}
    c = DsCluster(ds_dict(strategy=rolling(rollingUpdateType="InPlaceIfPossible", maxUnavailable=1), lifecycle=hook),
                  NODES)
    template = c.cs["spec"]["template"]
    template["metadata"]["labels"]["my-pre-delete"] = "true"
    now = c.settle(NOW)
    template = copy.deepcopy(c.cs["spec"]["template"])
    template["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    c.update_spec(template=template)
    now = c.settle(now + timedelta(seconds=1))
    preparing = [n for n, p in c.pods.items()
                 if p["metadata"]["labels"].get("lifecycle.apps.kruise.io/state") == "PreparingDelete"]
    assert len(preparing) == 1 and len(c.pods) == 5
    assert c.daemonset().status.observed_generation == 2
    held = c.pods[preparing[0]]
    del held["metadata"]["labels"]["my-pre-delete"]
    c.settle(now + timedelta(seconds=1))
    assert held["metadata"]["uid"] not in {p["metadata"]["uid"] for p in c.pods.values()}
    new_hash = c.daemonset().status.daemon_set_hash
    assert sum(p["metadata"]["labels"]["controller-revision-hash"] == new_hash for p in c.pods.values()) == 1


def test_l35_surge_runs_both_pods_until_the_new_one_is_available() -> None:
    c = steady(rolling(maxSurge="100%", maxUnavailable=0), min_ready=10)
    c.set_image("nginx:2.0")
    now = NOW + timedelta(seconds=30)
    sync(c, now)
    assert all(len(v) == 2 for v in c.pods_by_node().values())
    status = c.daemonset().status
    for _ in range(30):
        now += timedelta(seconds=1)
        sync(c, now)
        assert not any(len(v) > 2 for v in c.pods_by_node().values())
    assert all(len(v) == 1 for v in c.pods_by_node().values())
    assert set(c.hashes().values()) == {c.daemonset().status.daemon_set_hash}
    assert status.number_available == 5  # the old pods stayed available while the new ones warmed up


def test_l37_surge_status_counts_the_oldest_pod_per_node() -> None:
    c = steady(rolling(maxSurge=1, maxUnavailable=0), ["node-a", "node-b"], min_ready=100)
    c.set_image("nginx:2.0")
    now = NOW + timedelta(seconds=300)  # the old pods are available
    sync(c, now)  # one new pod on one node (maxSurge 1), Ready but not yet available
    surge_node = [n for n, pods in c.pods_by_node().items() if len(pods) == 2]
    assert len(surge_node) == 1
    other = "node-b" if surge_node == ["node-a"] else "node-a"
    old = c.pods_by_node()[other][0]
    del c.pods[old]
    sync(c, now + timedelta(seconds=1))  # the other node gets a new pod; surge node keeps its old pod
    plan = c.plan(now + timedelta(seconds=1))
    status = plan.status
    assert (status.desired_number_scheduled, status.current_number_scheduled, status.number_ready) == (2, 2, 2)
    assert status.updated_number_scheduled == 1


def test_l38_burst_replicas_percent_of_the_previous_desired_count() -> None:
    c = DsCluster(ds_dict(burstReplicas="10%"), NODES)
    c.settle(NOW)
    assert c.pods == {}  # 10% of 0, then of 5 (floored): never a create


def test_paused_rollout_still_replaces_deleted_pods_with_the_new_revision() -> None:
    c = steady(rolling(maxUnavailable=1, paused=True))
    c.set_image("nginx:2.0")
    now = c.settle(NOW + timedelta(seconds=30))
    old = c.daemonset().status
    assert old.updated_number_scheduled == 0  # paused: nothing rolled
    victim = c.pods_by_node()["node-4"][0]
    del c.pods[victim]
    c.settle(now + timedelta(seconds=1))
    assert c.hashes()["node-4"] == c.daemonset().status.daemon_set_hash
    assert c.daemonset().status.updated_number_scheduled == 1


def test_a_new_node_mid_rollout_gets_the_new_revision() -> None:
    c = steady(rolling(maxUnavailable=1, partition=5))
    c.set_image("nginx:2.0")
    now = c.settle(NOW + timedelta(seconds=30))
    c.nodes["node-9"] = node_dict("node-9")
    c.settle(now + timedelta(seconds=1))
    assert c.hashes()["node-9"] == c.daemonset().status.daemon_set_hash


def test_revision_history_is_truncated_to_the_limit() -> None:
    c = steady(rolling(maxUnavailable=5), revisionHistoryLimit=1)
    now = NOW
    for i in range(4):
        c.set_image(f"nginx:3.{i}")
        now = c.settle(now + timedelta(seconds=10))
    assert len(c.revisions) == 2  # the current one and one old one


# --- kruisebus plan ---------------------------------------------------------------------------------


def test_kruisebus_plan_previews_a_daemonset_pass(tmp_path: Any) -> None:
    import json

    import yaml

    from services.dryrun import run

    docs = [ds_dict(strategy=rolling(maxUnavailable=1)), node_dict("node-a"), node_dict("node-b"),
            node_dict("tainted", taints=[{"key": "k", "effect": "NoSchedule"}])]
    path = tmp_path / "ds.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    code, out = run(str(path), now="2026-06-01T10:00:00Z", feature_gates=None)
    assert code == 0, out
    doc = json.loads(out)
    assert doc["revisionCreated"] == doc["revision"] and doc["revision"].startswith("ds-")
    assert [c["node"] for c in doc["create"]] == ["node-a", "node-b"]
    assert doc["status"]["desiredNumberScheduled"] == 2


@pytest.mark.parametrize("prune", [pytest.param(True, id="L17-prune-gate-on"), pytest.param(False, id="gate-off")])
def test_l17_pods_on_nodes_made_ineligible_are_deleted_and_the_rest_updated(prune: bool) -> None:
    from services.planner.kit.gates import DEFAULT_GATES, parse_feature_gates

    gates = parse_feature_gates("DaemonSetPruneIneligibleNodes=true", DEFAULT_GATES) if prune else DEFAULT_GATES
    c = steady(rolling(maxUnavailable=1))
    template = copy.deepcopy(c.cs["spec"]["template"])
    template["spec"]["containers"][0]["image"] = "nginx:2.0"
    template["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["node-0", "node-1"]}]}]}}}
    c.update_spec(template=template)
    now = NOW + timedelta(seconds=30)
    first = c.step(now, gates, kubelet=False)  # the revision
    first = c.step(now, gates, kubelet=False)
    assert sorted(c.deleted_from) == ["node-0", "node-1"]  # manage: the now-ineligible nodes
    c.kubelet(now)

    def one_at_a_time(cl: DsCluster, plan: DsPlan) -> None:
        eligible = [n for n in NODES[2:] if not any(
            p["spec"].get("nodeName") == n and any(x["type"] == "Ready" and x["status"] == "True"
                                                   for x in p["status"].get("conditions", []))
            for p in cl.pods.values())]
        assert len(eligible) <= 1  # maxUnavailable 1 over the nodes that should run a pod

    c.settle(now + timedelta(seconds=1), gates, check=one_at_a_time)
    assert sorted(c.pods_by_node()) == ["node-2", "node-3", "node-4"]
    assert set(c.hashes().values()) == {c.daemonset().status.daemon_set_hash}
    assert first.deleted and len(first.deleted) == 2


# --- L22: which Node updates re-plan a DaemonSet ----------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "replan"),
    [
        pytest.param({}, {}, False, id="L22-identical-nodes-ignored"),
        pytest.param({"conditions": [{"type": "test-1", "status": "True"}, {"type": "test-3", "status": "True"}]},
                     {"conditions": [{"type": "test-1", "status": "True"}]}, True,
                     id="L22-true-condition-set-changed"),
        pytest.param({"conditions": [{"type": "a", "status": "True"}, {"type": "b", "status": "False"}]},
                     {"conditions": [{"type": "a", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
                     False, id="false-conditions-and-times-do-not-matter"),
        pytest.param({}, {"taints": [{"key": "k", "effect": "NoSchedule"}]}, True, id="L19-taint-added"),
        pytest.param({"labels": {"a": "1"}}, {"labels": {"a": "2"}}, True, id="label-changed"),
    ],
)
def test_l22_node_updates(old: dict[str, Any], new: dict[str, Any], replan: bool) -> None:
    from schemas.kube import Node
    from services.planner.daemonset.planner import node_changed

    def n(d: dict[str, Any]) -> Node:
        return msgspec.convert({"metadata": {"name": "n", "labels": d.get("labels", {}), "resourceVersion": "7"},
                                "spec": {"taints": d.get("taints", [])},
                                "status": {"conditions": d.get("conditions", [])}}, Node)

    assert node_changed(n(old), n(new)) is replan


# --- slow start (one batch per pass: the engine's create_limit) ------------------------------------


def test_creates_go_in_slow_start_batches_one_per_pass_and_restart_at_one_after_a_failure() -> None:
    """Kruise's batches 1, 2, 4, ... (stopping after a batch with a failure) as the engine runs them: one
    batch per pass, the next limit twice the last when every pod of the batch appeared, 1 when one did not.
    The limit comes from the planner service's `Workload.next_create_limit`."""
    nodes = [f"node-{i:02d}" for i in range(20)]
    c = DsCluster(ds_dict(), nodes)
    wl = Workload("ds-uid")
    sizes: list[int] = []
    refused = ""
    now = NOW
    while len(c.pods) < len(nodes) and len(sizes) < 20:
        now += timedelta(seconds=1)
        limit = wl.next_create_limit()
        plan = c.plan(now, create_limit=limit)
        creates = [cmd for cmd in plan.commands if cmd.verb == "create"]
        if len(sizes) == 2 and not refused:  # the third batch: the API server refuses one create
            refused = creates[0].pod or ""
            assert creates[0].on_failure is not None
            assert (creates[0].on_failure.type, creates[0].on_failure.reason) == ("Warning", "FailedCreate")
        for cmd in plan.commands:
            if cmd.pod != refused or cmd.verb != "create" or len(sizes) != 2:
                c.apply_command(cmd, now)
        c.kubelet(now)
        if creates:
            sizes.append(len(creates))
        wl.record_creates(limit, [cmd.pod for cmd in creates if cmd.pod])
        for p in c.pod_views():
            wl.set_pod(p)
    assert sizes == [1, 2, 4, 1, 2, 4, 7]  # after the batch with the refused create: 1 again
    assert len(c.pods) == len(nodes)


def test_an_orphan_pod_matching_the_selector_is_adopted_and_counts_as_its_nodes_pod() -> None:
    """Kruise's ClaimPods: a live orphan the selector matches gets the controller reference (guarded by its
    owner references as observed) and is that node's pod in the same pass; a terminating one is left."""
    c = DsCluster(ds_dict(), NODES)
    c.settle(NOW)
    ds = c.daemonset()
    views = c.pod_views()
    orphan = next(p for p in views if p.spec.node_name == "node-1")
    mine = [p for p in views if p is not orphan]
    bare = msgspec.structs.replace(orphan, metadata=msgspec.structs.replace(orphan.metadata, owner_references=[]))
    nodes = [msgspec.convert(n, Node) for _, n in sorted(c.nodes.items())]
    revisions = [msgspec.convert(r, ControllerRevision) for r in c.revisions.values()]
    plan = plan_daemonset(ds, mine, nodes, revisions, now=NOW, gates=DEFAULT_GATES, orphans=[bare])
    assert plan.adopted == [orphan.metadata.name] and plan.created == []
    [adopt] = [cmd for cmd in plan.commands if cmd.verb == "adopt"]
    op = adopt.ops[0]
    assert isinstance(op, PatchOp) and isinstance(op.patch, list)
    ops = op.patch
    assert {"op": "test", "path": "/metadata/ownerReferences", "value": None} in ops
    assert ops[-1]["path"] == "/metadata/ownerReferences" and ops[-1]["value"][0]["uid"] == ds.metadata.uid
    assert ops[-1]["value"][0]["controller"] is True
    gone = msgspec.structs.replace(bare, metadata=msgspec.structs.replace(bare.metadata,
                                                                           deletion_timestamp="2026-06-01T10:00:00Z"))
    plan = plan_daemonset(ds, mine, nodes, revisions, now=NOW, gates=DEFAULT_GATES, orphans=[gone])
    assert plan.adopted == [] and [n for _, n in plan.created] == ["node-1"]


def test_a_free_replacement_is_deleted_only_at_the_version_seen_not_ready() -> None:
    """An old pod that is not available is replaced without charging maxUnavailable (Kubernetes' rule),
    which holds only for the state the pass saw: its delete carries that resourceVersion, so a pod that
    became Ready meanwhile (the view lags the API by a few ms) is not deleted (409, planned again). A
    delete charged to the budget holds whatever the pod's state, and is guarded by uid only."""
    c = steady(rolling(maxUnavailable=1), ready=False)
    c.mark_ready(NOW, True)
    lagging = sorted(c.pods.values(), key=lambda p: p["metadata"]["name"])[0]
    for cond in lagging["status"]["conditions"]:
        if cond["type"] == "Ready":
            cond["status"] = "False"
    c._bump(lagging)
    c.set_image("nginx:2.0")
    plan = sync(c, NOW + timedelta(seconds=1))
    deletes = [op for cmd in plan.commands if cmd.verb == "delete" for op in cmd.ops]
    by_name = {op.name: op for op in deletes}
    assert len(deletes) == 2, deletes
    free = by_name.pop(lagging["metadata"]["name"])
    assert free.resource_version == lagging["metadata"]["resourceVersion"] and free.uid
    [(_, charged)] = by_name.items()
    assert charged.resource_version == "" and charged.uid


# --- the budget evidence in the rollout log ---------------------------------------------------------


def _not_ready(c: DsCluster, node: str, now: datetime) -> dict[str, Any]:
    """The pod on `node` turns not Ready (and stays so through kubelet syncs)."""
    pod = c.pods[c.pods_by_node()[node][0]]
    c.marked.discard(pod["metadata"]["uid"])
    c._set_cond(pod["status"]["conditions"], "Ready", "False", now.isoformat())
    c._bump(pod)
    return pod


def _evidence(plan: DsPlan, verb: str) -> dict[str, dict[str, int | str]]:
    """pod -> the data of its command of `verb`; the planner's own event carries the same."""
    got = {cmd.pod: cmd.data for cmd in plan.commands if cmd.verb == verb}
    event_type = {"delete": "pod-deleted", "update-in-place": "pod-updated-in-place"}[verb]
    assert {e.pod: e.data for e in plan.events if e.type == event_type} == got
    return got


def test_each_rolling_update_delete_says_whether_it_was_charged_or_free_with_the_budget() -> None:
    c = steady(rolling(maxUnavailable=2))
    now = NOW + timedelta(seconds=10)
    c.mark_ready(now)
    c.ready = False  # from now on new pods stay not Ready
    sick = _not_ready(c, "node-1", now)
    seen = {p["spec"]["nodeName"]: (name, p["metadata"]["resourceVersion"]) for name, p in c.pods.items()}
    c.set_image("nginx:2.0")
    plan = sync(c, now)
    # node-1's old pod is not available: replaced free; two Ready ones (window order) are charged
    budget = {"maxUnavailable": 2, "unavailable": 0, "counted": ""}
    assert _evidence(plan, "delete") == {
        seen[n][0]: {"budget": "charged" if n != "node-1" else "free", "resourceVersion": seen[n][1], "node": n,
                     **budget} for n in ("node-4", "node-3", "node-1")}
    assert seen["node-1"][0] == sick["metadata"]["name"]
    assert counts(sync(c, now + timedelta(seconds=1))) == (3, 0)  # the new pods, not Ready
    # three nodes now count unavailable: no Ready pod is charged, an old pod gone not Ready is still free
    later = now + timedelta(seconds=2)
    sick = _not_ready(c, "node-0", later)
    plan = sync(c, later)
    assert _evidence(plan, "delete") == {sick["metadata"]["name"]: {
        "budget": "free", "resourceVersion": sick["metadata"]["resourceVersion"], "node": "node-0",
        "maxUnavailable": 2, "unavailable": 3, "counted": "node-4,node-3,node-1"}}


def test_an_in_place_update_carries_its_budget_evidence() -> None:
    c = steady(rolling(rollingUpdateType="InPlaceIfPossible", maxUnavailable=1))
    [(name, pod)] = [(n, p) for n, p in c.pods.items() if p["spec"]["nodeName"] == "node-4"]
    rv = pod["metadata"]["resourceVersion"]
    c.set_image("nginx:2.0")
    plan = sync(c, NOW + timedelta(seconds=10))
    assert _evidence(plan, "update-in-place") == {name: {
        "budget": "charged", "resourceVersion": rv, "node": "node-4", "maxUnavailable": 1, "unavailable": 0,
        "counted": ""}}


def test_kruisebus_plan_shows_the_budget_evidence_of_each_delete(tmp_path: Any) -> None:
    import json

    import yaml

    from services.dryrun import run

    c = steady(rolling(maxUnavailable=1))
    c.set_image("nginx:2.0")
    path = tmp_path / "ds.yaml"
    revisions = [{"apiVersion": "apps/v1", "kind": "ControllerRevision", **r} for r in c.revisions.values()]
    path.write_text(yaml.safe_dump_all([c.cs, *c.nodes.values(), *c.pods.values(), *revisions]))
    code, out = run(str(path), now="2026-06-01T10:01:00Z", feature_gates=None)
    assert code == 0, out
    doc = json.loads(out)
    [deleted] = doc["delete"]
    assert doc["budget"] == {deleted: {"budget": "charged", "resourceVersion": c.pods[deleted]["metadata"]["resourceVersion"],
                                       "node": "node-4", "maxUnavailable": 1, "unavailable": 0, "counted": ""}}


def test_the_pod_deleted_event_names_its_delete_command() -> None:
    """A DaemonSet's pod names come back on their node; the rollout log tells one deletion from the next
    by the command (whose id names the pod's uid), not by the message, which repeats."""
    c = steady(rolling(maxUnavailable=2))
    c.set_image("nginx:2.0")
    plan = sync(c, NOW + timedelta(seconds=1))
    deletes = {cmd.pod: cmd.id for cmd in plan.commands if cmd.verb == "delete"}
    events = {e.pod: e.command_id for e in plan.events if e.type == "pod-deleted"}
    assert len(deletes) == 2 and events == deletes
