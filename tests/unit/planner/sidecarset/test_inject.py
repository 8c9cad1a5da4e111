"""Injection at pod creation: the K1-K18 and K42 rows (Kruise's pod webhook sidecarset_test.go)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from schemas.constants import (
    ANNOTATION_SIDECARSET_HASH,
    ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE,
    ANNOTATION_SIDECARSET_INJECTED_LIST,
    LABEL_SIDECARSET_CUSTOM_VERSION,
    LABEL_SIDECARSET_NAME,
)
from schemas.kube import ControllerRevision
from schemas.sidecarset import SidecarSet
from services.planner.sidecarset.inject import InjectError, InjectionView, inject
from services.planner.sidecarset.revisions import revision_data
from tests.unit.planner.sidecarset.fixtures import names, pod, sidecarset

NOW = "2026-01-01T00:00:00Z"


def run(p: dict[str, Any], *sets: SidecarSet, revisions: list[ControllerRevision] | None = None,
        draw: float = 1.0, namespaces: dict[str, dict[str, str]] | None = None) -> dict[str, Any] | None:
    view = InjectionView(sidecarsets=sets, revisions=revisions or [],
                         namespaces=namespaces if namespaces is not None else {"default": {}})
    return inject(p, view, namespace="default", now=NOW, draw=lambda: draw)


def revision_of(ss: SidecarSet, name: str, number: int, version: str = "") -> ControllerRevision:
    labels = {LABEL_SIDECARSET_NAME: ss.metadata.name}
    if version:
        labels[LABEL_SIDECARSET_CUSTOM_VERSION] = version
    return msgspec.convert({"metadata": {"name": name, "namespace": "kruise-system", "labels": labels},
                            "revision": number, "data": revision_data(ss)}, ControllerRevision)


def test_K1_pod_has_no_matched_sidecarset() -> None:
    ss = sidecarset("sidecarset1", selector={"matchLabels": {"app": "suxing-test"}})
    assert run(pod(labels={"app": "doesnt-match"}), ss) is None


def test_K2_injection_strategy_paused() -> None:
    ss = sidecarset("sidecarset1", injectionStrategy={"paused": True})
    assert run(pod(), ss) is None


def test_K3_pod_inject_policy() -> None:
    ss = sidecarset("sidecarset1", init_containers=[{"name": "init-2", "image": "i"}, {"name": "init-1", "image": "i"}],
                    containers=[{"name": "dns-f", "image": "d", "podInjectPolicy": "BeforeAppContainer"},
                                {"name": "log-agent", "image": "l", "podInjectPolicy": "AfterAppContainer"}])
    out = run(pod(initContainers=[{"name": "init-0", "image": "x"}]), ss)
    assert out is not None
    assert names(out["spec"]["containers"]) == ["dns-f", "nginx", "log-agent"]
    assert names(out["spec"]["initContainers"]) == ["init-0", "init-1", "init-2"]
    assert {"name": "IS_INJECTED", "value": "true"} in out["spec"]["initContainers"][1]["env"]
    assert "podInjectPolicy" not in out["spec"]["containers"][0]  # only corev1.Container members reach the pod


@pytest.mark.parametrize(("pod_containers", "expected"), [
    pytest.param(["sidecar-1", "app-container", "sidecar-2"], ["new-sidecar-1", "sidecar-1", "app-container", "sidecar-2"],
                 id="K4-existing-replaced-in-place"),
    pytest.param(["app-container"], ["new-sidecar-1", "app-container", "sidecar-1", "sidecar-2"], id="K4-app-only"),
    pytest.param([], ["new-sidecar-1", "sidecar-1", "sidecar-2"], id="K4-empty-pod"),
])
def test_K4_merge_sidecar_containers(pod_containers: list[str], expected: list[str]) -> None:
    ss = sidecarset("s", containers=[{"name": "new-sidecar-1", "image": "x", "podInjectPolicy": "BeforeAppContainer"},
                                     {"name": "sidecar-1", "image": "x", "podInjectPolicy": "AfterAppContainer"},
                                     {"name": "sidecar-2", "image": "x", "podInjectPolicy": "AfterAppContainer"}])
    out = run(pod(containers=[{"name": n, "image": "app"} for n in pod_containers]), ss)
    assert out is not None and names(out["spec"]["containers"]) == expected


def test_K5_init_container_sort() -> None:
    ss = sidecarset("s", init_containers=[{"name": "a-init", "image": "x", "podInjectPolicy": "AfterAppContainer"},
                                          {"name": "c-init", "image": "x", "podInjectPolicy": "BeforeAppContainer"},
                                          {"name": "b-init", "image": "x", "podInjectPolicy": "BeforeAppContainer"}])
    out = run(pod(initContainers=[{"name": "app1-init", "image": "x"}, {"name": "app2-init", "image": "x"}]), ss)
    assert out is not None
    assert names(out["spec"]["initContainers"]) == ["b-init", "c-init", "app1-init", "app2-init", "a-init"]


@pytest.mark.parametrize(("ss_secrets", "pod_secrets", "count"), [
    pytest.param(["s0", "s1", "s2"], ["s2", "s3", "s3"], 4, id="K6-overlap-and-pod-duplicates"),
    pytest.param(["s0", "s1", "s2"], ["s3", "s4", "s5"], 6, id="K6-disjoint"),
    pytest.param(["s0", "s1", "s2"], [], 3, id="K6-pod-none"),
    pytest.param([], ["s3", "s4", "s5"], 3, id="K6-sidecarset-none"),
])
def test_K6_merge_sidecar_secrets(ss_secrets: list[str], pod_secrets: list[str], count: int) -> None:
    ss = sidecarset("s", imagePullSecrets=[{"name": n} for n in ss_secrets])
    p = pod(**({"imagePullSecrets": [{"name": n} for n in pod_secrets]} if pod_secrets else {}))
    out = run(p, ss)
    assert out is not None and len(out["spec"].get("imagePullSecrets", [])) == count


def test_K7_only_mounted_volumes_appended() -> None:
    ss = sidecarset("s", containers=[{"name": "c", "image": "x", "volumeMounts": [{"name": "volume-1", "mountPath": "/v"}]}],
                    volumes=[{"name": "volume-1", "emptyDir": {}}, {"name": "volume-2", "emptyDir": {}}])
    out = run(pod(volumes=[{"name": "volume-a", "emptyDir": {}}, {"name": "volume-b", "emptyDir": {}}]), ss)
    assert out is not None
    assert [v["name"] for v in out["spec"]["volumes"]] == ["volume-a", "volume-b", "volume-1"]


def test_K8_transfer_env() -> None:
    transfer = [{"sourceContainerName": "nginx", "envName": "hello2"}]
    ss = sidecarset("s", init_containers=[{"name": "dns-e", "image": "x", "transferEnv": transfer}],
                    containers=[{"name": "dns-f", "image": "x", "transferEnv": transfer}])
    out = run(pod(containers=[{"name": "nginx", "image": "n", "env": [{"name": "hello1", "value": "world1"},
                                                                      {"name": "hello2", "value": "world2"}]}]), ss)
    assert out is not None
    expected = [{"name": "IS_INJECTED", "value": "true"}, {"name": "hello2", "value": "world2"}]
    assert out["spec"]["initContainers"][0]["env"] == expected
    assert out["spec"]["containers"][0]["env"] == expected


def test_K9_shared_volume_mounts_and_subpath_envs() -> None:
    ss = sidecarset("s", containers=[{"name": "side", "image": "x", "shareVolumePolicy": {"type": "enabled"},
                                      "volumeMounts": [{"name": "v1", "mountPath": "/a/b/c"},
                                                       {"name": "v2", "mountPath": "/staragent"}]}],
                    volumes=[{"name": "v1", "emptyDir": {}}, {"name": "v2", "emptyDir": {}}])
    app = {"name": "nginx", "image": "n", "env": [{"name": "POD_NAME", "value": "p"}, {"name": "OD_NAME", "value": "o"}],
           "volumeMounts": [{"name": "a", "mountPath": "/a/b"}, {"name": "s", "mountPath": "/staragent"},
                            {"name": "e", "mountPath": "/e/expansion", "subPathExpr": "foo/$(POD_NAME)/$(OD_NAME)/conf"}]}
    out = run(pod(containers=[app]), ss)
    assert out is not None
    side = out["spec"]["containers"][0]
    assert [m["mountPath"] for m in side["volumeMounts"]] == ["/a/b/c", "/staragent", "/a/b", "/e/expansion"]
    assert [e["name"] for e in side["env"]] == ["IS_INJECTED", "POD_NAME", "OD_NAME"]


def test_K10_hash_annotation_has_exactly_matched_sidecarsets() -> None:
    s1 = sidecarset("sidecarset1", selector={"matchLabels": {"app": "other"}})
    s2 = sidecarset("sidecarset2")
    s3 = sidecarset("sidecarset3")
    out = run(pod(), s1, s2, s3)
    assert out is not None
    hashes = json.loads(out["metadata"]["annotations"][ANNOTATION_SIDECARSET_HASH])
    assert set(hashes) == {"sidecarset2", "sidecarset3"}
    assert hashes["sidecarset2"]["hash"] == s2.metadata.annotations[ANNOTATION_SIDECARSET_HASH]
    assert list(hashes["sidecarset2"]) == ["updateTimestamp", "hash", "sidecarSetName", "sidecarList"]
    without = json.loads(out["metadata"]["annotations"][ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE])
    assert without["sidecarset3"]["hash"] == s3.metadata.annotations[ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE]


def test_K11_injected_list() -> None:
    s1, s2, s3 = sidecarset("sidecarset3"), sidecarset("sidecarset2", selector={"matchLabels": {"x": "y"}}), \
        sidecarset("sidecarset1")
    out = run(pod(), s1, s2, s3)
    assert out is not None
    assert out["metadata"]["annotations"][ANNOTATION_SIDECARSET_INJECTED_LIST] == "sidecarset1,sidecarset3"


def test_K13_revision_custom_version_injects_the_revisions_containers() -> None:
    old = sidecarset("sidecarset1", containers=[{"name": "a", "image": "a:1"}],
                     init_containers=[{"name": "i", "image": "i:1"}])
    latest = sidecarset("sidecarset1", containers=[{"name": "a", "image": "a:2"}, {"name": "b", "image": "b:2"}],
                        init_containers=[{"name": "i", "image": "i:2"}, {"name": "j", "image": "j:2"}],
                        injectionStrategy={"revision": {"customVersion": "sidecarset1-12345"}})
    rev = revision_of(old, "sidecarset1-abc", 1, "sidecarset1-12345")
    out = run(pod(), latest, revisions=[rev])
    assert out is not None
    assert names(out["spec"]["containers"]) == ["a", "nginx"]
    assert out["spec"]["containers"][0]["image"] == "a:1"
    hashes = json.loads(out["metadata"]["annotations"][ANNOTATION_SIDECARSET_HASH])
    assert hashes["sidecarset1"]["controllerRevision"] == "sidecarset1-abc"


def test_revision_not_found_rejects_the_pod() -> None:
    ss = sidecarset("s", injectionStrategy={"revision": {"revisionName": "s-missing"}})
    with pytest.raises(InjectError, match='"s-missing" not found'):
        run(pod(), ss)


def _canary_case(update_strategy: dict[str, Any]) -> tuple[SidecarSet, list[ControllerRevision]]:
    stable = sidecarset("s", containers=[{"name": "c", "image": "c:stable"}])
    latest = sidecarset("s", containers=[{"name": "c", "image": "c:canary"}],
                        injectionStrategy={"revision": {"customVersion": "stable", "policy": "Partial"}},
                        updateStrategy=update_strategy)
    return latest, [revision_of(stable, "s-stable", 1, "stable")]


@pytest.mark.parametrize(("labels", "strategy", "draw", "image"), [
    pytest.param({"app": "nginx"}, {"selector": {"matchLabels": {"canary": "true"}}}, 1.0, "c:stable", id="K14-stable-pod"),
    pytest.param({"app": "nginx", "canary": "true"}, {"selector": {"matchLabels": {"canary": "true"}}}, 0.0,
                 "c:canary", id="K15-canary-without-partition"),
    pytest.param({"app": "nginx", "canary": "true"}, {"selector": {"matchLabels": {"canary": "true"}},
                                                      "partition": "0%"}, 0.5, "c:canary", id="K16-partition-0pct"),
    pytest.param({"app": "nginx"}, {"partition": "90%"}, 0.5, "c:stable", id="partial-90pct-draw-under"),
    pytest.param({"app": "nginx"}, {"partition": "90%"}, 0.95, "c:canary", id="partial-90pct-draw-over"),
    pytest.param({"app": "nginx"}, {"partition": 5}, 0.0, "c:canary", id="partial-int-partition-latest"),
    pytest.param({"app": "nginx"}, {"paused": True}, 1.0, "c:stable", id="paused-forces-specific"),
])
def test_K14_K16_canary_injection(labels: dict[str, str], strategy: dict[str, Any], draw: float, image: str) -> None:
    latest, revs = _canary_case(strategy)
    out = run(pod(labels=labels), latest, revisions=revs, draw=draw)
    assert out is not None and out["spec"]["containers"][0]["image"] == image


def test_K17_bad_update_selector_is_an_admission_error() -> None:
    latest, revs = _canary_case({"selector": {"matchExpressions": [{"key": "canary", "operator": "badOp"}]}})
    with pytest.raises(InjectError):
        run(pod(), latest, revisions=revs)


def test_always_policy_ignores_the_selector() -> None:
    stable = sidecarset("s", containers=[{"name": "c", "image": "c:stable"}])
    latest = sidecarset("s", containers=[{"name": "c", "image": "c:canary"}],
                        injectionStrategy={"revision": {"customVersion": "stable"}},
                        updateStrategy={"selector": {"matchLabels": {"canary": "true"}}})
    out = run(pod(labels={"app": "nginx", "canary": "true"}), latest,
              revisions=[revision_of(stable, "s-stable", 1, "stable")])
    assert out is not None and out["spec"]["containers"][0]["image"] == "c:stable"


def test_custom_version_takes_the_highest_revision() -> None:
    v1 = sidecarset("s", containers=[{"name": "c", "image": "c:1"}])
    v2 = sidecarset("s", containers=[{"name": "c", "image": "c:2"}])
    latest = sidecarset("s", containers=[{"name": "c", "image": "c:3"}],
                        injectionStrategy={"revision": {"customVersion": "x"}})
    revs = [revision_of(v2, "s-2", 2, "x"), revision_of(v1, "s-1", 1, "x")]
    out = run(pod(), latest, revisions=revs)
    assert out is not None and out["spec"]["containers"][0]["image"] == "c:2"


def test_K18_patch_pod_metadata_at_injection() -> None:
    ss = sidecarset("s", patchPodMetadata=[{"annotations": {"key1": "value1"}, "patchPolicy": "Retain"},
                                           {"annotations": {"key2": "value2"}, "patchPolicy": "Overwrite"},
                                           {"annotations": {"oom": '{"log-agent":1}'}, "patchPolicy": "MergePatchJson"}])
    p = pod()
    p["metadata"]["annotations"] = {"key1": "kept", "oom": '{"envoy":2}'}
    out = run(p, ss)
    assert out is not None
    ann = out["metadata"]["annotations"]
    assert (ann["key1"], ann["key2"], ann["oom"]) == ("kept", "value2", '{"envoy":2,"log-agent":1}')


def test_merge_patch_json_into_non_json_rejects() -> None:
    ss = sidecarset("s", patchPodMetadata=[{"annotations": {"oom": '{"a":1}'}, "patchPolicy": "MergePatchJson"}])
    p = pod()
    p["metadata"]["annotations"] = {"oom": "not json"}
    with pytest.raises(InjectError):
        run(p, ss)


@pytest.mark.parametrize(("ns_selector", "ns_labels", "injected"), [
    pytest.param({"matchLabels": {"env": "prod"}}, {"env": "prod"}, True, id="namespace-selector-matches"),
    pytest.param({"matchLabels": {"env": "prod"}}, {"env": "dev"}, False, id="namespace-selector-differs"),
    pytest.param({"matchLabels": {"env": "prod"}}, None, False, id="namespace-missing"),
])
def test_namespace_selector(ns_selector: dict[str, Any], ns_labels: dict[str, str] | None, injected: bool) -> None:
    ss = sidecarset("s", namespaceSelector=ns_selector)
    namespaces = {} if ns_labels is None else {"default": ns_labels}
    assert (run(pod(), ss, namespaces=namespaces) is not None) is injected


def test_v1alpha1_namespace_field() -> None:
    ss = sidecarset("s", namespace="other")
    assert run(pod(), ss) is None
    assert run(pod(namespace="other"), ss, namespaces={"other": {"kubernetes.io/metadata.name": "other"}}) is not None


def test_K42_canary_sidecarset_replaces_its_base() -> None:
    base = sidecarset("base", containers=[{"name": "c", "image": "c:stable"}], updateStrategy={"type": "NotUpdate"})
    canary = sidecarset("canary", containers=[{"name": "c", "image": "c:canary"}], updateStrategy={"type": "NotUpdate"})
    canary.metadata.annotations.update({"apps.kruise.io/sidecarset-canary": "true",
                                        "apps.kruise.io/sidecarset-base": "base"})
    out = run(pod(), base, canary)
    assert out is not None
    assert [c["image"] for c in out["spec"]["containers"]] == ["c:canary", "nginx:1"]
    assert out["metadata"]["annotations"][ANNOTATION_SIDECARSET_INJECTED_LIST] == "canary"


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_inactive_pods_are_skipped(phase: str) -> None:
    p = pod()
    p["status"] = {"phase": phase}
    assert run(p, sidecarset("s")) is None


def test_K12_native_and_hot_upgrade_init_containers() -> None:
    s1 = sidecarset("sidecarset-1", containers=[], init_containers=[
        {"name": "init-1", "image": "i:1", "restartPolicy": "Always",
         "volumeMounts": [{"name": "volume-1", "mountPath": "/v"}]}],
        volumes=[{"name": "volume-1", "emptyDir": {}}], updateStrategy={"type": "NotUpdate"})
    s2 = sidecarset("sidecarset-2", containers=[], init_containers=[
        {"name": "hot-init", "image": "hot:v1", "restartPolicy": "Always",
         "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:v1"}}],
        updateStrategy={"type": "NotUpdate"})
    out = run(pod(initContainers=[{"name": "init-0", "image": "x"}]), s1, s2)
    assert out is not None
    inits = out["spec"]["initContainers"]
    assert names(inits) == ["init-0", "hot-init-1", "hot-init-2", "init-1"]
    assert (inits[1]["image"], inits[2]["image"]) == ("hot:v1", "empty:v1")
    assert [e["name"] for e in inits[1]["env"]] == ["IS_INJECTED", "SIDECARSET_VERSION", "SIDECARSET_VERSION_ALT"]
    ann = out["metadata"]["annotations"]
    hashes = json.loads(ann[ANNOTATION_SIDECARSET_HASH])
    assert hashes["sidecarset-1"]["sidecarList"] == ["init-1"] and hashes["sidecarset-2"]["sidecarList"] == ["hot-init"]
    assert "controllerRevision" not in hashes["sidecarset-1"]
    assert ann["kruise.io/sidecarset-working-hotupgrade-container"] == '{"hot-init":"hot-init-1"}'
    assert (ann["version.sidecarset.kruise.io/hot-init-1"], ann["versionalt.sidecarset.kruise.io/hot-init-1"]) == ("1", "0")
    assert (ann["version.sidecarset.kruise.io/hot-init-2"], ann["versionalt.sidecarset.kruise.io/hot-init-2"]) == ("0", "1")
    assert ann[ANNOTATION_SIDECARSET_INJECTED_LIST] == "sidecarset-1,sidecarset-2"
    assert [v["name"] for v in out["spec"]["volumes"]] == ["volume-1"]


def test_hot_upgrade_container_pair() -> None:
    ss = sidecarset("s", containers=[{"name": "mesh", "image": "mesh:v1", "upgradeStrategy": {
        "upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:1"}}])
    out = run(pod(), ss)
    assert out is not None
    assert [(c["name"], c["image"]) for c in out["spec"]["containers"]] == \
        [("mesh-1", "mesh:v1"), ("mesh-2", "empty:1"), ("nginx", "nginx:1")]
