"""API behaviours kruisebus relies on, checked against the embedded cluster and (optionally) a real one.

Each assertion states what kube-apiserver does; `[sim]` must match it, `[real]` (kube-apiserver itself)
keeps the suite honest.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from conftest import Cluster
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client import ApiException

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def cm(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": {"k": "v"}}


def pod(name: str, containers: list[str] = ("main",), **spec: Any) -> dict[str, Any]:  # type: ignore[assignment]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "containers": [{"name": c, "image": "registry.k8s.io/pause:3.9"} for c in containers],
            "terminationGracePeriodSeconds": 1,
            **spec,
        },
    }


def status_of(e: ApiException) -> dict[str, Any]:
    return json.loads(e.body)


# ---------------------------------------------------------------------------------------------- watch


async def test_watch_resumes_from_a_resource_version(cluster: Cluster) -> None:
    core, ns = cluster.core, cluster.ns
    created = await core.create_namespaced_config_map(ns, cm("w"))
    rv0 = created.metadata.resource_version
    for i in range(3):
        await core.patch_namespaced_config_map("w", ns, {"data": {"i": str(i)}})
    seen = []
    w = watch.Watch()
    async for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=rv0, timeout_seconds=5):
        seen.append((ev["type"], ev["object"].data.get("i")))
        if len(seen) == 3:
            w.stop()
    assert seen == [("MODIFIED", "0"), ("MODIFIED", "1"), ("MODIFIED", "2")]


async def test_watch_from_a_compacted_resource_version_is_410(cluster: Cluster) -> None:
    cluster.require_sim(
        "a freshly started kube-apiserver's watch cache still holds every event since its first list, "
        "so no resourceVersion is too old yet (its window grows with churn; etcd compacts every 5 minutes)")
    core, ns = cluster.core, cluster.ns
    await core.create_namespaced_config_map(ns, cm("churn"))
    for i in range(60):  # beyond the sim's 50-event history; rv 1 is long compacted on a real cluster
        await core.patch_namespaced_config_map("churn", ns, {"data": {"i": str(i)}})
    with pytest.raises(ApiException) as e:
        async for _ in watch.Watch().stream(
            core.list_namespaced_config_map, ns, resource_version="1", timeout_seconds=5
        ):
            pass
    assert e.value.status == 410


# ---------------------------------------------------------------------------------------------- conflicts


async def test_conflicts_are_409_with_kubernetes_messages(cluster: Cluster) -> None:
    core, ns = cluster.core, cluster.ns
    obj = await core.create_namespaced_config_map(ns, cm("c"))
    with pytest.raises(ApiException) as e:
        await core.create_namespaced_config_map(ns, cm("c"))
    st = status_of(e.value)
    assert (e.value.status, st["reason"], st["message"]) == (
        409,
        "AlreadyExists",
        'configmaps "c" already exists',
    )
    await core.patch_namespaced_config_map("c", ns, {"data": {"k": "changed"}})
    obj.data = {"k": "stale"}
    with pytest.raises(ApiException) as e:
        await core.replace_namespaced_config_map("c", ns, obj)
    st = status_of(e.value)
    assert e.value.status == 409 and st["reason"] == "Conflict"
    assert st["message"] == (
        'Operation cannot be fulfilled on configmaps "c": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )


async def test_duplicate_create_with_generate_name_is_500_server_timeout(cluster: Cluster) -> None:
    """A body with both `name` and `generateName` (as controllers build pods) that collides is not a
    409: kube-apiserver reports a generated-name clash, a retryable 500 ServerTimeout."""
    core, ns = cluster.core, cluster.ns
    body = pod("dup")
    body["metadata"]["generateName"] = "dup-"
    await core.create_namespaced_pod(ns, body)
    with pytest.raises(ApiException) as e:
        await core.create_namespaced_pod(ns, body)
    st = status_of(e.value)
    assert (e.value.status, st["reason"], st["message"]) == (
        500,
        "ServerTimeout",
        "The POST operation against Pod could not be completed at this time, please try again.",
    )
    assert st["details"] == {"name": "POST", "kind": "Pod"}
    del body["metadata"]["generateName"]  # without it, the same clash is the usual 409
    with pytest.raises(ApiException) as e:
        await core.create_namespaced_pod(ns, body)
    assert (e.value.status, status_of(e.value)["reason"]) == (409, "AlreadyExists")


# ---------------------------------------------------------------------------------------------- 422


async def test_pod_spec_update_is_422_forbidden(cluster: Cluster) -> None:
    core, ns = cluster.core, cluster.ns
    await core.create_namespaced_pod(ns, pod("p"))
    with pytest.raises(ApiException) as e:
        await core.patch_namespaced_pod(
            "p", ns, {"spec": {"containers": [{"name": "main", "workingDir": "/x"}]}}, _content_type=STRATEGIC
        )
    st = status_of(e.value)
    assert e.value.status == 422 and st["reason"] == "Invalid"
    assert st["message"].startswith('Pod "p" is invalid: spec: Forbidden: pod updates may not change fields')
    assert st["details"]["causes"][0] == {
        "reason": "FieldValueForbidden",
        "message": st["details"]["causes"][0]["message"],
        "field": "spec",
    }


async def test_failed_json_patch_test_is_422(cluster: Cluster) -> None:
    core, ns = cluster.core, cluster.ns
    await core.create_namespaced_config_map(ns, cm("j"))
    with pytest.raises(ApiException) as e:
        await core.patch_namespaced_config_map(
            "j", ns, [{"op": "test", "path": "/data/k", "value": "nope"}], _content_type=JSON_PATCH
        )
    st = status_of(e.value)
    assert e.value.status == 422 and st["reason"] == "Invalid"


# ---------------------------------------------------------------------------------------------- patches


async def test_strategic_merge_merges_containers_by_name_and_conditions_by_type(cluster: Cluster) -> None:
    core, ns = cluster.core, cluster.ns
    await core.create_namespaced_pod(ns, pod("sm", containers=["a", "b"]))
    out = await core.patch_namespaced_pod(
        "sm",
        ns,
        {"spec": {"containers": [{"name": "b", "image": "registry.k8s.io/pause:3.10"}]}},
        _content_type=STRATEGIC,
    )
    images = {c.name: c.image for c in out.spec.containers}
    assert images == {"a": "registry.k8s.io/pause:3.9", "b": "registry.k8s.io/pause:3.10"}
    for t in ("example.com/A", "example.com/B"):
        await core.patch_namespaced_pod_status(
            "sm", ns, {"status": {"conditions": [{"type": t, "status": "True"}]}}, _content_type=STRATEGIC
        )
    got = await core.read_namespaced_pod_status("sm", ns)
    types = {c.type: c.status for c in got.status.conditions}
    assert types["example.com/A"] == "True" and types["example.com/B"] == "True"


async def test_merge_patch_replaces_lists_and_nulls_delete(cluster: Cluster) -> None:
    core, ns = cluster.core, cluster.ns
    await core.create_namespaced_config_map(ns, cm("mp", finalizers=["example.com/a", "example.com/b"]))
    out = await core.patch_namespaced_config_map(
        "mp", ns, {"metadata": {"finalizers": ["example.com/c"]}, "data": {"k": None}}, _content_type=MERGE
    )
    assert out.metadata.finalizers == ["example.com/c"] and not out.data
    await core.patch_namespaced_config_map("mp", ns, {"metadata": {"finalizers": None}}, _content_type=MERGE)


# ---------------------------------------------------------------------------------------------- deletion


async def test_graceful_pod_deletion(cluster: Cluster) -> None:
    core, ns = cluster.core, cluster.ns
    node = await cluster.node_name()
    await core.create_namespaced_pod(ns, pod("g", nodeName=node))

    async def running() -> bool:
        p = await core.read_namespaced_pod("g", ns)
        return p.status.phase == "Running"

    await cluster.wait_for(running, what="pod Running")
    deleted = await core.delete_namespaced_pod("g", ns)
    assert deleted.metadata.deletion_timestamp is not None
    assert deleted.metadata.deletion_grace_period_seconds == 1
    await cluster.wait_for(lambda: cluster.gone(lambda: core.read_namespaced_pod("g", ns)), what="pod gone")


async def test_finalizers_hold_an_object_until_removed(cluster: Cluster) -> None:
    core, ns = cluster.core, cluster.ns
    await core.create_namespaced_config_map(ns, cm("f", finalizers=["example.com/hold"]))
    await core.delete_namespaced_config_map("f", ns)
    held = await core.read_namespaced_config_map("f", ns)
    assert held.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as e:  # no new finalizers once deleting
        await core.patch_namespaced_config_map(
            "f",
            ns,
            {"metadata": {"finalizers": ["example.com/hold", "example.com/new"]}},
            _content_type=MERGE,
        )
    assert e.value.status == 422
    await core.patch_namespaced_config_map("f", ns, {"metadata": {"finalizers": None}}, _content_type=MERGE)
    await cluster.wait_for(
        lambda: cluster.gone(lambda: core.read_namespaced_config_map("f", ns)), what="gone"
    )


async def _owner_and_dependent(cluster: Cluster, dep_finalizer: bool = False) -> tuple[Any, str]:
    core, ns = cluster.core, cluster.ns
    owner = await core.create_namespaced_config_map(ns, cm("owner"))
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner.metadata.uid,
        "blockOwnerDeletion": True,
    }
    meta: dict[str, Any] = {"ownerReferences": [ref]}
    if dep_finalizer:
        meta["finalizers"] = ["example.com/hold"]
    await core.create_namespaced_config_map(ns, cm("dep", **meta))
    return owner, owner.metadata.uid


async def test_gc_background(cluster: Cluster) -> None:
    core, ns = cluster.core, cluster.ns
    await _owner_and_dependent(cluster)
    await core.delete_namespaced_config_map("owner", ns, propagation_policy="Background")
    assert await cluster.gone(lambda: core.read_namespaced_config_map("owner", ns))
    await cluster.wait_for(
        lambda: cluster.gone(lambda: core.read_namespaced_config_map("dep", ns)), what="GC"
    )


async def test_gc_foreground_waits_for_dependents(cluster: Cluster) -> None:
    core, ns = cluster.core, cluster.ns
    await _owner_and_dependent(cluster, dep_finalizer=True)
    await core.delete_namespaced_config_map("owner", ns, propagation_policy="Foreground")

    async def dependent_deleting() -> bool:
        d = await core.read_namespaced_config_map("dep", ns)
        return d.metadata.deletion_timestamp is not None

    await cluster.wait_for(dependent_deleting, what="dependent being deleted")
    owner = await core.read_namespaced_config_map("owner", ns)
    assert owner.metadata.deletion_timestamp is not None and "foregroundDeletion" in owner.metadata.finalizers
    await core.patch_namespaced_config_map("dep", ns, {"metadata": {"finalizers": None}}, _content_type=MERGE)
    await cluster.wait_for(
        lambda: cluster.gone(lambda: core.read_namespaced_config_map("owner", ns)), what="owner gone"
    )


async def test_gc_orphan_keeps_dependents(cluster: Cluster) -> None:
    core, ns = cluster.core, cluster.ns
    await _owner_and_dependent(cluster)
    await core.delete_namespaced_config_map("owner", ns, propagation_policy="Orphan")
    await cluster.wait_for(
        lambda: cluster.gone(lambda: core.read_namespaced_config_map("owner", ns)), what="owner gone"
    )

    async def orphaned() -> bool:
        d = await core.read_namespaced_config_map("dep", ns)
        return not d.metadata.owner_references

    await cluster.wait_for(orphaned, what="ownerReference removed")


# ---------------------------------------------------------------------------------------------- selectors


async def test_label_and_field_selectors(cluster: Cluster) -> None:
    core, ns = cluster.core, cluster.ns
    for name, labels in (("a", {"env": "prod", "tier": "web"}), ("b", {"env": "dev"}), ("c", {})):
        await core.create_namespaced_config_map(ns, cm(name, labels=labels))

    async def names(**kw: Any) -> list[str]:
        # not kube-root-ca.crt, which kube-controller-manager puts in every namespace (no labels)
        items = (await core.list_namespaced_config_map(ns, **kw)).items
        return sorted(i.metadata.name for i in items if i.metadata.name in ("a", "b", "c"))

    assert await names(label_selector="env in (prod,dev)") == ["a", "b"]
    assert await names(label_selector="env notin (prod)") == ["b", "c"]
    assert await names(label_selector="!env") == ["c"]
    assert await names(label_selector="env,tier=web") == ["a"]
    assert await names(label_selector="env!=prod") == ["b", "c"]
    assert await names(field_selector="metadata.name=b") == ["b"]
    assert await names(field_selector="metadata.name!=b") == ["a", "c"]
    assert await names(field_selector=f"metadata.namespace={cluster.ns}", label_selector="env=dev") == ["b"]


# ---------------------------------------------------------------------------------------------- lists


async def test_list_resource_version_semantics(cluster: Cluster) -> None:
    core, ns = cluster.core, cluster.ns
    await core.create_namespaced_config_map(ns, cm("l1"))
    first = await core.list_namespaced_config_map(ns)
    rv = first.metadata.resource_version
    await core.create_namespaced_config_map(ns, cm("l2"))
    names = lambda lst: sorted(i.metadata.name for i in lst.items if i.metadata.name.startswith("l"))  # noqa: E731
    assert names(await core.list_namespaced_config_map(ns)) == ["l1", "l2"]  # "": most recent
    assert names(await core.list_namespaced_config_map(ns, resource_version="0")) == ["l1", "l2"]
    exact = await core.list_namespaced_config_map(ns, resource_version=rv, resource_version_match="Exact")
    assert names(exact) == ["l1"] and exact.metadata.resource_version == rv  # as of rv
    newer = await core.list_namespaced_config_map(
        ns, resource_version=rv, resource_version_match="NotOlderThan"
    )
    assert names(newer) == ["l1", "l2"]
    with pytest.raises(ApiException) as e:  # a resourceVersion from the future
        await core.list_namespaced_config_map(
            ns, resource_version=str(int(rv) + 10_000_000), resource_version_match="NotOlderThan"
        )
    st = status_of(e.value)
    assert e.value.status == 504 and st["reason"] == "Timeout"
    assert st["message"].startswith(f"Timeout: Too large resource version: {int(rv) + 10_000_000}, current: ")
    with pytest.raises(ApiException) as e:
        await core.list_namespaced_config_map(ns, resource_version_match="Exact")
    assert e.value.status == 422


async def test_list_exact_too_old_is_410(cluster: Cluster) -> None:
    cluster.require_sim("a real cluster's compaction window is minutes, too slow to reach in a test")
    core, ns = cluster.core, cluster.ns
    await core.create_namespaced_config_map(ns, cm("old"))
    rv = (await core.list_namespaced_config_map(ns)).metadata.resource_version
    for i in range(60):
        await core.patch_namespaced_config_map("old", ns, {"data": {"i": str(i)}})
    with pytest.raises(ApiException) as e:
        await core.list_namespaced_config_map(ns, resource_version=rv, resource_version_match="Exact")
    st = status_of(e.value)
    assert (e.value.status, st["reason"]) == (410, "Expired")


async def test_list_paging_with_continue(cluster: Cluster) -> None:
    core, ns = cluster.core, cluster.ns
    for i in range(5):
        await core.create_namespaced_config_map(ns, cm(f"p{i}"))
    total = len((await core.list_namespaced_config_map(ns)).items)  # + kube-root-ca.crt on a real cluster
    page = await core.list_namespaced_config_map(ns, limit=2)
    got = [i.metadata.name for i in page.items]
    rv = page.metadata.resource_version
    assert len(got) == 2 and page.metadata._continue
    assert page.metadata.remaining_item_count == total - 2
    await core.create_namespaced_config_map(ns, cm("p5"))  # after the first page: not in this list
    while page.metadata._continue:
        page = await core.list_namespaced_config_map(ns, limit=2, _continue=page.metadata._continue)
        assert page.metadata.resource_version == rv  # one consistent snapshot
        got += [i.metadata.name for i in page.items]
    assert [n for n in got if n.startswith("p")] == ["p0", "p1", "p2", "p3", "p4"]


async def test_expired_continue_is_410_with_a_fresh_token(cluster: Cluster) -> None:
    cluster.require_sim("needs the snapshot of the first page to be compacted")
    core, ns = cluster.core, cluster.ns
    for i in range(4):
        await core.create_namespaced_config_map(ns, cm(f"e{i}"))
    page = await core.list_namespaced_config_map(ns, limit=2)
    for i in range(60):
        await core.patch_namespaced_config_map("e0", ns, {"data": {"i": str(i)}})
    with pytest.raises(ApiException) as e:
        await core.list_namespaced_config_map(ns, limit=2, _continue=page.metadata._continue)
    st = status_of(e.value)
    assert (e.value.status, st["reason"]) == (410, "Expired")
    assert st["message"].startswith("The provided continue parameter is too old")
    rest = await core.list_namespaced_config_map(ns, limit=10, _continue=st["metadata"]["continue"])
    assert [i.metadata.name for i in rest.items] == ["e2", "e3"]  # inconsistent continuation


# ---------------------------------------------------------------------------------------------- CRDs


async def _cloneset_crd(cluster: Cluster) -> None:
    try:
        await cluster.crds.read_custom_resource_definition("clonesets.apps.kruise.io")
    except ApiException as e:
        if e.status == 404:
            pytest.skip("the CloneSet CRD is not installed")
        raise


def cloneset(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "CloneSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}], "x-anything": {"kept": 1}},
            },
            **spec,
        },
    }


async def test_cloneset_schema_validation_and_pruning(cluster: Cluster) -> None:
    await _cloneset_crd(cluster)
    args = ("apps.kruise.io", "v1alpha1", cluster.ns, "clonesets")
    with pytest.raises(ApiException) as e:
        await cluster.custom.create_namespaced_custom_object(*args, cloneset("bad", replicas="string"))
    st = status_of(e.value)
    assert e.value.status == 422 and st["reason"] == "Invalid"
    assert st["message"] == (
        'CloneSet.apps.kruise.io "bad" is invalid: [spec.replicas: Invalid value: "string": spec.replicas in '
        'body must be of type integer: "string", .spec.replicas: Invalid value: 0: .spec.replicas accessor '
        "error: string is of the type string, expected int64]"
    )  # the schema's error, then the scale subresource's
    assert [c["field"] for c in st["details"]["causes"]] == ["spec.replicas", ".spec.replicas"]
    with pytest.raises(ApiException) as e:
        await cluster.custom.create_namespaced_custom_object(*args, cloneset("neg", replicas=-1))
    st = status_of(e.value)
    assert (e.value.status, st["message"]) == (
        422, 'CloneSet.apps.kruise.io "neg" is invalid: .spec.replicas: Invalid value: -1: should be a non-negative integer')
    no_selector = cloneset("nosel")
    del no_selector["spec"]["selector"]
    with pytest.raises(ApiException) as e:
        await cluster.custom.create_namespaced_custom_object(*args, no_selector)
    st = status_of(e.value)
    assert st["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.selector"}
    ]
    # any int-or-string values: the CRD has no such constraints (kruisebus reports them)
    ok = cloneset("ok", replicas=2, updateStrategy={"partition": "abc", "maxUnavailable": "5"}, bogus=1)
    out = await cluster.custom.create_namespaced_custom_object(*args, ok)
    assert out["spec"]["updateStrategy"] == {"partition": "abc", "maxUnavailable": "5"}
    assert "bogus" not in out["spec"]  # pruned: spec does not preserve unknown fields
    assert out["spec"]["template"]["spec"]["x-anything"] == {"kept": 1}  # template preserves them


async def test_crd_defaults_and_validation_keywords(cluster: Cluster) -> None:
    group = f"c{uuid.uuid4().hex[:8]}.conformance.kruisebus.io"
    spec_schema = {
        "type": "object",
        "required": ["mode"],
        "properties": {
            "mode": {"type": "string", "enum": ["fast", "slow"]},
            "size": {"type": "integer", "minimum": 0, "maximum": 10, "default": 3},
            "name": {"type": "string", "pattern": "^[a-z]+$"},
            "limit": {"x-kubernetes-int-or-string": True},
            "note": {"type": "string", "nullable": True},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "nested": {
                "type": "object",
                "default": {},
                "properties": {"flag": {"type": "boolean", "default": True}},
            },
        },
    }
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": spec_schema},
                        }
                    },
                }
            ],
        },
    }
    await cluster.crds.create_custom_resource_definition(crd)
    try:
        args = (group, "v1", cluster.ns, "widgets")

        async def established() -> bool:
            try:
                await cluster.custom.list_namespaced_custom_object(*args)
                return True
            except ApiException:
                return False

        await cluster.wait_for(established, what="CRD established")

        def widget(obj: str, /, **spec: Any) -> dict[str, Any]:
            return {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": obj}, "spec": spec}

        out = await cluster.custom.create_namespaced_custom_object(
            *args,
            widget(
                "w", mode="fast", limit="50%", note=None, labels={"a": "b"}, extra={"x": {"y": 1}}, unknown=1
            ),
        )
        assert out["spec"]["size"] == 3 and out["spec"]["nested"] == {"flag": True}  # defaults
        assert out["spec"]["note"] is None and out["spec"]["extra"] == {"x": {"y": 1}}
        assert "unknown" not in out["spec"]
        cases = [
            ({"mode": "bogus"}, 'spec.mode: Unsupported value: "bogus": supported values: "fast", "slow"'),
            (
                {"mode": "fast", "size": -1},
                "spec.size: Invalid value: -1: spec.size in body should be greater than or equal to 0",
            ),
            (
                {"mode": "fast", "size": 11},
                "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10",
            ),
            (
                {"mode": "fast", "name": "BAD"},
                "spec.name: Invalid value: \"BAD\": spec.name in body should match '^[a-z]+$'",
            ),
            (
                {"mode": "fast", "labels": {"a": 1}},
                'spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer"',
            ),
            ({}, "spec.mode: Required value"),
        ]
        for spec, message in cases:
            with pytest.raises(ApiException) as e:
                await cluster.custom.create_namespaced_custom_object(*args, widget("x", **spec))
            st = status_of(e.value)
            assert (e.value.status, st["reason"]) == (422, "Invalid"), spec
            assert st["message"] == f'Widget.{group} "x" is invalid: {message}'
    finally:
        await cluster.crds.delete_custom_resource_definition(f"widgets.{group}")


async def test_strict_field_validation_rejects_unknown_fields(cluster: Cluster) -> None:
    await cluster.require_version(25, "fieldValidation is a Kubernetes 1.25 feature; older servers ignore it")
    await _cloneset_crd(cluster)
    body = cloneset("strict", bogus=1)
    with pytest.raises(ApiException) as e:
        await cluster.custom.create_namespaced_custom_object(
            "apps.kruise.io", "v1alpha1", cluster.ns, "clonesets", body, field_validation="Strict"
        )
    st = status_of(e.value)
    assert e.value.status == 400 and st["reason"] == "BadRequest"
    assert 'unknown field "spec.bogus"' in st["message"]


async def test_delete_returns_status_or_object(cluster: Cluster) -> None:
    core, ns = cluster.core, cluster.ns
    await core.create_namespaced_config_map(ns, cm("d"))
    out = await core.delete_namespaced_config_map("d", ns, body=client.V1DeleteOptions())
    assert out.status == "Success"
