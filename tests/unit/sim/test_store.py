"""Object semantics of the embedded API server's store (no HTTP, no event loop)."""

from __future__ import annotations

import pytest

from sim.errors import ApiError
from sim.pods import validate_pod_update
from sim.store import JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, Store


@pytest.fixture
def store() -> Store:
    return Store(watch_history=4)


def pod(name: str) -> dict[str, object]:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "img:1"}]}}


def test_resource_versions_are_global_and_monotonic(store: Store) -> None:
    pods, cms = store.rt("pods"), store.rt("configmaps")
    a = store.create(pods, "default", pod("a"))
    b = store.create(cms, "default", {"metadata": {"name": "b"}})
    c = store.patch(pods, "default", "a", MERGE_PATCH, {"metadata": {"labels": {"x": "y"}}})
    rvs = [int(o["metadata"]["resourceVersion"]) for o in (a, b, c)]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3 and store.rv == rvs[-1]
    assert a["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert (
        a["spec"]["restartPolicy"] == "Always"
        and a["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    )
    same = store.patch(pods, "default", "a", STRATEGIC_PATCH, {"metadata": {"labels": {"x": "y"}}})
    assert same is c  # no-op: nothing written


def test_watch_ring_expiry(store: Store) -> None:
    cms = store.rt("configmaps")
    first = store.create(cms, "default", {"metadata": {"name": "c0"}})
    for i in range(1, 8):
        store.create(cms, "default", {"metadata": {"name": f"c{i}"}})
    with pytest.raises(ApiError) as e:
        store.watch(cms, "default", first["metadata"]["resourceVersion"])
    assert e.value.code == 410 and e.value.reason == "Expired"
    w = store.watch(cms, "default", str(store.rv - 2))
    assert [ev.obj["metadata"]["name"] for ev in w.queue] == ["c6", "c7"]
    # shared wire bytes
    w2 = store.watch(cms, "default", str(store.rv - 2))
    assert w.queue[0] is w2.queue[0] and w.queue[0].line() is w2.queue[0].line()


def test_generation_on_custom_resources(store: Store) -> None:
    cs = store.rt("clonesets", "apps.kruise.io")
    spec = {"replicas": 1, "selector": {"matchLabels": {"a": "b"}}, "template": {}}
    o = store.create(cs, "default", {"metadata": {"name": "x"}, "spec": spec})
    assert o["metadata"]["generation"] == 1
    o = store.patch(cs, "default", "x", MERGE_PATCH, {"spec": {"replicas": 2}})
    assert o["metadata"]["generation"] == 2
    status = {k: 2 for k in ("replicas", "readyReplicas", "availableReplicas", "updatedReplicas")}
    status["updatedReadyReplicas"] = 2
    o = store.patch(cs, "default", "x", MERGE_PATCH, {"status": status}, subresource="status")
    assert o["metadata"]["generation"] == 2 and o["status"] == status
    o = store.patch(cs, "default", "x", JSON_PATCH, [{"op": "replace", "path": "/spec/replicas", "value": 3}])
    assert o["metadata"]["generation"] == 3


def test_pod_update_validation() -> None:
    old = {
        "containers": [{"name": "c", "image": "a"}],
        "tolerations": [{"key": "k"}],
        "activeDeadlineSeconds": 5,
        "terminationGracePeriodSeconds": -1,
    }
    ok = {
        "containers": [{"name": "c", "image": "b"}],
        "tolerations": [{"key": "k"}, {"key": "j"}],
        "activeDeadlineSeconds": 3,
        "terminationGracePeriodSeconds": 1,
    }
    assert validate_pod_update(old, ok) is None
    assert validate_pod_update(old, {**ok, "tolerations": []}) is not None  # removal is forbidden
    assert validate_pod_update(old, {**ok, "nodeName": "n"}) is not None
    assert (
        validate_pod_update(old, {**ok, "containers": [{"name": "c", "image": "b", "args": ["x"]}]})
        is not None
    )


def test_finalizers_and_gc_without_loop(store: Store) -> None:
    cms = store.rt("configmaps")
    owner = store.create(cms, "default", {"metadata": {"name": "owner", "finalizers": ["x/y"]}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    store.create(cms, "default", {"metadata": {"name": "dep", "ownerReferences": [ref]}})
    held = store.delete(cms, "default", "owner")
    assert held["metadata"]["deletionTimestamp"] and store.try_get(cms, "default", "owner") is not None
    with pytest.raises(ApiError) as e:  # no new finalizers on a deleted object
        store.patch(cms, "default", "owner", MERGE_PATCH, {"metadata": {"finalizers": ["x/y", "z"]}})
    assert e.value.code == 422
    w = store.watch(cms, "default", str(store.rv))
    store.patch(cms, "default", "owner", MERGE_PATCH, {"metadata": {"finalizers": None}})
    assert store.try_get(cms, "default", "owner") is None
    assert store.try_get(cms, "default", "dep") is None  # collected (synchronously without a loop)
    assert [ev.type for ev in w.queue] == ["DELETED", "DELETED"]


def test_delete_preconditions_and_dry_run(store: Store) -> None:
    cms = store.rt("configmaps")
    cm = store.create(cms, "default", {"metadata": {"name": "p"}})
    with pytest.raises(ApiError) as e:
        store.delete(cms, "default", "p", preconditions={"resourceVersion": "1"})
    assert (
        e.value.code == 409 and "Precondition failed: ResourceVersion in precondition: 1" in e.value.message
    )
    assert (
        store.create(cms, "default", {"metadata": {"name": "dry"}}, dry_run=True)["metadata"]["name"] == "dry"
    )
    assert store.try_get(cms, "default", "dry") is None
    store.delete(
        cms,
        "default",
        "p",
        preconditions={"uid": cm["metadata"]["uid"], "resourceVersion": cm["metadata"]["resourceVersion"]},
    )
    assert store.try_get(cms, "default", "p") is None


def test_crds_created_through_the_api_are_served(store: Store) -> None:
    crds = store.rt("customresourcedefinitions", "apiextensions.k8s.io")
    assert store.try_get(crds, "", "clonesets.apps.kruise.io") is not None  # loaded from the chart
    store.create(
        crds,
        "",
        {
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Cluster",
                "names": {"kind": "Widget", "plural": "widgets"},
                "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}}}],
            },
        },
    )
    widgets = store.lookup("example.com", "v1", "widgets")
    assert widgets is not None and not widgets.namespaced and widgets.status_subresource
    w = store.create(widgets, "", {"metadata": {"name": "w"}, "spec": {"a": 1}})
    assert w["kind"] == "Widget" and w["metadata"]["generation"] == 1
    store.delete(crds, "", "widgets.example.com")
    assert store.lookup("example.com", "v1", "widgets") is None


def test_pod_names_and_required_fields(store: Store) -> None:
    pods = store.rt("pods")
    with pytest.raises(ApiError) as e:
        store.create(
            pods,
            "default",
            {"metadata": {"name": "Bad_Name"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        )
    assert e.value.code == 422 and "metadata.name: Invalid value" in e.value.message
    with pytest.raises(ApiError) as e:
        store.create(pods, "default", {"metadata": {"name": "p"}, "spec": {"containers": []}})
    assert e.value.code == 422 and e.value.message == 'Pod "p" is invalid: spec.containers: Required value'


def test_foreground_deletion_waits_for_dependents(store: Store) -> None:
    cms = store.rt("configmaps")
    owner = store.create(cms, "default", {"metadata": {"name": "fg"}})
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "fg",
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": True,
    }
    store.create(
        cms, "default", {"metadata": {"name": "fg-dep", "ownerReferences": [ref], "finalizers": ["hold/me"]}}
    )
    out = store.delete(cms, "default", "fg", propagation="Foreground")
    assert out["metadata"]["finalizers"] == ["foregroundDeletion"]
    dep = store.get(cms, "default", "fg-dep")
    assert dep["metadata"]["deletionTimestamp"]  # being deleted, held by its own finalizer
    assert store.try_get(cms, "default", "fg") is not None  # owner waits for it
    store.patch(cms, "default", "fg-dep", MERGE_PATCH, {"metadata": {"finalizers": None}})
    assert store.try_get(cms, "default", "fg-dep") is None
    assert store.try_get(cms, "default", "fg") is None


def test_metadata_validation(store: Store) -> None:
    cms = store.rt("configmaps")
    with pytest.raises(ApiError) as e:
        store.create(cms, "default", {"metadata": {"name": "l", "labels": {"a": "has space"}}})
    assert e.value.code == 422 and 'metadata.labels: Invalid value: "has space"' in e.value.message
    store.create(
        cms, "default", {"metadata": {"name": "ok", "labels": {"apps.kruise.io/x": "v-1.2_3", "e": ""}}}
    )
    with pytest.raises(ApiError) as e:
        store.patch(cms, "default", "ok", MERGE_PATCH, {"metadata": {"labels": {"x": "y" * 64}}})
    assert e.value.code == 422
    refs = [{"apiVersion": "v1", "kind": "ConfigMap", "name": n, "uid": n, "controller": True} for n in "ab"]
    with pytest.raises(ApiError) as e:
        store.create(cms, "default", {"metadata": {"name": "two", "ownerReferences": refs}})
    assert "only one reference can have Controller set to true" in e.value.message
