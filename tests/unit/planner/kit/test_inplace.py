"""Kruise's `pkg/util/inplaceupdate` tests: in-place update spec, completion, refresh and container batches."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from schemas.kube import ControllerRevision, Pod
from services.planner.kit import inplace
from services.planner.kit.gates import DEFAULT_GATES
from services.planner.kit.podpatch import PodPatch
from services.planner.kit.revision import template_of
from services.planner.kit.timeutil import format_time
from tests.unit.planner.helpers import NOW, cs_dict, pod_dict, pod_obj, rev_obj, revision_dict
from tests.unit.planner.simkube import json_patch


def rev(
    containers: list[dict[str, Any]],
    labels: dict[str, str] | None = None,
    finalizers: list[str] | None = None,
    number: int = 1,
) -> ControllerRevision:
    cs = cs_dict()
    cs["spec"]["template"]["spec"]["containers"] = containers
    cs["spec"]["template"]["metadata"]["labels"] = {"app": "demo", **(labels or {})}
    if finalizers:
        cs["spec"]["template"]["metadata"]["finalizers"] = finalizers
    return rev_obj(revision_dict(cs, number))


def spec_between(
    a: ControllerRevision | None, b: ControllerRevision, grace: int = 0
) -> inplace.UpdateSpec | None:
    return inplace.calculate_spec(
        a, b, template_of(a) if a else None, template_of(b), grace_seconds=grace, gates=DEFAULT_GATES
    )


def meta_patch(spec: inplace.UpdateSpec) -> Any:
    return json.loads(spec.meta_data_patch) if spec.meta_data_patch else None


C1 = {"name": "c1", "image": "foo1"}
C1_NEW = {"name": "c1", "image": "foo2"}


def test_G1_no_old_revision() -> None:
    assert spec_between(None, rev([C1_NEW])) is None


def test_G2_image_only() -> None:
    s = spec_between(rev([C1]), rev([C1_NEW], number=2))
    assert s is not None and s.container_images == {"c1": "foo2"} and meta_patch(s) is None


def test_G3_image_and_label() -> None:
    s = spec_between(rev([C1]), rev([C1_NEW], labels={"k1": "v1"}, number=2))
    assert s is not None and s.container_images == {"c1": "foo2"}
    assert meta_patch(s) == {"metadata": {"labels": {"k1": "v1"}}}


def test_G4_env_from_metadata() -> None:
    env = [{"name": "K", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['k']"}}}]
    old = rev([{**C1, "env": env}], labels={"k": "v"})
    new = rev([{**C1_NEW, "env": env}], labels={"k": "v2", "k1": "v1"}, number=2)
    s = spec_between(old, new)
    assert s is not None
    assert s.container_ref_metadata == {"c1": inplace.RefMetadata(labels={"k": "v2"})}
    assert s.update_env_from_metadata is True
    assert meta_patch(s) == {"metadata": {"labels": {"k1": "v1"}}}


def test_G5_label_and_finalizer_removal() -> None:
    old = rev([C1], labels={"k2": "x"}, finalizers=["fz1"])
    new = rev([C1], labels={"k1": "v1"}, number=2)
    s = spec_between(old, new)
    assert s is not None and s.container_images == {}
    assert meta_patch(s) == {
        "metadata": {"labels": {"k1": "v1", "k2": None}, "$deleteFromPrimitiveList/finalizers": ["fz1"]}
    }


def test_G6_env_change_is_not_in_place() -> None:
    assert spec_between(rev([C1]), rev([{**C1_NEW, "env": [{"name": "E", "value": "1"}]}], number=2)) is None
    # containers added / renamed / other spec fields also recreate
    assert spec_between(rev([C1]), rev([C1, {"name": "c2", "image": "x"}], number=2)) is None
    assert spec_between(rev([C1]), rev([{"name": "c9", "image": "foo1"}], number=2)) is None


def pod_with(
    state: dict[str, Any] | None,
    statuses: list[dict[str, Any]],
    containers: list[dict[str, Any]],
    annotations: dict[str, str] | None = None,
) -> Pod:
    cs = cs_dict()
    d = pod_dict(cs, "demo-new", 0)
    d["spec"]["containers"] = containers
    d["status"]["containerStatuses"] = statuses
    ann = dict(annotations or {})
    if state is not None:
        ann["apps.kruise.io/inplace-update-state"] = json.dumps(state)
    d["metadata"]["annotations"] = ann
    return pod_obj(d)


def test_G7_completion_by_image_id() -> None:
    state = {"revision": "demo-new", "lastContainerStatuses": {"c1": {"imageID": "img01"}}}
    st = inplace.read_state
    done = pod_with(state, [{"name": "c1", "image": "foo2", "imageID": "img02"}], [C1_NEW])
    same_id_other_image = pod_with(state, [{"name": "c1", "image": "foo1", "imageID": "img01"}], [C1_NEW])
    no_status = pod_with(state, [], [C1_NEW])
    for pod, expected in ((done, True), (same_id_other_image, False), (no_status, False)):
        s = st(pod)
        assert s is not None and inplace.containers_completed(pod, s) is expected


def test_completion_needs_the_image_the_spec_names_not_an_intermediate_one() -> None:
    """v1 -> v2 overtaken by v3: the restart into v2 changes the imageID, but the pod is not done."""
    state = {"revision": "demo-new", "lastContainerStatuses": {"c1": {"imageID": "img01"}}}
    v3 = {"name": "c1", "image": "foo3"}
    intermediate = pod_with(state, [{"name": "c1", "image": "foo2", "imageID": "img02"}], [v3])
    final = pod_with(state, [{"name": "c1", "image": "foo3", "imageID": "img03"}], [v3])
    runtime_spelling = pod_with(state, [{"name": "c1", "image": "docker.io/library/foo3:latest",
                                         "imageID": "img03"}], [v3])
    only_an_id = pod_with(state, [{"name": "c1", "image": "sha256:abc", "imageID": "img03"}], [v3])
    for pod, expected in ((intermediate, False), (final, True), (runtime_spelling, True), (only_an_id, True)):
        s = inplace.read_state(pod)
        assert s is not None and inplace.containers_completed(pod, s) is expected, pod.status


@pytest.mark.parametrize(("reported", "spec", "same"), [
    ("nginx:1.21", "nginx:1.21", True),
    ("docker.io/library/nginx:1.21", "nginx:1.21", True),
    ("docker.io/library/nginx:latest", "nginx", True),
    ("index.docker.io/library/nginx:1.21", "library/nginx:1.21", True),
    ("registry.local:5000/team/app:v2", "registry.local:5000/team/app:v2", True),
    ("localhost/app:v1", "localhost/app:v1", True),
    ("docker.io/library/nginx:1.20", "nginx:1.21", False),
    ("quay.io/nginx:1.21", "nginx:1.21", False),
])
def test_image_references_compare_as_the_runtime_reports_them(reported: str, spec: str, same: bool) -> None:
    assert (inplace.normalise_image(reported) == inplace.normalise_image(spec)) is same


def grace_pod(grace: int, started_ago: int) -> Pod:
    state = {
        "revision": "demo-new",
        "updateTimestamp": format_time(NOW - timedelta(seconds=started_ago)),
        "updateImages": True,
    }
    spec = {"revision": "demo-new", "containerImages": {"c1": "foo2"}, "graceSeconds": grace}
    return pod_with(
        state,
        [{"name": "c1", "image": "foo1", "imageID": "img01"}],
        [C1],
        {"apps.kruise.io/inplace-update-grace": json.dumps(spec)},
    )


def test_G8_refresh_grace() -> None:
    res = inplace.refresh(grace_pod(30, 10), NOW, True, {})
    assert res.patch is None and res.delay == 20 and not res.set_ready
    pod = grace_pod(5, 10)
    res = inplace.refresh(pod, NOW, True, {})
    assert res.patch is not None and res.kind == "grace-finish"
    after = json_patch(msgspec.to_builtins(pod), res.patch.build())
    assert after["spec"]["containers"][0]["image"] == "foo2"
    assert "apps.kruise.io/inplace-update-grace" not in after["metadata"]["annotations"]
    state = json.loads(after["metadata"]["annotations"]["apps.kruise.io/inplace-update-state"])
    assert state["containerBatchesRecord"] == [{"timestamp": format_time(NOW), "containers": ["c1"]}]
    assert state["lastContainerStatuses"] == {"c1": {"imageID": "img01"}}
    # revision moved on while in grace: the grace spec is dropped
    res = inplace.refresh(grace_pod(30, 10), NOW, False, {})
    assert res.kind == "grace-drop"


def test_G9_refresh_sets_condition_true() -> None:
    d = pod_dict(cs_dict(), "demo-new", 0, inplace_ready=False)
    res = inplace.refresh(pod_obj(d), NOW, False, {})
    assert res.set_ready and res.patch is None


BARRIER = "KRUISE_CONTAINER_BARRIER"


def prio(n: int) -> list[dict[str, Any]]:
    return [{"name": BARRIER, "valueFrom": {"configMapKeyRef": {"name": "x", "key": f"p_{n}"}}}]


def test_G10_priority_batches() -> None:
    containers = [
        {"name": "c1", "image": "foo1", "env": prio(20)},
        {"name": "c2", "image": "bar1", "env": prio(10)},
    ]
    new = [{"name": "c1", "image": "foo2", "env": prio(20)}, {"name": "c2", "image": "bar2", "env": prio(10)}]
    priorities = inplace.priorities_of(template_of(rev(new)))
    assert priorities == {"c1": 20, "c2": 10}
    pod = pod_with(
        None,
        [
            {"name": "c1", "image": "foo1", "imageID": "i1", "ready": True},
            {"name": "c2", "image": "bar1", "imageID": "i2", "ready": True},
        ],
        [{"name": c["name"], "image": c["image"]} for c in containers],
    )
    s = spec_between(rev(containers), rev(new, number=2))
    assert s is not None
    patch = inplace.start_update(pod, s, "demo-new", "new", priorities, NOW)
    after = json_patch(msgspec.to_builtins(pod), patch.build())
    assert [c["image"] for c in after["spec"]["containers"]] == ["foo2", "bar1"]
    state = json.loads(after["metadata"]["annotations"]["apps.kruise.io/inplace-update-state"])
    assert state["nextContainerImages"] == {"c2": "bar2"}
    assert state["preCheckBeforeNext"] == {"containersRequiredReady": ["c1"]}
    assert not inplace.pod_update_completed(pod_obj(after))
    # kubelet restarts c1; once ready, the refresh applies batch 2
    after["status"]["containerStatuses"][0].update(image="foo2", imageID="i1b", ready=True)
    pod2 = pod_obj(after)
    res = inplace.refresh(pod2, NOW + timedelta(seconds=5), False, priorities)
    assert res.kind == "next-batch" and res.patch is not None
    after2 = json_patch(after, res.patch.build())
    assert [c["image"] for c in after2["spec"]["containers"]] == ["foo2", "bar2"]
    state2 = json.loads(after2["metadata"]["annotations"]["apps.kruise.io/inplace-update-state"])
    assert "nextContainerImages" not in state2 and "preCheckBeforeNext" not in state2
    assert [b["containers"] for b in state2["containerBatchesRecord"]] == [["c1"], ["c2"]]


def test_G11_image_and_env_metadata_one_batch() -> None:
    env = [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['a']"}}}]
    old_c = [{"name": "c3", "image": "foo1"}, {"name": "c4", "image": "bar", "env": env}]
    new_c = [{"name": "c3", "image": "foo2"}, {"name": "c4", "image": "bar", "env": env}]
    old_r = rev(old_c)
    cs = cs_dict()
    cs["spec"]["template"]["spec"]["containers"] = new_c
    cs["spec"]["template"]["metadata"]["annotations"] = {"a": "2"}
    new_r = rev_obj(revision_dict(cs, 2))
    s = spec_between(old_r, new_r)
    assert s is not None and s.container_images == {"c3": "foo2"}
    assert s.container_ref_metadata == {"c4": inplace.RefMetadata(annotations={"a": "2"})}
    pod = pod_with(
        None,
        [{"name": "c3", "image": "foo1", "imageID": "i3"}, {"name": "c4", "image": "bar", "imageID": "i4"}],
        [{"name": "c3", "image": "foo1"}, {"name": "c4", "image": "bar"}],
    )
    patch = inplace.start_update(pod, s, "demo-new", "new", {}, NOW)
    after = json_patch(msgspec.to_builtins(pod), patch.build())
    state = json.loads(after["metadata"]["annotations"]["apps.kruise.io/inplace-update-state"])
    assert state["containerBatchesRecord"][0]["containers"] == ["c3", "c4"]
    assert state["lastContainerStatuses"] == {"c3": {"imageID": "i3"}}
    assert after["metadata"]["annotations"]["a"] == "2"


def test_podpatch_escapes_and_guards() -> None:
    pod = pod_obj(pod_dict(cs_dict(), "demo-new", 0))
    p = PodPatch(pod)
    p.test_label("controller-revision-hash")
    p.set_label("a/b", "1")
    p.remove_label("missing")  # not emitted: would fail the patch
    p.set_annotation("x~y", "2")
    ops = p.build()
    assert ops[0] == {"op": "test", "path": "/metadata/uid", "value": pod.metadata.uid}
    assert {"op": "add", "path": "/metadata/labels/a~1b", "value": "1"} in ops
    i = ops.index({"op": "add", "path": "/metadata/annotations", "value": {}})  # pod had none
    assert ops[i - 1] == {"op": "test", "path": "/metadata/annotations", "value": None}
    assert {"op": "add", "path": "/metadata/annotations/x~0y", "value": "2"} in ops
    assert all(o["op"] != "remove" for o in ops)
