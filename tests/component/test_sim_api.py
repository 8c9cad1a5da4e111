"""The embedded cluster through the real kubernetes-asyncio client over real HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client import ApiException

from schemas.constants import CONDITION_INPLACE_UPDATE_READY, GROUP, VERSION
from sim import SimCluster
from sim import testing as sim_testing
from sim.faults import Faults
from sim.testing import FAST

# the embedded-cluster fixtures (sim/testing.py)
sim_cluster = sim_testing.sim_cluster
kube_api = sim_testing.kube_api

NS = "default"


def pod_body(
    name: str,
    labels: dict[str, str] | None = None,
    image: str = "nginx:1.25",
    gates: bool = False,
    **meta: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": image}]}
    if gates:
        spec["readinessGates"] = [{"conditionType": CONDITION_INPLACE_UPDATE_READY}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}, **meta},
        "spec": spec,
    }


def cm_body(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def cloneset_body(name: str, replicas: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CloneSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}]},
            },
            "updateStrategy": {"type": "InPlaceIfPossible", "partition": 2, "maxUnavailable": "20%"},
        },
    }


def status_body(e: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(e.body)
    return body


def cond(pod: Any, type_: str) -> str | None:
    for c in pod.status.conditions or []:
        if c.type == type_:
            return str(c.status)
    return None


async def wait_pod(
    cluster: SimCluster, v1: client.CoreV1Api, name: str, pred: Any, timeout: float = 30
) -> Any:
    async def check() -> Any:
        p = await v1.read_namespaced_pod(name, NS)
        return p if pred(p) else None

    return await cluster.wait_for(check, timeout=timeout, message=f"pod {name}")


def running_ready(p: Any) -> bool:
    cs = p.status.container_statuses or []
    return p.status.phase == "Running" and bool(cs) and all(c.ready for c in cs)


# ---------------------------------------------------------------------------- basics


async def test_create_get_list_with_selectors(sim_cluster: SimCluster, kube_api: Any) -> None:
    v1 = client.CoreV1Api(kube_api)
    await v1.create_namespaced_pod(NS, pod_body("a1", {"app": "a", "tier": "web"}))
    await v1.create_namespaced_pod(NS, pod_body("a2", {"app": "a"}))
    await v1.create_namespaced_pod(NS, pod_body("b1", {"app": "b", "tier": "db"}))
    got = await v1.read_namespaced_pod("a1", NS)
    assert got.metadata.uid and got.metadata.creation_timestamp and int(got.metadata.resource_version) > 0
    assert got.status.phase in ("Pending", "Running")

    async def names(**kw: Any) -> list[str]:
        lst = await v1.list_namespaced_pod(NS, **kw)
        return sorted(p.metadata.name for p in lst.items)

    assert await names(label_selector="app=a") == ["a1", "a2"]
    assert await names(label_selector="app==a,tier=web") == ["a1"]
    assert await names(label_selector="app!=a") == ["b1"]
    assert await names(label_selector="app in (a, b),tier") == ["a1", "b1"]
    assert await names(label_selector="app notin (a)") == ["b1"]
    assert await names(label_selector="!tier") == ["a2"]
    assert await names(field_selector="metadata.name=a2") == ["a2"]
    all_ns = await v1.list_pod_for_all_namespaces(label_selector="app=b")
    assert [p.metadata.name for p in all_ns.items] == ["b1"]
    assert int(all_ns.metadata.resource_version) >= int(got.metadata.resource_version)

    # scheduled onto a simulated node, then Running: field selectors on spec.nodeName / status.phase
    p = await wait_pod(sim_cluster, v1, "a1", running_ready)
    assert p.spec.node_name.startswith("sim-node-")
    on_node = await names(field_selector=f"spec.nodeName={p.spec.node_name}")
    assert "a1" in on_node
    await wait_pod(sim_cluster, v1, "b1", running_ready)
    await wait_pod(sim_cluster, v1, "a2", running_ready)
    assert await names(field_selector="status.phase=Running") == ["a1", "a2", "b1"]
    assert await names(field_selector="status.phase!=Running") == []
    nodes = await v1.list_node()
    assert sorted(n.metadata.name for n in nodes.items) == ["sim-node-0", "sim-node-1", "sim-node-2"]
    assert all(n.metadata.labels["kubernetes.io/hostname"] == n.metadata.name for n in nodes.items)


async def test_errors_have_kubernetes_status_bodies(kube_api: Any) -> None:
    v1 = client.CoreV1Api(kube_api)
    with pytest.raises(ApiException) as e:
        await v1.read_namespaced_pod("nope", NS)
    assert e.value.status == 404
    assert status_body(e.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "pods"},
        "code": 404,
    }
    await v1.create_namespaced_config_map(NS, cm_body("dup"))
    with pytest.raises(ApiException) as e:
        await v1.create_namespaced_config_map(NS, cm_body("dup"))
    assert e.value.status == 409
    assert status_body(e.value)["reason"] == "AlreadyExists"
    assert status_body(e.value)["message"] == 'configmaps "dup" already exists'
    with pytest.raises(ApiException) as e:
        await v1.create_namespaced_config_map("no-such-ns", cm_body("x"))
    assert e.value.status == 404 and status_body(e.value)["message"] == 'namespaces "no-such-ns" not found'
    gen = await v1.create_namespaced_config_map(NS, {"metadata": {"generateName": "gen-"}, "data": {}})
    assert gen.metadata.name.startswith("gen-") and len(gen.metadata.name) == len("gen-") + 5


async def test_stale_resource_version_conflicts(kube_api: Any) -> None:
    v1 = client.CoreV1Api(kube_api)
    cm = await v1.create_namespaced_config_map(NS, cm_body("c", a="1"))
    cm2 = await v1.patch_namespaced_config_map("c", NS, {"data": {"a": "2"}})
    assert int(cm2.metadata.resource_version) > int(cm.metadata.resource_version)
    cm.data = {"a": "3"}
    with pytest.raises(ApiException) as e:
        await v1.replace_namespaced_config_map("c", NS, cm)  # PUT with the old resourceVersion
    assert e.value.status == 409
    body = status_body(e.value)
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on configmaps "c": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    # a merge patch carrying metadata.resourceVersion is a precondition too
    with pytest.raises(ApiException) as e:
        await v1.patch_namespaced_config_map(
            "c",
            NS,
            {"metadata": {"resourceVersion": cm.metadata.resource_version}, "data": {"a": "4"}},
            _content_type="application/merge-patch+json",
        )
    assert e.value.status == 409
    # UID precondition
    with pytest.raises(ApiException) as e:
        await v1.patch_namespaced_config_map("c", NS, {"metadata": {"uid": "0000"}, "data": {"a": "5"}})
    assert e.value.status == 409
    assert (
        f"Precondition failed: UID in precondition: 0000, UID in object meta: {cm.metadata.uid}"
        in status_body(e.value)["message"]
    )
    # a no-op patch does not bump the resourceVersion
    same = await v1.patch_namespaced_config_map("c", NS, {"data": {"a": "2"}})
    assert same.metadata.resource_version == cm2.metadata.resource_version
    # the current resourceVersion succeeds
    cm2.data = {"a": "6"}
    ok = await v1.replace_namespaced_config_map("c", NS, cm2)
    assert ok.data == {"a": "6"}


async def test_json_patch_test_op_failure_is_422(kube_api: Any) -> None:
    v1 = client.CoreV1Api(kube_api)
    cm = await v1.create_namespaced_config_map(NS, cm_body("jp", a="1"))
    rv = cm.metadata.resource_version
    ok = await v1.patch_namespaced_config_map(
        "jp",
        NS,
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "replace", "path": "/data/a", "value": "2"},
        ],
    )
    assert ok.data == {"a": "2"}
    with pytest.raises(ApiException) as e:  # rv moved on: the test op fails
        await v1.patch_namespaced_config_map(
            "jp",
            NS,
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
                {"op": "replace", "path": "/data/a", "value": "3"},
            ],
        )
    assert e.value.status == 422
    assert status_body(e.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "the server rejected our request due to an error in our request",
        "reason": "Invalid",
        "details": {},
        "code": 422,
    }
    assert (await v1.read_namespaced_config_map("jp", NS)).data == {"a": "2"}


# ---------------------------------------------------------------------------- watch


async def test_watch_from_resource_version_gets_later_events(kube_api: Any) -> None:
    v1 = client.CoreV1Api(kube_api)
    await v1.create_namespaced_config_map(NS, cm_body("w1"))
    lst = await v1.list_namespaced_config_map(NS)
    rv = lst.metadata.resource_version
    await v1.create_namespaced_config_map(NS, cm_body("w2"))
    await v1.patch_namespaced_config_map("w1", NS, {"data": {"k": "v"}})
    await v1.delete_namespaced_config_map("w2", NS)
    seen = []
    async with watch.Watch() as w:
        async for ev in w.stream(v1.list_namespaced_config_map, NS, resource_version=rv, timeout_seconds=1):
            seen.append((ev["type"], ev["object"].metadata.name))
            if len(seen) == 3:
                break
    assert seen == [("ADDED", "w2"), ("MODIFIED", "w1"), ("DELETED", "w2")]


async def test_watch_label_selector_transitions(kube_api: Any) -> None:
    v1 = client.CoreV1Api(kube_api)
    cm = await v1.create_namespaced_config_map(NS, cm_body("sel"))
    rv = cm.metadata.resource_version
    await v1.patch_namespaced_config_map("sel", NS, {"metadata": {"labels": {"x": "1"}}})
    await v1.patch_namespaced_config_map("sel", NS, {"data": {"a": "b"}})
    await v1.patch_namespaced_config_map("sel", NS, {"metadata": {"labels": {"x": "2"}}})
    seen = []
    async with watch.Watch() as w:
        async for ev in w.stream(
            v1.list_config_map_for_all_namespaces,
            label_selector="x=1",
            resource_version=rv,
            timeout_seconds=1,
        ):
            seen.append(ev["type"])
    assert seen == ["ADDED", "MODIFIED", "DELETED"]  # starts matching, changes, stops matching


async def test_watch_expired_resource_version_is_410(tmp_path: Any) -> None:
    async with SimCluster(nodes=0, tmpdir=tmp_path, watch_history=5, **FAST) as cluster:  # type: ignore[arg-type]
        async with cluster.api_client() as api:
            v1 = client.CoreV1Api(api)
            first = await v1.create_namespaced_config_map(NS, cm_body("e0"))
            for i in range(1, 12):
                await v1.create_namespaced_config_map(NS, cm_body(f"e{i}"))
            with pytest.raises(ApiException) as e:
                async with watch.Watch() as w:
                    async for _ in w.stream(
                        v1.list_namespaced_config_map,
                        NS,
                        resource_version=first.metadata.resource_version,
                        timeout_seconds=2,
                    ):
                        pass
            assert e.value.status == 410
            assert "too old resource version" in e.value.reason
            # a recent RV (still in the ring) works
            latest = (await v1.list_namespaced_config_map(NS)).metadata.resource_version
            await v1.create_namespaced_config_map(NS, cm_body("late"))
            async with watch.Watch() as w:
                async for ev in w.stream(
                    v1.list_namespaced_config_map, NS, resource_version=latest, timeout_seconds=1
                ):
                    assert ev["object"].metadata.name == "late"
                    break


async def test_watch_bookmarks_carry_current_rv(sim_cluster: SimCluster, kube_api: Any) -> None:
    v1 = client.CoreV1Api(kube_api)
    cm = await v1.create_namespaced_config_map(NS, cm_body("bm"))
    bookmarks = []
    async with watch.Watch() as w:
        async for ev in w.stream(
            v1.list_namespaced_config_map,
            NS,
            resource_version=cm.metadata.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=3,
        ):
            if ev["type"] == "BOOKMARK":
                bookmarks.append(ev["raw_object"])
                break
    assert bookmarks, "no BOOKMARK within 3 s (interval 0.2 s)"
    assert bookmarks[0]["kind"] == "ConfigMap"
    assert int(bookmarks[0]["metadata"]["resourceVersion"]) >= int(cm.metadata.resource_version)
    assert w.resource_version == bookmarks[0]["metadata"]["resourceVersion"]


async def test_watch_send_initial_events(sim_cluster: SimCluster, kube_api: Any) -> None:
    """A streaming list (client-go's WatchList): ADDED for every current object, a BOOKMARK annotated
    `k8s.io/initial-events-end` at the snapshot's resourceVersion, then only later changes. The option
    needs resourceVersionMatch=NotOlderThan and allowWatchBookmarks, as kube-apiserver requires."""
    v1 = client.CoreV1Api(kube_api)
    for name in ("wl-a", "wl-b"):
        await v1.create_namespaced_config_map(NS, cm_body(name))
    base = f"{sim_cluster.url}/api/v1/namespaces/{NS}/configmaps?watch=1&sendInitialEvents=true"
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "&allowWatchBookmarks=true") as r:
            assert r.status == 422
            assert "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan" in (
                await r.json())["message"]
        url = base + "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=10"
        async with http.get(url) as r:
            assert r.status == 200
            events: list[dict[str, Any]] = []
            while True:
                ev = json.loads(await asyncio.wait_for(r.content.readline(), 10))
                events.append(ev)
                if ev["type"] == "BOOKMARK":
                    break
            end = events[-1]["object"]["metadata"]
            assert end["annotations"] == {"k8s.io/initial-events-end": "true"}
            assert {e["object"]["metadata"]["name"] for e in events[:-1]} >= {"wl-a", "wl-b"}
            assert all(e["type"] == "ADDED" for e in events[:-1])
            await v1.create_namespaced_config_map(NS, cm_body("wl-c"))
            while True:  # then only what changed after the snapshot (periodic BOOKMARKs aside)
                ev = json.loads(await asyncio.wait_for(r.content.readline(), 10))
                if ev["type"] != "BOOKMARK":
                    break
            assert (ev["type"], ev["object"]["metadata"]["name"]) == ("ADDED", "wl-c")
            assert int(ev["object"]["metadata"]["resourceVersion"]) > int(end["resourceVersion"])


async def test_watch_timeout_and_initial_state(kube_api: Any) -> None:
    v1 = client.CoreV1Api(kube_api)
    await v1.create_namespaced_config_map(NS, cm_body("init"))
    seen = []
    async with watch.Watch() as w:  # no resourceVersion: synthetic ADDED for what exists, then live
        async for ev in w.stream(v1.list_namespaced_config_map, NS, timeout_seconds=1):
            seen.append((ev["type"], ev["object"].metadata.name))
    assert ("ADDED", "init") in seen  # and the stream ended by itself after timeoutSeconds


# ---------------------------------------------------------------------------- pods and the kubelet


async def test_forbidden_pod_spec_change_is_422(sim_cluster: SimCluster, kube_api: Any) -> None:
    v1 = client.CoreV1Api(kube_api)
    await v1.create_namespaced_pod(NS, pod_body("val"))
    with pytest.raises(ApiException) as e:
        await v1.patch_namespaced_pod(
            "val", NS, {"spec": {"containers": [{"name": "main", "command": ["sh"]}]}}
        )
    assert e.value.status == 422
    body = status_body(e.value)
    assert body["reason"] == "Invalid"
    assert body["message"].startswith(
        'Pod "val" is invalid: spec: Forbidden: pod updates may not change fields other than '
        "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
        "`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
        "(allow it to be set to 1 if it was previously negative)"
    )
    assert body["details"]["kind"] == "Pod" and body["details"]["name"] == "val"
    assert body["details"]["causes"][0]["field"] == "spec"
    assert body["details"]["causes"][0]["reason"] == "FieldValueForbidden"
    # readinessGates are spec too
    with pytest.raises(ApiException) as e:
        await v1.patch_namespaced_pod("val", NS, {"spec": {"readinessGates": [{"conditionType": "X"}]}})
    assert e.value.status == 422
    # a full PUT of the pod with only labels and image changed is fine
    p = await v1.read_namespaced_pod("val", NS)
    p.metadata.labels = {"new": "label"}
    p.spec.containers[0].image = "nginx:1.26"
    p.spec.tolerations.append(client.V1Toleration(key="k", operator="Exists"))
    upd = await v1.replace_namespaced_pod("val", NS, p)
    assert upd.spec.containers[0].image == "nginx:1.26" and upd.metadata.labels == {"new": "label"}


async def test_image_patch_restarts_container_in_place(sim_cluster: SimCluster, kube_api: Any) -> None:
    v1 = client.CoreV1Api(kube_api)
    created = await v1.create_namespaced_pod(NS, pod_body("ip"))
    before = await wait_pod(sim_cluster, v1, "ip", running_ready)
    cs0 = before.status.container_statuses[0]
    assert cs0.restart_count == 0 and cs0.started
    assert cs0.image_id.startswith("nginx:1.25@sha256:") and cs0.container_id.startswith("sim://")
    assert cs0.state.running.started_at is not None
    assert before.status.pod_ip and before.status.host_ip
    assert cond(before, "Ready") == "True" and cond(before, "ContainersReady") == "True"
    assert cond(before, "Initialized") == "True" and cond(before, "PodScheduled") == "True"
    await v1.patch_namespaced_pod(
        "ip", NS, {"spec": {"containers": [{"name": "main", "image": "nginx:1.26"}]}}
    )
    after = await wait_pod(
        sim_cluster,
        v1,
        "ip",
        lambda p: p.status.container_statuses[0].restart_count == 1 and p.status.container_statuses[0].ready,
    )
    cs1 = after.status.container_statuses[0]
    assert after.metadata.uid == created.metadata.uid
    assert cs1.image == "nginx:1.26" and cs1.image_id.startswith("nginx:1.26@sha256:")
    assert cs1.image_id != cs0.image_id and cs1.container_id != cs0.container_id
    assert after.status.pod_ip == before.status.pod_ip and after.spec.node_name == before.spec.node_name
    node = sim_cluster.kubelets[after.spec.node_name]
    assert node.has_image("nginx:1.25") and node.has_image("nginx:1.26")


async def test_readiness_gate_follows_inplace_update_ready(sim_cluster: SimCluster, kube_api: Any) -> None:
    v1 = client.CoreV1Api(kube_api)
    await v1.create_namespaced_pod(NS, pod_body("rg", gates=True))
    p = await wait_pod(sim_cluster, v1, "rg", running_ready)
    assert cond(p, "ContainersReady") == "True"
    assert cond(p, "Ready") == "False"  # the gate's condition does not exist yet

    async def set_gate(status: str) -> None:
        await v1.patch_namespaced_pod_status(
            "rg",
            NS,
            {
                "status": {
                    "conditions": [
                        {
                            "type": CONDITION_INPLACE_UPDATE_READY,
                            "status": status,
                            "reason": "StartInPlaceUpdate",
                        }
                    ]
                }
            },
        )

    await set_gate("True")
    await wait_pod(sim_cluster, v1, "rg", lambda p: cond(p, "Ready") == "True")
    await set_gate("False")
    p = await wait_pod(sim_cluster, v1, "rg", lambda p: cond(p, "Ready") == "False")
    ready = next(c for c in p.status.conditions if c.type == "Ready")
    assert ready.reason == "ReadinessGatesNotReady"
    assert cond(p, CONDITION_INPLACE_UPDATE_READY) == "False"
    await set_gate("True")
    p = await wait_pod(sim_cluster, v1, "rg", lambda p: cond(p, "Ready") == "True")
    assert next(c for c in p.status.conditions if c.type == "Ready").reason is None


async def test_status_endpoint_ignores_spec_and_main_ignores_status(
    sim_cluster: SimCluster, kube_api: Any
) -> None:
    v1 = client.CoreV1Api(kube_api)
    await v1.create_namespaced_pod(NS, pod_body("st"))
    await v1.patch_namespaced_pod_status(
        "st",
        NS,
        {
            "metadata": {"labels": {"via": "status"}},
            "spec": {"containers": [{"name": "main", "image": "changed:1"}]},
            "status": {"conditions": [{"type": "Custom", "status": "True"}]},
        },
    )
    p = await v1.read_namespaced_pod("st", NS)
    assert cond(p, "Custom") == "True" and p.spec.containers[0].image == "nginx:1.25"
    # like kube-apiserver's pod status strategy: spec is pinned, labels/annotations still apply
    assert p.metadata.labels["via"] == "status"
    await v1.patch_namespaced_pod(
        "st",
        NS,
        {
            "metadata": {"labels": {"via": "main"}},
            "status": {"conditions": [{"type": "Other", "status": "True"}]},
        },
    )
    p = await v1.read_namespaced_pod("st", NS)
    assert p.metadata.labels["via"] == "main" and cond(p, "Other") is None


async def test_graceful_delete_and_finalizers(sim_cluster: SimCluster, kube_api: Any) -> None:
    v1 = client.CoreV1Api(kube_api)
    pods = sim_cluster.store.rt("pods")
    await v1.create_namespaced_pod(NS, pod_body("gd"))
    await wait_pod(sim_cluster, v1, "gd", running_ready)
    deleted = await v1.delete_namespaced_pod("gd", NS)
    assert deleted.metadata.deletion_timestamp is not None  # graceful: the kubelet finishes it
    assert deleted.metadata.deletion_grace_period_seconds == 30
    await sim_cluster.wait_for(lambda: sim_cluster.store.try_get(pods, NS, "gd") is None, message="pod gone")

    # with a finalizer the pod stays (deletionTimestamp set) until the finalizer is removed
    await v1.create_namespaced_pod(NS, pod_body("fin", finalizers=["example.com/hold"]))
    created = await wait_pod(sim_cluster, v1, "fin", running_ready)
    with pytest.raises(ApiException) as e:
        await v1.delete_namespaced_pod(
            "fin", NS, body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-the-uid"))
        )
    assert (
        e.value.status == 409
        and "Precondition failed: UID in precondition" in status_body(e.value)["message"]
    )
    await v1.delete_namespaced_pod(
        "fin", NS, body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=created.metadata.uid))
    )
    await wait_pod(
        sim_cluster,
        v1,
        "fin",
        lambda p: p.metadata.deletion_timestamp is not None and p.metadata.deletion_grace_period_seconds == 0,
    )  # the kubelet is done with it
    still = await v1.read_namespaced_pod("fin", NS)
    assert still.metadata.finalizers == ["example.com/hold"]
    await v1.patch_namespaced_pod(
        "fin", NS, {"metadata": {"finalizers": None}}, _content_type="application/merge-patch+json"
    )
    await sim_cluster.wait_for(lambda: sim_cluster.store.try_get(pods, NS, "fin") is None, message="pod gone")


async def test_unscheduled_pod_is_deleted_immediately(tmp_path: Any) -> None:
    async with SimCluster(nodes=0, tmpdir=tmp_path, **FAST) as cluster:  # type: ignore[arg-type]
        async with cluster.api_client() as api:
            v1 = client.CoreV1Api(api)
            await v1.create_namespaced_pod(NS, pod_body("pending"))
            p = await v1.read_namespaced_pod("pending", NS)
            assert p.status.phase == "Pending" and not p.spec.node_name
            await v1.delete_namespaced_pod("pending", NS)
            with pytest.raises(ApiException) as e:
                await v1.read_namespaced_pod("pending", NS)
            assert e.value.status == 404


# ---------------------------------------------------------------------------- CloneSet CRD


async def test_cloneset_crd_crud_status_and_scale(kube_api: Any) -> None:
    co = client.CustomObjectsApi(kube_api)
    args = (GROUP, VERSION, NS, "clonesets")
    created = await co.create_namespaced_custom_object(
        *args, {**cloneset_body("cs"), "status": {"replicas": 9}}
    )
    assert created["metadata"]["generation"] == 1 and "status" not in created  # status ignored on create
    got = await co.get_namespaced_custom_object(*args, "cs")
    assert (
        got["spec"]["updateStrategy"]["partition"] == 2
        and got["spec"]["updateStrategy"]["maxUnavailable"] == "20%"
    )
    patched = await co.patch_namespaced_custom_object(
        *args, "cs", {"spec": {"replicas": 5}}, _content_type="application/merge-patch+json"
    )
    assert patched["spec"]["replicas"] == 5 and patched["metadata"]["generation"] == 2
    labelled = await co.patch_namespaced_custom_object(
        *args, "cs", {"metadata": {"labels": {"a": "b"}}}, _content_type="application/merge-patch+json"
    )
    assert labelled["metadata"]["generation"] == 2  # metadata changes do not bump generation
    # status subresource: /status ignores spec, the main endpoint ignores status
    st = await co.patch_namespaced_custom_object_status(
        *args,
        "cs",
        {
            "spec": {"replicas": 1},
            "status": {
                "replicas": 3,
                "readyReplicas": 0,
                "availableReplicas": 0,
                "updatedReplicas": 0,
                "updatedReadyReplicas": 0,
                "observedGeneration": 2,
                "labelSelector": "app=cs",
            },
        },
        _content_type="application/merge-patch+json",
    )
    assert st["status"]["replicas"] == 3 and st["spec"]["replicas"] == 5 and st["metadata"]["generation"] == 2
    main = await co.patch_namespaced_custom_object(
        *args, "cs", {"status": {"replicas": 100}}, _content_type="application/merge-patch+json"
    )
    assert main["status"]["replicas"] == 3
    # a dict body without _content_type goes out as json-patch and is rejected (like a real API server)
    with pytest.raises(ApiException) as e:
        await co.patch_namespaced_custom_object(*args, "cs", {"spec": {"replicas": 6}})
    assert e.value.status in (400, 422)
    # strategic merge is not supported for custom resources
    with pytest.raises(ApiException) as e:
        await co.patch_namespaced_custom_object(
            *args, "cs", {"spec": {"replicas": 6}}, _content_type="application/strategic-merge-patch+json"
        )
    assert e.value.status == 415
    # scale subresource
    scale = await co.get_namespaced_custom_object_scale(*args, "cs")
    assert scale["spec"]["replicas"] == 5 and scale["status"] == {"replicas": 3, "selector": "app=cs"}
    await co.patch_namespaced_custom_object_scale(
        *args, "cs", {"spec": {"replicas": 7}}, _content_type="application/merge-patch+json"
    )
    assert (await co.get_namespaced_custom_object(*args, "cs"))["spec"]["replicas"] == 7
    # all-namespaces list and stale-RV replace
    everywhere = await co.list_cluster_custom_object(GROUP, VERSION, "clonesets")
    assert [o["metadata"]["name"] for o in everywhere["items"]] == ["cs"]
    stale = dict(got)
    with pytest.raises(ApiException) as e:
        await co.replace_namespaced_custom_object(*args, "cs", stale)
    assert e.value.status == 409
    assert 'clonesets.apps.kruise.io "cs"' in status_body(e.value)["message"]
    gone = await co.delete_namespaced_custom_object(*args, "cs")
    assert gone["kind"] == "Status" and gone["status"] == "Success"
    assert gone["details"] == {
        "name": "cs",
        "group": GROUP,
        "kind": "clonesets",
        "uid": created["metadata"]["uid"],
    }
    with pytest.raises(ApiException) as e:
        await co.get_namespaced_custom_object(*args, "cs")
    assert e.value.status == 404
    assert status_body(e.value)["details"] == {"name": "cs", "group": GROUP, "kind": "clonesets"}


async def test_owner_garbage_collection(sim_cluster: SimCluster, kube_api: Any) -> None:
    v1 = client.CoreV1Api(kube_api)
    co = client.CustomObjectsApi(kube_api)
    apps = client.AppsV1Api(kube_api)
    args = (GROUP, VERSION, NS, "clonesets")
    cs = await co.create_namespaced_custom_object(*args, cloneset_body("owner"))
    ref = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CloneSet",
        "name": "owner",
        "uid": cs["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    for i in range(3):
        await v1.create_namespaced_pod(NS, pod_body(f"owned-{i}", {"app": "owner"}, ownerReferences=[ref]))
    await apps.create_namespaced_controller_revision(
        NS, {"metadata": {"name": "owner-rev1", "ownerReferences": [ref]}, "revision": 1, "data": {"x": 1}}
    )
    revs = await apps.list_controller_revision_for_all_namespaces()
    assert [r.metadata.name for r in revs.items] == ["owner-rev1"]
    await v1.create_namespaced_pod(NS, pod_body("free", {"app": "owner"}))
    await co.delete_namespaced_custom_object(*args, "owner")

    async def owned_gone() -> bool:
        lst = await v1.list_namespaced_pod(NS, label_selector="app=owner")
        revs = await apps.list_namespaced_controller_revision(NS)
        return [p.metadata.name for p in lst.items] == ["free"] and not revs.items

    await sim_cluster.wait_for(owned_gone, message="dependents collected")


async def test_orphan_propagation_keeps_dependents(sim_cluster: SimCluster, kube_api: Any) -> None:
    v1 = client.CoreV1Api(kube_api)
    co = client.CustomObjectsApi(kube_api)
    args = (GROUP, VERSION, NS, "clonesets")
    cs = await co.create_namespaced_custom_object(*args, cloneset_body("orph"))
    ref = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CloneSet",
        "name": "orph",
        "uid": cs["metadata"]["uid"],
    }
    await v1.create_namespaced_config_map(NS, {"metadata": {"name": "dep", "ownerReferences": [ref]}})
    await co.delete_namespaced_custom_object(*args, "orph", propagation_policy="Orphan")
    dep = await v1.read_namespaced_config_map("dep", NS)
    assert not dep.metadata.owner_references


# ---------------------------------------------------------------------------- faults and the HTTP extras


async def test_fault_injection_runtime_api(sim_cluster: SimCluster, kube_api: Any) -> None:
    v1 = client.CoreV1Api(kube_api)
    sim_cluster.faults.update(error_rate={"create": 1.0}, error_codes=[429], retry_after=2)
    with pytest.raises(ApiException) as e:
        await v1.create_namespaced_config_map(NS, cm_body("f1"))
    assert e.value.status == 429 and e.value.headers["Retry-After"] == "2"
    assert status_body(e.value)["reason"] == "TooManyRequests"
    await v1.list_namespaced_config_map(NS)  # other verbs unaffected
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{sim_cluster.url}/sim/faults", json={"error_rate": {"*": 1.0}, "error_codes": [500]}
        ) as r:
            assert r.status == 200 and (await r.json())["error_codes"] == [500]
        with pytest.raises(ApiException) as e:
            await v1.list_namespaced_config_map(NS)
        assert e.value.status == 500
        async with http.delete(f"{sim_cluster.url}/sim/faults") as r:
            assert (await r.json())["error_rate"] == {}
    await v1.create_namespaced_config_map(NS, cm_body("f2"))
    # watch streams cut after N events
    sim_cluster.faults.update(watch_cut_after=2)
    for i in range(4):
        await v1.create_namespaced_config_map(NS, cm_body(f"cut{i}"))
    seen = []
    async with watch.Watch() as w:
        async for ev in w.stream(v1.list_namespaced_config_map, NS, timeout_seconds=5):
            seen.append(ev)
    assert len(seen) == 2
    # ... or after N seconds, events or not: a 60 s watch on a quiet namespace ends after 0.3 s
    sim_cluster.faults.reset()
    sim_cluster.faults.update(watch_cut_after_seconds=0.3)
    rv = (await v1.list_namespaced_config_map(NS)).metadata.resource_version

    async def quiet_watch() -> list[Any]:
        async with watch.Watch() as w:
            return [ev async for ev in w.stream(v1.list_namespaced_config_map, NS, resource_version=rv,
                                                timeout_seconds=60)]

    assert await asyncio.wait_for(quiet_watch(), 20) == []
    sim_cluster.faults.reset()
    assert not sim_cluster.faults.active


async def test_fault_latency_and_conflicts_at_start(tmp_path: Any) -> None:
    faults = Faults(latency={"get": 0.2}, error_rate={"patch": 1.0}, error_codes=[409], seed=1)
    async with SimCluster(nodes=0, tmpdir=tmp_path, faults=faults, **FAST) as cluster:  # type: ignore[arg-type]
        async with cluster.api_client() as api:
            v1 = client.CoreV1Api(api)
            await v1.create_namespaced_config_map(NS, cm_body("lat"))
            import time

            t0 = time.monotonic()
            await v1.read_namespaced_config_map("lat", NS)
            assert time.monotonic() - t0 >= 0.2
            with pytest.raises(ApiException) as e:
                await v1.patch_namespaced_config_map("lat", NS, {"data": {"a": "b"}})
            assert e.value.status == 409


async def test_discovery_and_leases(kube_api: Any) -> None:
    core = client.CoreApi(kube_api)
    assert (await core.get_api_versions()).versions == ["v1"]
    apis = client.ApisApi(kube_api)
    groups = {g.name for g in (await apis.get_api_versions()).groups}
    assert {"apps", "apps.kruise.io", "coordination.k8s.io"} <= groups
    version = await client.VersionApi(kube_api).get_code()
    assert version.major == "1"
    coord = client.CoordinationV1Api(kube_api)
    lease = await coord.create_namespaced_lease(
        NS, {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
    )
    lease.spec.holder_identity = "b"
    upd = await coord.replace_namespaced_lease("leader", NS, lease)
    assert upd.spec.holder_identity == "b"
    ev = client.CoreV1Api(kube_api)
    await ev.create_namespaced_event(
        NS,
        {
            "metadata": {"name": "e1"},
            "involvedObject": {"kind": "Pod", "name": "x"},
            "reason": "Test",
            "message": "hello",
            "type": "Normal",
        },
    )
    evs = await ev.list_namespaced_event(NS, field_selector="involvedObject.name=x,reason=Test")
    assert [e.message for e in evs.items] == ["hello"]


async def test_server_side_apply_creates_and_merges(kube_api: Any) -> None:
    co = client.CustomObjectsApi(kube_api)
    args = (GROUP, VERSION, NS, "clonesets")
    body = cloneset_body("ssa")
    created = await co.patch_namespaced_custom_object(
        *args, "ssa", body, field_manager="test", force=True, _content_type="application/apply-patch+yaml"
    )
    assert created["metadata"]["uid"] and created["spec"]["replicas"] == 3
    body["spec"]["replicas"] = 4
    applied = await co.patch_namespaced_custom_object(
        *args, "ssa", body, field_manager="test", force=True, _content_type="application/apply-patch+yaml"
    )
    assert applied["spec"]["replicas"] == 4 and applied["metadata"]["uid"] == created["metadata"]["uid"]
    assert applied["metadata"]["generation"] == 2
    v1 = client.CoreV1Api(kube_api)
    with pytest.raises(ApiException) as e:  # apply needs a field manager
        await v1.patch_namespaced_pod(
            "ssa-pod", NS, pod_body("ssa-pod"), _content_type="application/apply-patch+yaml"
        )
    assert e.value.status == 400


async def test_kubeconfig_loads_with_kubernetes_asyncio(sim_cluster: SimCluster) -> None:
    from kubernetes_asyncio import config

    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(sim_cluster.kubeconfig_path), client_configuration=cfg)
    assert cfg.host == sim_cluster.url
    async with client.ApiClient(cfg) as api:
        nodes = await client.CoreV1Api(api).list_node()
        assert len(nodes.items) == 3


async def test_init_containers_run_first(sim_cluster: SimCluster, kube_api: Any) -> None:
    v1 = client.CoreV1Api(kube_api)
    body = pod_body("init")
    body["spec"]["initContainers"] = [{"name": "setup", "image": "busybox:1.36"}]
    await v1.create_namespaced_pod(NS, body)
    p = await wait_pod(sim_cluster, v1, "init", running_ready)
    init = p.status.init_container_statuses[0]
    assert init.state.terminated.reason == "Completed" and init.image_id.startswith("busybox:1.36@sha256:")
    assert cond(p, "Initialized") == "True"
    assert sim_cluster.kubelets[p.spec.node_name].has_image("busybox:1.36")


async def test_readiness_annotation_keeps_pod_unready(sim_cluster: SimCluster, kube_api: Any) -> None:
    v1 = client.CoreV1Api(kube_api)
    await v1.create_namespaced_pod(NS, pod_body("probe", annotations={"sim.kruisebus.io/ready": "false"}))
    p = await wait_pod(
        sim_cluster,
        v1,
        "probe",
        lambda p: p.status.phase == "Running" and p.status.container_statuses[0].started,
    )
    assert not p.status.container_statuses[0].ready
    assert cond(p, "Ready") == "False" and cond(p, "ContainersReady") == "False"
