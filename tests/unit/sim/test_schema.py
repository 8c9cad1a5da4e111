"""sim/schema.py (structural schema prune/default/validate) and the store's list_at snapshots."""

from __future__ import annotations

import pytest

from sim import schema
from sim.errors import ApiError
from sim.store import MERGE_PATCH, Store

S = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["a"],
            "properties": {
                "a": {"type": "integer", "minimum": 0},
                "b": {"x-kubernetes-int-or-string": True},
                "c": {"type": "string", "default": "dflt", "enum": ["dflt", "x"]},
                "d": {"type": "object", "additionalProperties": {"type": "string"}},
                "e": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "f": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                "n": {"type": "string", "nullable": True},
                "z": {"type": "integer", "default": 7},
            },
        }
    },
}


def test_prune_default_validate() -> None:
    obj = {
        "apiVersion": "g/v1",
        "kind": "K",
        "metadata": {"name": "x", "anything": 1},
        "spec": {
            "a": 1,
            "b": "50%",
            "d": {"k": "v"},
            "e": {"deep": {"x": 1}},
            "n": None,
            "z": None,
            "junk": 1,
        },
        "top": 1,
    }
    pruned, causes = schema.admit(obj, S)
    assert sorted(pruned) == ["spec.junk", "top"] and causes == []
    assert obj["metadata"] == {"name": "x", "anything": 1}  # metadata is never pruned by the schema
    assert obj["spec"]["c"] == "dflt" and obj["spec"]["z"] == 7  # defaults (a non-nullable null too)
    assert obj["spec"]["n"] is None and obj["spec"]["e"] == {"deep": {"x": 1}}


@pytest.mark.parametrize(
    ("spec", "field", "reason", "message"),
    [
        ({"a": "s"}, "spec.a", "FieldValueTypeInvalid",
         'Invalid value: "string": spec.a in body must be of type integer: "string"'),
        ({"a": True}, "spec.a", "FieldValueTypeInvalid",
         'Invalid value: "boolean": spec.a in body must be of type integer: "boolean"'),
        ({"a": -1}, "spec.a", "FieldValueInvalid",
         "Invalid value: -1: spec.a in body should be greater than or equal to 0"),
        ({}, "spec.a", "FieldValueRequired", "Required value"),
        ({"a": 1, "b": 1.5}, "spec.b", "FieldValueTypeInvalid",
         'Invalid value: "number": spec.b in body must be of type integer,string: "number"'),
        ({"a": 1, "c": "y"}, "spec.c", "FieldValueNotSupported",
         'Unsupported value: "y": supported values: "dflt", "x"'),
        ({"a": 1, "d": {"k": 1}}, "spec.d.k", "FieldValueTypeInvalid",
         'Invalid value: "integer": spec.d.k in body must be of type string: "integer"'),
        ({"a": 1, "f": ["x", "x"]}, "spec.f[1]", "FieldValueDuplicate", 'Duplicate value: "x"'),
    ],
)  # fmt: skip
def test_validation_causes(spec: dict, field: str, reason: str, message: str) -> None:
    _, causes = schema.admit({"spec": spec}, S)
    assert causes == [{"reason": reason, "field": field, "message": message}]


def test_integral_float_is_an_integer() -> None:
    assert schema.admit({"spec": {"a": 2.0}}, S)[1] == []


def test_cloneset_crd_accepts_what_kruise_accepts() -> None:
    store = Store()
    cs = store.rt("clonesets", "apps.kruise.io")
    spec = {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "a"}},
        "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"anything": {"goes": 1}}},
        "updateStrategy": {"partition": "abc", "maxUnavailable": "5", "maxSurge": 0},
    }
    o = store.create(cs, "default", {"metadata": {"name": "a"}, "spec": spec})
    assert o["spec"] == spec
    store.field_validation = "Strict"
    with pytest.raises(ApiError) as e:
        store.patch(cs, "default", "a", MERGE_PATCH, {"spec": {"bogus": 1}})
    assert e.value.code == 400 and 'unknown field "spec.bogus"' in e.value.message
    store.field_validation = None
    store.patch(cs, "default", "a", MERGE_PATCH, {"spec": {"bogus": 1}})
    assert store.warnings == ['unknown field "spec.bogus"']
    with pytest.raises(ApiError) as e:
        store.patch(cs, "default", "a", MERGE_PATCH, {"spec": {"replicas": "3"}})
    assert e.value.code == 422
    assert e.value.message == (
        'CloneSet.apps.kruise.io "a" is invalid: [spec.replicas: Invalid value: "string": '
        'spec.replicas in body must be of type integer: "string", .spec.replicas: Invalid value: 0: '
        ".spec.replicas accessor error: 3 is of the type string, expected int64]"
    )  # the schema's error, then the scale subresource's (as kube-apiserver)
    with pytest.raises(ApiError) as e:  # no schema bound, but the scale subresource's
        store.patch(cs, "default", "a", MERGE_PATCH, {"spec": {"replicas": -1}})
    assert e.value.message == (
        'CloneSet.apps.kruise.io "a" is invalid: .spec.replicas: Invalid value: -1: should be a non-negative integer')


def test_list_at_rebuilds_past_states_and_pages() -> None:
    store = Store(watch_history=20)
    cm = store.rt("configmaps")
    for i in range(4):
        store.create(cm, "default", {"metadata": {"name": f"c{i}"}, "data": {"v": "0"}})
    rv = store.rv
    store.patch(cm, "default", "c1", MERGE_PATCH, {"data": {"v": "1"}})
    store.delete(cm, "default", "c2")
    store.create(cm, "default", {"metadata": {"name": "c9"}})
    items, snap, last, remaining = store.list_at(cm, "default", at=rv)
    assert snap == rv and last is None and remaining == 0
    assert [(o["metadata"]["name"], o["data"]["v"]) for o in items] == [(f"c{i}", "0") for i in range(4)]
    page, _, last, remaining = store.list_at(cm, "default", at=rv, limit=3)
    assert [o["metadata"]["name"] for o in page] == ["c0", "c1", "c2"] and last == ("default", "c2")
    assert remaining == 1
    rest, _, last, _ = store.list_at(cm, "default", at=rv, start=last, limit=3)
    assert [o["metadata"]["name"] for o in rest] == ["c3"] and last is None
    for i in range(30):
        store.patch(cm, "default", "c0", MERGE_PATCH, {"data": {"v": str(i + 10)}})
    with pytest.raises(ApiError) as e:
        store.list_at(cm, "default", at=rv)
    assert e.value.code == 410
