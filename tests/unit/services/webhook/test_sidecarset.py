"""The webhook's SidecarSet answers and `kruisebus admit`: what a user sees at `kubectl apply`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from schemas.admission import AdmissionRequest
from schemas.constants import (
    ANNOTATION_SIDECARSET_HASH,
    CONFIGMAP_KRUISE_CONFIGURATION,
    DEFAULT_KRUISE_NAMESPACE,
    KEY_PATCH_METADATA_WHITELIST,
)
from schemas.kube import ConfigMap, ObjectMeta
from schemas.messages import ConfigMapState
from schemas.sidecarset import SidecarSet
from services.planner.sidecarset.defaults import default_sidecarset
from services.webhook.admission import (
    NotSynced,
    PodView,
    mutate_pod,
    mutate_sidecarset,
    validate_sidecarset_request,
)
from services.webhook.server import WebhookOptions, WebhookServer
from sim.patch import json_patch

SIDECARSET: dict[str, Any] = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet",
                              "metadata": {"name": "log"},
                              "spec": {"selector": {"matchLabels": {"app": "web"}},
                                       "containers": [{"name": "log-agent", "image": "log:v1"}]}}
POD: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "web"}},
                       "spec": {"containers": [{"name": "main", "image": "nginx"}]}}


def request(obj: dict[str, Any], resource: str, operation: str = "CREATE", old: dict[str, Any] | None = None) -> AdmissionRequest:
    group = "" if resource == "pods" else "apps.kruise.io"
    return msgspec.convert({"uid": "u", "kind": {"group": group, "version": "v1alpha1", "kind": "X"},
                            "resource": {"group": group, "version": "v1" if resource == "pods" else "v1alpha1",
                                         "resource": resource},
                            "operation": operation, "namespace": "default", "object": obj, "oldObject": old},
                           AdmissionRequest)


def view_with(*raw: dict[str, Any]) -> PodView:
    view = PodView(ready=True)
    for r in raw:
        ss = msgspec.convert(default_sidecarset(r), SidecarSet)
        view.sidecarsets[ss.metadata.name] = ss
    return view


def test_mutating_webhook_defaults_and_hashes() -> None:
    resp = mutate_sidecarset(request(SIDECARSET, "sidecarsets"))
    assert resp.allowed and resp.patch is not None
    out = json_patch(json.loads(json.dumps(SIDECARSET)), json.loads(resp.patch))
    assert out["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    assert len(out["metadata"]["annotations"][ANNOTATION_SIDECARSET_HASH]) == 64


def test_pod_is_injected_by_json_patch() -> None:
    resp = mutate_pod(request(POD, "pods"), view_with(SIDECARSET), now="2026-01-01T00:00:00Z")
    assert resp.allowed and resp.patch is not None
    out = json_patch(json.loads(json.dumps(POD)), json.loads(resp.patch))
    assert [c["name"] for c in out["spec"]["containers"]] == ["log-agent", "main"]


def test_gate_pod_webhook_off_injects_nothing() -> None:
    from services.planner.kit.gates import parse_feature_gates

    resp = mutate_pod(request(POD, "pods"), view_with(SIDECARSET), gates=parse_feature_gates("PodWebhook=false"))
    assert resp.allowed and resp.patch is None


def test_pod_creation_fails_the_call_until_the_view_is_replayed() -> None:
    with pytest.raises(NotSynced):
        mutate_pod(request(POD, "pods"), PodView(ready=False))


def test_missing_revision_rejects_the_pod_with_500() -> None:
    ss = json.loads(json.dumps(SIDECARSET))
    ss["spec"]["injectionStrategy"] = {"revision": {"revisionName": "log-missing"}}
    resp = mutate_pod(request(POD, "pods"), view_with(ss))
    assert not resp.allowed and resp.status is not None and resp.status.code == 500
    assert 'controllerrevisions.apps "log-missing" not found' in resp.status.message


def test_validation_conflicts_with_other_sidecarsets_in_the_view() -> None:
    other = json.loads(json.dumps(SIDECARSET))
    other["metadata"]["name"] = "other"
    resp = validate_sidecarset_request(request(default_sidecarset(SIDECARSET), "sidecarsets"), view_with(other))
    assert not resp.allowed and resp.status is not None and resp.status.code == 422
    assert resp.status.message == 'spec.containers: Invalid value: "log-agent": container log-agent already exist in other'


def test_update_adding_a_container_is_refused() -> None:
    new = json.loads(json.dumps(SIDECARSET))
    new["spec"]["containers"].append({"name": "second", "image": "x"})
    resp = validate_sidecarset_request(request(default_sidecarset(new), "sidecarsets", "UPDATE",
                                               default_sidecarset(SIDECARSET)), view_with())
    assert not resp.allowed and resp.status is not None
    assert "container second is not found" in resp.status.message


def _cli(tmp_path: Path, pod: dict[str, Any], objects: list[dict[str, Any]], *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pod.yaml").write_text(yaml.safe_dump(pod))
    (tmp_path / "with.yaml").write_text(yaml.safe_dump_all(objects))
    return subprocess.run([sys.executable, "-m", "services.cli", "admit", str(tmp_path / "pod.yaml"), "--with",
                           str(tmp_path / "with.yaml"), "--now", "2026-01-01T00:00:00Z", *extra],
                          capture_output=True, text=True, timeout=60)


def test_admit_cli_prints_the_injected_pod(tmp_path: Path) -> None:
    done = _cli(tmp_path, POD, [SIDECARSET])
    assert done.returncode == 0, done.stderr
    out = yaml.safe_load(done.stdout)
    assert [c["name"] for c in out["spec"]["containers"]] == ["log-agent", "main"]
    assert json.loads(out["metadata"]["annotations"][ANNOTATION_SIDECARSET_HASH])["log"]["updateTimestamp"] == \
        "2026-01-01T00:00:00Z"


def test_admit_cli_prints_the_denial(tmp_path: Path) -> None:
    ss = json.loads(json.dumps(SIDECARSET))
    ss["spec"]["injectionStrategy"] = {"revision": {"customVersion": "1"}}
    done = _cli(tmp_path, POD, [ss])
    assert done.returncode == 1
    assert done.stderr.startswith('admission webhook "mpod.kb.io" denied the request: ')


def _with_patch(key: str) -> dict[str, Any]:
    ss = json.loads(json.dumps(SIDECARSET))
    ss["spec"]["patchPodMetadata"] = [{"annotations": {key: "v"}, "patchPolicy": "Overwrite"}]
    return default_sidecarset(ss)


def _configmap(data: dict[str, str], namespace: str = DEFAULT_KRUISE_NAMESPACE,
               name: str = CONFIGMAP_KRUISE_CONFIGURATION, deleted: bool = False) -> ConfigMapState:
    return ConfigMapState(object=ConfigMap(metadata=ObjectMeta(name=name, namespace=namespace, uid="cm"), data=data),
                          deleted=deleted)


def _server_with(*events: ConfigMapState) -> WebhookServer:
    server = WebhookServer(WebhookOptions(), view_with())
    for event in events:
        asyncio.run(server.on_state(event))
    return server


_RULES = '{"rules":[{"allowedAnnotationKeyExprs":["key.*"]}]}'


@pytest.mark.parametrize(("key", "allowed"), [pytest.param("key1", True, id="allowed-key"),
                                              pytest.param("other", False, id="key-outside-the-whitelist")])
def test_whitelist_from_the_configmap_state(key: str, allowed: bool) -> None:
    view = _server_with(_configmap({KEY_PATCH_METADATA_WHITELIST: _RULES})).view
    resp = validate_sidecarset_request(request(_with_patch(key), "sidecarsets"), view)
    assert resp.allowed is allowed
    if not allowed:
        assert resp.status is not None and resp.status.message == \
            "spec.patchPodMetadata: Required value: sidecarSet patch metadata annotation(other) is not allowed"


_NOT_FOUND = "spec.patchPodMetadata: Required value: SidecarSet patch metadata whitelist not found"


@pytest.mark.parametrize("events", [
    pytest.param((), id="no-configmap"),
    pytest.param((_configmap({"other-key": _RULES}),), id="key-missing"),
    pytest.param((_configmap({KEY_PATCH_METADATA_WHITELIST: _RULES}, namespace="default"),), id="other-namespace"),
    pytest.param((_configmap({KEY_PATCH_METADATA_WHITELIST: _RULES}, name="other"),), id="other-name"),
    pytest.param((_configmap({KEY_PATCH_METADATA_WHITELIST: _RULES}),
                  _configmap({KEY_PATCH_METADATA_WHITELIST: _RULES}, deleted=True)), id="deleted"),
])
def test_whitelist_not_found(events: tuple[ConfigMapState, ...]) -> None:
    resp = validate_sidecarset_request(request(_with_patch("key1"), "sidecarsets"), _server_with(*events).view)
    assert not resp.allowed and resp.status is not None and resp.status.message == _NOT_FOUND


def test_whitelist_edit_applies_at_once() -> None:
    server = _server_with(_configmap({KEY_PATCH_METADATA_WHITELIST: '{"rules":[{"allowedAnnotationKeyExprs":["x"]}]}'}))
    assert not validate_sidecarset_request(request(_with_patch("key1"), "sidecarsets"), server.view).allowed
    asyncio.run(server.on_state(_configmap({KEY_PATCH_METADATA_WHITELIST: _RULES})))
    assert validate_sidecarset_request(request(_with_patch("key1"), "sidecarsets"), server.view).allowed


def test_patches_wait_for_the_state_replay() -> None:
    """Before the replay is done an absent ConfigMap may just not be read yet: the call fails (503)
    rather than refusing with "not found"; a SidecarSet without patches is answered."""
    server = WebhookServer(WebhookOptions(), PodView(ready=False))
    asyncio.run(server.on_state(_configmap({KEY_PATCH_METADATA_WHITELIST: _RULES})))
    with pytest.raises(NotSynced, match="whitelist"):
        validate_sidecarset_request(request(_with_patch("key1"), "sidecarsets"), server.view)
    assert validate_sidecarset_request(request(default_sidecarset(SIDECARSET), "sidecarsets"), server.view).allowed


def test_unsynced_view_admits_with_a_warning() -> None:
    resp = validate_sidecarset_request(request(default_sidecarset(SIDECARSET), "sidecarsets"), PodView(ready=False))
    assert resp.allowed and resp.warnings and "not checked" in resp.warnings[0]
