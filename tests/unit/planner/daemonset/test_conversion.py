"""DaemonSet v1alpha1 <-> v1beta1: exact examples of the three differences, and round trips over random
objects (what both versions can hold comes back unchanged; what only v1alpha1 can say is canonicalised
once and then stable)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.planner.daemonset.conversion import V1ALPHA1, V1BETA1, to_v1alpha1, to_v1beta1

ANNOTATION = "daemonset.kruise.io/progressive-create-pod"


def alpha(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": V1ALPHA1, "kind": "DaemonSet", "metadata": {"name": "ds", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "a"}}, **spec}}


def test_surging_becomes_standard_and_stays_standard() -> None:
    a = alpha(updateStrategy={"type": "RollingUpdate",
                              "rollingUpdate": {"rollingUpdateType": "Surging", "maxSurge": 1}})
    b = to_v1beta1(a)
    assert b["apiVersion"] == V1BETA1
    assert b["spec"]["updateStrategy"]["rollingUpdate"] == {"rollingUpdateType": "Standard", "maxSurge": 1}
    assert to_v1alpha1(b)["spec"]["updateStrategy"]["rollingUpdate"]["rollingUpdateType"] == "Standard"
    assert a["spec"]["updateStrategy"]["rollingUpdate"]["rollingUpdateType"] == "Surging"  # input untouched


def test_progressive_annotation_is_partitioned_scaling() -> None:
    a = alpha()
    a["metadata"]["annotations"] = {ANNOTATION: "true", "keep": "me"}
    b = to_v1beta1(a)
    assert b["spec"]["scaleStrategy"] == {"partitionedScaling": True}
    assert b["metadata"]["annotations"] == {"keep": "me"}
    assert to_v1alpha1(b) == a


def test_progressive_annotation_other_than_true_is_only_an_annotation() -> None:
    a = alpha()
    a["metadata"]["annotations"] = {ANNOTATION: "True"}  # exact "true" only
    b = to_v1beta1(a)
    assert "scaleStrategy" not in b["spec"]
    assert b["metadata"]["annotations"] == {ANNOTATION: "True"}


def test_partitioned_scaling_false_has_no_v1alpha1_form() -> None:
    b = {**alpha(scaleStrategy={"partitionedScaling": False}), "apiVersion": V1BETA1}
    a = to_v1alpha1(b)
    assert "scaleStrategy" not in a["spec"]
    assert "annotations" not in a["metadata"]


def test_daemonset_hash_is_update_revision() -> None:
    a = {**alpha(), "status": {"daemonSetHash": "5d8f", "numberReady": 2}}
    b = to_v1beta1(a)
    assert b["status"] == {"updateRevision": "5d8f", "numberReady": 2}
    assert to_v1alpha1(b) == a


# --- round trips ------------------------------------------------------------------------------------

_names = st.text(alphabet="abcdefgh-./", min_size=1, max_size=8)
_values = st.text(max_size=6)
_intstr = st.one_of(st.integers(0, 10), st.sampled_from(["10%", "50%"]))


@st.composite
def _common(draw: st.DrawFn, rolling_types: list[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "ds", "namespace": "default"}
    labels = draw(st.dictionaries(_names, _values, max_size=3))
    annotations = draw(st.dictionaries(_names.filter(lambda k: k != ANNOTATION), _values, max_size=3))
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "a"}},
                            "template": {"metadata": {"labels": {"app": "a"}}}}
    if draw(st.booleans()):
        rolling = draw(st.fixed_dictionaries({}, optional={
            "rollingUpdateType": st.sampled_from(rolling_types), "maxUnavailable": _intstr, "maxSurge": _intstr,
            "partition": _intstr, "paused": st.booleans()}))
        spec["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": rolling}
    for key, strategy in (("minReadySeconds", st.integers(0, 60)), ("burstReplicas", _intstr),
                          ("revisionHistoryLimit", st.integers(0, 10))):
        if draw(st.booleans()):
            spec[key] = draw(strategy)
    obj: dict[str, Any] = {"kind": "DaemonSet", "metadata": meta, "spec": spec}
    if draw(st.booleans()):
        obj["status"] = draw(st.fixed_dictionaries({"numberReady": st.integers(0, 5)},
                                                   optional={"observedGeneration": st.integers(1, 9)}))
    return obj


@st.composite
def v1beta1_objects(draw: st.DrawFn) -> dict[str, Any]:
    obj = draw(_common(["Standard", "InPlaceIfPossible"]))
    obj["apiVersion"] = V1BETA1
    if draw(st.booleans()):
        obj["spec"]["scaleStrategy"] = {"partitionedScaling": True}
    if "status" in obj and draw(st.booleans()):
        obj["status"]["updateRevision"] = draw(_values)
    return obj


@st.composite
def v1alpha1_objects(draw: st.DrawFn) -> dict[str, Any]:
    obj = draw(_common(["Standard", "InPlaceIfPossible", "Surging"]))
    obj["apiVersion"] = V1ALPHA1
    if draw(st.booleans()):
        obj["metadata"].setdefault("annotations", {})[ANNOTATION] = draw(st.sampled_from(["true", "false", ""]))
    if "status" in obj and draw(st.booleans()):
        obj["status"]["daemonSetHash"] = draw(_values)
    return obj


@settings(max_examples=200, deadline=None)
@given(b=v1beta1_objects())
def test_every_v1beta1_object_survives_the_round_trip(b: dict[str, Any]) -> None:
    before = copy.deepcopy(b)
    assert to_v1beta1(to_v1alpha1(b)) == b
    assert b == before


@settings(max_examples=200, deadline=None)
@given(a=v1alpha1_objects())
def test_v1alpha1_objects_survive_the_round_trip_but_surging(a: dict[str, Any]) -> None:
    back = to_v1alpha1(to_v1beta1(a))
    rolling = (a["spec"].get("updateStrategy") or {}).get("rollingUpdate") or {}
    if rolling.get("rollingUpdateType") == "Surging":
        expected = copy.deepcopy(a)
        expected["spec"]["updateStrategy"]["rollingUpdate"]["rollingUpdateType"] = "Standard"
        assert back == expected
    else:
        assert back == a
    assert to_v1alpha1(to_v1beta1(back)) == back  # canonical after one trip
