"""Patch semantics of the embedded API server (RFC 6902, RFC 7386, strategic merge)."""

from __future__ import annotations

import pytest

from schemas.jsonmerge import merge_patch
from sim.patch import PatchDecodeError, PatchError, json_patch, strategic_merge


def test_json_patch_ops() -> None:
    doc = {"a": {"b": [1, 2, 3]}, "c": "x"}
    out = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/-", "value": 4},
            {"op": "add", "path": "/a/b/0", "value": 0},
            {"op": "remove", "path": "/a/b/1"},
            {"op": "replace", "path": "/c", "value": "y"},
            {"op": "copy", "from": "/c", "path": "/d"},
            {"op": "move", "from": "/d", "path": "/e~1f"},
            {"op": "test", "path": "/a/b", "value": [0, 2, 3, 4]},
        ],
    )
    assert out == {"a": {"b": [0, 2, 3, 4]}, "c": "y", "e/f": "y"}
    assert doc == {"a": {"b": [1, 2, 3]}, "c": "x"}  # input untouched


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "test", "path": "/c", "value": "nope"}],
        [{"op": "test", "path": "/missing", "value": 1}],
        [{"op": "replace", "path": "/missing", "value": 1}],
        [{"op": "remove", "path": "/a/b/9"}],
        [{"op": "test", "path": "/n", "value": True}],  # 1 is not true in JSON
    ],
)
def test_json_patch_failures(ops: list[dict[str, object]]) -> None:
    with pytest.raises(PatchError):
        json_patch({"a": {"b": [1]}, "c": "x", "n": 1}, ops)


def test_json_patch_decode_errors() -> None:
    with pytest.raises(PatchDecodeError):
        json_patch({}, {"op": "add"})
    with pytest.raises(PatchDecodeError):
        json_patch({}, [{"op": "frobnicate", "path": "/a"}])


def test_merge_patch_rfc7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    assert merge_patch(target, {"a": "z", "c": {"f": None}, "l": [3]}) == {
        "a": "z",
        "c": {"d": "e"},
        "l": [3],
    }
    assert merge_patch({"a": 1}, {"b": {"c": None}}) == {"a": 1, "b": {}}


def test_strategic_merge_by_keys() -> None:
    pod = {
        "spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]},
        "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "X"}]},
        "metadata": {"finalizers": ["f1"], "ownerReferences": [{"uid": "u1", "name": "o"}]},
    }
    out = strategic_merge(
        pod,
        {
            "spec": {
                "containers": [{"name": "b", "image": "2"}],
                "$setElementOrder/containers": [{"name": "a"}],
            },
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": None},
                    {"type": "InPlaceUpdateReady", "status": "True"},
                ]
            },
            "metadata": {"finalizers": ["f2"], "ownerReferences": [{"uid": "u1", "name": "renamed"}]},
        },
    )
    assert out["spec"]["containers"] == [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]
    assert out["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "InPlaceUpdateReady", "status": "True"},
    ]
    assert out["metadata"]["finalizers"] == ["f1", "f2"]
    assert out["metadata"]["ownerReferences"] == [{"uid": "u1", "name": "renamed"}]


def test_strategic_merge_directives() -> None:
    doc = {
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "x": {"k": 1, "j": 2}},
        "metadata": {"finalizers": ["f1", "f2"]},
    }
    out = strategic_merge(
        doc,
        {
            "spec": {"containers": [{"name": "a", "$patch": "delete"}], "x": {"$patch": "replace", "z": 3}},
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"]},
        },
    )
    assert out == {"spec": {"containers": [{"name": "b"}], "x": {"z": 3}}, "metadata": {"finalizers": ["f2"]}}
    # lists without a merge key replace
    assert strategic_merge({"tolerations": [1]}, {"tolerations": [2]}) == {"tolerations": [2]}


def test_json_patch_test_null_asserts_a_missing_member() -> None:
    """kube-apiserver's json-patch treats a missing member of an existing object as null."""
    doc = {"metadata": {"name": "a"}}
    assert json_patch(
        doc,
        [
            {"op": "test", "path": "/metadata/annotations", "value": None},
            {"op": "add", "path": "/metadata/annotations", "value": {"k": "v"}},
        ],
    ) == {"metadata": {"name": "a", "annotations": {"k": "v"}}}
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "test", "path": "/metadata/name", "value": None}])
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "test", "path": "/spec/x", "value": None}])
