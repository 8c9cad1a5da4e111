"""A CloneSet's revisions: name and metadata, round trip, selection (`getActiveRevisions`) and history truncation.

The shared mechanics (hashing, naming, data layout, equality) are tested in tests/unit/planner/kit/test_revision.py.
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.cloneset import CloneSet
from schemas.constants import ANNOTATION_VCT_HASH, LABEL_HASH, LABEL_REVISION_HASH
from schemas.kube import ControllerRevision, ObjectMeta, OwnerReference, Pod
from services.planner.cloneset.revision import (
    apply_revision,
    build_revision,
    controller_ref,
    select_revisions,
    truncate_history,
)
from services.planner.kit.revision import (
    equal_revision,
    hash_revision,
    revision_bytes,
    revision_name,
    short_hash,
    template_of,
)

VCTS = [
    {
        "metadata": {"name": "data-vol"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
]


def make_cs(
    image: str = "nginx:1.9.1",
    *,
    vcts: bool = True,
    current_revision: str = "",
    collision_count: int | None = None,
) -> CloneSet:
    status: dict[str, Any] = {"currentRevision": current_revision}
    if collision_count is not None:
        status["collisionCount"] = collision_count
    data: dict[str, Any] = {
        "metadata": {
            "name": "test-cs",
            "namespace": "default",
            "uid": "test-uid",
            "annotations": {"team": "a"},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "test"}},
            "template": {
                "metadata": {"labels": {"app": "test"}},
                "spec": {"containers": [{"name": "nginx", "image": image}]},
            },
            "volumeClaimTemplates": VCTS if vcts else [],
        },
        "status": status,
    }
    return msgspec.convert(data, type=CloneSet)


def rev(
    name: str,
    number: int,
    data: dict[str, Any],
    *,
    annotations: dict[str, str] | None = None,
    owner_uid: str | None = "test-uid",
    labels: dict[str, str] | None = None,
) -> ControllerRevision:
    refs = (
        []
        if owner_uid is None
        else [
            OwnerReference(
                api_version="apps.kruise.io/v1alpha1",
                kind="CloneSet",
                name="test-cs",
                uid=owner_uid,
                controller=True,
            )
        ]
    )
    return ControllerRevision(
        metadata=ObjectMeta(
            name=name,
            namespace="default",
            labels=labels or {"app": "test"},
            annotations=annotations or {},
            owner_references=refs,
        ),
        revision=number,
        data=data,
    )


def pod(name: str, revision_label: str | None) -> Pod:
    labels = {} if revision_label is None else {LABEL_REVISION_HASH: revision_label}
    return Pod(metadata=ObjectMeta(name=name, namespace="default", labels=labels))


# ---------------------------------------------------------------- a CloneSet's revision


def test_hash_is_stable_and_template_sensitive() -> None:
    a1 = build_revision(make_cs(), 1, 0)
    a2 = build_revision(make_cs(), 7, 0)
    b = build_revision(make_cs("nginx:2"), 1, 0)
    assert a1.metadata.name == a2.metadata.name  # revision number does not affect the hash
    assert a1.metadata.name != b.metadata.name
    # Pin the value so an accidental serialisation change is caught.
    assert a1.metadata.name == "test-cs-" + hash_revision(revision_bytes(a1.data), 0)
    # (Go emits the container's "resources":{}; before kruisebus did, this was test-cs-57f5958bd7)
    assert a1.metadata.name == "test-cs-6b49959fbb"


def test_build_revision_metadata() -> None:
    cs = make_cs()
    r = build_revision(cs, 4, 0)
    assert r.revision == 4
    assert r.api_version == "apps/v1" and r.kind == "ControllerRevision"
    assert r.metadata.namespace == "default"
    assert r.metadata.labels == {"app": "test", LABEL_HASH: short_hash(r.metadata.name)}
    assert r.metadata.annotations["team"] == "a"  # all CloneSet annotations are copied
    assert r.metadata.annotations[ANNOTATION_VCT_HASH] != ""
    assert r.metadata.owner_references == [controller_ref(cs)]
    ref = r.metadata.owner_references[0]
    assert (ref.api_version, ref.kind, ref.uid, ref.controller, ref.block_owner_deletion) == (
        "apps.kruise.io/v1alpha1",
        "CloneSet",
        "test-uid",
        True,
        True,
    )
    assert build_revision(make_cs(vcts=False), 1, 0).metadata.annotations[ANNOTATION_VCT_HASH] == ""


def test_annotations_and_vct_do_not_change_the_hash() -> None:
    a = build_revision(make_cs(), 1, 0)
    b = build_revision(make_cs(vcts=False), 1, 0)
    assert a.metadata.name == b.metadata.name
    assert a.metadata.annotations[ANNOTATION_VCT_HASH] != b.metadata.annotations[ANNOTATION_VCT_HASH]


def test_f2_create_apply_revision_round_trip() -> None:
    """Kruise's TestCreateApplyRevision: apply a revision back onto a changed CloneSet and re-revision it."""
    cs = make_cs()
    revision = build_revision(cs, 1, 0)
    changed = msgspec.convert(
        {
            **msgspec.to_builtins(cs),
            "metadata": {**msgspec.to_builtins(cs.metadata), "annotations": {"team": "a", "foo": "bar"}},
        },
        type=CloneSet,
    )
    changed.spec.template.spec["containers"][0]["name"] = "foo"
    assert build_revision(changed, 2, 0).metadata.name != revision.metadata.name
    restored = apply_revision(changed, revision)
    restored_rev = build_revision(restored, 2, 0)
    assert equal_revision(revision, restored_rev)
    assert restored_rev.metadata.name == revision.metadata.name
    assert restored_rev.metadata.annotations["foo"] == "bar"
    assert template_of(revision) == cs.spec.template


# ---------------------------------------------------------------- selection (`getActiveRevisions`, Kruise's TestGetActiveRevisions)

DIFFERENT = {
    "spec": {
        "template": {
            "$patch": "replace",
            "metadata": {"creationTimestamp": None, "labels": {"foo": "bar"}},
            "spec": {"containers": [{"image": "different:1.0", "name": "nginx"}]},
        }
    }
}


def test_f3_equal_revision_with_nil_annotations_is_bumped() -> None:
    cs = make_cs()
    equal_data = build_revision(cs, 1, 0).data
    expected_vct = build_revision(cs, 1, 0).metadata.annotations[ANNOTATION_VCT_HASH]
    history = [rev("test-cs-equal-1", 1, equal_data), rev("test-cs-diff-2", 2, DIFFERENT)]
    sel = select_revisions(cs, history, [])
    assert sel.update.metadata.name == "test-cs-equal-1"
    assert sel.update.revision == 3
    assert sel.update.metadata.annotations[ANNOTATION_VCT_HASH] == expected_vct
    assert sel.bump is sel.update
    assert sel.create is None
    assert sel.current.metadata.name == "test-cs-equal-1"  # status.currentRevision unset -> update
    assert history[0].revision == 1  # inputs are not mutated


def test_f4_equal_revision_is_the_last() -> None:
    cs = make_cs(current_revision="test-cs-diff-1")
    equal_data = build_revision(cs, 1, 0).data
    history = [rev("test-cs-diff-1", 1, DIFFERENT), rev("test-cs-equal-2", 2, equal_data)]
    sel = select_revisions(cs, history, [])
    assert sel.update.metadata.name == "test-cs-equal-2"
    assert sel.update.revision == 2
    assert sel.create is None and sel.bump is None
    assert sel.current.metadata.name == "test-cs-diff-1"


def test_f4_no_equal_revision_creates_new_one() -> None:
    cs = make_cs()
    sel = select_revisions(cs, [rev("test-cs-diff-1", 1, DIFFERENT)], [])
    assert sel.create is not None and sel.create is sel.update
    assert sel.update.revision == 2
    assert sel.update.metadata.name == build_revision(cs, 2, 0).metadata.name
    assert sel.collision_count == 0


def test_first_revision_of_a_new_cloneset() -> None:
    sel = select_revisions(make_cs(), [], [])
    assert sel.create is not None
    assert sel.update.revision == 1
    assert sel.current is sel.update
    assert sel.delete == []


def test_collision_bumps_collision_count_and_rehashes() -> None:
    cs = make_cs()
    first = build_revision(cs, 1, 0)
    squatter = rev(first.metadata.name, 1, DIFFERENT, owner_uid="someone-else", labels={"other": "x"})
    sel = select_revisions(cs, [squatter], [])
    assert sel.collision_count == 1
    assert sel.create is not None
    assert sel.create.metadata.name == revision_name("test-cs", hash_revision(revision_bytes(first.data), 1))
    # Kubernetes keeps the first hash in the label after a collision.
    assert sel.create.metadata.labels[LABEL_HASH] == short_hash(first.metadata.name)


def test_name_taken_by_equal_data_is_reused() -> None:
    cs = make_cs()
    first = build_revision(cs, 1, 0)
    foreign = rev(first.metadata.name, 1, first.data, owner_uid="someone-else", labels={"other": "x"})
    sel = select_revisions(cs, [foreign], [])
    assert sel.create is None and sel.update is foreign and sel.collision_count == 0


def test_status_collision_count_is_used() -> None:
    cs = make_cs(collision_count=3)
    sel = select_revisions(cs, [], [])
    assert sel.collision_count == 3
    assert sel.update.metadata.name == build_revision(cs, 1, 3).metadata.name


def test_revisions_of_other_owners_or_selectors_are_not_history() -> None:
    cs = make_cs()
    equal_data = build_revision(cs, 1, 0).data
    others = [
        rev("x-1", 5, equal_data, owner_uid="other"),
        rev("x-2", 6, equal_data, labels={"app": "nope"}),
    ]
    sel = select_revisions(cs, others, [])
    assert sel.create is not None and sel.update.revision == 1
    orphan = rev("orphan-1", 4, equal_data, owner_uid=None)  # orphans matching the selector are history
    sel = select_revisions(cs, [orphan], [])
    assert sel.update is orphan


def test_truncate_history_keeps_live_and_limit() -> None:
    cs = make_cs(current_revision="test-cs-r2")
    cs.spec.revision_history_limit = 2
    history = [rev(f"test-cs-r{i}", i, {"spec": {"template": {"n": i}}}) for i in range(1, 8)]
    pods = [pod("a", "test-cs-r3"), pod("b", "r4")]  # long and short forms keep r3, r4 alive
    sel = select_revisions(cs, history, pods)
    # update = new revision; current r2; live r3, r4 -> non-live r1, r5, r6, r7 -> keep newest 2
    assert sel.update.revision == 8
    assert sel.delete == ["test-cs-r1", "test-cs-r5"]


def test_truncate_history_default_limit_is_ten() -> None:
    cs = make_cs()
    history = [rev(f"test-cs-r{i}", i, {"spec": {"template": {"n": i}}}) for i in range(1, 13)]
    update = build_revision(cs, 13, 0)
    assert truncate_history(cs, [], history, history[-1], update) == ["test-cs-r1"]
    cs.spec.revision_history_limit = 0
    assert len(truncate_history(cs, [], history, history[-1], update)) == 11
