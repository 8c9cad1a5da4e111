"""Kruise's CloneSet defaults (SetDefaultsCloneSet + SetDefaultPodSpec) and the admission answers."""

from __future__ import annotations

import base64
import copy
from typing import Any

import msgspec

from schemas.admission import AdmissionRequest, AdmissionReview
from services.planner.kit.gates import parse_feature_gates
from services.webhook.admission import PodView, mutate_cloneset, validate_cloneset_request
from services.webhook.defaults import (
    default_cloneset,
    default_pod_spec,
    image_tag,
    json_patch,
    should_inject_template_defaults,
)
from sim.patch import json_patch as apply_patch


def cs(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "a"}},
        "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
    }
    base.update(spec)
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
            "metadata": {"name": "a", "namespace": "default", "uid": "u1"}, "spec": base}


def request(op: str, obj: dict[str, Any] | None, old: dict[str, Any] | None = None) -> AdmissionRequest:
    return msgspec.convert({
        "uid": "r1", "operation": op, "namespace": "default", "name": "a",
        "kind": {"group": "apps.kruise.io", "version": "v1alpha1", "kind": "CloneSet"},
        "resource": {"group": "apps.kruise.io", "version": "v1alpha1", "resource": "clonesets"},
        "object": obj, "oldObject": old,
    }, AdmissionRequest)


def test_cloneset_defaults() -> None:
    out = default_cloneset(cs(), inject_template_defaults=True)
    spec = out["spec"]
    assert spec["replicas"] == 1 and spec["revisionHistoryLimit"] == 10
    assert spec["updateStrategy"] == {"type": "ReCreate", "partition": 0, "maxUnavailable": "20%", "maxSurge": 0}
    assert "inPlaceUpdateStrategy" not in spec["updateStrategy"]  # only for the in-place types
    assert spec["scaleStrategy"] == {}
    t = spec["template"]
    assert t["metadata"]["creationTimestamp"] is None
    assert {k: t["spec"][k] for k in ("dnsPolicy", "restartPolicy", "securityContext",
                                      "terminationGracePeriodSeconds", "schedulerName")} == {
        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {},
        "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}
    assert "enableServiceLinks" not in t["spec"]  # SetDefaults_Pod, not SetDefaults_PodSpec
    assert t["spec"]["containers"][0] == {
        "name": "c", "image": "nginx", "imagePullPolicy": "Always", "resources": {},
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}


def test_explicit_values_are_kept() -> None:
    obj = cs(replicas=0, revisionHistoryLimit=3, updateStrategy={
        "type": "InPlaceOnly", "partition": "50%", "maxUnavailable": 2, "maxSurge": "10%",
        "inPlaceUpdateStrategy": {"gracePeriodSeconds": 5}})
    spec = default_cloneset(obj, inject_template_defaults=False)["spec"]
    assert spec["replicas"] == 0 and spec["revisionHistoryLimit"] == 3
    assert spec["updateStrategy"] == obj["spec"]["updateStrategy"]
    assert spec["template"] == obj["spec"]["template"]  # no template injection asked


def test_in_place_types_get_in_place_update_strategy() -> None:
    for t in ("InPlaceIfPossible", "InPlaceOnly"):
        spec = default_cloneset(cs(updateStrategy={"type": t}), inject_template_defaults=False)["spec"]
        assert spec["updateStrategy"]["inPlaceUpdateStrategy"] == {}


def test_image_pull_policy_init_containers_by_tag() -> None:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "nginx:1.2"}], "initContainers": [
        {"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox:1.36"},
        {"name": "d", "image": "busybox@sha256:abc"}, {"name": "e", "image": "reg:5000/busybox:latest"},
        {"name": "f", "image": "reg:5000/busybox"}]}
    default_pod_spec(spec)
    assert spec["containers"][0]["imagePullPolicy"] == "Always"  # Kruise, regardless of tag
    assert [c["imagePullPolicy"] for c in spec["initContainers"]] == [
        "Always", "IfNotPresent", "IfNotPresent", "Always", "Always"]
    assert image_tag("reg:5000/x") == "latest" and image_tag("x:1@sha256:a") == "1"


def test_container_volume_probe_defaults() -> None:
    spec: dict[str, Any] = {
        "containers": [{
            "name": "c", "image": "x:1", "ports": [{"containerPort": 80}],
            "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "readinessProbe": {"httpGet": {"port": 80}},
            "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/stop"}}},
        }],
        "volumes": [{"name": "e"}, {"name": "s", "secret": {"secretName": "s"}},
                    {"name": "h", "hostPath": {"path": "/x"}},
                    {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}],
    }
    default_pod_spec(spec)
    c = spec["containers"][0]
    assert c["ports"][0]["protocol"] == "TCP"
    assert c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert c["readinessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                   "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert c["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/stop", "scheme": "HTTP"}
    v = {x["name"]: x for x in spec["volumes"]}
    assert v["e"]["emptyDir"] == {}
    assert v["s"]["secret"]["defaultMode"] == 420
    assert v["h"]["hostPath"]["type"] == ""
    assert v["p"]["projected"]["defaultMode"] == 420
    assert v["p"]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 3600


def test_host_network_ports_gate() -> None:
    spec: dict[str, Any] = {"hostNetwork": True, "containers": [{"name": "c", "image": "x", "ports": [
        {"containerPort": 8080}]}]}
    off = copy.deepcopy(spec)
    default_pod_spec(off)
    assert "hostPort" not in off["containers"][0]["ports"][0]
    default_pod_spec(spec, host_network_ports=True)
    assert spec["containers"][0]["ports"][0]["hostPort"] == 8080


def test_volume_claim_templates_defaults() -> None:
    obj = cs(volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}])
    pvc = default_cloneset(obj, inject_template_defaults=True)["spec"]["volumeClaimTemplates"][0]
    assert pvc["spec"]["volumeMode"] == "Filesystem" and pvc["status"]["phase"] == "Pending"


def test_template_injection_only_on_create_or_template_change() -> None:
    old = cs()
    assert should_inject_template_defaults("CREATE", old, None, template_no_defaults=False)
    same = copy.deepcopy(old)
    same["spec"]["replicas"] = 4
    assert not should_inject_template_defaults("UPDATE", same, old, template_no_defaults=False)
    changed = copy.deepcopy(old)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    assert should_inject_template_defaults("UPDATE", changed, old, template_no_defaults=False)
    assert not should_inject_template_defaults("CREATE", old, None, template_no_defaults=True)


def test_json_patch_round_trips() -> None:
    obj = cs(updateStrategy={"type": "InPlaceIfPossible"})
    new = default_cloneset(obj, inject_template_defaults=True)
    assert apply_patch(obj, json_patch(obj, new)) == new
    assert json_patch(new, new) == []


def _patched(resp: Any, obj: dict[str, Any]) -> dict[str, Any]:
    wire = msgspec.json.decode(msgspec.json.encode(AdmissionReview(response=resp)))
    ops = msgspec.json.decode(base64.b64decode(wire["response"]["patch"]))
    assert wire["response"]["patchType"] == "JSONPatch"
    out: dict[str, Any] = apply_patch(obj, ops)
    return out


def test_mutate_unchanged_template_on_update_is_not_rewritten() -> None:
    old = cs()  # stored without any default (admitted while no webhook existed)
    resp = mutate_cloneset(request("UPDATE", copy.deepcopy(old), old))
    out = _patched(resp, old)
    assert out["spec"]["template"] == old["spec"]["template"]
    assert out["spec"]["replicas"] == 1


def test_mutate_fully_defaulted_object_answers_without_patch() -> None:
    full = default_cloneset(cs(), inject_template_defaults=True)
    resp = mutate_cloneset(request("CREATE", full))
    assert resp.allowed and resp.patch is None


def test_template_no_defaults_gate() -> None:
    gates = parse_feature_gates("TemplateNoDefaults=true")
    out = _patched(mutate_cloneset(request("CREATE", cs()), gates), cs())
    assert out["spec"]["template"] == cs()["spec"]["template"]
    assert out["spec"]["replicas"] == 1


def test_validate_denies_with_kruise_message_and_code() -> None:
    resp = validate_cloneset_request(request("CREATE", cs(replicas=-1)), PodView(ready=True))
    assert not resp.allowed and resp.status is not None
    assert resp.status.code == 422
    assert resp.status.message == "spec.replicas: Invalid value: -1: must be greater than or equal to 0"


def test_validate_wrongly_typed_field_is_denied_naming_it() -> None:
    resp = validate_cloneset_request(request("CREATE", cs(replicas="three")), PodView(ready=True))
    assert not resp.allowed and resp.status is not None and resp.status.code == 422
    assert resp.status.message.startswith('spec.replicas: Invalid value: "three"')


def test_validate_undecodable_object_is_a_bad_request() -> None:
    resp = validate_cloneset_request(request("CREATE", cs(selector="app=a")), PodView(ready=True))
    assert not resp.allowed and resp.status is not None and resp.status.code == 400


def test_pods_to_delete_before_replay_warns_instead_of_denying() -> None:
    obj = cs(scaleStrategy={"podsToDelete": ["p1"]})
    resp = validate_cloneset_request(request("CREATE", obj), PodView(ready=False))
    assert resp.allowed and resp.warnings and "podsToDelete" in resp.warnings[0]
    resp = validate_cloneset_request(request("CREATE", obj), PodView(ready=True))
    assert not resp.allowed


def test_deletion_protection_gate() -> None:
    on = parse_feature_gates("ResourcesDeletionProtection=true")
    always = cs(replicas=0)
    always["metadata"]["labels"] = {"policy.kruise.io/delete-protection": "Always"}
    cascading = cs(replicas=2)
    cascading["metadata"]["labels"] = {"policy.kruise.io/delete-protection": "Cascading"}
    view = PodView(ready=True)
    assert validate_cloneset_request(request("DELETE", None, always), view).allowed  # gate off (Kruise's default)
    resp = validate_cloneset_request(request("DELETE", None, always), view, on)
    assert not resp.allowed and resp.status is not None and resp.status.code == 403
    assert resp.status.message == "forbidden by ResourcesProtectionDeletion for policy.kruise.io/delete-protection=Always"
    resp = validate_cloneset_request(request("DELETE", None, cascading), view, on)
    assert resp.status is not None and resp.status.message.endswith("=Cascading and replicas 2>0")
    cascading["spec"]["replicas"] = 0
    assert validate_cloneset_request(request("DELETE", None, cascading), view, on).allowed
