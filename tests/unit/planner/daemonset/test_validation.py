"""Advanced DaemonSet admission: the webhook's defaults and Kruise's validation rows
(`pkg/webhook/daemonset/validating/*_test.go`, `daemonset_create_update_handler_test.go`), with field
paths and messages as Kruise writes them; the planner refuses what the webhook would."""

from __future__ import annotations

import base64
import copy
from typing import Any

import msgspec
import pytest

from schemas.admission import AdmissionRequest, AdmissionResponse
from schemas.daemonset import DaemonSet
from services.planner.daemonset.plan import plan_daemonset
from services.planner.daemonset.validation import default_daemonset, validate_daemonset
from services.planner.kit.gates import DEFAULT_GATES
from services.webhook.admission import mutate_daemonset, validate_daemonset_request
from sim.patch import json_patch
from tests.unit.planner.daemonset.helpers import NOW, ds_dict, node, rolling


def request(op: str, obj: dict[str, Any] | None, old: dict[str, Any] | None = None) -> AdmissionRequest:
    return msgspec.convert({
        "uid": "r1", "operation": op, "namespace": "default", "name": "ds",
        "kind": {"group": "apps.kruise.io", "version": "v1alpha1", "kind": "DaemonSet"},
        "resource": {"group": "apps.kruise.io", "version": "v1alpha1", "resource": "daemonsets"},
        "object": obj, "oldObject": old}, AdmissionRequest)


def errors(obj: dict[str, Any]) -> list[str]:
    return [str(e) for e in validate_daemonset(msgspec.convert(obj, DaemonSet))]


def with_ru(**ru: Any) -> dict[str, Any]:
    return ds_dict(strategy=rolling(**ru))


def patched(resp: AdmissionResponse, obj: dict[str, Any]) -> dict[str, Any]:
    assert resp.allowed
    if resp.patch is None:
        return obj
    ops = msgspec.json.decode(base64.b64decode(resp.patch) if isinstance(resp.patch, str) else resp.patch)
    out: dict[str, Any] = json_patch(copy.deepcopy(obj), ops)
    return out


# --- defaults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "want"),
    [
        pytest.param({}, {"type": "RollingUpdate", "rollingUpdate": {"rollingUpdateType": "Standard",
                                                                      "maxUnavailable": 1, "maxSurge": 0}},
                     id="nothing-set"),
        pytest.param({"type": "OnDelete"}, {"type": "OnDelete"}, id="on-delete-gets-no-rolling-update-block"),
        pytest.param(rolling(maxSurge=2), {"type": "RollingUpdate", "rollingUpdate": {
            "rollingUpdateType": "Standard", "maxSurge": 2}}, id="max-surge-set-max-unavailable-stays-unset"),
        pytest.param(rolling(rollingUpdateType="Surging"), {"type": "RollingUpdate", "rollingUpdate": {
            "rollingUpdateType": "Standard", "maxUnavailable": 0, "maxSurge": 1}}, id="surging-rewritten-surge-1"),
        pytest.param(rolling(rollingUpdateType="InPlaceIfPossible", partition=3), {
            "type": "RollingUpdate", "rollingUpdate": {"rollingUpdateType": "InPlaceIfPossible", "partition": 3,
                                                       "maxUnavailable": 1, "maxSurge": 0}}, id="in-place-kept"),
    ],
)
def test_defaults(strategy: dict[str, Any], want: dict[str, Any]) -> None:
    obj = ds_dict(strategy=strategy)
    out = patched(mutate_daemonset(request("CREATE", obj)), obj)
    assert out["spec"]["updateStrategy"] == want
    assert out["spec"]["burstReplicas"] == 250 and out["spec"]["revisionHistoryLimit"] == 10
    assert out["spec"]["template"] == obj["spec"]["template"]  # the template is stored as written


def test_defaults_are_the_planners() -> None:
    obj = ds_dict()
    assert default_daemonset(obj)["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 1


# --- L23 - L28 --------------------------------------------------------------------------------------

MATCHING = ds_dict(strategy=rolling(rollingUpdateType="Standard", maxUnavailable=1))


def _mismatch() -> dict[str, Any]:
    obj = ds_dict()
    obj["spec"]["selector"] = {"matchLabels": {"key1": "value1"}}
    obj["spec"]["template"]["metadata"]["labels"] = {"key1": "value2"}
    return obj


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        pytest.param(_mismatch(), ["spec.template.metadata.labels: Invalid value: map[string]string{\"key1\":\"value2\"}: "
                                   "`selector` does not match template `labels`"], id="L23-selector-not-matching"),
        pytest.param(MATCHING, [], id="L23-matching-standard-mu-1"),
    ],
)
def test_l23_validate_daemonset(obj: dict[str, Any], want: list[str]) -> None:
    assert errors(obj) == want


@pytest.mark.parametrize(
    ("ru", "error"),
    [
        pytest.param({"maxUnavailable": 1, "maxSurge": 1}, "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: "
                     "1: may not be set when maxUnavailable is non-zero", id="L24-mu1-ms1"),
        pytest.param({"maxUnavailable": 0, "maxSurge": 0}, "spec.updateStrategy.rollingUpdate.maxUnavailable: "
                     "Required value: cannot be 0 when maxSurge is 0", id="L24-mu0-ms0"),
        pytest.param({"maxSurge": 1}, None, id="L24-ms1-only"),
        pytest.param({"rollingUpdateType": "InPlaceIfPossible", "maxSurge": 1},
                     "spec.updateStrategy.rollingUpdate.maxSurge: Required value: must be 0 for InPlaceIfPossible type",
                     id="L24-in-place-with-surge"),
        pytest.param({"maxUnavailable": "150%"}, "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: "
                     "\"150%\": must not be greater than 100%", id="L24-mu-150-percent"),
        pytest.param({"maxUnavailable": 1, "partition": 5}, None, id="L24-mu1-partition-5"),
        pytest.param({"maxUnavailable": "5"}, "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: "
                     "\"5\": must be an integer or percentage (e.g '5%')", id="numeric-string-counts-as-set"),
        pytest.param({"maxUnavailable": "abc", "maxSurge": 1}, None, id="Q16-non-numeric-string-counts-as-unset"),
        pytest.param({"maxUnavailable": 1, "rollingUpdateType": "Bogus"},
                     "spec.updateStrategy.rollingUpdate.rollingUpdate.type: Unsupported value: \"Bogus\": supported "
                     "values: \"Standard\", \"Surging\", \"InPlaceIfPossible\"", id="unknown-type-doubled-path"),
    ],
)
def test_l24_rolling_update(ru: dict[str, Any], error: str | None) -> None:
    assert errors(with_ru(**ru)) == ([error] if error else [])


def test_l24_surging_with_max_unavailable_is_refused_without_the_mutating_webhook() -> None:
    from services.planner.daemonset.validation import validate_spec

    ds = msgspec.convert(with_ru(rollingUpdateType="Surging", maxUnavailable=1), DaemonSet)
    assert [str(e) for e in validate_spec(ds.spec)] == [
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: must be 0 for Surging type"]


def _spec(**changes: Any) -> dict[str, Any]:
    obj = copy.deepcopy(MATCHING)
    for path, value in changes.items():
        target = obj["spec"]
        *parents, leaf = path.split("__")
        for p in parents:
            target = target.setdefault(p, {})
        target[leaf] = value
    return obj


@pytest.mark.parametrize(
    ("obj", "error"),
    [
        pytest.param(_spec(selector={}), "spec.selector: Invalid value: {}: "
                     "empty selector is invalid for daemonset", id="L25-empty-selector"),
        pytest.param(_spec(template__spec__restartPolicy="OnFailure"), "spec.template.spec.restartPolicy: Unsupported "
                     "value: \"OnFailure\": supported values: \"Always\"", id="L25-restart-policy-on-failure"),
        pytest.param(_spec(template__spec__activeDeadlineSeconds=10), "spec.template.spec.activeDeadlineSeconds: "
                     "Forbidden: activeDeadlineSeconds in DaemonSet is not Supported", id="L25-active-deadline"),
        pytest.param(_spec(lifecycle={"inPlaceUpdate": {"labelsHandler": {"a": "b"}}}),
                     "spec.lifecycle.inPlaceUpdate: Forbidden: inPlaceUpdate hook has not supported yet",
                     id="L25-in-place-update-hook"),
        pytest.param(_spec(revisionHistoryLimit=0), None, id="L25-revision-history-limit-set"),
        pytest.param(_spec(minReadySeconds=-1), "spec.minReadySeconds: Invalid value: -1: must be greater than or "
                     "equal to 0", id="negative-min-ready-seconds"),
    ],
)
def test_l25_spec(obj: dict[str, Any], error: str | None) -> None:
    got = errors(obj)
    assert (got[-1:] if error else got) == ([error] if error else [])


@pytest.mark.parametrize(
    ("strategy", "error"),
    [
        pytest.param({"type": "OnDelete"}, None, id="L26-on-delete"),
        pytest.param(rolling(maxUnavailable=1), None, id="L26-rolling-update-with-mu"),
        pytest.param(None, "spec.updateStrategy.rollingUpdate: Required value", id="L26-rolling-update-without-block"),
        pytest.param(rolling(maxSurge=1), None, id="L26-ms-only"),
        pytest.param({"type": "InvalidType"}, "spec.updateStrategy: Unsupported value: \"InvalidType\": supported values: \"RollingUpdate\", \"OnDelete\"",
                     id="L26-invalid-type"),
    ],
)
def test_l26_update_strategy(strategy: dict[str, Any] | None, error: str | None) -> None:
    from services.planner.daemonset.validation import validate_spec

    obj = ds_dict(strategy=strategy if strategy is not None else {"type": "RollingUpdate"})
    ds = msgspec.convert(obj, DaemonSet)  # validated as given (the mutating webhook would add the block)
    got = [str(e) for e in validate_spec(ds.spec)]
    assert got == ([error] if error else [])


@pytest.mark.parametrize(
    ("change", "allowed"),
    [
        pytest.param({"burstReplicas": 2}, True, id="L27-burst-replicas-1-to-2-allowed"),
        pytest.param({"selector": {"matchLabels": {"app": "different"}},
                      "template": {"metadata": {"labels": {"app": "different"}},
                                   "spec": {"containers": [{"name": "c", "image": "x"}]}}}, False,
                     id="L27-selector-change-denied-422"),
    ],
)
def test_l27_update(change: dict[str, Any], allowed: bool) -> None:
    old = _spec(burstReplicas=1)
    new = copy.deepcopy(old)
    new["spec"].update(change)
    resp = validate_daemonset_request(request("UPDATE", new, old))
    assert resp.allowed is allowed
    if not allowed:
        assert resp.status is not None and resp.status.code == 422
        assert resp.status.message.startswith("spec: Forbidden: updates to daemonset spec for fields other than")


@pytest.mark.parametrize(
    ("partition", "ok"),
    [pytest.param(5, True, id="L28-5"), pytest.param(0, True, id="L28-0"), pytest.param(-5, False, id="L28-minus-5"),
     pytest.param("50%", True, id="L28-50-percent")],
)
def test_l28_partition(partition: Any, ok: bool) -> None:
    got = errors(with_ru(maxUnavailable=1, partition=partition))
    assert (got == []) is ok
    if not ok:
        assert got == ["spec.updateStrategy.rollingUpdate.rollingUpdate.partition: Invalid value: -5: must be greater "
                       "than or equal to 0"]


@pytest.mark.parametrize(("value", "want"), [pytest.param(5, 5, id="L28-value-5"),
                                             pytest.param("50%", 50, id="L28-value-50-percent"),
                                             pytest.param(0, 0, id="L28-value-0")])
def test_l28_int_or_percent_value(value: Any, want: int) -> None:
    from services.planner.daemonset.validation import int_or_percent_value

    assert int_or_percent_value(value) == want


def test_the_planner_refuses_what_the_webhook_would() -> None:
    ds = msgspec.convert(with_ru(maxUnavailable=1, maxSurge=1), DaemonSet)
    plan = plan_daemonset(ds, [], [node("n1")], [], now=NOW, gates=DEFAULT_GATES)
    assert plan.errors and not [c for c in plan.commands if c.verb != "event"]
    assert plan.events[0].type == "rejected" and plan.events[0].field == "spec.updateStrategy.rollingUpdate.maxSurge"


def test_selecting_all_is_warned_and_nothing_is_done() -> None:
    obj = ds_dict()
    obj["spec"]["selector"] = {}
    plan = plan_daemonset(msgspec.convert(obj, DaemonSet), [], [node("n1")], [], now=NOW, gates=DEFAULT_GATES)
    assert [(c.verb, c.on_success.reason if c.on_success else "") for c in plan.commands] == [("event", "SelectingAll")]
    assert plan.commands[0].on_success is not None and plan.commands[0].on_success.type == "Warning"
