"""SidecarSet v1alpha1 <-> v1beta1: spec.namespace becomes a namespaceSelector (dropping a selector
written next to it), the custom-version label is spec.customVersion; exact examples and round trips
over random objects."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.planner.sidecarset.conversion import V1ALPHA1, V1BETA1, to_v1alpha1, to_v1beta1

LABEL = "apps.kruise.io/sidecarset-custom-version"
NAME_LABEL = "kubernetes.io/metadata.name"


def alpha(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": V1ALPHA1, "kind": "SidecarSet", "metadata": {"name": "sc"},
            "spec": {"selector": {"matchLabels": {"app": "a"}},
                     "containers": [{"name": "side", "image": "busybox"}], **spec}}


def test_namespace_becomes_a_selector_and_replaces_one_written_next_to_it() -> None:
    a = alpha(namespace="prod", namespaceSelector={"matchLabels": {"team": "x"}})
    b = to_v1beta1(a)
    assert b["apiVersion"] == V1BETA1
    assert "namespace" not in b["spec"]
    assert b["spec"]["namespaceSelector"] == {"matchLabels": {NAME_LABEL: "prod"}}
    # the quirk: back in v1alpha1 it stays a selector
    back = to_v1alpha1(b)
    assert "namespace" not in back["spec"]
    assert back["spec"]["namespaceSelector"] == {"matchLabels": {NAME_LABEL: "prod"}}


def test_empty_namespace_keeps_the_selector() -> None:
    a = alpha(namespace="", namespaceSelector={"matchLabels": {"team": "x"}})
    assert to_v1beta1(a)["spec"] == {k: v for k, v in a["spec"].items() if k != "namespace"}


def test_custom_version_label_is_the_spec_field() -> None:
    a = alpha()
    a["metadata"]["labels"] = {LABEL: "v3", "app": "x"}
    b = to_v1beta1(a)
    assert b["spec"]["customVersion"] == "v3"
    assert b["metadata"]["labels"] == {"app": "x"}
    assert to_v1alpha1(b) == a


def test_only_label_goes_with_its_labels_map() -> None:
    a = alpha()
    a["metadata"]["labels"] = {LABEL: "v3"}
    b = to_v1beta1(a)
    assert "labels" not in b["metadata"]
    assert to_v1alpha1(b)["metadata"]["labels"] == {LABEL: "v3"}


_keys = st.text(alphabet="abcdefgh-./", min_size=1, max_size=8)
_values = st.text(alphabet="abcxyz0123", min_size=0, max_size=6)
_selector = st.fixed_dictionaries({"matchLabels": st.dictionaries(_keys, _values, min_size=1, max_size=2)})


@st.composite
def _common(draw: st.DrawFn) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "sc"}
    labels = draw(st.dictionaries(_keys.filter(lambda k: k != LABEL), _values, max_size=3))
    if labels:
        meta["labels"] = labels
    if draw(st.booleans()):
        meta["annotations"] = draw(st.dictionaries(_keys, _values, min_size=1, max_size=3))
    spec: dict[str, Any] = {"selector": draw(_selector), "containers": [{"name": "side", "image": "busybox"}]}
    if draw(st.booleans()):
        spec["namespaceSelector"] = draw(_selector)
    if draw(st.booleans()):
        spec["updateStrategy"] = draw(st.fixed_dictionaries({}, optional={
            "partition": st.integers(0, 5), "paused": st.booleans(), "maxUnavailable": st.integers(1, 3)}))
    if draw(st.booleans()):
        spec["injectionStrategy"] = {"revision": {"customVersion": draw(_values), "policy": "Always"}}
    obj: dict[str, Any] = {"kind": "SidecarSet", "metadata": meta, "spec": spec}
    if draw(st.booleans()):
        obj["status"] = {"matchedPods": draw(st.integers(0, 9)), "latestRevision": draw(_values)}
    return obj


@st.composite
def v1beta1_objects(draw: st.DrawFn) -> dict[str, Any]:
    obj = draw(_common())
    obj["apiVersion"] = V1BETA1
    if draw(st.booleans()):
        obj["spec"]["customVersion"] = draw(_values.filter(bool))
    return obj


@st.composite
def v1alpha1_objects(draw: st.DrawFn) -> dict[str, Any]:
    obj = draw(_common())
    obj["apiVersion"] = V1ALPHA1
    if draw(st.booleans()):
        obj["metadata"].setdefault("labels", {})[LABEL] = draw(_values)
    if draw(st.booleans()):
        obj["spec"]["namespace"] = draw(_values)
    return obj


@settings(max_examples=200, deadline=None)
@given(b=v1beta1_objects())
def test_every_v1beta1_object_survives_the_round_trip(b: dict[str, Any]) -> None:
    before = copy.deepcopy(b)
    assert to_v1beta1(to_v1alpha1(b)) == b
    assert b == before


@settings(max_examples=200, deadline=None)
@given(a=v1alpha1_objects())
def test_v1alpha1_round_trip_changes_only_namespace_and_empty_label(a: dict[str, Any]) -> None:
    before = copy.deepcopy(a)
    back = to_v1alpha1(to_v1beta1(a))
    assert a == before
    expected = copy.deepcopy(a)
    namespace = expected["spec"].pop("namespace", "")
    if namespace:
        expected["spec"]["namespaceSelector"] = {"matchLabels": {NAME_LABEL: namespace}}
    labels = expected["metadata"].get("labels") or {}
    if labels.get(LABEL) == "":
        del labels[LABEL]
        if not labels:
            del expected["metadata"]["labels"]
    assert back == expected
    assert to_v1alpha1(to_v1beta1(back)) == back
