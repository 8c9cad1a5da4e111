"""Kruise's PodProbeMarker webhook tests (`pkg/webhook/podprobemarker/validating/probe_validating_test.go`),
one test id per case, through the one validation both the webhook and the planner use."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from schemas.podprobemarker import HTTPGetAction, PodProbeMarker
from services.planner.kit.gates import FeatureGates
from services.planner.podprobemarker.validation import _http_errors, validate_podprobemarker
from services.webhook.admission import validate_podprobemarker_request
from tests.unit.planner.podprobemarker.fixtures import ppm


def edit(change: Any) -> PodProbeMarker:
    body = msgspec.to_builtins(ppm())
    change(body["spec"])
    return msgspec.convert(body, PodProbeMarker)


def probe0(**fields: Any) -> Any:
    return lambda spec: spec["probes"][0].update(fields)


CASES = [
    # id, change, errors, field of the first error
    ("I7-test1-selector-nil", lambda s: s.pop("selector"), 1, "spec.selector"),
    ("test2-no-probes", lambda s: s.update(probes=[]), 1, "spec.probes"),
    ("test3-duplicate-probe-name", lambda s: s["probes"].append({"name": "healthy", "containerName": "other"}), 1,
     "spec.probes[1].name"),
    ("test4-valid-httpget", lambda s: s["probes"].append({
        "name": "check", "containerName": "other", "podConditionType": "game.kruise.io/check",
        "probe": {"httpGet": {"path": "/index.html", "scheme": "HTTP", "port": 80}}}), 0, ""),
    ("test5-exec-without-command", lambda s: s["probes"].append({
        "name": "check", "containerName": "other", "podConditionType": "game.kruise.io/check",
        "probe": {"exec": {}}}), 1, "spec.probes[1].probe.exec.command"),
    ("I7-test6-policy-state-unknown", probe0(markerPolicy=[{
        "state": "Unknown", "annotations": {"controller.kubernetes.io/pod-deletion-cost": "10"},
        "labels": {"server-healthy": "true"}}]), 1, "spec.probes[0].markerPolicy[0].state"),
    ("test7-invalid-label-key", probe0(markerPolicy=[{
        "state": "Succeeded", "annotations": {"controller.kubernetes.io/pod-deletion-cost": "10"},
        "labels": {"server-/$healthy": "true"}}]), 2, "spec.probes[0].markerPolicy[0].labels"),
    ("I7-test8-probe-name-Initialized", probe0(name="Initialized"), 1, "spec.probes[0].name"),
    ("I7-test9-condition-type-invalid", probe0(podConditionType="#5invalid"), 1, "spec.probes[0].podConditionType"),
    ("I7-test10-probe-name-empty", probe0(name=""), 1, "spec.probes[0].name"),
    ("I7-test11-container-name-empty", probe0(containerName=""), 1, "spec.probes[0].containerName"),
    ("probe-name-with-hash", probe0(name="a#b"), 1, "spec.probes[0].name"),
    ("two-handlers", probe0(probe={"exec": {"command": ["x"]}, "tcpSocket": {"port": 80}}), 1,
     "spec.probes[0].probe.tcpSocket"),
    ("no-handler", probe0(probe={}), 1, "spec.probes[0].probe"),
    ("tcp-host-forbidden", probe0(probe={"tcpSocket": {"port": 80, "host": "example.com"}}), 1,
     "spec.probes[0].probe.tcpSocket.host"),
    ("negative-period", probe0(probe={"exec": {"command": ["x"]}, "periodSeconds": -1}), 1,
     "spec.probes[0].probe.periodSeconds"),
    ("condition-and-policy-empty", probe0(podConditionType="", markerPolicy=[]), 1, "spec.probes[0]"),
    ("policy-without-labels-and-annotations", probe0(markerPolicy=[{"state": "Succeeded"}]), 1,
     "spec.probes[0].markerPolicy[0]"),
    ("duplicate-policy-state", probe0(markerPolicy=[{"state": "Failed", "labels": {"a": "b"}},
                                                    {"state": "Failed", "labels": {"a": "c"}}]), 1,
     "spec.probes[0].markerPolicy[1].state"),
    ("reserved-name-applies-to-probe-name-not-condition-type", probe0(podConditionType="Ready"), 0, ""),
]


@pytest.mark.parametrize(("change", "count", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validate_podprobemarker(change: Any, count: int, field: str) -> None:
    errors = validate_podprobemarker(edit(change))
    assert len(errors) == count, [str(e) for e in errors]
    if count:
        assert errors[0].field == field


def test_messages_are_kruise_s() -> None:
    [err] = validate_podprobemarker(edit(probe0(name="Initialized")))
    assert str(err) == 'spec.probes[0].name: Invalid value: "Initialized": probe name can\'t be Initialized'
    [err] = validate_podprobemarker(edit(lambda s: s.pop("selector")))
    assert str(err) == "spec.selector: Invalid value: null: empty Selector is not valid for PodProbeMarker."


@pytest.mark.parametrize(("action", "field"), [
    ({"path": "/healthz", "port": 8080, "scheme": "FTP"}, "test.scheme"),
    ({"path": "", "port": 8080, "scheme": "HTTP"}, "test.path"),
    ({"path": "/healthz", "port": 65536, "scheme": "HTTP"}, "test.port"),
    ({"path": "/healthz", "port": "a_b", "scheme": "HTTP"}, "test.port"),
    ({"path": "/healthz", "port": 8080, "scheme": ""}, "test.scheme"),
], ids=["I8-unsupported-scheme", "I8-missing-path", "invalid-port-number", "invalid-port-name", "empty-scheme"])
def test_validate_http_get_action(action: dict[str, Any], field: str) -> None:
    errors = _http_errors(msgspec.convert(action, HTTPGetAction), "test")
    assert [e.field for e in errors] == [field]


def test_selector_is_immutable() -> None:
    old = ppm()
    new = edit(lambda s: s.update(selector={"matchLabels": {"app": "other"}}))
    [err] = validate_podprobemarker(new, old)
    assert err.field == "spec.selector" and err.detail == "selector must be immutable"


def test_gate_off_is_forbidden() -> None:
    [err] = validate_podprobemarker(ppm(), gates=FeatureGates(pod_probe_marker_gate=False))
    assert err.type == "Forbidden" and "feature-gate PodProbeMarkerGate is not enabled" in str(err)


def test_webhook_answers_with_the_field() -> None:
    from schemas.admission import AdmissionRequest

    body = msgspec.to_builtins(edit(probe0(name="")))
    req = msgspec.convert({"uid": "r1", "kind": {"group": "apps.kruise.io", "version": "v1alpha1",
                                                 "kind": "PodProbeMarker"},
                           "resource": {"group": "apps.kruise.io", "version": "v1alpha1",
                                        "resource": "podprobemarkers"},
                           "operation": "CREATE", "namespace": "default", "object": body}, AdmissionRequest)
    answer = validate_podprobemarker_request(req)
    assert not answer.allowed and answer.status is not None and answer.status.code == 400
    assert "spec.probes[0].name" in answer.status.message
