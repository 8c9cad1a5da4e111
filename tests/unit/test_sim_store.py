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
    assert a["spec"]["restartPolicy"] == "Always" and a["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
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
    o = store.create(cs, "default", {"metadata": {"name": "x"}, "spec": {"replicas": 1}})
    assert o["metadata"]["generation"] == 1
    o = store.patch(cs, "default", "x", MERGE_PATCH, {"spec": {"replicas": 2}})
    assert o["metadata"]["generation"] == 2
    o = store.patch(cs, "default", "x", MERGE_PATCH, {"status": {"replicas": 2}}, subresource="status")
    assert o["metadata"]["generation"] == 2 and o["status"] == {"replicas": 2}
    o = store.patch(cs, "default", "x", JSON_PATCH, [{"op": "replace", "path": "/spec/replicas", "value": 3}])
    assert o["metadata"]["generation"] == 3


def test_pod_update_validation() -> None:
    old = {"containers": [{"name": "c", "image": "a"}], "tolerations": [{"key": "k"}],
           "activeDeadlineSeconds": 5, "terminationGracePeriodSeconds": -1}
    ok = {"containers": [{"name": "c", "image": "b"}], "tolerations": [{"key": "k"}, {"key": "j"}],
          "activeDeadlineSeconds": 3, "terminationGracePeriodSeconds": 1}
    assert validate_pod_update(old, ok) is None
    assert validate_pod_update(old, {**ok, "tolerations": []}) is not None  # removal is forbidden
    assert validate_pod_update(old, {**ok, "nodeName": "n"}) is not None
    assert validate_pod_update(old, {**ok, "containers": [{"name": "c", "image": "b", "args": ["x"]}]}) is not None


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
