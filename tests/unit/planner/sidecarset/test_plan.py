"""The update controller: K27-K33, K36, K40 (Kruise's sidecarset_strategy_test.go, sidecarset_processor_test.go,
sidecarset_controller_test.go, history tests and e2e expectations)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from schemas.constants import (
    ANNOTATION_SIDECARSET_HASH,
    ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE,
    ANNOTATION_SIDECARSET_INJECTED_LIST,
    ANNOTATION_SIDECARSET_INPLACE_STATE,
    LABEL_SIDECARSET_CUSTOM_VERSION,
    LABEL_SIDECARSET_NAME,
)
from schemas.kube import ControllerRevision, Pod
from schemas.messages import CreateOp, PatchOp
from schemas.sidecarset import SidecarSet
from services.planner.kit.gates import DEFAULT_GATES
from services.planner.sidecarset.inject import InjectionView, inject
from services.planner.sidecarset.plan import next_upgrade_pods, not_upgradable_message, plan_sidecarset
from tests.unit.planner.sidecarset.fixtures import pod as raw_pod
from tests.unit.planner.sidecarset.fixtures import sidecarset

NOW = datetime(2026, 1, 1, tzinfo=UTC)
V1, V2 = "sidecar:v1", "sidecar:v2"


def ss_at(image: str, **spec: Any) -> SidecarSet:
    return sidecarset("test-sidecarset", containers=[{"name": "sidecar", "image": image}], **spec)


def injected(ss: SidecarSet, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    out = inject(raw_pod(name, labels={"app": "nginx", **(labels or {})}), InjectionView(sidecarsets=[ss],
                 namespaces={"default": {}}), namespace="default", now="2026-01-01T00:00:00Z")
    assert out is not None
    return out


def running(raw: dict[str, Any], *, ready: bool = True, image_of: dict[str, str] | None = None, index: int = 0,
            uid: str | None = None) -> Pod:
    raw = json.loads(json.dumps(raw))
    raw["metadata"]["uid"] = uid or f"uid-{raw['metadata']['name']}"
    raw["metadata"]["creationTimestamp"] = f"2026-01-01T00:{index // 60:02d}:{index % 60:02d}Z"
    statuses = []
    for c in raw["spec"]["containers"]:
        image = (image_of or {}).get(c["name"], c["image"])
        statuses.append({"name": c["name"], "image": image, "imageID": f"id-{image}", "ready": ready})
    raw["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                     "containerStatuses": statuses}
    return msgspec.convert(raw, Pod)


def pods(n: int, u: int, c: int, *, old: SidecarSet, new: SidecarSet, ready: bool = True) -> list[Pod]:
    """pods(n,u,c): n matched pods; u upgraded to `new` (c of them already running v2)."""
    out = []
    for i in range(n):
        raw = injected(old, f"pod-{i}")
        if i < u:
            ann = raw["metadata"]["annotations"]
            hashes = json.loads(ann[ANNOTATION_SIDECARSET_HASH])
            hashes[new.metadata.name]["hash"] = new.metadata.annotations[ANNOTATION_SIDECARSET_HASH]
            ann[ANNOTATION_SIDECARSET_HASH] = json.dumps(hashes)
            ann[ANNOTATION_SIDECARSET_INPLACE_STATE] = json.dumps(
                {new.metadata.name: {"lastContainerStatuses": {"sidecar": {"imageID": f"id-{V1}"}}}})
            raw["spec"]["containers"][0]["image"] = V2
            out.append(running(raw, index=i, image_of=None if i < c else {"sidecar": V1}, ready=ready))
        else:
            out.append(running(raw, index=i, ready=ready))
    return out


@pytest.mark.parametrize(("mu", "n", "u", "c", "expected"), [
    pytest.param(10, 100, 30, 26, 6, id="K27-mu-10"),
    pytest.param("10%", 1000, 300, 260, 60, id="K27-mu-10pct"),
    pytest.param("5%", 1000, 300, 250, 0, id="K27-mu-5pct-budget-used"),
    pytest.param(100, 100, 30, 27, 70, id="K27-mu-100"),
])
def test_K27_next_upgrade_pods(mu: int | str, n: int, u: int, c: int, expected: int) -> None:
    old, new = ss_at(V1), ss_at(V2, updateStrategy={"maxUnavailable": mu})
    chosen = next_upgrade_pods(new, pods(n, u, c, old=old, new=new)).chosen
    assert len(chosen) == expected


def test_K28_update_selector_mu_100() -> None:
    old = ss_at(V1)
    new = ss_at(V2, updateStrategy={"maxUnavailable": 100, "selector": {"matchLabels": {"group": "test"}}})
    matched = [running(injected(old, f"pod-{i}", {"group": "test"} if i < 30 else None), index=i)
               for i in range(1000)]
    chosen = next_upgrade_pods(new, matched).chosen
    assert len(chosen) == 30 and all(p.metadata.labels.get("group") == "test" for p in chosen)


def test_K28_percent_budget_rounds_up() -> None:
    old, new = ss_at(V1), ss_at(V2, updateStrategy={"maxUnavailable": "5%"})
    chosen = next_upgrade_pods(new, pods(5, 0, 0, old=old, new=new)).chosen
    assert len(chosen) == 1


def test_K29_order_newest_first_among_ready() -> None:
    old, new = ss_at(V1), ss_at(V2, updateStrategy={"maxUnavailable": 10})
    chosen = next_upgrade_pods(new, pods(20, 10, 5, old=old, new=new)).chosen
    assert [p.metadata.name for p in chosen] == ["pod-19", "pod-18", "pod-17", "pod-16", "pod-15"]


@pytest.mark.parametrize(("partition", "expected"), [
    pytest.param(0, 2, id="partition-0"),
    pytest.param(1, 1, id="partition-1"),
    pytest.param("50%", 1, id="partition-50pct"),
    pytest.param("99%", 1, id="partition-99pct-never-all"),
    pytest.param("100%", 0, id="partition-100pct"),
])
def test_partition_is_subtracted_from_candidates(partition: int | str, expected: int) -> None:
    old, new = ss_at(V1), ss_at(V2, updateStrategy={"maxUnavailable": 10, "partition": partition})
    chosen = next_upgrade_pods(new, pods(2, 0, 0, old=old, new=new)).chosen
    assert len(chosen) == expected


def test_not_ready_candidates_are_free_and_first() -> None:
    old, new = ss_at(V1), ss_at(V2)  # maxUnavailable 1
    matched = pods(3, 0, 0, old=old, new=new)
    matched[0] = running(injected(old, "pod-0"), ready=False)
    chosen = next_upgrade_pods(new, matched).chosen
    assert [p.metadata.name for p in chosen][0] == "pod-0" and len(chosen) == 2


def _status(plan: Any) -> tuple[int, int, int, int]:
    s = plan.status
    return (s.matched_pods, s.updated_pods, s.ready_pods, s.updated_ready_pods)


def _apply(pod: Pod, plan: Any) -> Pod:
    """What the executor would write: the JSON patch of this pod, applied to its raw form."""
    from sim.patch import json_patch

    raw = msgspec.to_builtins(pod)
    for cmd in plan.commands:
        for op in cmd.ops:
            if isinstance(op, PatchOp) and op.resource.plural == "pods" and op.name == pod.metadata.name \
                    and op.patch_type == "json":
                raw = json_patch(raw, op.patch)
    return msgspec.convert(raw, Pod)


def test_K31_cold_upgrade_passes() -> None:
    old, new = ss_at(V1), ss_at(V2)
    p1, p2 = running(injected(old, "test-pod-1"), index=2), running(injected(old, "test-pod-2"), index=1)
    plan = plan_sidecarset(new, [p1, p2], [], now=NOW)
    assert _status(plan) == (2, 0, 2, 0) and plan.upgrade == ["default/test-pod-1"]
    p1 = _apply(p1, plan)
    assert p1.spec.containers[0].image == V2
    assert p1.metadata.annotations[ANNOTATION_SIDECARSET_INJECTED_LIST] == "test-sidecarset"
    plan = plan_sidecarset(new, [p1, p2], [], now=NOW)  # spec v2, status still v1: in progress
    assert _status(plan) == (2, 1, 1, 0) and plan.upgrade == []
    raw = msgspec.to_builtins(p1)
    raw["status"]["containerStatuses"][0].update(image=V2, imageID=f"id-{V2}")
    p1 = msgspec.convert(raw, Pod)
    plan = plan_sidecarset(new, [p1, p2], [], now=NOW)
    assert _status(plan) == (2, 1, 2, 1) and plan.upgrade == ["default/test-pod-2"]


@pytest.mark.parametrize(("strategy", "ready", "upgraded"), [
    pytest.param({"type": "NotUpdate"}, True, False, id="K32-not-update"),
    pytest.param({"paused": True}, True, False, id="K32-paused"),
    pytest.param({"partition": 1}, True, False, id="K32-partition-1"),
    pytest.param({}, False, True, id="K32-pending-pod-upgraded"),
])
def test_K32_controller(strategy: dict[str, Any], ready: bool, upgraded: bool) -> None:
    old, new = ss_at(V1), ss_at(V2, updateStrategy=strategy)
    plan = plan_sidecarset(new, [running(injected(old, "p"), ready=ready)], [], now=NOW)
    assert bool(plan.upgrade) is upgraded


def test_K36_non_image_change_makes_pods_not_upgradable() -> None:
    old = ss_at(V1)
    new = sidecarset("test-sidecarset", containers=[{"name": "sidecar", "image": V1, "env": [{"name": "a", "value": "b"}]}])
    p = running(injected(old, "p"))
    plan = plan_sidecarset(new, [p], [], now=NOW)
    assert _status(plan) == (1, 0, 1, 0) and plan.not_upgradable == ["default/p"]
    events = [c.on_success for c in plan.commands if c.on_success is not None]
    assert [(e.reason, e.message) for e in events] == [("NotUpgradablePods", not_upgradable_message(1))]
    cond = [op for c in plan.commands for op in c.ops if isinstance(op, PatchOp) and op.subresource == "status"
            and op.resource.plural == "pods"][0].patch["status"]["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"], cond["message"]) == \
        ("SidecarSetUpgradable", "False", "UpdateImmutableField", '{"test-sidecarset":false}')
    # a pod created after the change is injected with it and counts as updated
    fresh = running(injected(new, "q"))
    plan = plan_sidecarset(new, [p, fresh], [], now=NOW)
    assert _status(plan) == (2, 1, 2, 1)


def _revision_ops(plan: Any) -> list[Any]:
    return [op for c in plan.commands for op in c.ops if op.resource.plural == "controllerrevisions"]


def _created(plan: Any) -> ControllerRevision:
    op = next(op for op in _revision_ops(plan) if isinstance(op, CreateOp))
    return msgspec.convert(op.body, ControllerRevision)


def test_K33_revisions_register_once_and_carry_labels() -> None:
    ss = ss_at(V1)
    ss.metadata.labels[LABEL_SIDECARSET_CUSTOM_VERSION] = "1"
    first = plan_sidecarset(ss, [], [], now=NOW)
    rev = _created(first)
    assert rev.metadata.namespace == "kruise-system" and rev.revision == 1
    assert rev.metadata.labels[LABEL_SIDECARSET_NAME] == "test-sidecarset"
    assert rev.metadata.labels[LABEL_SIDECARSET_CUSTOM_VERSION] == "1"
    assert rev.metadata.annotations[ANNOTATION_SIDECARSET_HASH] == ss.metadata.annotations[ANNOTATION_SIDECARSET_HASH]
    assert set(rev.data["spec"]) == {"$patch", "containers", "imagePullSecrets", "initContainers",
                                     "patchPodMetadata", "volumes"}
    assert rev.metadata.name.startswith("test-sidecarset-")
    status = next(op for c in first.commands for op in c.ops if op.resource.plural == "sidecarsets")
    assert status.patch["status"]["latestRevision"] == rev.metadata.name
    again = plan_sidecarset(ss, [], [rev], now=NOW)
    assert not [op for op in _revision_ops(again) if isinstance(op, CreateOp)]
    # a secrets-only edit: a new revision although the hash is unchanged
    edited = ss_at(V1, imagePullSecrets=[{"name": "s"}])
    second = _created(plan_sidecarset(edited, [], [rev], now=NOW))
    assert second.revision == 2 and second.metadata.name != rev.metadata.name
    # back to the first content: the old revision is renumbered, not re-created
    back = plan_sidecarset(ss, [], [rev, second], now=NOW)
    ops = _revision_ops(back)
    assert [(type(o).__name__, o.name, o.patch) for o in ops] == [("PatchOp", rev.metadata.name, {"revision": 3})]


def test_K33_history_limit_keeps_referenced_revisions() -> None:
    revs = []
    for i in range(1, 16):
        s = ss_at(f"sidecar:{i}")
        plan = plan_sidecarset(s, [], revs, now=NOW)
        created = _created(plan)
        revs.append(msgspec.structs.replace(created, metadata=msgspec.structs.replace(created.metadata,
                                                                                     uid=f"u{i}")))
    latest = ss_at("sidecar:16", revisionHistoryLimit=10)
    plan = plan_sidecarset(latest, [], revs, now=NOW)
    deletes = [o for o in _revision_ops(plan) if type(o).__name__ == "DeleteOp"]
    assert [d.name for d in deletes] == [r.metadata.name for r in revs[:6]]  # 16 revisions, limit 10


def test_K40_partition_50pct_then_nil() -> None:
    old = ss_at(V1)
    new = ss_at(V2, updateStrategy={"partition": "50%", "maxUnavailable": 10})
    assert len(plan_sidecarset(new, pods(2, 0, 0, old=old, new=new), [], now=NOW).upgrade) == 1
    new = ss_at(V2, updateStrategy={"maxUnavailable": 10})
    assert len(plan_sidecarset(new, pods(2, 1, 1, old=old, new=new), [], now=NOW).upgrade) == 1


def test_K40_init_container_image_change_keeps_the_hash() -> None:
    a = sidecarset("s", init_containers=[{"name": "i", "image": "i:1"}])
    b = sidecarset("s", init_containers=[{"name": "i", "image": "i:2"}])
    assert a.metadata.annotations[ANNOTATION_SIDECARSET_HASH] == b.metadata.annotations[ANNOTATION_SIDECARSET_HASH]
    assert a.metadata.annotations[ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE] == \
        b.metadata.annotations[ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE]


def test_K35_merge_patch_json_applied_on_upgrade() -> None:
    key = "oom-score"
    old = ss_at(V1, patchPodMetadata=[{"annotations": {key: '{"sidecar":1}'}, "patchPolicy": "MergePatchJson"}])
    new = ss_at(V2, patchPodMetadata=[{"annotations": {key: '{"sidecar":2}'}, "patchPolicy": "MergePatchJson"}])
    p = running(injected(old, "p"))
    assert p.metadata.annotations[key] == '{"sidecar":1}'
    p = _apply(p, plan_sidecarset(new, [p], [], now=NOW))
    assert p.metadata.annotations[key] == '{"sidecar":2}'


def test_plan_preview_of_a_sidecarset() -> None:
    """`kruisebus plan` of a SidecarSet saved beside its pods: the pass it would make."""
    from services.planner.sidecarset.planner import PLANNER

    old, new = ss_at(V1), ss_at(V2)
    code, doc = PLANNER.preview(new, pods(3, 0, 0, old=old, new=new), now=NOW, gates=DEFAULT_GATES, create_limit=None)
    assert code == 0 and doc["upgrade"] == ["default/pod-2"]
    assert doc["status"]["matchedPods"] == 3


def _set_status(pod: Pod, **images: str) -> Pod:
    """The kubelet caught up: each named container reports `image` (and a new imageID)."""
    raw = msgspec.to_builtins(pod)
    for st in raw["status"]["containerStatuses"]:
        if st["name"] in images:
            st.update(image=images[st["name"]], imageID=f"id-{images[st['name']]}")
    return msgspec.convert(raw, Pod)


def test_K41_hot_upgrade_passes() -> None:
    hot = {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:1"}
    old = sidecarset("hot", containers=[{"name": "test-sidecar", "image": V1, "upgradeStrategy": hot}])
    new = sidecarset("hot", containers=[{"name": "test-sidecar", "image": V2, "upgradeStrategy": hot}])
    new.metadata.resource_version = "7"
    p = running(injected(old, "p"))
    plan = plan_sidecarset(new, [p], [], now=NOW)
    assert _status(plan) == (1, 0, 1, 0) and plan.upgrade == ["default/p"]
    p = _apply(p, plan)
    images = {c.name: c.image for c in p.spec.containers}
    assert (images["test-sidecar-1"], images["test-sidecar-2"]) == (V1, V2)
    ann = p.metadata.annotations
    assert json.loads(ann["kruise.io/sidecarset-working-hotupgrade-container"]) == {"test-sidecar": "test-sidecar-2"}
    assert ann["version.sidecarset.kruise.io/test-sidecar-2"] == "7"
    assert ann["versionalt.sidecarset.kruise.io/test-sidecar-2"] == "1"
    plan = plan_sidecarset(new, [p], [], now=NOW)  # -2 restarting with v2: updated, not ready, nothing to do
    assert _status(plan) == (1, 1, 0, 0) and plan.upgrade == [] and \
        not [c for c in plan.commands if c.verb == "sidecar-upgrade"]
    p = _set_status(p, **{"test-sidecar-2": V2})
    plan = plan_sidecarset(new, [p], [], now=NOW)  # finished: flip -1 to the empty image, nothing else
    assert _status(plan) == (1, 1, 0, 0)
    flips = [c for c in plan.commands if c.verb == "sidecar-upgrade"]
    assert len(flips) == 1 and flips[0].on_success is not None and flips[0].on_success.reason == "ResetContainerSucceed"
    assert flips[0].on_success.message == "reset sidecar container image empty successfully"
    failure = flips[0].on_failure  # the executor appends ": <the API server's error>"
    assert failure is not None and (failure.type, failure.reason, failure.message) == (
        "Warning", "ResetContainerFailed", "reset sidecar container image empty failed")
    for event in (flips[0].on_success, failure):  # Events of the pod, in its namespace
        assert event.involved is not None and (event.involved.kind, event.involved.namespace,
                                               event.involved.name) == ("Pod", "default", "p")
    p = _set_status(_apply(p, plan), **{"test-sidecar-1": "empty:1"})
    assert {c.name: c.image for c in p.spec.containers}["test-sidecar-1"] == "empty:1"
    assert p.metadata.annotations["version.sidecarset.kruise.io/test-sidecar-1"] == "0"
    plan = plan_sidecarset(new, [p], [], now=NOW)
    assert _status(plan) == (1, 1, 1, 1)


def test_K37_condition_over_several_sidecarsets() -> None:
    from services.planner.sidecarset.plan import _condition_body

    p = running(injected(ss_at(V1), "p"))
    body = _condition_body(p, "ss1", False, NOW)
    assert body is not None and (body["status"], body["message"]) == ("False", '{"ss1":false}')
    raw = msgspec.to_builtins(p)
    raw["status"]["conditions"].append(body)
    p = msgspec.convert(raw, Pod)
    body = _condition_body(p, "ss2", True, NOW)
    assert body is not None and (body["status"], body["message"]) == ("False", '{"ss1":false,"ss2":true}')
    raw["status"]["conditions"][-1] = body
    p = msgspec.convert(raw, Pod)
    body = _condition_body(p, "ss1", True, NOW)
    assert body is not None and (body["status"], body["reason"]) == ("True", "AllSidecarsetUpgradable")
    assert _condition_body(p, "ss2", True, NOW) is None  # only patched when something changes


def _apply_revision_ops(revs: list[ControllerRevision], plan: Any) -> list[ControllerRevision]:
    """What the executor does to the revisions: creates, revision renumbering, label patches, deletes."""
    by_name = {r.metadata.name: r for r in revs}
    for op in _revision_ops(plan):
        if isinstance(op, CreateOp):
            rev = msgspec.convert(op.body, ControllerRevision)
            name = rev.metadata.name
            by_name[name] = msgspec.structs.replace(rev, metadata=msgspec.structs.replace(rev.metadata, uid=f"u-{name}"))
        elif isinstance(op, PatchOp):
            rev = by_name[op.name]
            if "revision" in op.patch:
                rev = msgspec.structs.replace(rev, revision=op.patch["revision"])
            labels = (op.patch.get("metadata") or {}).get("labels")
            if labels:
                rev = msgspec.structs.replace(rev, metadata=msgspec.structs.replace(
                    rev.metadata, labels={**rev.metadata.labels, **labels}))
            by_name[op.name] = rev
        else:
            by_name.pop(op.name, None)
    return sorted(by_name.values(), key=lambda r: r.revision)


def test_K34_history_of_secret_edits_and_a_rollback() -> None:
    revs: list[ControllerRevision] = []
    for i in range(15):  # the create, then 14 imagePullSecrets edits
        ss = ss_at(V1, imagePullSecrets=[{"name": f"secret-{i}"}] if i else [])
        revs = _apply_revision_ops(revs, plan_sidecarset(ss, [], revs, now=NOW))
    assert [r.revision for r in revs] == list(range(6, 16))
    twelve = next(r for r in revs if r.revision == 13)  # the edit to secret-12 made revision 13
    ss = ss_at(V1, imagePullSecrets=[{"name": "secret-12"}])
    revs = _apply_revision_ops(revs, plan_sidecarset(ss, [], revs, now=NOW))
    assert [r.revision for r in revs] == [6, 7, 8, 9, 10, 11, 12, 14, 15, 16]
    assert next(r for r in revs if r.revision == 16).metadata.name == twelve.metadata.name


def test_K38_injection_revision_while_paused_then_the_upgrade() -> None:
    tags = [f"sidecar:{i}" for i in range(6)]
    revs: list[ControllerRevision] = []
    for i, tag in enumerate(tags):  # 6 revisions, custom versions (none), 1..5
        ss = ss_at(tag)
        if i:
            ss.metadata.labels[LABEL_SIDECARSET_CUSTOM_VERSION] = str(i)
        revs = _apply_revision_ops(revs, plan_sidecarset(ss, [], revs, now=NOW))
    latest = ss_at(tags[5], updateStrategy={"paused": True},
                   injectionStrategy={"revision": {"customVersion": "3", "policy": "Always"}})
    latest.metadata.labels[LABEL_SIDECARSET_CUSTOM_VERSION] = "5"
    latest = msgspec.structs.replace(latest, status=msgspec.structs.replace(
        latest.status, latest_revision=revs[-1].metadata.name))
    raw = inject(raw_pod("p"), InjectionView(sidecarsets=[latest], revisions=revs, namespaces={"default": {}}),
                 namespace="default", now="2026-01-01T00:00:00Z")
    assert raw is not None and raw["spec"]["containers"][0]["image"] == tags[3]
    assert json.loads(raw["metadata"]["annotations"][ANNOTATION_SIDECARSET_HASH])["test-sidecarset"][
        "controllerRevision"] == revs[3].metadata.name
    p = running(raw)
    assert plan_sidecarset(latest, [p], revs, now=NOW).upgrade == []  # paused
    unpaused = ss_at(tags[5], injectionStrategy={"revision": {"customVersion": "3", "policy": "Always"}})
    unpaused.metadata.labels[LABEL_SIDECARSET_CUSTOM_VERSION] = "5"
    plan = plan_sidecarset(unpaused, [p], revs, now=NOW)
    p = _apply(p, plan)
    assert p.spec.containers[0].image == tags[5]
    assert json.loads(p.metadata.annotations[ANNOTATION_SIDECARSET_HASH])["test-sidecarset"][
        "controllerRevision"] == revs[-1].metadata.name


def test_K35_patch_only_edit_leaves_pods_alone() -> None:
    key = "oom-score"
    v1 = ss_at(V1, patchPodMetadata=[{"annotations": {key: '{"sidecar":1}'}, "patchPolicy": "MergePatchJson"}])
    edited = ss_at(V1, patchPodMetadata=[{"annotations": {key: '{"sidecar":2}'}, "patchPolicy": "MergePatchJson"}])
    assert edited.metadata.annotations[ANNOTATION_SIDECARSET_HASH] == v1.metadata.annotations[ANNOTATION_SIDECARSET_HASH]
    ps = [running(injected(v1, f"p{i}"), index=i) for i in range(2)]
    plan = plan_sidecarset(edited, ps, [], now=NOW)
    assert _status(plan) == (2, 2, 2, 2) and plan.upgrade == []
    assert not [c for c in plan.commands if c.verb == "sidecar-upgrade"]


def test_K39_canary_by_selector_with_partial() -> None:
    """Stable pods keep getting the stable version; pods the update selector picks get the canary."""
    stable = ss_at(V1)
    stable.metadata.labels[LABEL_SIDECARSET_CUSTOM_VERSION] = "0"
    revs = _apply_revision_ops([], plan_sidecarset(stable, [], [], now=NOW))
    canary = sidecarset("test-sidecarset", containers=[{"name": "sidecar", "image": V2,
                                                        "env": [{"name": "k", "value": "v"}]}],
                        updateStrategy={"selector": {"matchLabels": {"version": "canary"}}},
                        injectionStrategy={"revision": {"customVersion": "0", "policy": "Partial"}})
    canary.metadata.labels[LABEL_SIDECARSET_CUSTOM_VERSION] = "1"
    old_stable = running(injected(stable, "stable-0"), index=0)
    old_canary = running(injected(stable, "canary-0", {"version": "canary"}), index=1)
    plan = plan_sidecarset(canary, [old_stable, old_canary], revs, now=NOW)
    assert _status(plan) == (2, 0, 2, 0)  # both not upgradable: the env changed
    revs = _apply_revision_ops(revs, plan)
    view = InjectionView(sidecarsets=[canary], revisions=revs, namespaces={"default": {}})

    def image_of(name: str, labels: dict[str, str]) -> str:
        out = inject(raw_pod(name, labels={"app": "nginx", **labels}), view, namespace="default", now="t")
        assert out is not None
        return str(out["spec"]["containers"][0]["image"])

    assert image_of("stable-1", {}) == V1
    assert image_of("canary-1", {"version": "canary"}) == V2


def test_invalid_spec_is_reported_and_not_acted_on() -> None:
    bad = sidecarset("test-sidecarset", containers=[{"name": "sidecar", "image": V2}], selector={})
    plan = plan_sidecarset(bad, [running(injected(ss_at(V1), "p"))], [], now=NOW)
    assert plan.commands == [] and [e.type for e in plan.events] == ["rejected"]
    assert "empty selector is not valid for sidecarset." in plan.events[0].message


def _labelled(ps: list[Pod], labels: dict[str, dict[str, str]]) -> list[Pod]:
    out = []
    for p in ps:
        extra = labels.get(p.metadata.name)
        if extra:
            meta = msgspec.structs.replace(p.metadata, labels={**p.metadata.labels, **extra})
            p = msgspec.structs.replace(p, metadata=meta)
        out.append(p)
    return out


@pytest.mark.parametrize(("priority", "labels", "expected"), [
    pytest.param({"weightPriority": [{"weight": 50, "matchSelector": {"matchLabels": {"key": "foo"}}},
                                     {"weight": 30, "matchSelector": {"matchLabels": {"key": "bar"}}}]},
                 {"pod-16": {"key": "foo"}, "pod-15": {"key": "bar"}}, ["pod-16", "pod-15"], id="K29-weight"),
    pytest.param({"orderPriority": [{"orderedKey": "key1"}]},
                 {**{f"pod-{i}": {"key1": "5"} for i in range(20)}, "pod-17": {"key1": "10"}, "pod-18": {"key1": "20"}},
                 ["pod-18", "pod-17"], id="K29-ordered-key"),
])
def test_K29_priority_order(priority: dict[str, Any], labels: dict[str, dict[str, str]], expected: list[str]) -> None:
    old = ss_at(V1)
    new = ss_at(V2, updateStrategy={"maxUnavailable": 10, "priorityStrategy": priority})
    chosen = next_upgrade_pods(new, _labelled(pods(20, 10, 2, old=old, new=new), labels)).chosen
    assert [p.metadata.name for p in chosen] == expected


def test_K30_scatter_wildcard_terms() -> None:
    from schemas.pub import UpdateScatterTerm
    from services.planner.sidecarset.plan import _scatter_terms

    terms = [UpdateScatterTerm(key=f"key-{i}", value=f"value-{i}") for i in (1, 2, 3)] + \
        [UpdateScatterTerm(key="key-4", value="*")]
    values = ["value-4-0", "value-4-1", "value-4-2", "value-4", "value-4", "value-4"]
    ps = _labelled(pods(6, 0, 0, old=ss_at(V1), new=ss_at(V2)),
                   {f"pod-{i}": {"key-4": v} for i, v in enumerate(values)})
    got = _scatter_terms(terms, ps)
    assert got is not None
    assert [(t.key, t.value) for t in got] == [("key-1", "value-1"), ("key-2", "value-2"), ("key-3", "value-3"),
                                               ("key-4", "value-4-0"), ("key-4", "value-4-1"),
                                               ("key-4", "value-4-2"), ("key-4", "value-4")]


def test_status_patch_clears_counts_that_dropped_to_zero() -> None:
    """The status is merge-patched: a count back at 0 must be written (or removed, for Kruise's
    omitempty members), not left at its old value (updatedReadyPods 1 with updatedPods 0)."""
    from schemas.jsonmerge import merge_patch

    old = ss_at(V1)
    p = running(injected(old, "p"))
    new = ss_at(V2, updateStrategy={"type": "NotUpdate"})
    stored = {"observedGeneration": 1, "matchedPods": 1, "updatedPods": 1, "readyPods": 1, "updatedReadyPods": 1,
              "latestRevision": "r1", "collisionCount": 0}
    new.status = msgspec.convert(stored, type(new.status))
    plan = plan_sidecarset(new, [p], [], now=NOW)
    (cmd,) = [c for c in plan.commands if c.verb == "status"]
    result = merge_patch({"status": stored}, cmd.ops[0].patch)["status"]
    assert (result["matchedPods"], result["updatedPods"], result["readyPods"]) == (1, 0, 1)
    assert "updatedReadyPods" not in result  # Kruise's omitempty zero: absent, as its status update leaves it


def test_K40_a_sidecar_stuck_on_a_broken_image_takes_the_next_image() -> None:
    """A pod whose sidecar never started its upgraded image (not ready, still reporting the old one) is
    upgraded again by the next image, first and free; one whose sidecar is Ready on the old image
    while an upgrade is under way waits for it (Kruise's IsSidecarSetUpgradable)."""
    broken, good = ss_at("sidecar:does-not-exist"), ss_at(V2)
    p = running(injected(ss_at(V1), "p"))
    p = _apply(p, plan_sidecarset(broken, [p], [], now=NOW))
    assert next(c.image for c in p.spec.containers if c.name == "sidecar") == "sidecar:does-not-exist"
    stuck = running(msgspec.to_builtins(p), ready=False, image_of={"sidecar": V1})
    assert plan_sidecarset(good, [stuck], [], now=NOW).upgrade == ["default/p"]
    still_ready = running(msgspec.to_builtins(p), ready=True, image_of={"sidecar": V1})
    assert plan_sidecarset(good, [still_ready], [], now=NOW).upgrade == []


def test_an_upgrade_is_expected_to_show_in_the_view_before_the_budget_is_counted_again() -> None:
    """An upgraded pod's command carries a `changed` expectation (its uid, the resourceVersion the pass
    saw): the engine plans the SidecarSet again only once the view holds a newer version of the pod.
    A pass on the old view would take the pod for old and consistent and upgrade a second one."""
    from services.planner.kit.expectations import expectation_met

    old, new = ss_at(V1), ss_at(V2)
    p1, p2 = running(injected(old, "test-pod-1"), index=2), running(injected(old, "test-pod-2"), index=1)
    plan = plan_sidecarset(new, [p1, p2], [], now=NOW)
    [exp] = plan.expectations
    assert (exp.pod, exp.kind, exp.key, exp.value) == ("test-pod-1", "changed", p1.metadata.uid,
                                                       p1.metadata.resource_version)
    [cmd] = [c for c in plan.commands if c.verb == "sidecar-upgrade"]
    assert cmd.expects == [exp]
    assert not expectation_met(exp, {}, shared_pods={p1.metadata.uid: p1})  # the view as it was
    again = plan_sidecarset(new, [p1, p2], [], now=NOW)  # what the stale view would decide: the same pod,
    assert again.upgrade == ["default/test-pod-1"]  # so it is the expectation that holds the next pass
    patched = _apply(p1, plan)
    patched = msgspec.structs.replace(patched, metadata=msgspec.structs.replace(
        patched.metadata, resource_version=str(int(p1.metadata.resource_version or "0") + 1)))
    assert expectation_met(exp, {}, shared_pods={p1.metadata.uid: patched})
    assert expectation_met(exp, {}, shared_pods={})  # gone: nothing more to wait for


def _at(pod: Pod, rv: str) -> Pod:
    return msgspec.structs.replace(pod, metadata=msgspec.structs.replace(pod.metadata, resource_version=rv))


def test_each_upgrade_carries_whether_it_was_charged_or_free_and_the_budget_it_was_decided_on() -> None:
    """The rollout log's evidence (`Command.data`, kit.budget): a pod not Ready in the pass's view is
    upgraded free, a Ready one is charged, and both name the budget and who was counted against it."""
    old, new = ss_at(V1), ss_at(V2, updateStrategy={"maxUnavailable": 2})
    # pod-0 is on v2 and still runs v1 (counted unavailable); pod-1 is old and not Ready; 2 and 3 are old, Ready
    matched = pods(4, 1, 0, old=old, new=new)
    matched[1] = running(injected(old, "pod-1"), ready=False, index=1)
    matched = [_at(p, str(100 + i)) for i, p in enumerate(matched)]
    plan = plan_sidecarset(new, matched, [], now=NOW)
    assert plan.upgrade == ["default/pod-1", "default/pod-3"]
    data = {c.pod: c.data for c in plan.commands if c.verb == "sidecar-upgrade"}
    budget = {"maxUnavailable": 2, "unavailable": 1, "counted": "pod-0@100"}
    assert data == {"pod-1": {"budget": "free", "resourceVersion": "101", **budget},
                    "pod-3": {"budget": "charged", "resourceVersion": "103", **budget}}
    # the other commands of the pass carry none
    assert all(not c.data for c in plan.commands if c.verb != "sidecar-upgrade")


def test_the_evidence_names_at_most_four_counted_pods() -> None:
    old, new = ss_at(V1), ss_at(V2, updateStrategy={"maxUnavailable": 10})
    matched = [_at(p, str(i)) for i, p in enumerate(pods(10, 6, 0, old=old, new=new))]
    got = next_upgrade_pods(new, matched)
    assert len(got.chosen) == 4
    assert got.budget.evidence(charged=True, resource_version="9")["counted"] == "pod-0@0,pod-1@1,pod-2@2,pod-3@3,+2"


def test_a_pod_upgraded_free_is_upgraded_only_while_it_is_the_version_that_was_not_ready() -> None:
    """The soak's SidecarSet breach (docs/reliability.md, seed 20261205 with the evidence): a pass
    took `sidecar-0-12` for free (not Ready: restarting into the previous version's image) together
    with a Ready pod charged to maxUnavailable 1; the restart finished before the patch landed, so the
    patch took a Ready pod down outside the budget. The free pick's patch now tests the
    resourceVersion it was decided on; a charged pick's does not (a newer status of a Ready pod does
    not change its charge)."""
    from sim.patch import PatchError, json_patch

    old, new = ss_at(V1), ss_at(V2)  # maxUnavailable 1
    restarting = _at(running(injected(old, "pod-0"), ready=False, index=0), "101")
    ready = _at(running(injected(old, "pod-1"), index=1), "102")
    plan = plan_sidecarset(new, [restarting, ready], [], now=NOW)
    patches = {c.pod: c.ops[0].patch for c in plan.commands if c.verb == "sidecar-upgrade"}
    assert set(patches) == {"pod-0", "pod-1"}

    def now_ready(pod: Pod, rv: str) -> dict[str, Any]:
        raw = msgspec.to_builtins(pod)
        raw["metadata"]["resourceVersion"] = rv
        raw["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
        return raw

    assert json_patch(msgspec.to_builtins(restarting), patches["pod-0"])["spec"]["containers"][0]["image"] == V2
    with pytest.raises(PatchError):  # became Ready since the decision: the command is stale
        json_patch(now_ready(restarting, "105"), patches["pod-0"])
    assert json_patch(now_ready(ready, "106"), patches["pod-1"])["spec"]["containers"][0]["image"] == V2
