"""CloneSet image pre-download (`cloneset_predownload_image.go`) behind PreDownloadImageForInPlaceUpdate:
Kruise's e2e row J1, every skip rule, the job it makes, its deletion; and that with the gate off the
CloneSet planner does exactly what it did before."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from schemas.cloneset import CloneSet
from schemas.imagepulljob import ImagePullJob
from schemas.kube import ControllerRevision
from schemas.messages import CreateOp
from services.planner.cloneset.plan import plan_cloneset
from services.planner.cloneset.view import Plan
from services.planner.imagepulljob.predownload import PreDownload, parallelism_setting, predownload_commands
from services.planner.imagepulljob.validation import validate_image_pull_job
from services.planner.kit.gates import DEFAULT_GATES, parse_feature_gates
from services.planner.kit.selectors import matches
from tests.unit.planner.helpers import NOW, cs_dict, cs_obj, with_image
from tests.unit.planner.simkube import Cluster, drive

GATE = parse_feature_gates("PreDownloadImageForInPlaceUpdate=true")
PARALLELISM = "apps.kruise.io/image-predownload-parallelism"


def settled(cs: dict[str, Any], gates: Any = GATE) -> tuple[Cluster, Any]:
    c = Cluster(cs)
    return c, drive(c, NOW, gates=gates)


def change_image(c: Cluster, image: str = "nginx:2.0") -> None:
    c.cs = with_image(c.cs, image)


def job_creates(plan: Plan) -> list[dict[str, Any]]:
    return [
        op.body
        for c in plan.commands
        for op in c.ops
        if isinstance(op, CreateOp) and op.resource.plural == "imagepulljobs"
    ]


def rollout_pass(c: Cluster, now: Any, gates: Any = GATE) -> Plan:
    """The first pass after the image change that has the new revision stored."""
    for _ in range(3):
        plan = plan_cloneset(c.view(), now=now, gates=gates)
        if not any(cmd.verb == "revision-create" for cmd in plan.commands):
            return plan
        c.apply(plan, now)
    raise AssertionError("the new revision was never stored")


def test_J1_pre_download_for_new_image() -> None:
    cs = cs_dict(replicas=5, strategy="InPlaceIfPossible", partition=1)
    cs["metadata"]["annotations"] = {PARALLELISM: "2"}
    c, now = settled(cs)
    change_image(c)
    plan = rollout_pass(c, now)
    [body] = job_creates(plan)
    assert body["spec"]["image"] == "nginx:2.0" and body["spec"]["parallelism"] == 2
    job = msgspec.convert(body, ImagePullJob)
    cmd = next(cmd for cmd in plan.commands if cmd.verb == "imagepulljob-create")
    assert cmd.on_success is not None and cmd.on_success.reason == "CreatedImagePullJob"
    assert cmd.on_success.message == f"created ImagePullJob {job.metadata.name} for image: nginx:2.0"
    update = plan.status.update_revision
    assert job.metadata.name == f"{update}-main"
    assert validate_image_pull_job(job) is None  # the webhook admits it
    label = next(cmd for cmd in plan.commands if cmd.verb == "revision-label")
    assert label.revision == update and label.ops[0].patch[-1] == {  # type: ignore[union-attr,index]
        "op": "add",
        "path": "/metadata/labels/apps.kruise.io~1pre-predownload-created",
        "value": "true",
    }


def test_job_spec_as_kruise_creates_it() -> None:
    cs = cs_dict(replicas=5, strategy="InPlaceIfPossible", partition=1)
    cs["spec"]["template"]["metadata"]["annotations"] = {"note": "x"}
    cs["spec"]["template"]["spec"]["imagePullSecrets"] = [{"name": "reg"}]
    c, now = settled(cs)
    change_image(c)
    plan = rollout_pass(c, now)
    [body] = job_creates(plan)
    update = c.revisions[plan.status.update_revision]
    revision_hash = update["metadata"]["labels"]["controller.kubernetes.io/hash"]
    assert body["metadata"]["labels"] == {"app": "demo", "controller.kubernetes.io/hash": revision_hash}
    assert body["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps.kruise.io/v1alpha1",
            "kind": "CloneSet",
            "name": "demo",
            "uid": cs["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = body["spec"]
    assert spec["pullSecrets"] == ["reg"] and spec["parallelism"] == 1
    assert spec["pullPolicy"] == {"backoffLimit": 1, "timeoutSeconds": 300}
    assert spec["completionPolicy"] == {"type": "Always", "ttlSecondsAfterFinished": 600}
    assert spec["sandboxConfig"] == {"labels": body["metadata"]["labels"], "annotations": {"note": "x"}}
    assert spec["podSelector"] == {
        "matchLabels": {"app": "demo"},
        "matchExpressions": [
            {
                "key": "controller-revision-hash",
                "operator": "NotIn",
                "values": [update["metadata"]["name"], revision_hash],
            }
        ],
    }


def test_pod_selector_targets_only_pods_not_yet_updated() -> None:
    cs = cs_dict(replicas=5, strategy="InPlaceIfPossible", partition=1)
    c, now = settled(cs)
    change_image(c)
    plan = rollout_pass(c, now)
    job = msgspec.convert(job_creates(plan)[0], ImagePullJob)
    assert job.spec.pod_selector is not None
    sel = job.spec.pod_selector.label_selector()
    old = next(iter(c.pods.values()))
    assert matches(sel, old["metadata"]["labels"])
    updated = {**old["metadata"]["labels"], "controller-revision-hash": plan.status.update_revision}
    assert not matches(sel, updated)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"strategy": "ReCreate"}, "update type is ReCreate"),
        ({"strategy": None}, "update type is ReCreate"),
        ({"replicas": 3, "strategy": "InPlaceIfPossible"}, "replicas 3 <= 3"),
        ({"strategy": "InPlaceIfPossible", "max_unavailable": 5}, "all pods update in one batch"),
        ({"strategy": "InPlaceIfPossible", "max_unavailable": "100%"}, "all pods update in one batch"),
    ],
    ids=["recreate", "no-strategy-is-recreate", "replicas-3", "one-batch-int", "one-batch-percent"],
)
def test_skip_rules_label_the_revision_ignored(spec: dict[str, Any], reason: str) -> None:
    cs = cs_dict(**{"replicas": 5, **spec})
    c, now = settled(cs)
    change_image(c)
    plan = rollout_pass(c, now)
    assert job_creates(plan) == []
    label = next(cmd for cmd in plan.commands if cmd.verb == "revision-label")
    assert label.ops[0].patch[-1]["path"] == "/metadata/labels/apps.kruise.io~1image-predownload-ignored"  # type: ignore[index]
    assert any(e.type == "predownload-ignored" and e.message.endswith(reason) for e in plan.events)


def test_max_unavailable_percent_rounds_down_for_the_batch_check() -> None:
    # 5 x 90% = 4.5 -> 4 < 5: two batches, so pre-download happens
    cs = cs_dict(replicas=5, strategy="InPlaceIfPossible", max_unavailable="90%")
    c, now = settled(cs)
    change_image(c)
    assert len(job_creates(rollout_pass(c, now))) == 1


def test_partition_keeps_a_one_batch_rollout_eligible() -> None:
    cs = cs_dict(replicas=5, strategy="InPlaceIfPossible", max_unavailable=5, partition=1)
    c, now = settled(cs)
    change_image(c)
    assert len(job_creates(rollout_pass(c, now))) == 1


def test_not_in_place_change_is_ignored() -> None:
    cs = cs_dict(replicas=5, strategy="InPlaceIfPossible")
    c, now = settled(cs)
    c.cs = copy.deepcopy(c.cs)
    c.cs["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2.0"
    c.cs["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]  # not image-only
    c.cs["metadata"]["generation"] += 1
    plan = rollout_pass(c, now)
    assert job_creates(plan) == []
    assert any(e.message.endswith("in-place update is not possible") for e in plan.events)


def test_one_job_per_changed_container() -> None:
    cs = cs_dict(
        replicas=5,
        strategy="InPlaceIfPossible",
        partition=1,
        extra_containers=[{"name": "side", "image": "busybox:1"}, {"name": "same", "image": "x:1"}],
    )
    c, now = settled(cs)
    c.cs = copy.deepcopy(c.cs)
    containers = c.cs["spec"]["template"]["spec"]["containers"]
    containers[0]["image"], containers[1]["image"] = "nginx:2.0", "busybox:2"
    c.cs["metadata"]["generation"] += 1
    names = sorted(b["metadata"]["name"].rsplit("-", 1)[1] for b in job_creates(rollout_pass(c, now)))
    assert names == ["main", "side"]


def test_revision_already_labelled_is_skipped() -> None:
    cs = cs_dict(replicas=5, strategy="InPlaceIfPossible", partition=1)
    c, now = settled(cs)
    change_image(c)
    plan = rollout_pass(c, now)
    c.apply(plan, now)
    again = plan_cloneset(c.view(), now=now, gates=GATE)
    assert job_creates(again) == [] and not any(cmd.verb == "revision-label" for cmd in again.commands)


def _pre(cs: CloneSet, *, ready: int, status_rev: str, annotation: str | None) -> PreDownload:
    current = msgspec.convert({"metadata": {"name": "demo-1"}}, ControllerRevision)
    update = msgspec.convert(
        {"metadata": {"name": "demo-2", "labels": {"controller.kubernetes.io/hash": "2"}}}, ControllerRevision
    )
    if annotation is not None:
        cs.metadata.annotations["apps.kruise.io/image-predownload-min-updated-ready-pods"] = annotation
    cs = msgspec.structs.replace(
        cs,
        status=msgspec.structs.replace(cs.status, updated_ready_replicas=ready, update_revision=status_rev),
    )
    t = cs.spec.template
    return predownload_commands(
        cs,
        current,
        update,
        (t, msgspec.structs.replace(t, spec={"containers": [{"name": "main", "image": "nginx:9"}]})),
        [],
        GATE,
        NOW,
        in_place_possible=True,
    )


@pytest.mark.parametrize(
    ("ready", "status_rev", "annotation", "creates"),
    [
        (0, "demo-2", None, True),
        (1, "demo-2", "2", False),
        (2, "demo-2", "2", True),
        (5, "demo-1", "2", False),
        (0, "demo-2", "x", True),
    ],
    ids=["default-0", "below-min", "at-min", "ready-of-an-older-revision-count-0", "unparsable-ignored"],
)
def test_min_updated_ready_pods(ready: int, status_rev: str, annotation: str | None, creates: bool) -> None:
    cs = cs_obj(cs_dict(replicas=5, strategy="InPlaceIfPossible", partition=1))
    assert bool(_pre(cs, ready=ready, status_rev=status_rev, annotation=annotation).jobs) is creates


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [(None, 1), ("5", 5), ("50%", "50%")],
    ids=["default-1", "int", "percent-stays-a-string"],
)
def test_parallelism_annotation(annotation: str | None, expected: Any) -> None:
    cs = cs_obj(cs_dict())
    if annotation is not None:
        cs.metadata.annotations[PARALLELISM] = annotation
    assert parallelism_setting(cs) == expected


def test_jobs_deleted_once_revisions_are_consistent() -> None:
    cs = cs_dict(replicas=5, strategy="InPlaceIfPossible", max_unavailable="50%")
    c, now = settled(cs)
    change_image(c)
    end = drive(c, now, gates=GATE)
    assert len(c.jobs_created) == 1  # created once, during the rollout
    assert c.jobs == {}  # deleted when current == update revision
    assert end > now


def test_gate_off_changes_nothing() -> None:
    cs = cs_dict(replicas=5, strategy="InPlaceIfPossible", partition=1)
    on, now = settled(cs, gates=DEFAULT_GATES)
    off = copy.deepcopy(on)
    change_image(on)
    change_image(off)
    plain = rollout_pass(off, now, gates=DEFAULT_GATES)
    assert job_creates(plain) == [] and not any(c.verb == "revision-label" for c in plain.commands)
    daemon_off = parse_feature_gates("PreDownloadImageForInPlaceUpdate=true,KruiseDaemon=false")
    assert [c.id for c in rollout_pass(on, now, gates=daemon_off).commands] == [c.id for c in plain.commands]


def test_with_gate_the_rest_of_the_pass_is_unchanged() -> None:
    cs = cs_dict(replicas=5, strategy="InPlaceIfPossible", partition=1)
    c, now = settled(cs)
    change_image(c)
    with_gate = rollout_pass(copy.deepcopy(c), now)
    without = rollout_pass(copy.deepcopy(c), now, gates=DEFAULT_GATES)
    extra = {"imagepulljob-create", "revision-label"}
    assert [x.id for x in with_gate.commands if x.verb not in extra] == [x.id for x in without.commands]
