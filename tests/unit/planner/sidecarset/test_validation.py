"""The SidecarSet validating webhook's rules: K19-K25 (Kruise's sidecarset_validating_test.go, selector_test.go)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from schemas.kube import LabelSelector
from schemas.sidecarset import SidecarSet, SidecarSetPatchPodMetadata
from services.planner.kit.fielderrors import errors_message
from services.planner.kit.gates import DEFAULT_GATES, FeatureGates
from services.planner.sidecarset.matching import selector_overlapping
from services.planner.sidecarset.metadata import patch_pod_metadata
from services.planner.sidecarset.validation import validate_sidecarset
from tests.unit.planner.sidecarset.fixtures import sidecarset

GATE_ON = msgspec.structs.replace(DEFAULT_GATES, sidecar_set_patch_pod_metadata_defaults_allowed=True)


def _sel(spec: dict[str, Any]) -> LabelSelector:
    return msgspec.convert(spec, LabelSelector)


@pytest.mark.parametrize(("a", "b", "overlap"), [
    pytest.param({"matchLabels": {"a": "h"}}, {"matchLabels": {"a": "h"}}, True, id="K24-same"),
    pytest.param({"matchLabels": {"a": "h"}}, {"matchLabels": {"a": "i"}}, False, id="K24-other-value"),
    pytest.param({"matchLabels": {"a": "h"}}, {"matchLabels": {"b": "i"}}, True, id="K24-other-key"),
    pytest.param({"matchLabels": {"a": "h", "b": "i", "c": "j"}}, {"matchLabels": {"a": "h", "b": "x", "c": "j"}},
                 False, id="K24-one-differs"),
    pytest.param({"matchLabels": {"a": "h"}}, {"matchExpressions": [{"key": "a", "operator": "In",
                                                                     "values": ["h", "i", "j"]}]}, True, id="K24-in"),
    pytest.param({"matchLabels": {"a": "h"}}, {"matchExpressions": [{"key": "a", "operator": "In",
                                                                     "values": ["i", "j"]}]}, False, id="K24-not-in-list"),
    pytest.param({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["h", "i"]}]},
                 {"matchLabels": {"a": "h"}}, False, id="K24-notin"),
    pytest.param({"matchLabels": {"a": "h"}}, {"matchExpressions": [{"key": "a", "operator": "Exists"}]}, True,
                 id="K24-exists"),
    pytest.param({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"matchLabels": {"a": "h"}},
                 False, id="K24-does-not-exist"),
])
def test_K24_selector_overlap(a: dict[str, Any], b: dict[str, Any], overlap: bool) -> None:
    assert selector_overlapping(_sel(a), _sel(b)) is overlap


WHITELIST = '{"rules":[{"allowedAnnotationKeyExprs":["key.*"]}]}'
WHITELIST_SELECTOR = '{"rules":[{"selector":{"matchLabels":{"app":"sidecar"}},"allowedAnnotationKeyExprs":["key.*"]}]}'


@pytest.mark.parametrize(("patch", "whitelist", "gates", "message"), [
    pytest.param(None, None, DEFAULT_GATES, None, id="K19-no-patch-no-configmap"),
    pytest.param({"key1": "v"}, WHITELIST, DEFAULT_GATES, None, id="K19-rule-allows"),
    pytest.param({"key1": "v"}, WHITELIST_SELECTOR, DEFAULT_GATES, None, id="K19-rule-with-matching-selector"),
    pytest.param({"key1": "v"}, None, DEFAULT_GATES, "SidecarSet patch metadata whitelist not found",
                 id="whitelist-missing-gate-off"),
    pytest.param({"key1": "v"}, None, GATE_ON, None, id="whitelist-missing-gate-on"),
    pytest.param({"monkey": "v"}, WHITELIST, DEFAULT_GATES, None, id="unanchored-regex"),
    pytest.param({"other": "v"}, WHITELIST, GATE_ON, "sidecarSet patch metadata annotation(other) is not allowed",
                 id="key-not-allowed-gate-does-not-help"),
    pytest.param({"key1": "v"}, '{"rules":[{"selector":{"matchLabels":{"app":"x"}},"allowedAnnotationKeyExprs":["k"]}]}',
                 DEFAULT_GATES, "sidecarSet patch metadata annotation is not allowed", id="no-rule-applies"),
])
def test_K19_whitelist(patch: dict[str, str] | None, whitelist: str | None, gates: FeatureGates,
                       message: str | None) -> None:
    extra = {"patchPodMetadata": [{"annotations": patch, "patchPolicy": "Overwrite"}]} if patch else {}
    ss = sidecarset("test-sidecarset", **extra)
    ss.metadata.labels["app"] = "sidecar"
    errs = validate_sidecarset(ss, whitelist=whitelist, gates=gates)
    if message is None:
        assert errs == []
    else:
        assert [str(e) for e in errs] == [f"spec.patchPodMetadata: Required value: {message}"]


def _raw(**spec: Any) -> SidecarSet:
    base: dict[str, Any] = {"selector": {"matchLabels": {"app": "nginx"}},
                            "containers": [{"name": "c", "image": "c:1"}]}
    base.update(spec)
    return sidecarset("test-sidecarset", defaults=True, **{k: v for k, v in base.items()
                                                             if k not in ("containers", "selector")},
                      containers=base["containers"], selector=base["selector"])


@pytest.mark.parametrize(("build", "count"), [
    pytest.param(lambda: msgspec.structs.replace(_raw(), spec=msgspec.structs.replace(_raw().spec, selector=None)), 1,
                 id="K20-missing-selector"),
    pytest.param(lambda: _raw(updateStrategy={"scatterStrategy": [{"key": "k", "value": "v"}, {"key": "k", "value": "v"}]}),
                 1, id="K20-duplicated-scatter"),
    pytest.param(lambda: _raw(selector={"matchExpressions": [{"key": "app", "operator": "NotIn",
                                                              "values": ["app-risk-"]}]}), 2, id="K20-bad-selector-value"),
    pytest.param(lambda: _raw(containers=[]), 1, id="K20-no-containers"),
    pytest.param(lambda: _unset_share_policy(), 1, id="K20-share-volume-policy-empty"),
    pytest.param(lambda: _raw(initContainers=[{"name": "i"}]), 1, id="K20-init-without-image"),
    pytest.param(lambda: _volume_without_source(), 1, id="K20-volume-without-source"),
    pytest.param(lambda: _raw(patchPodMetadata=[{"annotations": {"key1": "a"}, "patchPolicy": "MergePatchJson"},
                                                {"annotations": {"key1": "b"}, "patchPolicy": "Overwrite"}]), 1,
                 id="K21-duplicate-patch-key"),
    pytest.param(lambda: _raw(injectionStrategy={"revision": {"customVersion": "normal-sidecarset-01234"}}), 1,
                 id="K21-custom-version-absent"),
    pytest.param(lambda: _raw(injectionStrategy={"revision": {"revisionName": "test-sidecarset-678235"}}), 1,
                 id="K21-revision-name-absent"),
    pytest.param(lambda: _raw(injectionStrategy={"revision": {}}), 1, id="revision-both-empty"),
    pytest.param(lambda: _raw(containers=[{"name": "c", "image": "c", "resources": {"limits": {"cpu": "1"}},
                                           "resourcesPolicy": {"resourcesExpr": {"limits": {"cpu": "cpu*0.5"}}}}]),
                 1, id="K21-resources-policy-with-resources"),
    pytest.param(lambda: _raw(containers=[{"name": "c", "image": "c", "resourcesPolicy": {
        "targetContainersMode": "sum", "resourcesExpr": {"limits": {"cpu": "cpu*0.5"}}}}]), 0,
                 id="resources-policy-valid"),
    pytest.param(lambda: _raw(containers=[{"name": "c", "image": "c", "resourcesPolicy": {"resourcesExpr": {}}}]),
                 1, id="resources-policy-without-expressions"),
    pytest.param(lambda: _raw(initContainers=[{"name": "i", "image": "i", "resourcesPolicy": {
        "resourcesExpr": {"requests": {"cpu": "cpu"}}}}]), 1, id="resources-policy-on-plain-init-container"),
    pytest.param(lambda: _raw(initContainers=[{"name": "i", "image": "i", "restartPolicy": "Always"}]), 1,
                 id="native-init-with-rolling-update"),
    pytest.param(lambda: _raw(updateStrategy={"partition": "0%", "selector": {"matchLabels": {"a": "b"}}}), 1,
                 id="partition-0pct-with-selector"),
    pytest.param(lambda: _raw(updateStrategy={"partition": "33.3%"}), 1, id="partition-fraction"),
    pytest.param(lambda: _raw(updateStrategy={"maxUnavailable": "150%"}), 0, id="max-unavailable-150pct-accepted"),
    pytest.param(lambda: _raw(updateStrategy={"maxUnavailable": 0}), 0, id="max-unavailable-0-accepted"),
])
def test_K20_K21_validate(build: Any, count: int) -> None:
    errs = validate_sidecarset(build(), gates=GATE_ON)
    assert len(errs) == count, errors_message(errs)


def _unset_share_policy() -> SidecarSet:
    ss = _raw()
    ss.spec.containers[0]["shareVolumePolicy"] = {"type": ""}
    return ss


def _volume_without_source() -> SidecarSet:
    ss = _raw(volumes=[{"name": "v"}])
    ss.spec.volumes[0].pop("emptyDir")
    return ss


def test_revision_lookup_messages() -> None:
    errs = validate_sidecarset(_raw(injectionStrategy={"revision": {"customVersion": "1"}}))
    assert str(errs[0]) == ('revision: Invalid value: null: Cannot find specific ControllerRevision, err: '
                            'ControllerRevision.apps "test-sidecarset" not found')
    errs = validate_sidecarset(_raw(injectionStrategy={"revision": {"revisionName": "r-1"}}))
    assert errs[0].detail == 'Cannot find specific ControllerRevision, err: controllerrevisions.apps "r-1" not found'


def test_messages_are_kruises() -> None:
    errs = validate_sidecarset(_raw(containers=[]), gates=GATE_ON)
    assert errors_message(errs) == "spec: Required value: no initContainer or container defined for SidecarSet"
    errs = validate_sidecarset(_raw(updateStrategy={"partition": "0%", "selector": {"matchLabels": {"a": "b"}}}))
    assert str(errs[0]).endswith("Partition and Selector cannot be used together")


@pytest.mark.parametrize(("ss", "other", "count"), [
    pytest.param(sidecarset("test1", containers=[{"name": "c", "image": "x"}],
                            init_containers=[{"name": "i", "image": "x"}], volumes=[{"name": "v", "emptyDir": {}}]),
                 sidecarset("o", containers=[{"name": "c", "image": "y"}], init_containers=[{"name": "i", "image": "y"}],
                            volumes=[{"name": "v", "emptyDir": {}}]), 2, id="K22-same-names-equal-volume"),
    pytest.param(sidecarset("test2", containers=[{"name": "c", "image": "x"}],
                            namespaceSelector={"matchLabels": {"app": "nginx"}}),
                 sidecarset("o", containers=[{"name": "c", "image": "y"}],
                            namespaceSelector={"matchLabels": {"app": "nginx"}}), 1, id="K22-same-namespace-selector"),
    pytest.param(sidecarset("test3", containers=[{"name": "c", "image": "x"}],
                            namespaceSelector={"matchLabels": {"app": "nginx"}}),
                 sidecarset("o", containers=[{"name": "c", "image": "y"}],
                            namespaceSelector={"matchLabels": {"app": "redis"}}), 0, id="K22-disjoint-namespaces"),
    pytest.param(sidecarset("a", patchPodMetadata=[{"annotations": {"key1": "x"}, "patchPolicy": "Overwrite"}]),
                 sidecarset("o", patchPodMetadata=[{"annotations": {"key1": "y"}, "patchPolicy": "MergePatchJson"}]),
                 1, id="K23-overwrite-vs-merge"),
    pytest.param(sidecarset("a", patchPodMetadata=[{"annotations": {"key1": "x"}, "patchPolicy": "Retain"}]),
                 sidecarset("o", patchPodMetadata=[{"annotations": {"key2": "y"}, "patchPolicy": "Overwrite"}]),
                 0, id="K23-retain-never-conflicts"),
    pytest.param(sidecarset("a", patchPodMetadata=[{"annotations": {"oom-score": "{}"}, "patchPolicy": "MergePatchJson"}]),
                 sidecarset("o", patchPodMetadata=[{"annotations": {"oom-score": "{}"}, "patchPolicy": "MergePatchJson"}]),
                 0, id="K23-two-merges-allowed"),
    pytest.param(sidecarset("a", volumes=[{"name": "v", "hostPath": {"path": "/home/work-1"}}]),
                 sidecarset("o", volumes=[{"name": "v", "hostPath": {"path": "/home/work-1"}}]), 0, id="K23-equal-volumes"),
    pytest.param(sidecarset("a", volumes=[{"name": "v", "hostPath": {"path": "/home/work-1"}}]),
                 sidecarset("o", volumes=[{"name": "v", "hostPath": {"path": "/home/work-2"}}]), 1,
                 id="K23-different-volumes"),
])
def test_K22_K23_conflicts(ss: SidecarSet, other: SidecarSet, count: int) -> None:
    errs = validate_sidecarset(ss, others=[ss, other], gates=GATE_ON)
    assert len(errs) == count, errors_message(errs)


def _canary(name: str, base: str, **spec: Any) -> SidecarSet:
    ss = sidecarset(name, **spec)
    ss.metadata.annotations.update({"apps.kruise.io/sidecarset-canary": "true", "apps.kruise.io/sidecarset-base": base})
    return ss


BASE = sidecarset("base", updateStrategy={"type": "NotUpdate"})


@pytest.mark.parametrize(("ss", "old", "others", "message"), [
    pytest.param(_canary("c", "c", updateStrategy={"type": "NotUpdate"}), None, [BASE], "base sidecarSet cannot be itself",
                 id="K25-base-itself"),
    pytest.param(_canary("c", "missing", updateStrategy={"type": "NotUpdate"}), None, [BASE],
                 'fetch base sidecarSet[missing] failed: sidecarsets.apps.kruise.io "missing" not found', id="K25-base-missing"),
    pytest.param(_canary("c", "b2", updateStrategy={"type": "NotUpdate"}), None,
                 [_canary("b2", "base", updateStrategy={"type": "NotUpdate"})], "base sidecarSet cannot be canary",
                 id="K25-base-is-canary"),
    pytest.param(_canary("c", "base", updateStrategy={"type": "NotUpdate"}),
                 _canary("c", "other", updateStrategy={"type": "NotUpdate"}), [BASE],
                 "annotations[apps.kruise.io/sidecarset-base] is immutable", id="K25-base-changed"),
    pytest.param(_canary("c", "base"), None, [BASE], "RollingUpdate is not supported for canary sidecarSet",
                 id="K25-canary-rolling-update"),
    pytest.param(_canary("c", "base", updateStrategy={"type": "NotUpdate"}), None, [BASE], None, id="K25-valid-canary"),
    pytest.param(_canary("c", "base", updateStrategy={"type": "NotUpdate"}),
                 _canary("c", "base", updateStrategy={"type": "NotUpdate"}), [BASE], None, id="K25-update-keeps-base"),
])
def test_K25_canary(ss: SidecarSet, old: SidecarSet | None, others: list[SidecarSet], message: str | None) -> None:
    errs = validate_sidecarset(ss, old, others=others, gates=GATE_ON)
    if message is None:
        assert errs == []
    else:
        assert len(errs) == 1 and errs[0].detail == message


def test_K25_upgrade_type_immutable_and_new_containers_forbidden() -> None:
    old = sidecarset("s", containers=[{"name": "c", "image": "x"}])
    new = sidecarset("s", containers=[{"name": "c", "image": "x", "upgradeStrategy": {"upgradeType": "HotUpgrade"}}])
    assert [e.detail for e in validate_sidecarset(new, old, gates=GATE_ON)] == ["container c upgradeType is immutable"]
    added = sidecarset("s", containers=[{"name": "c", "image": "x"}, {"name": "d", "image": "x"}])
    assert [e.detail for e in validate_sidecarset(added, old, gates=GATE_ON)] == ["container d is not found"]


@pytest.mark.parametrize(("existing", "patches", "expected", "changed"), [
    pytest.param({}, [("key1", "value1", "Retain"), ("key2", "value2", "Overwrite")],
                 {"key1": "value1", "key2": "value2"}, True, id="K18-add-pod-annotation"),
    pytest.param({"key1": '{"log-agent":1}'}, [("key1", '{"log-agent":1}', "MergePatchJson")],
                 {"key1": '{"log-agent":1}'}, False, id="K18-json-merge-skip"),
    pytest.param({"key1": '{"log-agent":1}'}, [("key1", '{"envoy":2}', "MergePatchJson")],
                 {"key1": '{"envoy":2,"log-agent":1}'}, True, id="merge-sorted-compact"),
    pytest.param({}, [("key1", '{ "b": 1 }', "MergePatchJson")], {"key1": '{ "b": 1 }'}, True, id="merge-absent-verbatim"),
    pytest.param({"key1": ""}, [("key1", "v", "Retain")], {"key1": ""}, False, id="retain-keeps-empty"),
])
def test_K18_patch_pod_metadata(existing: dict[str, str], patches: list[tuple[str, str, str]],
                                expected: dict[str, str], changed: bool) -> None:
    annotations = dict(existing)
    got = patch_pod_metadata(annotations, [SidecarSetPatchPodMetadata(annotations={k: v}, patch_policy=p)
                                           for k, v, p in patches])
    assert (annotations, got) == (expected, changed)
